"""The scheduler: campaigns for the lease and, while it holds it, leads.

One pass of the leader loop: apply the workers' results (retry policy, events), fire the
jobs that came due (misfire, DST and overlap policies; every slot recorded), requeue the
tasks of dead workers, time out tasks whose result never came, and dispatch ready tasks to
workers chosen by each task's balancer. Then it sleeps until the next due job or retry, or
until the store signals activity (a result, a submission, a job change) - it never polls on
a fixed tick. Every write carries the fence of the current term; when the lease is lost the
loop is cancelled at once, and the store refuses anything a stale leader still sends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import attrs

from ..asyncutil import cancel_and_wait
from ..config import EngineConfig
from ..model import (
    FencedError,
    InvalidTransition,
    StaleAttempt,
    Task,
    TaskResult,
    TaskState,
    Worker,
)
from ..model import events as ev
from ..model.result import safe_str
from ..model.task import ASSIGNED
from ..model.times import iso_utc
from ..model.words import names_listed
from ..ports import Balancer, Election, Fence, Firing, SchedulerNode, Settled, StorageBackend
from ..signing import signer_from
from .backoff import ENGINE_RANDOM, Backoff, wait_or_stop
from .events import EventBus

log = logging.getLogger("distsched.scheduler")
#: The balancer a task whose balancer cannot be built falls back to.
FALLBACK_BALANCER = "least-tasks"
FIRE_BATCH = 500
#: Retention pruning per housekeeping pass: entries per call per state, calls at most.
HOUSEKEEPING_BUDGET = 2000
HOUSEKEEPING_ROUNDS = 5
#: Longest the leader sleeps without any reason to wake (housekeeping: reaping, timeouts).
MAX_IDLE = 1.0
#: The leader reuses the worker list an earlier pass read for up to this long (seconds; at
#: most a quarter of the heartbeat interval) while it has room for the ready tasks: under a
#: trickle of submissions every pass would otherwise read every worker's entry again. The
#: copy counts the tasks this leader dispatched since, not those finished since (it
#: underestimates the room); a pass that finds too little room reads the list again.
WORKER_LIST_REUSE = 0.1
#: After a wake-up by activity (a submit, a report), the leader lets this many seconds pass
#: before its pass, so that a trickle of one-task submits is handled a few at a time: the
#: pass costs the same round trips for one task or many. Timer wake-ups (a due job, a
#: retry's not_before) are not delayed.
COALESCE = 0.002
#: While ready tasks wait for room, the leader says so to the store again this often (s).
ROOM_REFRESH = 1.0
#: Head-of-line blocking: when a dispatch pass skipped ready tasks it could not place (the
#: workers that offer their function are full, their job is at its serial limit, the
#: balancer found no worker) and workers still have room, the leader reads further into the
#: ready queue - at most ``HOL_READS`` extra reads per pass, each asking ``HOL_GROWTH`` times
#: more tasks than the last (at least ``HOL_MIN_WINDOW``), never more than ``dispatch_batch``:
#: a task behind fewer than ``min(dispatch_batch, 512)`` unplaceable ones is dispatched in
#: the same pass. A pass that skipped nothing makes no extra read.
HOL_READS = 2
HOL_GROWTH = 8
HOL_MIN_WINDOW = 64
#: At most this many ``record.quarantined`` events per look at the store's quarantine (the
#: newest; more between two looks are logged as a number).
QUARANTINE_REPORT_MAX = 1000
#: How often a follower tries to take the lease.
FOLLOWER_POLL = 0.2
#: A function or executor that no live worker offered, last seen by a pass longer ago than
#: this (store clock), starts its wait again: the passes that saw nobody offering it were not
#: this one's neighbours (its tasks were all gone, or behind full workers), and a worker that
#: offers it may have come and gone meanwhile. While such tasks wait the leader passes at
#: least every MAX_IDLE.
NOBODY_FORGET = 10.0
#: Past this many names remembered, the stale ones are dropped (misspelt names add up).
NOBODY_KEPT = 1000
#: ``unroutable_wait`` when not set (None): this long where the store can park the tasks
#: that wait (``TaskRepository.park``), else 0 - in the ready queue they would hold back the
#: tasks behind them (docs/reliability.md).
UNROUTABLE_WAIT_PARKED = 300.0
#: A pass that parked what one ready read found unroutable reads the head of the queue
#: again, at most this many times (each read up to ``dispatch_batch``): a task behind up to
#: about ``PARK_READS * dispatch_batch`` parkable ones is dispatched in the same pass.
PARK_READS = 4
#: A store call (a pass's first calls, a lease renewal) slower than this means the store
#: stalled or was unreachable for a while: workers' heartbeats stalled with it, so the
#: leader gives every worker one heartbeat TTL before it reaps silent ones (seconds).
STORE_STALL = 0.25


class Scheduler:
    def __init__(
        self,
        *,
        storage: StorageBackend,
        election: Election,
        balancers: Callable[[str], Awaitable[Balancer]],
        events: EventBus,
        config: EngineConfig,
        rand: Callable[[], float] = ENGINE_RANDOM.random,
        balancer_origin: Callable[[str], str] | None = None,
    ) -> None:
        self.storage = storage
        self.election = election
        #: Builds the balancer of a name (a fresh one; called once per name and term). Raises
        #: LookupError for a name nobody (or more than one plugin) provides.
        self.make_balancer = balancers
        #: The plugin that provides the balancer of a name (``plugin 'x' (dist 1.0)``; empty:
        #: not known), named when that balancer fails on a task.
        self.balancer_origin = balancer_origin
        #: Signs what this leader dispatches and checks the results (None: unsigned deployment).
        self.signer = signer_from(config.signing_keys)
        self.events = events
        self.config = config
        self.node_id = config.node_id
        self.rand = rand
        self.fence: Fence | None = None
        self.stats: Counter[str] = Counter()
        self.is_leader = asyncio.Event()
        #: Set whenever is_leader changes (the presence loop reports the new role at once).
        self._role_changed = asyncio.Event()
        self._balancers: dict[str, Balancer] = {}
        self._known_workers: set[str] = set()
        #: workers already logged as given no task for a signing mismatch (those still
        #: registered: a worker gone from the store is forgotten, see :meth:`reap_workers`)
        self._signing_said: set[str] = set()
        #: a worker started before this (the term's start, less the time another node may
        #: have led) was already seen join by an earlier leader: not announced again
        self._joined_after = float("-inf")
        #: Workers declared dead but not removed yet (a reap found a task changed since it
        #: read it): worker id -> tasks requeued so far.
        self._reaping: dict[str, int] = {}
        #: Workers this node reported lost (ids, oldest first, bounded; kept across terms): a
        #: worker the store kept after a reap this node took for complete is reaped again
        #: without a second ``worker.lost``.
        self._reported_lost: dict[str, None] = {}
        self._term_started = float("-inf")
        #: The store's ``data_losses`` when last looked at (a growth is a ``store.data_lost``).
        self._data_losses = 0
        #: Store time of the last stall of the store seen by this leader (see STORE_STALL).
        self._stalled_at = float("-inf")
        #: time.monotonic() when the lease renewal in flight started (None: none in flight).
        self._renewing_since: float | None = None
        #: Renewals given up on (timed out) that have not unwound yet.
        self._abandoned: set[asyncio.Future[bool]] = set()
        #: The store's quarantine sequence number (``Quarantine.quarantined_since``), or its
        #: count of entries without it, at the last look (None: not looked yet this term).
        self._quarantined_seen: int | None = None
        #: Store time of this node's last refused lease acquisition (another node held it).
        self._lease_seen_held_at: float | None = None
        #: Free worker slots at the last dispatch that listed the workers (the next pass's
        #: read of ready tasks asks for that many).
        self._last_free = config.dispatch_batch
        #: (time.monotonic() when read, the workers) of the last list a dispatch read
        self._workers_seen: tuple[float, list[Worker]] | None = None
        #: (waiting, time.monotonic()) last told to the store's waiting_for_room (None: not yet this term)
        self._room_said: tuple[bool, float] | None = None
        #: executor or ``local:<function>`` -> (since when, last seen) no live worker may run
        #: its tasks, as this leader's passes saw it (store clock): such a task waits for one
        #: until it has waited ``unroutable_wait`` since both its readiness and that moment.
        #: Forgotten when a pass finds one that may, or when not seen for NOBODY_FORGET.
        self._nobody_since: dict[str, tuple[float, float]] = {}
        #: The store parks the tasks that wait for a worker (``TaskRepository.park``, optional).
        tasks = storage.tasks
        self._can_park = all(callable(getattr(tasks, m, None)) for m in ("park", "unpark", "parked"))
        #: Key (executor or ``local:<function>``) -> the earliest ``until`` of the tasks parked
        #: under it, as this leader knows it: read at the start of its term and after each
        #: release, kept up to date by its own parking (only the leader parks). Empty: nothing
        #: parked, and a pass costs no more than one truth test of it.
        self._parked: dict[str, float] = {}

    @property
    def unroutable_wait(self) -> float:
        """The wait of a task no live worker may run: the setting, else (None)
        UNROUTABLE_WAIT_PARKED where the store parks such tasks, 0 where it cannot."""
        wait = self.config.unroutable_wait
        if wait is not None:
            return wait
        return UNROUTABLE_WAIT_PARKED if self._can_park else 0.0

    def note_store_stall(self) -> None:
        """The store was slow or unreachable just now: workers could not heartbeat either."""
        self._stalled_at = self.storage.clock()
        self.stats["store_stalls"] += 1

    # -- presence ---------------------------------------------------------------------
    @property
    def role(self) -> str:
        return "leader" if self.is_leader.is_set() else "standby"

    async def _presence(self, stop: asyncio.Event) -> None:
        """Register this node in the store's scheduler registry and heartbeat there (every
        heartbeat interval, and at once when the role changes), so a status lists the
        standbys. Never fatal: a store error is logged and tried again next beat."""
        storage = self.storage
        node = SchedulerNode(id=self.node_id, host=socket.gethostname(), pid=os.getpid(),
                             started_at=storage.clock(), last_heartbeat=0.0, role=self.role,
                             signed=self.signer is not None)
        registered = False
        interval = min(self.config.heartbeat_interval, self.config.renew_interval)
        while not stop.is_set():
            self._role_changed.clear()
            role = self.role
            try:
                if not registered:
                    await asyncio.wait_for(storage.schedulers.register(attrs.evolve(node, role=role)), interval * 2)
                    registered = True
                elif not await asyncio.wait_for(storage.schedulers.heartbeat(self.node_id, role=role), interval * 2):
                    registered = False
                    continue
            except Exception as exc:
                log.debug("%s: scheduler heartbeat failed: %s: %s", self.node_id, type(exc).__name__, exc)
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._role_changed.wait())}
            try:
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        if registered:
            try:
                await asyncio.wait_for(storage.schedulers.deregister(self.node_id), timeout=2.0)
            except Exception as exc:
                log.warning("%s: could not deregister the scheduler node: %s", self.node_id, exc)

    # -- campaign -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        presence = asyncio.create_task(self._presence(stop), name="distsched-scheduler-presence")
        try:
            await self._campaign(stop)
        finally:
            if stop.is_set():  # it deregisters the node and ends
                await asyncio.wait({presence}, timeout=3.0)
            await cancel_and_wait({presence}, timeout=1.0)

    async def _campaign(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                fence = await self.election.acquire(self.node_id)
            except Exception as exc:
                what = "refuses writes" if self._refusing(exc) else "cannot be reached"
                log.warning("%s: cannot campaign: the election store %s (%s: %s); retrying", self.node_id, what,
                            type(exc).__name__, exc)
                await wait_or_stop(stop, backoff.next())
                continue
            backoff.reset()
            if fence is None:
                if self._lease_seen_held_at is None:
                    log.info("%s: following: another node holds the lease", self.node_id)
                self._lease_seen_held_at = self.storage.clock()
                # A follower asks often (one cheap read) so that a graceful handoff - the
                # leader releases its lease on shutdown - takes well under a second.
                await wait_or_stop(stop, min(self.config.renew_interval, FOLLOWER_POLL))
                continue
            await self._term(fence, stop)

    async def _term(self, fence: Fence, stop: asyncio.Event) -> None:
        self.fence = fence
        self._balancers = {}
        self._known_workers = set()
        self._reaping = {}
        self._term_started = self.storage.clock()
        # A worker joins once, not at each failover: one that started before another node
        # last led (seen holding the lease; unknown: up to one lease TTL before this term)
        # joined under that leader.
        seen_held = self._lease_seen_held_at
        self._joined_after = seen_held if seen_held is not None else self._term_started - self.config.lease_ttl
        self.stats["terms"] += 1
        log.info("%s: leading with term %d", self.node_id, fence.term)
        self.events.emit(ev.LeaderElected(at=self.storage.clock(), node_id=self.node_id, term=fence.term,
                                          lease_seen_held_at=self._lease_seen_held_at))
        self._lease_seen_held_at = None  # (a later term measures from a later refusal)
        self.is_leader.set()
        self._role_changed.set()
        lost = asyncio.Event()
        tasks = {
            asyncio.create_task(self._lead(fence), name="distsched-lead"),
            asyncio.create_task(self._renew(fence, lost), name="distsched-renew"),
            asyncio.create_task(stop.wait(), name="distsched-stop"),
            asyncio.create_task(lost.wait(), name="distsched-lost"),
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # It stops leading here; a leader write stuck in its store client may take longer to
        # unwind (below), which must not delay when the step-down is recorded.
        stopped_at = self.storage.clock()
        self.is_leader.clear()
        self._role_changed.set()
        self.fence = None
        stuck = await cancel_and_wait(pending, timeout=10.0)
        if stuck:  # pragma: no cover - a store call that ignores cancellation
            log.error("%s: %d leader task(s) did not stop within 10 s: %s", self.node_id, len(stuck),
                      ", ".join(t.get_name() for t in stuck))
        reason = "shutdown" if stop.is_set() else "lease lost"
        for task in done:
            if task.get_name() == "distsched-lead" and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if isinstance(exc, FencedError):
                    self.stats["fenced"] += 1
                    reason = "fenced"
                elif self._refusing(exc):
                    # the store answers but refuses writes (full, read-only): the operator's
                    # to fix, not a fault of the engine's - a warning, not a traceback
                    reason = f"store refusing writes: {type(exc).__name__}: {exc}"
                    log.warning("%s: %s; stepping down", self.node_id, reason)
                elif isinstance(exc, (OSError, asyncio.TimeoutError, *getattr(self.storage, "transient_errors", ()))):
                    # the store is down, restarting or cut off: nothing to fix here
                    reason = f"store unreachable: {type(exc).__name__}: {exc}"
                    log.warning("%s: %s; stepping down", self.node_id, reason)
                else:
                    reason = f"error: {type(exc).__name__}: {exc}"
                    log.error("%s: leader loop failed: %s", self.node_id, reason, exc_info=exc)
        if stop.is_set() and reason == "shutdown":
            # One last settle before the lease goes: what was reported up to now - a worker's
            # own settled successes too, whose counts and events come with the leader's
            # settle - is applied and its events emitted here, not left to the next leader.
            try:
                await asyncio.wait_for(self.apply_results(fence, self.storage.clock()), timeout=2.0)
            except Exception as exc:
                log.warning("%s: last settle before stopping failed: %s: %s", self.node_id, type(exc).__name__, exc)
        if stop.is_set():
            await self._release(fence)
        log.info("%s: stopped leading term %d (%s)", self.node_id, fence.term, reason)
        self.events.emit(ev.LeadershipLost(at=stopped_at, node_id=self.node_id, term=fence.term, reason=reason))
        if not stop.is_set() and reason.startswith(("error", "store unreachable", "store refusing writes")):
            # It still holds the lease (it campaigns again after the pause); stopped during
            # the pause, it hands it over as a clean stop does rather than leave it to lapse.
            if await wait_or_stop(stop, self.config.renew_interval):
                await self._release(fence)

    def _refusing(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` says the store refuses writes for now (``refusing_errors``)."""
        return isinstance(exc, getattr(self.storage, "refusing_errors", ()))

    async def _release(self, fence: Fence) -> None:
        try:
            await asyncio.wait_for(self.election.release(fence), timeout=2.0)
        except Exception as exc:
            log.warning("%s: could not release the lease: %s", self.node_id, exc)

    def _unwound(self, renewal: asyncio.Future[bool]) -> None:
        self._abandoned.discard(renewal)
        if not renewal.cancelled():
            renewal.exception()  # retrieved: it was given up on already

    async def _renew(self, fence: Fence, lost: asyncio.Event) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.renew_interval)
            started = self._renewing_since = time.monotonic()
            # Not asyncio.wait_for: it waits for the cancelled call to end, and a store client
            # may wait out its own cancellation (asyncpg sends a cancel request and waits for
            # it, through the same cut network): the timeout must bound the step-down.
            renewal = asyncio.ensure_future(self.election.renew(fence))
            try:
                done, _ = await asyncio.wait({renewal}, timeout=max(0.05, cfg.lease_ttl - cfg.renew_interval))
                if not done:
                    renewal.cancel()
                    self._abandoned.add(renewal)
                    renewal.add_done_callback(self._unwound)
                    raise asyncio.TimeoutError("no answer within the lease ttl minus the renew interval")
                ok = renewal.result()
            except asyncio.CancelledError:
                renewal.cancel()
                raise
            except Exception as exc:
                log.warning("%s: lease renewal failed (%s: %s); stepping down", self.node_id, type(exc).__name__, exc)
                ok = False
            finally:
                self._renewing_since = None
            if time.monotonic() - started > STORE_STALL:
                self.note_store_stall()
            if not ok:
                lost.set()
                return

    # -- leading --------------------------------------------------------------------
    async def _lead(self, fence: Fence) -> None:
        cfg = self.config
        storage = self.storage
        last_house = 0.0
        self._quarantined_seen = None
        self._workers_seen = None
        self._room_said = None
        await self.report_quarantine(storage.clock())  # the baseline: reported from here on
        await self._read_parked(storage.clock())
        # The loop also ends when the term is over, not only when cancelled: a store client
        # can swallow a cancellation (asyncio.wait_for on Python 3.11), which must not leave
        # an old term's loop running.
        while self.fence is fence:
            began = time.monotonic()
            now = storage.clock()
            applied = await self.apply_results(fence, now)
            now = storage.clock()
            fired = await self.fire_due(fence, now, horizon=now + cfg.fire_ahead)
            if time.monotonic() - began > STORE_STALL:
                self.note_store_stall()
            if now - last_house >= min(cfg.heartbeat_interval, MAX_IDLE):
                await self.reap_workers(fence, now)
                await self.check_timeouts(fence, now)
                await self.report_quarantine(now)
                await self.housekeeping()
                last_house = now
            if self._parked:  # tasks wait parked for a worker: release those that may run now
                await self.release_parked(fence, storage.clock())
            dispatched, blocked = await self.dispatch_ready(fence, storage.clock(), ahead=cfg.fire_ahead)
            await self._say_waiting_for_room(blocked)
            if applied >= cfg.result_batch or fired >= FIRE_BATCH or dispatched >= cfg.dispatch_batch:
                await asyncio.sleep(0)
                continue
            wake = [last_house + min(cfg.heartbeat_interval, MAX_IDLE)]
            both = getattr(storage, "next_times", None)  # the two reads in one round trip
            if both is not None:
                nxt, ready_at = await both()
            else:
                nxt = await storage.jobs.next_due_at()
                ready_at = None if blocked else await storage.tasks.next_ready_at()
            if nxt is not None:
                wake.append(nxt - cfg.fire_ahead)
            if not blocked and ready_at is not None:
                wake.append(ready_at - cfg.fire_ahead)
            if self._parked:  # the earliest parked wait that runs out
                wake.append(min(self._parked.values()))
            delay = min(wake) - storage.clock()
            if delay > 0:
                timeout = min(delay, MAX_IDLE)
                waited = time.monotonic()
                await storage.wait_for_activity(timeout)
                if COALESCE > 0 and time.monotonic() - waited < timeout - COALESCE:
                    await asyncio.sleep(COALESCE)  # woken early by activity: let more arrive

    def _say_signing_mismatch(self, workers: list[Worker]) -> None:
        """Log once per worker that it gets no task: its signing differs from this leader's."""
        for worker in workers:
            if worker.id in self._signing_said:
                continue
            self._signing_said.add(worker.id)
            if self.signer is not None:
                log.error("%s: worker %r has no DISTSCHED_SIGNING_KEY while this leader signs: it is given no task "
                          "(it could not check them, and its results would be refused); set the key on it",
                          self.node_id, worker.id)
            else:
                log.error("%s: worker %r checks signatures while this leader has no DISTSCHED_SIGNING_KEY: it is "
                          "given no task (it would refuse them all); set the key on every scheduler",
                          self.node_id, worker.id)

    async def _say_waiting_for_room(self, waiting: bool) -> None:
        """Tell the store whether ready tasks wait for room (worker capacity, a serial limit):
        a store whose reports wake the leader only when needed wakes it on every report while
        this holds (``StorageBackend.waiting_for_room``, optional). Said on a change, and
        again every ROOM_REFRESH seconds while waiting (the store forgets it after a while)."""
        say = getattr(self.storage, "waiting_for_room", None)
        if say is None:
            return
        said, mono = self._room_said or (None, 0.0)
        if said is waiting and (not waiting or time.monotonic() - mono < ROOM_REFRESH):
            return
        await say(waiting)
        self._room_said = (waiting, time.monotonic())

    async def _read_parked(self, now: float) -> None:
        """This leader's view of the parked tasks (``TaskRepository.parked``): at the start of
        its term (an earlier leader parked them) and after a release. A key's wait counts on
        from the earliest of its tasks' ``until`` less the wait (never longer than the earlier
        leader's count: no task of it fails sooner than it would have)."""
        if not self._can_park:
            return
        found = await self.storage.tasks.parked()  # type: ignore[attr-defined]
        self._parked = {key: until for key, (_, until) in found.items()}
        for key, until in self._parked.items():
            if key not in self._nobody_since:
                self._nobody_since[key] = (until - self.unroutable_wait, now)

    async def release_parked(self, fence: Fence, now: float) -> int:
        """Move back to the ready queue, in one bounded store call (``TaskRepository.unpark``,
        at most ``dispatch_batch``), the parked tasks a live worker may run now (one joined,
        or says it offers their function) and those whose wait ran out (the dispatch that
        follows fails them, naming what the live workers offer); with ``unroutable_wait`` 0,
        all of them. Called by a pass only while something is parked; reads the worker list
        unless the last one is fresh (``WORKER_LIST_REUSE``). Returns how many it moved."""
        if self.unroutable_wait == 0:
            keys = list(self._parked)
        else:
            seen = self._workers_seen
            if seen is None or time.monotonic() - seen[0] >= min(WORKER_LIST_REUSE, self.config.heartbeat_interval / 4):
                seen = self._workers_seen = (time.monotonic(), await self.storage.workers.list_workers())
            ttl = self.config.heartbeat_ttl
            alive = [w for w in seen[1] if w.is_alive(now, ttl)]
            keys = [key for key in self._parked if _may_run(key, alive)]
            for key in self._parked:
                if key not in keys and key in self._nobody_since:
                    # still nobody: its wait goes on (NOBODY_FORGET would start it again)
                    self._nobody_since[key] = (self._nobody_since[key][0], now)
        if not keys and min(self._parked.values()) > now:
            return 0
        limit = self.config.dispatch_batch
        moved = await self.storage.tasks.unpark(fence, keys, now, limit)  # type: ignore[attr-defined]
        self.stats["unparked"] += moved
        if moved < limit:
            await self._read_parked(now)
        return moved

    async def apply_results(self, fence: Fence, now: float) -> int:
        """Apply the oldest results: each task moves on by its retry policy. The store
        settles the successes at the head of the channel itself (``ResultChannel.settle``);
        what needs the retry policy comes back through ``peek``. Returns how many results
        were handled."""
        batch = self.config.result_batch
        want = self.events.active
        if self.signer is not None:
            # The store cannot check a signature: every result goes through _finish.
            settled = Settled(left=1)
        else:
            settled = await self.storage.results.settle(fence, batch, want_tasks=want)
        self.stats["succeeded"] += settled.settled
        self.stats["stale_results"] += settled.stale
        if settled.stale and want:
            self.events.emit(ev.DuplicatesSuppressed(at=now, what="result", count=settled.stale))
        for done in settled.tasks:
            self.events.emit(ev.TaskFinished(at=done.at, task_id=done.task_id, job=done.job, state="succeeded",
                                             attempt=done.attempt, duration=max(0.0, done.finished_at - done.started_at),
                                             error=None))
        handled = settled.settled + settled.stale
        if not settled.left or handled >= batch:
            # nothing left, or a full batch settled: the loop comes back at once for more
            return handled
        results = await self.storage.results.peek(batch)
        if not results:
            return handled
        changed = await self._finish(results, now)
        ok = await self.storage.tasks.save(fence, list(changed.values()), ack_results=len(results))
        retry = [task for task, written in zip(changed.values(), ok) if not written]
        self._finished_events(task for task, written in zip(changed.values(), ok) if written)
        if retry:
            # Changed under us (a worker marked it running, a user cancelled it): re-read and
            # apply this batch's results for those tasks once more.
            ids = {t.id for t in retry}
            again = await self._finish([r for r in results if r.task_id in ids], now)
            if again:
                ok = await self.storage.tasks.save(fence, list(again.values()))
                self._finished_events(t for t, w in zip(again.values(), ok) if w)
        return handled + len(results)

    async def _finish(self, results: Sequence[TaskResult], now: float) -> dict[str, Task]:
        ids = list(dict.fromkeys(r.task_id for r in results))
        found = {t.id: t for t in await self.storage.tasks.get_many(ids) if t is not None}
        changed: dict[str, Task] = {}
        signer = self.signer
        stale = 0
        for result in results:
            if signer is not None:
                why = signer.check_result(result)
                if why is not None:
                    self.stats["forged_results"] += 1
                    log.error("result for task %s (attempt %s, worker %s) refused: %s%s", result.task_id,
                              result.attempt_id, result.worker_id,
                              why, " (does that worker have DISTSCHED_SIGNING_KEY?)" if not result.signature else "")
                    continue
            task = found.get(result.task_id)
            if task is None:
                stale += 1
                continue
            try:
                task.finish(result, now, rand=self.rand())
            except (StaleAttempt, InvalidTransition):
                stale += 1
                continue
            changed[task.id] = task
        if stale:
            self.stats["stale_results"] += stale
            self.events.emit(ev.DuplicatesSuppressed(at=now, what="result", count=stale))
        return changed

    def _finished_events(self, tasks: Any) -> None:
        for task in tasks:
            self.stats[task.state.value] += 1
            if not self.events.active:
                continue
            result = task.result
            if task.state is TaskState.RETRYING:
                self.events.emit(ev.TaskRetryScheduled(
                    at=task.updated_at, task_id=task.id, job=task.job, failed_attempt=task.attempt - 1,
                    outcome=result.outcome if result else "failed", duration=result.duration if result else 0.0,
                    delay=max(0.0, task.not_before - task.updated_at), error=result.error if result else None))
            else:
                self.events.emit(ev.TaskFinished(
                    at=task.updated_at, task_id=task.id, job=task.job, state=task.state.value,
                    attempt=task.attempt, duration=result.duration if result else 0.0,
                    error=result.error if result else task.reason,
                    worker_id=result.worker_id if result else None,
                    error_type=result.error_type if result and not result.ok else None,
                    reason=task.reason if result else None))

    async def fire_due(self, fence: Fence, now: float, *, horizon: float | None = None) -> int:
        """Fire the jobs whose next slot comes due by ``horizon`` (default ``now``); returns
        how many jobs were handled. Slots later than ``now`` wait for their time on the
        worker (``not_before``)."""
        storage = self.storage
        horizon = now if horizon is None else max(now, horizon)
        due = await storage.jobs.due(horizon, FIRE_BATCH)
        if not due:
            return 0
        firings: list[Firing] = []
        cancels: list[Task] = []
        for config, state in due:
            if state.next_fire_at is None:
                continue
            try:
                plan = config.plan(state.next_fire_at, horizon, now=now)
            except Exception as exc:  # one job's broken schedule never stops the others
                await self._pause_poisoned(config.name, exc, now)
                continue
            tasks: list[Task] = []
            live: list[Task] | None = None
            for slot in plan.slots:
                if not slot.fire:
                    tasks.append(config.skipped_task(slot.at, slot.reason or "skipped", now))
                    continue
                if config.overlap.mode in ("discard", "replace"):
                    if live is None:
                        live = await storage.tasks.live(config.name)
                    decision = config.overlap.decide(len(live))
                    if decision == "discard":
                        tasks.append(config.skipped_task(
                            slot.at, f"overlap: discarded ({len(live)} instance(s) still live)", now))
                        continue
                    while decision == "replace" and len(live) >= config.overlap.max_instances:
                        victim = live.pop(0)
                        reason = f"overlap: replaced by the slot at {iso_utc(slot.at)}"
                        if victim.version:  # stored
                            victim.cancel(reason, now)
                            cancels.append(victim)
                        else:  # a slot of this pass (a backlog fired at once): it never runs
                            at = next(i for i, t in enumerate(tasks) if t is victim)
                            tasks[at] = config.skipped_task(victim.slot or slot.at, reason, now)
                task = config.create_task(slot.at, now)
                tasks.append(task)
                if live is not None:
                    live.append(task)
            last = plan.slots[-1].at if plan.slots else state.last_slot
            nxt = plan.next_fire_at if plan.slots else config.next_fire_after(horizon)
            firings.append(Firing(job=config.name, expected_next=state.next_fire_at,
                                  next_fire_at=nxt, last_slot=last, tasks=tuple(tasks),
                                  max_backlog=config.overlap.serial_backlog))
        if cancels:
            saved = await storage.tasks.save(fence, cancels)
            for task, written in zip(cancels, saved):
                if written:
                    self.events.emit(ev.TaskCancelled(at=now, task_id=task.id, job=task.job, reason=task.reason or ""))
        report = await storage.jobs.fire(fence, firings)
        self.stats["slots_created"] += report.created
        self.stats["slots_existing"] += report.existing
        self.stats["fire_conflicts"] += len(report.conflicts)
        if report.existing:
            self.events.emit(ev.DuplicatesSuppressed(at=now, what="slot", count=report.existing))
        if self.events.active:
            # the skipped records built here (misfire, discard, replace...), and the pending
            # slots the store recorded skipped as it fired them (max_backlog), with its reason;
            # none of a firing the store refused (a conflict: its records were not stored),
            # and none the store found stored already (FireReport.existing_ids: announced when
            # stored, by this leader or an earlier one - or a live task, which runs)
            by_store = dict(report.skipped)
            refused = set(report.conflicts)
            there = set(report.existing_ids or ())
            for firing in firings:
                if firing.job in refused:
                    continue
                for task in firing.tasks:
                    if task.id in there:
                        continue
                    if task.state is TaskState.SKIPPED or task.id in by_store:
                        reason = by_store.get(task.id, task.reason or "")
                        self.events.emit(ev.TaskSkipped(at=now, task_id=task.id, job=task.job, slot=task.slot,
                                                        reason=reason))
        return len(due)

    async def _pause_poisoned(self, name: str, exc: BaseException, now: float) -> None:
        reason = f"its schedule failed: {type(exc).__name__}: {safe_str(exc)}"[:500]
        log.error("job %r paused: %s", name, reason)
        try:
            await self.storage.jobs.set_paused(name, True)
        except Exception as err:  # gone meanwhile, or the store is down: the next pass retries
            log.warning("could not pause job %r: %s: %s", name, type(err).__name__, err)
            return
        self.events.emit(ev.RecordQuarantined(at=now, record="job", key=name, reason=reason, action="paused"))

    async def housekeeping(self) -> int:
        """The store's own housekeeping (``StorageBackend.housekeeping``: retention pruning),
        with a bounded budget per pass so that a backlog never stalls the leader; then a
        ``store.data_lost`` event if the store's ``data_losses`` grew meanwhile."""
        prune = getattr(self.storage, "housekeeping", None)
        if prune is None:
            return 0
        total = 0
        for _ in range(HOUSEKEEPING_ROUNDS):
            due = await prune(HOUSEKEEPING_BUDGET)
            done = min(due, HOUSEKEEPING_BUDGET)
            total += done
            self.stats["pruned"] += done  # counted per round: a later round failing keeps this one
            if due < HOUSEKEEPING_BUDGET:
                break
            await asyncio.sleep(0)
        losses = getattr(self.storage, "data_losses", 0)
        if losses != self._data_losses:  # found by the store's housekeeping (its layout mark gone...)
            self._data_losses = losses
            self.events.emit(ev.StoreDataLost(at=self.storage.clock(), node_id=self.node_id))
        return total

    async def report_quarantine(self, now: float) -> int:
        """Emit a ``record.quarantined`` event for each record the store moved aside since the
        last look: one O(1) read per housekeeping pass. With the store's quarantine sequence
        (``Quarantine.quarantined_since``) that read also returns what was moved aside after
        the number last seen - a record moved aside again under the same key, or after a
        drop, included. Without it (an older or third-party store), its ``count()`` compared
        with the last count, and the newest entries listed when it grew: a record moved aside
        again, or after a drop, leaves the count as it was and is not reported."""
        quarantine = getattr(self.storage, "quarantine", None)
        if quarantine is None:
            return 0
        since = getattr(quarantine, "quarantined_since", None)
        seen = self._quarantined_seen
        if since is not None:
            if seen is None:
                self._quarantined_seen, _ = await since(0, 0)
                return 0
            seq, fresh = await since(seen, QUARANTINE_REPORT_MAX)
            if seq < seen:  # the number went back: the store lost what it held (a Redis restarted empty)
                seq, fresh = await since(0, QUARANTINE_REPORT_MAX)
                seen = 0
            if seq - seen > len(fresh) == QUARANTINE_REPORT_MAX:
                log.warning("%d records were moved aside since the last look: the newest %d are reported "
                            "one by one (distsched quarantine list shows them all)", seq - seen, len(fresh))
            self._quarantined_seen = seq
        else:
            count = await quarantine.count()
            if seen is None or count <= seen:
                self._quarantined_seen = count
                return 0
            fresh = await quarantine.list_quarantined(min(count - seen, QUARANTINE_REPORT_MAX))
            self._quarantined_seen = count
        for item in fresh:
            self.events.emit(ev.RecordQuarantined(at=now, record=item.kind, key=item.key, reason=item.reason,
                                                  action="quarantined"))
        return len(fresh)

    async def balancer(self, name: str) -> Balancer:
        """This term's balancer of ``name``. Raises a LookupError (UnknownName, NameConflict)
        for a name no plugin of this node provides, or two provide: the task that asks for it
        fails naming why (no silent fallback)."""
        found = self._balancers.get(name)
        if found is None:
            found = await self.make_balancer(name)
            self._balancers[name] = found
        return found

    async def dispatch_ready(self, fence: Fence, now: float, *, ahead: float = 0.0) -> tuple[int, bool]:
        """Push ready tasks - and those due within ``ahead`` seconds, which the worker holds
        until their time - to workers; returns (dispatched, blocked-for-capacity)."""
        storage = self.storage
        ttl = self.config.heartbeat_ttl
        beat = self.config.heartbeat_interval
        signing = self.signer is not None
        # The ready tasks first: a pass with nothing ready (most passes under a trickle: the
        # one a worker's report wakes) costs one read, not the worker list too. The limit is
        # the free slots seen last time (never more than a batch), trimmed once known.
        limit = min(self.config.dispatch_batch, max(1, self._last_free))
        ready = await storage.tasks.ready(now + ahead, limit)
        if not ready:
            return 0, False
        seen = self._workers_seen
        reuse = seen is not None and time.monotonic() - seen[0] < min(WORKER_LIST_REUSE, beat / 4)
        while True:
            if not reuse or seen is None:
                seen = self._workers_seen = (time.monotonic(), await storage.workers.list_workers())
            alive = [w for w in seen[1] if w.is_alive(now, ttl)]
            # No worker silent for two heartbeat intervals is offered to any balancer: a worker
            # killed with kill -9 gets no more work although it is reaped only after the TTL.
            workers = [w for w in alive if w.can_accept(now, ttl) and w.is_fresh(now, beat, ttl)]
            if any(w.signed is not signing for w in workers):
                # Fail closed without losing work: a worker that cannot check this leader's
                # signatures (or signs where this leader does not) would fail the task or
                # have its result refused - it gets none; the tasks wait for one that matches.
                self._say_signing_mismatch([w for w in workers if w.signed is not signing])
                workers = [w for w in workers if w.signed is signing]
            free = sum(w.free for w in workers)
            if not reuse or free >= len(ready):
                break
            reuse = False  # the copy has too little room: read the workers again
        self._last_free = free
        if free == 0:
            return 0, True
        batch = self.config.dispatch_batch
        if len(ready) < min(batch, free) and len(ready) == limit:
            # more slots than last time: read up to them
            limit = min(batch, free)
            ready = await storage.tasks.ready(now + ahead, limit)
        room = free

        async def window(ready: list[Task], limit: int) -> AsyncIterator[Task]:
            """The ready tasks read, oldest first, while workers have ``room``; then, if some
            were skipped (``blocked``) and there is still room, those further in the queue
            (head-of-line blocking: see HOL_READS); or, when some were found that no live
            worker may run and the store parks them, the head again once they are parked
            (PARK_READS)."""
            considered: set[str] = set()
            reads = parks = 0
            while True:
                for task in ready:
                    if room <= 0:
                        return
                    if task.id not in considered:
                        considered.add(task.id)
                        yield task
                if room <= 0 or len(ready) < limit:
                    return
                if parking and parks < PARK_READS:
                    parks += 1
                    await park()  # out of the queue: the next read sees the tasks behind them
                    limit = batch
                elif blocked and reads < HOL_READS and limit < batch:
                    reads += 1
                    limit = min(batch, max(HOL_MIN_WINDOW, limit * HOL_GROWTH))
                else:
                    return
                ready = await storage.tasks.ready(now + ahead, limit)

        chosen: list[Task] = []
        poisoned: list[tuple[Task, str]] = []
        unknown: list[tuple[Task, str]] = []
        unusable: dict[str, str] = {}  # balancer name -> why this pass cannot use it
        #: when each chosen task became ready (for the dispatch lag), only with observers
        ready_at: list[float] | None = [] if self.events.active else None
        blocked = False
        #: a serial job -> (its tasks dispatched or running, counting those of this pass; its
        #: tasks waiting for a retry, by slot): the live runs a ready task of the job waits for
        serial: dict[str, tuple[set[str], list[tuple[tuple[float, str], str]]]] = {}
        #: executor name -> the workers that may run its tasks: those that have it (or do not
        #: say: older ones, see Worker.may_have) when any live worker may, else _NOBODY (its
        #: tasks wait for one, up to unroutable_wait: see _nobody; with 0, any worker). Built
        #: once per name and pass: a task costs one dict lookup.
        having: dict[str, list[Worker]] = {}
        #: function name -> the workers that may run a ``local`` task of it: of those that
        #: may run ``local`` tasks, the ones that offer it (Worker.may_offer) when any live
        #: one does, else _NOBODY (as above)
        offering: dict[str, list[Worker]] = {}

        #: executor or ``local:<function>`` nobody may run -> (since, why), for this pass
        nobody: dict[str, tuple[float, str]] = {}
        #: unroutable_wait 0: such a task goes to any worker, as before it existed (whose
        #: executor fails it at once: UnknownFunction, not retried)
        at_once = self.unroutable_wait == 0
        #: (task, key, until) of the tasks that wait for a worker, for the store to park
        #: (empty when it cannot: they stay in the ready queue)
        parking: list[tuple[Task, str, float]] = []
        parked_now = 0

        async def park() -> None:
            """Park the tasks found waiting for a worker so far (``TaskRepository.park``)."""
            ok = await storage.tasks.park(fence, parking)  # type: ignore[attr-defined]
            for (_, key, until), written in zip(parking, ok):
                if written and until < self._parked.get(key, float("inf")):
                    self._parked[key] = until
            nonlocal parked_now
            parked_now += sum(ok)
            self.stats["parked"] += sum(ok)
            parking.clear()

        def may_run(executor: str) -> list[Worker]:
            found = having.get(executor)
            if found is None:
                found = having[executor] = _narrowed(workers, alive, Worker.may_have, executor,
                                                     workers if at_once else _NOBODY)
                if found is not _NOBODY and self._nobody_since:
                    self._nobody_since.pop(executor, None)  # one may: a later lack waits afresh
            return found
        async for task in window(ready, limit):
            if task.serial_limit is not None and task.job is not None:
                if task.job not in serial:
                    live = await storage.tasks.live(task.job)
                    serial[task.job] = ({t.id for t in live if t.state in ASSIGNED},
                                        [(_slot_order(t), t.id) for t in live if t.state is TaskState.RETRYING])
                busy, retrying = serial[task.job]
                # A run waiting for its retry is live too: an earlier slot's retry goes first.
                mine = _slot_order(task)
                waiting = sum(1 for at, tid in retrying if at < mine and tid not in busy and tid != task.id)
                if len(busy) + waiting >= task.serial_limit:
                    blocked = True
                    continue
                busy.add(task.id)
            name = task.spec.balancer
            balancer = self._balancers.get(name)
            if balancer is None:
                if name in unusable:
                    unknown.append((task, unusable[name]))
                    continue
                try:
                    balancer = await self.balancer(name)
                except Exception as exc:
                    # Not registered on this leader (LookupError), or its plugin's factory failed
                    # (PluginError, naming the plugin): the tasks that ask for it fail, no
                    # fallback, and every other task goes on - before any routing, so a task
                    # that would wait for a worker fails at once for this.
                    unusable[name] = f"cannot dispatch: {safe_str(exc)}"[:500]
                    unknown.append((task, unusable[name]))
                    continue
            executor = task.spec.executor
            if executor == "local":
                target = task.spec.target
                pool = offering.get(target)  # type: ignore[assignment]
                if pool is None:
                    local = may_run("local")
                    pool = offering[target] = _narrowed(local, alive, Worker.may_offer, target,
                                                        local if at_once else _NOBODY)
                    if pool is not _NOBODY and self._nobody_since:
                        self._nobody_since.pop("local:" + target, None)
            else:
                pool = having.get(executor)  # type: ignore[assignment]
                if pool is None:
                    pool = may_run(executor)
            if not pool:
                if pool is _NOBODY:  # no live worker may run it: it waits for one, up to the bound
                    why, key, until = self._nobody(nobody, task, alive, having, now)
                    if why is not None:
                        unknown.append((task, why))
                        continue
                    if self._can_park:  # out of the ready queue, not holding back the rest
                        parking.append((task, key, until))
                        continue
                # those that have its executor (and offer its function) are full, or none is live
                blocked = True
                continue
            try:
                worker = balancer.select(task, pool, now=now, ttl=ttl)
            except Exception as exc:  # the balancer fails on this task: it alone is cancelled
                poisoned.append((task, f"{self._balancer_named(name)} failed on this task: "
                                       f"{type(exc).__name__}: {safe_str(exc)}"[:500]))
                continue
            if worker is not None and not isinstance(worker, Worker):
                poisoned.append((task, f"{self._balancer_named(name)} failed on this task: it returned a "
                                       f"{type(worker).__name__}, not one of the workers it was offered"))
                continue
            if worker is None or not worker.can_accept(now, ttl):
                blocked = True
                continue
            worker.accept(task.id)
            if ready_at is not None:
                ready_at.append(max(task.updated_at, task.not_before - ahead))
            task.dispatch(worker.id, now)
            if self.signer is not None:
                task.signature = self.signer.sign_dispatch(task)
            chosen.append(task)
            room -= 1
        if parking:
            await park()
        if poisoned:
            await self._cancel_poisoned(fence, poisoned, now)
        if unknown:
            await self._fail_undispatchable(fence, unknown, now)
        if not chosen:
            # (a pass that only parked tasks left nothing waiting for room)
            return 0, blocked or not parked_now
        ok = await storage.tasks.dispatch(fence, chosen)
        sent = sum(ok)
        self.stats["dispatched"] += sent
        if ready_at is not None:
            for task, written, became in zip(chosen, ok, ready_at):
                if written:
                    self.events.emit(ev.TaskDispatched(at=now, task_id=task.id, job=task.job,
                                                       worker_id=task.worker_id or "", attempt_id=task.attempt_id,
                                                       ready_at=min(became, now)))
        return sent, blocked

    def _nobody(self, nobody: dict[str, tuple[float, str]], task: Task, alive: list[Worker],
                having: dict[str, list[Worker]], now: float) -> tuple[str | None, str, float]:
        """A task no live worker may run: ``(why, key, until)`` - ``why`` None while it may
        wait for one (``unroutable_wait`` since it became ready and since this leader saw
        none that may: until ``until``), else why it fails - what it waited for and what the
        live workers have; ``key`` what it waits for (an executor, ``local:<function>``).
        Once per task of such a pass; the rest once per executor or function and pass."""
        executor = task.spec.executor
        by_executor = executor != "local" or having.get("local") is _NOBODY
        key = executor if by_executor else "local:" + task.spec.target
        found = nobody.get(key)
        if found is None:
            since, seen = self._nobody_since.get(key, (now, now))
            if now - seen > NOBODY_FORGET:
                since = now
            if key not in self._nobody_since and len(self._nobody_since) >= NOBODY_KEPT:
                self._nobody_since = {k: v for k, v in self._nobody_since.items() if now - v[1] <= NOBODY_FORGET}
            self._nobody_since[key] = (since, now)
            if by_executor:
                why = (f"no live worker has executor {executor!r} (they have: "
                       f"{names_listed(name for w in alive for name in w.executors)})")
            else:
                why = (f"no live worker offered function {task.spec.target!r} (they offer: "
                       f"{names_listed(name for w in alive for name in w.functions)})")
            found = nobody[key] = (since, why)
        since, why = found
        began = max(since, task.updated_at, task.not_before)
        waited = now - began
        bound = self.unroutable_wait
        if waited < bound:
            return None, key, began + bound
        return f"waited {max(0.0, waited):.1f}s and {why}; unroutable_wait is {bound:g}s", key, began + bound

    def _balancer_named(self, name: str) -> str:
        """``balancer 'x' from plugin 'p' (dist 1.0)``, as the factory's failure names it (the
        balancer alone when its plugin is not known)."""
        origin = ""
        if self.balancer_origin is not None:
            try:
                origin = self.balancer_origin(name)
            except Exception:  # only a name in a message
                origin = ""
        return f"balancer {name!r} from {origin}" if origin else f"balancer {name!r}"

    async def _fail_undispatchable(self, fence: Fence, failing: list[tuple[Task, str]], now: float) -> None:
        for task, reason in failing:
            log.error("task %s failed: %s", task.id, reason)
            task.undispatchable(reason, now)
        ok = await self.storage.tasks.save(fence, [task for task, _ in failing])
        self.stats["undispatchable"] += sum(ok)
        self._finished_events(task for (task, _), written in zip(failing, ok) if written)

    async def _cancel_poisoned(self, fence: Fence, poisoned: list[tuple[Task, str]], now: float) -> None:
        for task, reason in poisoned:
            task.cancel(reason, now)
        ok = await self.storage.tasks.save(fence, [task for task, _ in poisoned])
        for (task, reason), written in zip(poisoned, ok):
            if written:
                # also told by the TaskCancelled event: `distsched run` prints that line, not both
                log.error("task %s cancelled: %s", task.id, reason, extra={"distsched_event": ev.TaskCancelled.kind})
                self.events.emit(ev.TaskCancelled(at=now, task_id=task.id, job=task.job, reason=reason))
                self.events.emit(ev.RecordQuarantined(at=now, record="task", key=task.id, reason=reason,
                                                      action="cancelled"))

    async def reap_workers(self, fence: Fence, now: float) -> int:
        """Requeue the tasks of workers whose heartbeat is older than the TTL."""
        storage = self.storage
        reaped = 0
        self._workers_seen = None  # a reap may remove workers: the next dispatch reads them again
        workers: list[Worker] = await storage.workers.list_workers()
        ttl = self.config.heartbeat_ttl
        present = {w.id for w in workers}
        # forget the workers gone from the store (reaped by any leader, or deregistered and
        # removed): a worker's id is new at each start, so both sets only grew within a term
        self._signing_said.intersection_update(present)
        self._known_workers.intersection_update(present)
        if self.events.active:
            self.events.emit(ev.WorkersSeen(at=now, workers=tuple(
                ev.WorkerLoad(worker_id=w.id, load=w.load, capacity=w.capacity, alive=w.is_alive(now, ttl),
                              draining=w.draining, fresh=w.is_fresh(now, self.config.heartbeat_interval, ttl))
                for w in workers)))
        for worker in workers:
            if worker.id not in self._known_workers and worker.is_alive(now, self.config.heartbeat_ttl):
                self._known_workers.add(worker.id)
                if worker.started_at >= self._joined_after:
                    self.events.emit(ev.WorkerJoined(at=now, worker_id=worker.id))
            if worker.is_alive(now, self.config.heartbeat_ttl):
                continue
            # (last_heartbeat 0: deregistered, or declared dead by an earlier reap)
            if not worker.draining and worker.last_heartbeat > 0 and self._in_grace(now):
                # A new term (after a failover or a store outage), or a store that just stalled
                # or came back, first gives every worker one TTL to heartbeat to the store
                # again; one that deregistered goes at once.
                continue
            tasks = await storage.tasks.assigned(worker.id)
            if worker.draining:
                reason = "worker left"
            elif worker.last_heartbeat <= 0:
                reason = f"worker {worker.id} lost (declared dead)"
            elif not now - worker.last_heartbeat > 0:
                reason = f"worker {worker.id} lost (its heartbeat, {worker.last_heartbeat!r}, is not a time up to now)"
            else:
                reason = f"worker {worker.id} lost (no heartbeat for {now - worker.last_heartbeat:.1f}s)"
            for task in tasks:
                task.requeue(reason, now, max_redeliveries=self.config.max_redeliveries,
                             consume_attempt=self.config.redeliveries_use_attempts)
            ok = await storage.workers.reap(fence, worker.id, tasks)
            self.stats["requeued"] += sum(ok)
            for task, written in zip(tasks, ok):
                if written:
                    self.events.emit(ev.TaskRequeued(at=now, task_id=task.id, job=task.job,
                                                     worker_id=worker.id, reason=reason))
            requeued = self._reaping.pop(worker.id, 0) + sum(ok)
            if not all(ok):
                # A task changed after we read it (the worker, only slow, took it): the store
                # declared the worker dead but kept it; the next pass requeues the rest.
                self._reaping[worker.id] = requeued
                # (reported once, with the WorkerLost event, when the worker is removed)
                log.info("%s; requeued %d of %d task(s), %d changed meanwhile: reaping it again next pass",
                         reason, sum(ok), len(tasks), len(tasks) - sum(ok))
                continue
            self._known_workers.discard(worker.id)
            self._signing_said.discard(worker.id)
            if worker.id in self._reported_lost:
                if tasks:
                    log.warning("%s; requeued %d more task(s)", reason, sum(ok))
                continue
            self._reported_lost[worker.id] = None
            if len(self._reported_lost) > 10_000:
                del self._reported_lost[next(iter(self._reported_lost))]
            reaped += 1
            self.stats["workers_lost"] += 1
            if requeued or not worker.draining:
                # ``distsched_event`` marks the record as also told by the WorkerLost event: a
                # command that prints the events (distsched run / scheduler) filters it out.
                log.warning("%s; requeued %d task(s)", reason, requeued, extra={"distsched_event": ev.WorkerLost.kind})
            self.events.emit(ev.WorkerLost(at=now, worker_id=worker.id, requeued=requeued, reason=reason))
        return reaped

    def _in_grace(self, now: float) -> bool:
        renewing = self._renewing_since
        if renewing is not None and time.monotonic() - renewing > STORE_STALL:
            self.note_store_stall()  # a renewal hangs right now: the store is not answering
        return now - max(self._term_started, self._stalled_at) < self.config.heartbeat_ttl

    async def check_timeouts(self, fence: Fence, now: float) -> int:
        """The leader's double check: a task with no result ``timeout + grace`` after it
        started is timed out (and retried by its policy) - unless its worker is silent (no
        heartbeat for two heartbeat intervals, or gone): then the attempt was lost with its
        worker and the task is requeued as a crash re-delivery, as a reap would. Returns how
        many tasks were timed out or requeued."""
        overdue = await self.storage.tasks.overdue(now - self.config.timeout_grace, FIRE_BATCH)
        if not overdue:
            return 0
        cfg = self.config
        workers = {w.id: w for w in await self.storage.workers.list_workers()}
        changed: list[Task] = []
        #: the requeued ones: task id -> (worker id, reason)
        lost: dict[str, tuple[str, str]] = {}
        for task in overdue:
            holder = workers.get(task.worker_id or "")
            if task.state in ASSIGNED and (holder is None or not holder.is_fresh(now, cfg.heartbeat_interval,
                                                                                  cfg.heartbeat_ttl)):
                if holder is not None and holder.last_heartbeat > 0:
                    silent = f"no heartbeat for {now - holder.last_heartbeat:.1f}s"
                else:
                    silent = "gone" if holder is None else "declared dead"
                reason = f"worker {task.worker_id} lost ({silent} when the attempt was overdue)"
                lost[task.id] = (task.worker_id or "", reason)
                task.requeue(reason, now, max_redeliveries=cfg.max_redeliveries,
                             consume_attempt=cfg.redeliveries_use_attempts)
                changed.append(task)
                continue
            started = task.started_at if task.started_at is not None else (task.dispatched_at or now)
            result = TaskResult.timed_out(task_id=task.id, attempt_id=task.attempt_id, started_at=started,
                                          finished_at=now, timeout=task.spec.timeout, worker_id=task.worker_id)
            try:
                task.finish(result, now, rand=self.rand())
            except (StaleAttempt, InvalidTransition):
                continue
            changed.append(task)
        if not changed:
            return 0
        ok = await self.storage.tasks.save(fence, changed)
        written = [t for t, w in zip(changed, ok) if w]
        timed = [t for t in written if t.id not in lost]
        self.stats["leader_timeouts"] += len(timed)
        for task in written:
            if task.id in lost and task.state is TaskState.PENDING:
                worker_id, reason = lost[task.id]
                self.stats["requeued"] += 1
                self.stats["requeued_overdue"] += 1
                log.warning("task %s requeued: %s", task.id, reason)
                self.events.emit(ev.TaskRequeued(at=now, task_id=task.id, job=task.job, worker_id=worker_id,
                                                 reason=reason))
        self._finished_events(t for t in written if t.id not in lost or t.state is not TaskState.PENDING)
        return len(written)


#: What :func:`_narrowed` gives for a name no live worker may run (an empty list, told apart
#: by identity: the dispatch loop's ``not pool`` test costs nothing more).
_NOBODY: list[Worker] = []


def _narrowed(workers: list[Worker], alive: list[Worker], may: Callable[[Worker, str], bool],
              name: str, nobody: list[Worker]) -> list[Worker]:
    """The ``workers`` that ``may`` run the tasks of ``name`` (an executor, a function), when
    any live worker (``alive``: full ones too) may; else ``nobody``: ``_NOBODY`` - a task
    nobody can run waits for a worker that may (``unroutable_wait``) - or, under
    ``unroutable_wait = 0``, ``workers``: it goes to any, whose executor fails it at once."""
    if workers is _NOBODY:
        return _NOBODY
    if any(may(w, name) for w in alive):
        return [w for w in workers if may(w, name)]
    return nobody


def _may_run(key: str, alive: list[Worker]) -> bool:
    """Whether a live worker may run the tasks parked under ``key`` (an executor, or
    ``local:<function>``), by the dispatch's rules (Worker.may_have, Worker.may_offer)."""
    if key.startswith("local:"):
        function = key[len("local:"):]
        return any(w.may_have("local") and w.may_offer(function) for w in alive)
    return any(w.may_have(key) for w in alive)


def _slot_order(task: Task) -> tuple[float, str]:
    """A serial job's runs go in slot order (a triggered run, with no slot, by its creation)."""
    return (task.slot if task.slot is not None else task.created_at, task.id)
