"""Small asyncio helpers shared by the core and the plugins (public plugin API: a storage
plugin wakes its waiters with :class:`WakeSignal`)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import FrameType

log = logging.getLogger("distsched.timer")


class WakeSignal:
    """A wake-up flag waiters can await with a timeout.

    Built on plain futures and ``call_later`` rather than ``asyncio.wait_for``: on Python
    3.11 ``wait_for`` can swallow a cancellation that races with the inner wait completing,
    which would leave a cancelled leader loop running. Futures follow the running loop, so
    a store can outlive the event loops of successive tests.
    """

    def __init__(self) -> None:
        self._flag = False
        self._waiters: set[asyncio.Future[bool]] = set()

    def is_set(self) -> bool:
        """Whether a wake-up is pending (the next ``wait`` returns at once)."""
        return self._flag

    def waiting(self) -> bool:
        """Whether a ``wait`` is in progress."""
        return bool(self._waiters)

    def set(self) -> None:
        self._flag = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(True)

    async def wait(self, timeout: float) -> bool:
        if self._flag:
            self._flag = False
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(waiter)
        timer = loop.call_later(max(0.0, timeout), _resolve, waiter, False)
        try:
            woke = await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)
        if woke:
            self._flag = False
        return woke


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], timeout: float = 5.0) -> set[asyncio.Task[object]]:
    """Cancel ``tasks`` and wait for them to end, but never forever; returns those that did
    not stop in time (a store client can swallow a cancellation)."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if not pending:
        return set()
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    return stuck


class PreciseTimer:
    """Wakes waiters at instants of ``clock`` to a fraction of a millisecond.

    The event loop alone wakes up to a millisecond late (epoll's timeout is in whole
    milliseconds, rounded up), plus whatever the loop is busy with. One timer serves every
    waiter: it sleeps on the loop until a *lead* before the earliest instant, then blocks the
    thread in ``time.sleep`` until ``spin`` seconds before it (the CPU stays free for other
    processes, and a process that sleeps is woken ahead of busy ones) and busy-waits the last
    ``spin`` seconds, and releases the waiters due, earliest first.

    The lead is ``block`` plus how late the loop woke the timer at worst over the last
    ``LATE_WINDOW`` instants: on a machine whose cores are all busy, a process waits for a CPU
    about as long as it runs (a loaded worker's loop woke the timer up to 15-30 ms late,
    measured), and a timer that left the loop only 3 ms before the instant started its slot
    that late (docs/performance.md, round 2's eighth session). ``block`` (10 ms) covers the
    first busy instants, before any lateness was seen. A machine that quiets down gets the short lead back after that many
    instants (a minute of once-a-second slots). The lead is at most ``max_block``: the loop is
    blocked at most that long per distinct instant.

    Slots need not be whole seconds (an ``every=0.01`` job has a hundred a second), and a loop
    blocked before each of them would hold the worker's other tasks, heartbeats and reports
    nearly all the time. So the timer blocks the loop at most ``block_share`` of the last
    second (10 %: four instants a second at the longest lead, ten at the shortest; counted as
    the leads it slept, not the time the kernel kept the process off a CPU meanwhile); an
    instant beyond that waits on the loop itself, to its millisecond.
    """

    #: how many of the last instants' wake-ups the lead covers
    LATE_WINDOW = 60

    def __init__(self, clock: Callable[[], float], block: float = 0.01, spin: float = 0.0004,
                 max_block: float = 0.025, block_share: float = 0.1) -> None:
        self.clock = clock
        self.block = block
        self.spin = spin
        self.max_block = max(block, max_block)
        self.block_share = block_share
        #: (time.monotonic() at its end, seconds it was meant to last) of each time the loop was
        #: blocked, the last second's
        self._blocked: deque[tuple[float, float]] = deque()
        #: how late (seconds) the loop woke the runner for each of the last instants
        self._late: deque[float] = deque(maxlen=self.LATE_WINDOW)
        self._late_now = 0.0  # for the instant being waited for
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._signal = WakeSignal()
        self._runner: asyncio.Task[None] | None = None
        #: ``time.sleep`` failed once: every instant waits on the loop (:meth:`_run`)
        self._no_block = False

    def lead(self) -> float:
        """How long before an instant the runner leaves the loop for ``time.sleep``."""
        return min(self.max_block, self.block + max(self._late, default=0.0))

    def _may_block(self, lead: float) -> bool:
        """Whether blocking the loop for ``lead`` more keeps it within ``block_share`` of the
        last second."""
        blocked, since = self._blocked, time.monotonic() - 1.0
        while blocked and blocked[0][0] < since:
            blocked.popleft()
        if self._no_block:
            return False
        return sum(seconds for _, seconds in blocked) + lead <= self.block_share

    async def wait_until(self, at: float) -> None:
        if at <= self.clock():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (at, next(self._seq), waiter))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name="distsched-precise-timer")
        else:
            self._signal.set()  # it may be earlier than what the runner sleeps for
        await waiter

    async def _run(self) -> None:
        heap, clock = self._heap, self.clock
        while heap:
            lead = self.lead()
            precise = self._may_block(lead)
            if not precise:
                lead = 0.0  # over its share: this instant waits on the loop
            delay = heap[0][0] - clock()
            if delay > lead:
                signalled = await self._signal.wait(delay - lead)
                if not signalled and heap:
                    # woken by its own timeout, meant for ``lead`` before the instant: how late,
                    # beyond the millisecond epoll rounds up to (which ``block`` covers)?
                    self._late_now = max(self._late_now, lead - (heap[0][0] - clock()) - 0.001)
                continue
            if precise and delay > 0:
                if delay > self.spin:
                    try:
                        time.sleep(delay - self.spin)
                    except (OSError, ValueError, OverflowError) as exc:
                        # the kernel refused the sleep (a clock libfaketime fakes gave
                        # EINVAL): the runner died with it, and its waiters hung until the
                        # next wait_until. From now on every instant waits on the loop.
                        self._no_block = True
                        log.warning("precise timer: time.sleep failed (%s: %s); slots are now started by the "
                                    "event loop, to its millisecond", type(exc).__name__, exc)
                        continue
                at = heap[0][0]
                # bounded by the monotonic clock too: ``clock`` may be wall time, which can step back
                stop = time.monotonic() + min(delay, self.max_block) + 0.001
                while clock() < at and time.monotonic() < stop:
                    pass
                self._blocked.append((time.monotonic(), delay))
            now = clock()
            while heap and heap[0][0] <= now:
                waiter = heapq.heappop(heap)[2]
                if not waiter.done():
                    waiter.set_result(None)
            self._late.append(self._late_now)
            self._late_now = 0.0
            await asyncio.sleep(0)  # let the released waiters run before the next instant

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for _, _, waiter in self._heap:
            waiter.cancel()
        self._heap.clear()


class LoopWatch:
    """Notices an event loop held by one callback - typically an ``async def`` task that
    blocks (``time.sleep``, blocking I/O, a long computation) - and says so, from a thread of
    its own since the loop cannot.

    On the loop, a tick every ``threshold / 4`` seconds notes the time. A daemon thread
    looks as often: when the last tick is over ``threshold`` old and the loop thread is not
    waiting in its selector (a loop that waits for I/O is not held; a process stopped and
    continued is not either), it calls ``held(seconds, frames)`` once for that stall, with
    the loop thread's frames innermost first (``sys._current_frames``; to tell the culprit).
    The first tick after calls ``freed(seconds)`` (the time since the tick before: the stall
    began at most ``interval`` after it) for a stall ``held`` was called for.
    Both callbacks must be quick; ``held`` runs on the watch thread, ``freed`` on the loop.
    """

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.interval = threshold / 4
        self._last = time.monotonic()
        self._seen_held = False
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None

    def start(self, held: Callable[[float, list[FrameType]], None], freed: Callable[[float], None]) -> None:
        """Start watching the running loop (call from its thread)."""
        loop = asyncio.get_running_loop()
        ident = threading.get_ident()
        self._last = time.monotonic()

        def tick() -> None:
            now = time.monotonic()
            gap, self._last = now - self._last, now
            if self._seen_held:
                self._seen_held = False
                if gap > self.threshold:  # (a watch that looked just as the loop ran again: no stall)
                    freed(gap)
            self._handle = loop.call_later(self.interval, tick)

        def watch() -> None:
            while not self._stop.wait(self.interval):
                since = time.monotonic() - self._last
                if since <= self.threshold or self._seen_held:
                    continue
                frames = _frames(ident)
                if not frames or _waiting_for_io(frames[0]) or time.monotonic() - self._last <= self.threshold:
                    continue
                self._seen_held = True
                try:
                    held(since, frames)
                except Exception:  # a report must not end the watch
                    pass

        self._handle = loop.call_later(self.interval, tick)
        threading.Thread(target=watch, name="distsched-loop-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()


def _frames(ident: int) -> list[FrameType]:
    """The frames of thread ``ident``, innermost first."""
    frame = sys._current_frames().get(ident)
    out = []
    while frame is not None:
        out.append(frame)
        frame = frame.f_back
    return out


def _waiting_for_io(frame: FrameType) -> bool:
    """Whether the innermost frame is a selector's wait (the loop is idle, not held)."""
    return frame.f_code.co_name in ("select", "poll", "control") and "selectors" in frame.f_code.co_filename


__all__ = ["LoopWatch", "PreciseTimer", "WakeSignal", "cancel_and_wait"]
