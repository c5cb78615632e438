"""The worker: pulls from its own queue, executes under the timeout, reports results.

It registers under a new incarnation id at every start, heartbeats asynchronously, pulls
only as many tasks as it has free execution slots (a task held for its time - dispatched
ahead - takes none until then), runs each with the
task's executor under ``asyncio.timeout(timeout)`` (a coroutine that catches its cancellation
and goes on is recorded timed out ``CANCEL_GRACE`` later, its slot reported as blocked until it
returns), and reports results in batches. When
the store says it was declared dead (its heartbeat was too old), it drops what it holds -
the leader has already requeued it - and re-registers under a new id. On stop it drains:
stops pulling, hands back the tasks it holds for a time after the drain (dispatched ahead,
not started), lets running tasks finish (up to ``drain_timeout``), reports, deregisters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import FrameType, TracebackType
from typing import Any

import attrs

from ..asyncutil import PreciseTimer, cancel_and_wait
from ..config import FIRE_AHEAD_MAX, EngineConfig, WorkerConfig
from ..context import AttemptLog, collecting_log
from ..model import Outcome, Task, TaskResult, TaskSpec, TaskState, ValidationError, Worker
from ..model import events as ev
from ..model.errors import PluginError
from ..model.result import MAX_RESULT_BYTES, json_problem, safe_str
from ..model.retry import RETRY_REQUESTED, Retry
from ..model.task import ASSIGNED
from ..ports import Executor, FunctionLookup, StorageBackend
from ..signing import signer_from
from .backoff import Backoff, wait_or_stop
from .events import EventBus

log = logging.getLogger("distsched.worker")

#: The longest a worker whose record the store's readers keep putting aside waits before it
#: registers again (its wait doubles from one heartbeat interval), and how many of the newest
#: quarantine entries it reads to find why.
REFUSED_BACKOFF_MAX = 300.0
REFUSED_LOOKUP = 50
PULL_TIMEOUT = 0.5
#: How often a worker whose slots are all taken by blocked threads looks whether one returned.
BLOCKED_RECHECK = 0.5
#: Results are reported in batches of at most this many.
REPORT_BATCH = 500
#: How long an attempt may take to end once the worker cancelled it (its timeout, a stop): its
#: cleanup (``finally``, ``async with``) runs meanwhile. A coroutine still running then caught
#: the cancellation and goes on (``except asyncio.CancelledError: pass``): its attempt is
#: recorded as timed out (or, stopped, reports nothing), and the execution slot it holds counts
#: as blocked in the worker's heartbeats until it returns (the store no longer counts its task
#: in the worker's load, so the leader would send the worker more than it runs).
CANCEL_GRACE = 1.0
#: Exceptions a task may raise that must not stop the worker: they fail the task, not
#: retryable (any other BaseException fails it as an Exception does; only the worker's own
#: cancellation of an attempt goes through).
_TASK_EXITS = (KeyboardInterrupt, SystemExit, GeneratorExit)


class WorkerService:
    def __init__(
        self,
        *,
        storage: StorageBackend,
        executors: Callable[[str], Awaitable[Executor]],
        functions: FunctionLookup,
        config: WorkerConfig,
        engine_config: EngineConfig,
        events: EventBus | None = None,
        executor_names: Sequence[str] = (),
    ) -> None:
        self.storage = storage
        #: Builds the executor of a name (called once per name and process; the composition
        #: root binds it to this process's ExecutorContext). Raises PluginError (UnknownName,
        #: NameConflict) when no usable executor has that name or its factory failed.
        self.make_executor = executors
        #: The functions this worker offers (registered with its record, for the leader).
        self.functions = functions
        #: The executors this worker has (registered with its record: the leader sends it
        #: only tasks of these; none said, as by a worker of an earlier version: any task).
        self.executor_names = tuple(executor_names)
        self.config = config
        self.engine_config = engine_config
        self.events = events
        self.id = self._new_id()
        self.registered = asyncio.Event()
        self._executors: dict[str, Executor] = {}
        self._building = asyncio.Lock()
        self._running: dict[asyncio.Task[None], str] = {}
        #: The task each running execution holds (for the heartbeat's check of cancellations).
        self._holding: dict[asyncio.Task[None], Task] = {}
        #: Attempts stopped here because the store no longer had them current (cancelled,
        #: e.g. replaced by a newer slot under overlap ``replace``, or requeued).
        self.abandoned = 0
        #: A pull failed: its reply may have been lost after the store marked tasks running
        #: here. The next pull that succeeds looks for them (:meth:`_lost_pulls`).
        self._pull_failed = False
        #: Attempts this worker ran to the end (newest last, bounded), with their results
        #: (a large value left out): their tasks read ``running`` here until the leader
        #: applies the result, and must not run again - one queued here again (a store that
        #: lost its last writes, or one written into it) gets its result reported again.
        self._finished_attempts: dict[str, TaskResult] = {}
        #: Tasks of a pull whose reply was lost that this worker took back (and ran).
        self.recovered = 0
        self._results: list[TaskResult] = []
        self._results_ready = asyncio.Event()
        #: Held while results are being reported (by the report loop, or carried by a pull).
        self._reporting = asyncio.Lock()
        #: The store's optional ``queues.report_and_pull`` (None: report, then pull).
        self._carry = getattr(storage.queues, "report_and_pull", None)
        #: A carried report failed: the report loop reports what is left before pulls carry again.
        self._carry_failed = False
        #: The pull loop waits for a slot to free (a finishing task frees one: it carries the result).
        self._waiting_for_slot = False
        self._slot_free = asyncio.Event()
        self._timer = PreciseTimer(storage.clock)
        self._draining = False
        #: Executions that hold their task for its time (dispatched ahead) and have not started
        #: it: they take no execution slot until then (``concurrency`` counts tasks running).
        self._not_started: set[asyncio.Task[None]] = set()
        #: Of those, the ones whose time came, waiting for an execution slot (ahead of new pulls).
        self._due: set[asyncio.Task[None]] = set()
        #: Woken when an execution ends (a due task waiting for a slot looks again).
        self._slot_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._blocked_reported = 0
        #: For each execution that started its task, the timer that looks, ``CANCEL_GRACE``
        #: after its timeout (or after :meth:`stop_superseded` stopped it), whether it ended.
        self._overdue_timers: dict[asyncio.Task[None], asyncio.TimerHandle] = {}
        #: Executions cancelled over ``CANCEL_GRACE`` ago whose coroutine goes on (it caught the
        #: cancellation), by attempt id: over for the store (timed out, or stopped), their slot
        #: taken until they return - the heartbeat counts them as blocked.
        self._stubborn: dict[asyncio.Task[None], str] = {}
        #: Executions :meth:`stop_superseded` stopped (one that goes on is not stopped again).
        self._stopped: set[asyncio.Task[None]] = set()
        self.executed = 0
        #: While events are observed: the attempts finished since the last heartbeat that found
        #: this worker alive (or not reported yet), by attempt id - if the next heartbeat says it
        #: was declared dead, the store may have dropped their results (:meth:`_count_dropped`).
        self._unconfirmed: dict[str, tuple[Task, TaskResult]] = {}
        self.on_result: Callable[[TaskResult], None] | None = None
        #: Checks the leader's signature of each task and signs results (None: unsigned).
        self.signer = signer_from(engine_config.signing_keys)
        #: Specs already validated (by identity: the store's decoder shares them), bounded.
        self._valid_specs: dict[int, TaskSpec] = {}
        #: When (monotonic) its record was last written, and how many times in a row it was
        #: gone again within a heartbeat TTL of that - a record the store's readers refuse
        #: and put aside (quarantine), not one reaped for silence (see :meth:`_refused_delay`).
        self._registered_mono = 0.0
        self._refused = 0
        #: The ids under which its record was put aside in a row (their quarantine entries),
        #: and the last reason logged as an ERROR.
        self._refused_ids: list[str] = []
        self._refused_reason: str | None = None

    def _new_id(self) -> str:
        base = self.config.name or socket.gethostname()
        return f"{base}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def _capacity(self) -> int:
        """Tasks this worker holds at most, queued and running (the leader's balancers read it)."""
        return self.config.capacity or max(self.config.concurrency * 4, 64)

    def _worker_record(self) -> Worker:
        concurrency = self.config.concurrency
        capacity = self._capacity()
        return Worker(id=self.id, host=socket.gethostname(), pid=os.getpid(), concurrency=concurrency,
                      capacity=capacity, started_at=self.storage.clock(), signed=self.signer is not None,
                      functions=self.functions.names(), executors=self.executor_names,
                      heartbeat_interval=self.engine_config.heartbeat_interval)

    # -- lifecycle ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        # A record the model refuses (more functions than a worker may advertise) would be
        # refused at every attempt below: the worker stops here instead, naming the field.
        self._worker_record()
        backoff = Backoff()
        registered = False
        while not stop.is_set():
            try:
                await self.storage.workers.register(self._worker_record())
                self._registered_mono = asyncio.get_running_loop().time()
                registered = True
                break
            except Exception as exc:
                log.warning("worker %s: cannot register (%s: %s); retrying", self.id, type(exc).__name__, exc)
                await wait_or_stop(stop, backoff.next())
        if stop.is_set():
            if registered:  # stopped while it registered: its record must not stay, looking alive
                try:
                    await self.storage.workers.deregister(self.id)
                except Exception as exc:
                    log.warning("worker %s: could not deregister: %s", self.id, exc)
            return
        self.registered.set()
        log.info("worker %s: registered (concurrency %d)", self.id, self.config.concurrency)
        heartbeat = asyncio.create_task(self._heartbeat_loop(stop), name="distsched-heartbeat")
        reporter = asyncio.create_task(self._report_loop(), name="distsched-report")
        puller = asyncio.create_task(self._pull_loop(stop), name="distsched-pull")
        stopper = asyncio.create_task(stop.wait(), name="distsched-worker-stop")
        try:
            await asyncio.wait({puller, stopper}, return_when=asyncio.FIRST_COMPLETED)
            # Stop pulling at once; a pull cut short leaves at most a few tasks marked
            # running here, which the leader requeues when this worker deregisters.
            stopper.cancel()
            await _cancel_and_wait(puller, "pull")
            if puller.done() and not puller.cancelled() and puller.exception() is not None:
                raise puller.exception()  # type: ignore[misc]
        finally:
            await self._drain()
            # The reporter is told to finish (not cancelled mid-write): it flushes what is
            # left and returns. A store client can turn a cancellation into a connection
            # error, which would leave a cancelled loop running.
            self._closing = True
            self._results_ready.set()
            await asyncio.wait({reporter}, timeout=10.0)
            await _cancel_and_wait(reporter, "report")
            await _cancel_and_wait(heartbeat, "heartbeat")
            self._timer.close()
            await self._flush_results(final=True)
            try:
                await self.storage.workers.deregister(self.id)
            except Exception as exc:
                log.warning("worker %s: could not deregister: %s", self.id, exc)
            for executor in self._executors.values():
                close = getattr(executor, "close", None)
                if close is not None:
                    try:
                        await close()
                    except Exception:
                        log.exception("closing an executor failed")

    def task_in(self, frames: list[FrameType]) -> Task | None:
        """The task whose execution is among ``frames`` (a thread's frames; its ``_execute``
        coroutine's frame is one of them while it runs), or None. Called from the engine's loop
        watch thread while this worker's loop is held (so nothing here changes meanwhile)."""
        try:
            holding = {id(getattr(job.get_coro(), "cr_frame", None)): task for job, task in list(self._holding.items())}
        except RuntimeError:  # changed meanwhile: the loop is not held after all
            return None
        return next((holding[id(f)] for f in frames if id(f) in holding), None)

    def blocked(self) -> int:
        """Execution slots held by attempts that are over but could not be stopped (a
        timed-out sync function's thread): the executors that can tell say so through an
        optional ``blocked()`` method."""
        total = 0
        for executor in self._executors.values():
            count = getattr(executor, "blocked", None)
            if count is not None:
                try:
                    total += max(0, int(count()))
                except Exception:  # a plugin's bug must not stop the pull loop
                    log.exception("executor %r: blocked() failed", executor)
        return min(total, self.config.concurrency)

    def blocked_slots(self) -> int:
        """The execution slots the heartbeat reports as blocked: :meth:`blocked` (threads),
        and the coroutines that went on after their timeout or stop (they are among the
        executions the pull loop counts, so it does not add them again)."""
        return min(self.blocked() + len(self._stubborn), self.config.concurrency)

    async def _pull_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        concurrency = self.config.concurrency
        # Tasks held for their time take no execution slot, so this many may be held at once
        # (the leader dispatches no more to this worker than its capacity anyway).
        capacity = self._capacity()
        while not stop.is_set():
            blocked = self.blocked() if self._executors else 0
            free = min(concurrency - self._executing() - len(self._due) - blocked, capacity - len(self._running))
            if free <= 0:
                self._slot_free.clear()
                self._waiting_for_slot = True
                try:
                    if blocked:  # a blocked thread frees its slot without telling this loop: look again
                        try:
                            await asyncio.wait_for(self._slot_free.wait(), BLOCKED_RECHECK)
                        except asyncio.TimeoutError:
                            pass
                    else:
                        await self._slot_free.wait()
                finally:
                    self._waiting_for_slot = False
                continue
            tasks = None
            if self._results and self._carry is not None and not self._carry_failed and not self._reporting.locked():
                # The finished results ride on this pull: one round trip instead of two.
                tasks = await self._carry_results(free)
            if not tasks:
                try:
                    tasks = await self.storage.queues.pull(self.id, free, PULL_TIMEOUT)
                except Exception as exc:
                    self._pull_failed = True
                    log.warning("worker %s: pull failed (%s: %s); retrying", self.id, type(exc).__name__, exc)
                    await wait_or_stop(stop, backoff.next())
                    continue
            backoff.reset()
            if self._pull_failed:
                tasks = [*tasks, *await self._lost_pulls(tasks)]
            for task in tasks:
                job = _start(self._execute(task))
                self._running[job] = self.id
                self._holding[job] = task
                job.add_done_callback(self._done)

    async def _carry_results(self, free: int) -> list[Task]:
        """Report the oldest results and take what is queued (up to ``free``) in one store
        call (``queues.report_and_pull``). If it fails, the results stay for the report
        loop (which reports them again, one by one if one cannot be encoded) and the next
        pull looks for tasks whose reply was lost, as after a failed pull."""
        async with self._reporting:
            batch = self._results[:REPORT_BATCH]
            if not batch:
                return []
            assert self._carry is not None
            try:
                tasks: list[Task] = await self._carry(self.id, batch, free, settle=self.signer is None)
            except Exception as exc:
                self._pull_failed = True
                self._carry_failed = True
                self._results_ready.set()
                log.warning("worker %s: reporting %d result(s) with a pull failed (%s: %s); retrying",
                            self.id, len(batch), type(exc).__name__, exc)
                return []
            del self._results[: len(batch)]
            if self._results:
                self._results_ready.set()
            return tasks

    async def _lost_pulls(self, pulled: list[Task]) -> list[Task]:
        """After a failed pull: the tasks the store marked running on this worker that it
        neither runs nor ran - a pull whose reply was lost took them. They are taken back at
        once (their attempt is current) instead of waiting for the leader's timeout check.
        Called from the pull loop only, after a pull returned: no pull is in flight."""
        try:
            assigned = await self.storage.tasks.assigned(self.id)
        except Exception as exc:  # the next pull looks again
            log.warning("worker %s: looking for tasks of a lost pull failed (%s: %s)", self.id, type(exc).__name__, exc)
            return []
        self._pull_failed = False
        known = {t.attempt_id for t in pulled} | {t.attempt_id for t in self._holding.values()}
        known.update(r.attempt_id for r in self._results)
        lost = [t for t in assigned if t.state is TaskState.RUNNING and t.worker_id == self.id
                and t.attempt_id not in known and t.attempt_id not in self._finished_attempts]
        if lost:
            self.recovered += len(lost)
            log.warning("worker %s: took back %d task(s) of a pull whose reply was lost: %s", self.id, len(lost),
                        ", ".join(t.attempt_id for t in lost[:5]))
        return lost

    def _executing(self) -> int:
        """Executions that started their task (or start it now): what ``concurrency`` bounds."""
        return len(self._running) - len(self._not_started)

    async def _take_slot(self, me: asyncio.Task[None]) -> None:
        """A held task's time came: take a free execution slot - at once when one is free and
        no other due task waits for one, as nearly always - else wait for one, ahead of the
        pull loop's new tasks."""
        concurrency = self.config.concurrency
        if self._executing() + len(self._due) + self.blocked() < concurrency:
            return
        self._due.add(me)
        try:
            while self._executing() + self.blocked() >= concurrency:
                waiter = asyncio.get_running_loop().create_future()
                self._slot_waiters.append(waiter)
                try:
                    # (a blocked thread frees its slot without telling anyone: look again)
                    await asyncio.wait_for(waiter, BLOCKED_RECHECK)
                except asyncio.TimeoutError:
                    pass
                finally:
                    if waiter in self._slot_waiters:  # not woken (timed out, or cancelled)
                        self._slot_waiters.remove(waiter)
        finally:
            self._due.discard(me)

    def _done(self, job: asyncio.Task[None]) -> None:
        self._running.pop(job, None)
        timer = self._overdue_timers.pop(job, None)
        if timer is not None:
            timer.cancel()
        self._stopped.discard(job)
        if self._stubborn.pop(job, None) is not None:
            log.info("worker %s: the attempt that went on after it was cancelled ended; its slot is free", self.id)
        self._holding.pop(job, None)
        self._not_started.discard(job)
        self._due.discard(job)
        self._slot_free.set()
        waiters, self._slot_waiters = self._slot_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drain(self) -> None:
        """Let the running tasks finish (up to ``drain_timeout``), and start those held for a
        time within it (dispatched ahead, up to ``fire_ahead``): they run on time here. One held
        for a later time is handed back at once, as one still running at the timeout is - the
        leader requeues both when this worker deregisters and dispatches them to another
        worker, and a requeued task keeps its time."""
        self._draining = True
        until = self.storage.clock() + self.config.drain_timeout
        held = [job for job, task in self._holding.items()
                if job in self._not_started and job not in self._due and task.not_before > until]
        for job in held:
            job.cancel()
        if held:
            await asyncio.gather(*held, return_exceptions=True)
            log.info("worker %s: handed back %d task(s) held for a time after the drain", self.id, len(held))
        if not self._running:
            return
        try:
            await asyncio.wait_for(self.storage.workers.heartbeat(self.id, draining=True,
                                                                  blocked=self.blocked_slots()),
                                   timeout=2.0)
        except Exception:
            pass
        if not self._running:  # they may have finished during the heartbeat
            return
        done, pending = await asyncio.wait(set(self._running), timeout=self.config.drain_timeout)
        for job in pending:
            job.cancel()  # the leader requeues these once we deregister
        if pending:
            log.warning("worker %s: %d task(s) still running after %gs; returned for re-dispatch",
                        self.id, len(pending), self.config.drain_timeout)
            # a coroutine that caught its cancellation would hold the stop for ever
            _, went_on = await asyncio.wait(pending, timeout=CANCEL_GRACE)
            if went_on:
                log.warning("worker %s: %d task(s) still running %gs after they were cancelled (their function "
                            "caught asyncio.CancelledError and went on); the worker stops without waiting for them",
                            self.id, len(went_on), CANCEL_GRACE)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        interval = self.engine_config.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            try:
                blocked = self.blocked_slots()
                if blocked and blocked != self._blocked_reported:
                    log.warning("worker %s: %d of %d execution slot(s) held by attempts that are over but still "
                                "running (a timed-out sync function's thread, a coroutine that caught its "
                                "cancellation); this worker takes fewer tasks until they return",
                                self.id, blocked, self.config.concurrency)
                self._blocked_reported = blocked
                alive = await asyncio.wait_for(
                    self.storage.workers.heartbeat(self.id, draining=self._draining, blocked=blocked),
                    timeout=interval * 2)
            except Exception as exc:
                log.warning("worker %s: heartbeat failed (%s: %s)", self.id, type(exc).__name__, exc)
                continue
            if not alive and not stop.is_set():
                try:
                    delay = await self._refused_delay()
                    if delay and await wait_or_stop(stop, delay):
                        return
                    await self._reincarnate()
                except Exception as exc:  # the next beat tries again
                    log.warning("worker %s: re-registering failed (%s: %s); retrying", self.id, type(exc).__name__, exc)
            elif alive:
                if self._unconfirmed:  # reported while alive: no leader requeued them meanwhile
                    pending = {r.attempt_id for r in self._results}
                    self._unconfirmed = {a: v for a, v in self._unconfirmed.items() if a in pending}
                try:
                    await asyncio.wait_for(self.stop_superseded(), timeout=interval * 2)
                except Exception as exc:  # the next beat looks again
                    log.warning("worker %s: checking its running tasks failed (%s: %s)",
                                self.id, type(exc).__name__, exc)

    async def stop_superseded(self) -> int:
        """Stop the executions whose attempt the store no longer holds as current on this
        worker: the task was cancelled (by a user, or replaced by a newer slot under overlap
        ``replace``), requeued, or it is gone. Called after each heartbeat, so the worker
        learns it within one heartbeat interval. A coroutine is cancelled; a sync function's
        thread cannot be killed and is abandoned (it holds its slot until it returns, see
        :meth:`blocked`). No result is reported for a stopped attempt (the store would drop
        it as stale anyway). Returns how many were stopped."""
        # one already stopped that goes on is not stopped (nor logged) again at every beat
        holding = [(job, task) for job, task in self._holding.items()
                   if not job.done() and job not in self._stopped and job not in self._stubborn]
        if not holding:
            return 0
        stored = await self.storage.tasks.get_many([task.id for _, task in holding])
        stopped = 0
        for (job, task), now in zip(holding, stored):
            current = (now is not None and now.state in ASSIGNED and now.attempt_id == task.attempt_id
                       and now.worker_id == task.worker_id)
            if current or job.done():
                continue
            why = "it is gone" if now is None else (
                f"it is {now.state.value}" + (f" ({now.reason})" if now.reason else "")
                if now.attempt_id == task.attempt_id else f"attempt {now.attempt_id} superseded it")
            log.warning("worker %s: stopping attempt %s: %s", self.id, task.attempt_id, why)
            job.cancel()
            self._stopped.add(job)
            self._watch(job, task, asyncio.get_running_loop().time(), None)
            stopped += 1
        self.abandoned += stopped
        return stopped

    async def _reincarnate(self) -> None:
        """We were declared dead: the leader requeued what we held. Drop it, start anew."""
        old = self.id
        for job, owner in list(self._running.items()):
            if owner == old:
                job.cancel()
        self._results = [r for r in self._results if r.worker_id != old]
        self.id = self._new_id()
        if self._refused < 2:  # else _refused_delay said why
            log.warning("worker %s: its record is gone from the store (the leader declared it dead, or the store lost "
                        "its data); dropped its tasks, re-registering as %s", old, self.id)
        await self.storage.workers.register(self._worker_record())
        self._registered_mono = asyncio.get_running_loop().time()
        await self._count_dropped()

    async def _refused_delay(self) -> float:
        """Its record is gone: how long to wait before registering anew (0: at once).

        A record gone within a heartbeat TTL of being written was not reaped for silence:
        a reader (the leader each pass, ``status``, the dashboard) could not decode it and put
        it aside - a worker of another version than the leader's, or a modified one. Written
        again under a new id at every heartbeat, it was put aside again each time: a new
        quarantine entry keeping the whole record (up to 0.5 MB) every two seconds, an ERROR
        line and a ``record.quarantined`` event each, for ever, while this worker got no task
        and said only that it had been declared dead. From the second time in a row it says
        why (the quarantine's reason, as an ERROR once per reason), waits twice as long each
        time (one heartbeat interval, up to ``REFUSED_BACKOFF_MAX``), and forgets the
        quarantine entries of its earlier ids (copies of the same record): the newest one
        stays for the operator. A record that lives longer than the TTL ends the streak."""
        old, loop = self.id, asyncio.get_running_loop()
        if loop.time() - self._registered_mono >= self.engine_config.heartbeat_ttl:
            self._refused, self._refused_ids, self._refused_reason = 0, [], None
            return 0.0
        self._refused += 1
        self._refused_ids.append(old)
        if self._refused < 2:  # once may be a store that lost its data: register again at once
            return 0.0
        delay = min(self.engine_config.heartbeat_interval * 2 ** (self._refused - 2), REFUSED_BACKOFF_MAX)
        reason = await self._quarantine_reason(old)
        await self._forget_refused(self._refused_ids[:-1])
        self._refused_ids = self._refused_ids[-1:]
        if reason != self._refused_reason:
            self._refused_reason = reason
            log.error("worker %s: its record was put aside by the store's readers %d times in a row, each time "
                      "right after it registered (%s): this worker gets no task. A leader of another version "
                      "than this worker's, or a modified worker? Registering again in %.3gs, waiting twice as "
                      "long each time (at most %.3gs)", old, self._refused,
                      f"quarantined: {reason}" if reason else "no quarantine entry says why",
                      delay, REFUSED_BACKOFF_MAX)
        else:
            log.warning("worker %s: its record was put aside again (%d times in a row); dropped its tasks, "
                        "registering again in %.3gs", old, self._refused, delay)
        return delay

    async def _quarantine_reason(self, worker_id: str) -> str | None:
        """Why the store's quarantine holds this worker's record (None: it does not say)."""
        quarantine = getattr(self.storage, "quarantine", None)
        if quarantine is None:
            return None
        try:
            entries = await quarantine.list_quarantined(REFUSED_LOOKUP)
        except Exception as exc:  # it cannot tell: the ERROR says so
            log.warning("worker %s: cannot read the store's quarantine (%s: %s)", worker_id, type(exc).__name__, exc)
            return None
        return next((q.reason for q in entries if q.kind == "worker" and q.key == worker_id), None)

    async def _forget_refused(self, ids: Sequence[str]) -> None:
        drop = getattr(getattr(self.storage, "quarantine", None), "drop", None)
        if drop is None:
            return
        for worker_id in ids:
            try:
                await drop("worker", worker_id)
            except Exception as exc:  # kept: the next refusal tries again
                log.warning("worker %s: cannot drop the quarantine entry of its earlier id %s (%s: %s)", self.id,
                            worker_id, type(exc).__name__, exc)
                return

    async def _count_dropped(self) -> None:
        """Each ``attempt.finished`` of an earlier id whose result the store did not apply - its
        task was requeued when that id was declared dead, so the late result is dropped - gets
        a ``result.dropped`` event (the store tells: its task holds no result of that attempt)."""
        unconfirmed = [v for v in self._unconfirmed.values() if v[1].worker_id != self.id]
        self._unconfirmed = {}
        events = self.events
        if not unconfirmed or events is None or not events.active:
            return
        try:
            stored = await self.storage.tasks.get_many([task.id for task, _ in unconfirmed])
        except Exception as exc:  # not counted: it cannot tell
            log.warning("worker %s: cannot tell which results of its earlier id were dropped (%s: %s)", self.id,
                        type(exc).__name__, exc)
            return
        for (task, result), now in zip(unconfirmed, stored):
            if now is None or now.result is None or now.result.attempt_id != task.attempt_id:
                events.emit(ev.ResultDropped(at=self.storage.clock(), task_id=task.id, job=task.job,
                                             attempt_id=task.attempt_id, worker_id=result.worker_id or "",
                                             outcome=result.outcome))

    # -- execution ------------------------------------------------------------------
    async def executor(self, name: str) -> Executor:
        """This process's executor of ``name``, built on first use (one at a time, so two
        tasks starting together do not build two)."""
        found = self._executors.get(name)
        if found is None:
            async with self._building:
                found = self._executors.get(name)
                if found is None:
                    found = self._executors[name] = await self.make_executor(name)
        return found

    async def _execute(self, task: Task) -> None:
        ran = self._finished_attempts.get(task.attempt_id)
        if ran is not None:
            self._report_again(task, ran)
            return
        clock = self.storage.clock
        early = task.not_before - clock()
        precise = False
        me = asyncio.current_task()
        # no leader dispatches further ahead than fire_ahead allows: a task that comes earlier
        # (a broken record, or one written straight into the store) is refused below, rather
        # than hold an execution slot until its time (an hour, or for ever for an infinite
        # not_before; a few such tasks would stop the worker)
        too_early = not early <= FIRE_AHEAD_MAX + 1.0
        if 0 < early and not too_early:  # dispatched ahead of its time: start it on time
            if me is not None:  # a draining worker hands it back instead of waiting for its time
                self._not_started.add(me)
                self._slot_free.set()  # it takes no execution slot meanwhile: the pull loop may pull
            try:
                if task.slot is not None and task.slot == task.not_before:
                    await self._timer.wait_until(task.not_before)  # a schedule slot: to the sub-millisecond
                    precise = True
                else:
                    await asyncio.sleep(early)
                if me is not None:
                    await self._take_slot(me)
            finally:
                if me is not None:
                    self._not_started.discard(me)
        started = clock()
        timeout = task.spec.timeout
        worker_id = self.id
        events = self.events if self.events is not None and self.events.active else None
        if events is not None:
            events.emit(ev.AttemptStarted(at=started, task_id=task.id, job=task.job, attempt_id=task.attempt_id,
                                          worker_id=worker_id, slot=task.slot, due_at=task.not_before,
                                          dispatched_at=task.dispatched_at))
        limit = None
        captured = AttemptLog()  # what the executor captured of the task's logging (local), if anything
        try:
            refused = self._refusal(task)
            if refused is None and too_early:
                refused = ("InvalidTask", f"dispatched {early:.1f} s before its not_before, more than a leader "
                           f"dispatches ahead ({FIRE_AHEAD_MAX:g} s at most): its record is broken")
            if refused is not None:
                raise _Refused(refused)
            executor = self._executors.get(task.spec.executor) or await self.executor(task.spec.executor)
            loop = asyncio.get_running_loop()
            # in this asyncio task (no task of its own): what the function raises reaches the
            # handlers below, and the loop watch finds this coroutine's frame (task_in)
            async with _timeout(timeout) as limit:
                deadline = limit.when()
                if me is not None and deadline is not None:  # it must end by then (and a grace to clean up)
                    self._watch(me, task, deadline, (started, timeout, worker_id, events))
                with collecting_log(captured):
                    outcome = await executor.run(task)
            finished = clock()
            if deadline is not None and loop.time() > deadline:
                # it returned after its deadline: the loop was held (the timeout runs on it)
                raise _Overran
            if precise:
                # Tasks of the same slot start one after another on this loop: let the others
                # start before this one's bookkeeping (they were released together).
                await asyncio.sleep(0)
            outcome = _checked(outcome, task.spec.executor)
            result = TaskResult.from_outcome(outcome, task_id=task.id, attempt_id=task.attempt_id,
                                             started_at=started, finished_at=finished, worker_id=worker_id)
        except _Overran:
            result = TaskResult.timed_out(task_id=task.id, attempt_id=task.attempt_id, started_at=started,
                                          finished_at=finished, timeout=timeout, worker_id=worker_id)
            result = attrs.evolve(result, error=f"{result.error}: {_OVERRAN}")
        except asyncio.TimeoutError as exc:
            finished = clock()
            # the attempt's own timeout, or a TimeoutError the function raised (an HTTP read
            # timing out...): that one is its failure, with its message
            if limit is not None and limit.expired():
                result = TaskResult.timed_out(task_id=task.id, attempt_id=task.attempt_id, started_at=started,
                                              finished_at=finished, timeout=timeout, worker_id=worker_id)
            else:
                kind = type(exc).__name__
                result = _failure(task, started, finished, worker_id, kind, f"{kind}: {safe_str(exc)}", True)
        except PluginError as exc:  # the executor is unknown, provided twice, or its factory failed
            result = _failure(task, started, clock(), worker_id, type(exc).__name__, str(exc), False)
        except _Refused as exc:
            log.error("worker %s: refused to run task %s: %s", worker_id, task.id, exc.reason)
            result = _failure(task, started, clock(), worker_id, exc.kind, f"refused to run: {exc.reason}", False)
        except Retry as exc:  # the function asks for another attempt (the leader counts it, caps its delay)
            result = TaskResult.from_outcome(
                Outcome.failure(exc.message(), error_type=RETRY_REQUESTED, retryable=True, retry_after=exc.after),
                task_id=task.id, attempt_id=task.attempt_id, started_at=started, finished_at=clock(),
                worker_id=worker_id)
        except Exception as exc:
            kind = type(exc).__name__
            result = _failure(task, started, clock(), worker_id, kind, f"{kind}: {safe_str(exc)}", True)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelled_here():
                raise  # the worker stops this attempt (its timeout, a cancel, a drain): not a result
            kind = type(exc).__name__
            if isinstance(exc, _TASK_EXITS):  # sys.exit() or a stray KeyboardInterrupt in a task: its failure only
                result = _failure(task, started, clock(), worker_id, kind,
                                  f"the task raised {kind}({safe_str(exc)}); the worker goes on", False)
            else:  # a CancelledError of the task's own (a future it awaited was cancelled), a BaseException subclass
                result = _failure(task, started, clock(), worker_id, kind, f"{kind}: {safe_str(exc)}", True)
        if me is not None and me in self._stubborn:
            return  # it went on after its timeout or stop: its attempt was recorded (or dropped) then
        if captured.text is not None:  # returned, raised or timed out: what it logged goes with its result
            result = result.with_log(captured.text)
        self._record(task, result, events)

    def _watch(self, job: asyncio.Task[None], task: Task, deadline: float, timed: _Timed | None) -> None:
        """Look ``CANCEL_GRACE`` after ``deadline`` (loop time: the attempt's timeout, or now
        for a stop) whether ``job`` ended; ``timed``: the attempt's start, timeout, worker id
        and event bus, for the timed-out result it gets if not (a stopped one reports nothing)."""
        old = self._overdue_timers.pop(job, None)
        if old is not None:
            old.cancel()
        due = deadline + CANCEL_GRACE
        self._overdue_timers[job] = asyncio.get_running_loop().call_at(due, self._overdue, job, task, due, timed)

    def _overdue(self, job: asyncio.Task[None], task: Task, due: float, timed: _Timed | None) -> None:
        """``CANCEL_GRACE`` after ``job``'s timeout or stop: if its coroutine still runs, it
        caught its cancellation and goes on. Its attempt is over: a timed-out one is recorded
        as timed out now (not when, or if, it returns); its slot stays taken and counts as
        blocked in the heartbeat until it returns (:meth:`blocked_slots`)."""
        self._overdue_timers.pop(job, None)
        if job.done() or job not in self._running:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - due > CANCEL_GRACE / 2:
            # the loop was held (a blocking call): the cancellation may not even have reached
            # the coroutine yet - look again once it has had its grace
            due = loop.time() + CANCEL_GRACE
            self._overdue_timers[job] = loop.call_at(due, self._overdue, job, task, due, timed)
            return
        self._stubborn[job] = task.attempt_id
        if timed is None:
            log.warning("worker %s: attempt %s was stopped %gs ago and its function still runs (it caught "
                        "asyncio.CancelledError and went on): its execution slot stays taken, reported as "
                        "blocked, until it returns", self.id, task.attempt_id, CANCEL_GRACE)
            return
        started, timeout, worker_id, events = timed
        log.warning("worker %s: attempt %s timed out after %gs and its function still runs %gs later (it caught "
                    "asyncio.CancelledError and went on): recorded as timed out; its execution slot stays "
                    "taken, reported as blocked, until it returns", self.id, task.attempt_id, timeout, CANCEL_GRACE)
        result = TaskResult.timed_out(task_id=task.id, attempt_id=task.attempt_id, started_at=started,
                                      finished_at=self.storage.clock(), timeout=timeout, worker_id=worker_id)
        self._record(task, attrs.evolve(result, error=f"{result.error}: {_WENT_ON}"), events)

    def _record(self, task: Task, result: TaskResult, events: EventBus | None) -> None:
        """An attempt's result, for the report (and kept, so that it never runs twice here)."""
        self.executed += 1
        self._finished_attempts[task.attempt_id] = _kept(result)
        if len(self._finished_attempts) > 10_000:
            del self._finished_attempts[next(iter(self._finished_attempts))]
        if self.signer is not None:
            result = attrs.evolve(result, signature=self.signer.sign_result(result))
        if events is not None:
            events.emit(ev.AttemptFinished(at=result.finished_at, task_id=task.id, job=task.job,
                                           attempt_id=task.attempt_id, worker_id=result.worker_id or self.id,
                                           outcome=result.outcome, duration=result.duration))
            self._unconfirmed[task.attempt_id] = (task, result)
        self._results.append(result)
        self._results_ready.set()
        if self.on_result is not None:
            self.on_result(result)

    def _report_again(self, task: Task, result: TaskResult) -> None:
        """An attempt this worker already ran, queued for it again - a store that lost its last
        writes (a power loss under ``appendfsync everysec``, a failover to a replica behind),
        or one written into it (a signed attempt still matches its signature): it is not run
        twice; its result is reported again (its value left out when it was large)."""
        log.warning("worker %s: attempt %s of task %r already ran here and was queued again (a store that lost "
                    "writes, or one written into); not run twice: its result (%s) is reported again",
                    self.id, task.attempt_id, task.id, result.outcome)
        if self.signer is not None:
            result = attrs.evolve(result, signature=self.signer.sign_result(result))
        self._results.append(result)
        self._results_ready.set()

    def _refusal(self, task: Task) -> tuple[str, str] | None:
        """Why ``task`` must not run here, as (error type, reason), or None.

        With a signing key, the leader's signature must match the task's content and this
        worker. Always, the spec read back from the store must be valid (a ``timeout`` of
        1e308 or ``args = "abc"`` written straight into the store is refused)."""
        if self.signer is not None:
            why = self.signer.check_dispatch(task)
            if why is not None:
                return "BadSignature", why
        spec = task.spec
        if self._valid_specs.get(id(spec)) is not spec:
            if not isinstance(spec.args, tuple):
                return "InvalidTask", f"its stored spec is not valid: args: must be a list, not {type(spec.args).__name__}"
            try:
                spec.validate()
            except (ValidationError, TypeError, ValueError) as exc:
                return "InvalidTask", f"its stored spec is not valid: {safe_str(exc)}"
            if len(self._valid_specs) >= 4096:
                self._valid_specs.clear()
            self._valid_specs[id(spec)] = spec  # holds the spec, so its id is not reused meanwhile
        return None

    # -- reporting ------------------------------------------------------------------
    async def _report_loop(self) -> None:
        while not self._closing:
            await self._results_ready.wait()
            self._results_ready.clear()
            if self._carry is not None and self._waiting_for_slot and not self._closing:
                # The task that finished frees its slot once its callbacks ran: let the pull
                # loop wake up first and carry the result on its pull (whatever it leaves,
                # e.g. a slot still held by a blocked thread, is reported here).
                for _ in range(3):
                    await asyncio.sleep(0)
            await self._flush_results()

    async def _flush_results(self, final: bool = False) -> None:
        backoff = Backoff()
        attempts = 0
        while self._results:
            async with self._reporting:
                batch = self._results[:REPORT_BATCH]
                if not batch:  # a pull carried them meanwhile
                    break
                try:
                    # Unsigned results: the store may settle this worker's successes in the
                    # report itself (signed ones are checked by the leader, as always).
                    await self.storage.queues.report(self.id, batch, settle=self.signer is None)
                except _ENCODING_ERRORS as exc:
                    # The store could not encode something in the batch: never let one result
                    # wedge the reporting of every result behind it.
                    log.error("worker %s: the store could not encode a result batch (%s: %s); reporting one by one",
                              self.id, type(exc).__name__, safe_str(exc)[:300])
                    await self._report_one_by_one(batch)
                    del self._results[: len(batch)]
                    continue
                except Exception as exc:
                    attempts += 1
                    log.warning("worker %s: reporting %d result(s) failed (%s: %s); retrying",
                                self.id, len(batch), type(exc).__name__, exc)
                    if final and attempts > 20:
                        log.error("worker %s: gave up reporting %d result(s); the leader will time them out", self.id, len(self._results))
                        return
                    failed = True
                else:
                    failed = False
                    del self._results[: len(batch)]
            if failed:
                await asyncio.sleep(backoff.next())
        self._carry_failed = False


    async def _report_one_by_one(self, batch: list[TaskResult]) -> None:
        """Report each result alone; one the store cannot encode is replaced by a failure of
        its own attempt that says so."""
        for result in batch:
            for attempt in (result, _unencodable(result)):
                try:
                    await self.storage.queues.report(self.id, [attempt], settle=self.signer is None)
                    break
                except _ENCODING_ERRORS:
                    continue
                except Exception as exc:  # the store is down: keep it for the normal retry
                    log.warning("worker %s: reporting failed (%s: %s); retrying", self.id, type(exc).__name__, exc)
                    self._results.append(attempt)
                    break


#: What :meth:`WorkerService._overdue` needs of an attempt to record it as timed out: its start
#: (store clock), timeout, worker id and event bus.
_Timed = tuple[float, float, str, EventBus | None]


class _Refused(Exception):
    def __init__(self, refusal: tuple[str, str]) -> None:
        super().__init__(refusal[1])
        self.kind, self.reason = refusal


class _Overran(Exception):
    """An execution returned after its deadline: its timeout could not interrupt it."""


#: Why an attempt that returned after its deadline is recorded as timed out.
_OVERRAN = ("it returned only then: the event loop was held past its deadline (a blocking call in an async "
            "function, this task's or another's on this worker), so its timeout could not interrupt it")


#: Why an attempt still running ``CANCEL_GRACE`` after its timeout is recorded as timed out then.
_WENT_ON = ("its function caught the cancellation at its timeout and went on (it must let "
            "asyncio.CancelledError propagate); its execution slot stays taken until it returns")


#: What a store's encoder raises on a value it cannot encode (as opposed to a store outage).
_ENCODING_ERRORS = (TypeError, ValueError, UnicodeError, OverflowError, RecursionError)


def _unencodable(result: TaskResult) -> TaskResult:
    return TaskResult(task_id=result.task_id, attempt_id=result.attempt_id, outcome="failed",
                      started_at=result.started_at, finished_at=result.finished_at, worker_id=result.worker_id,
                      error="the store could not encode this attempt's result", error_type="ResultNotJSON",
                      retryable=False)


async def _cancel_and_wait(task: asyncio.Task[None], what: str, timeout: float = 5.0) -> None:
    if await cancel_and_wait([task], timeout):  # pragma: no cover - a client that swallowed it
        log.error("the worker's %s loop did not stop within %gs", what, timeout)


def _cancelled_here() -> bool:
    """True when the running asyncio task was asked to stop (``cancel()``): a CancelledError it
    meets is that cancellation, not one the task's function raised of its own. An execution
    counts its cancellations (``Task.cancelling``; on Python 3.10, :class:`_CountingTask`); a
    task that cannot tell takes every CancelledError as a cancellation."""
    me = asyncio.current_task()
    cancelling = getattr(me, "cancelling", None)
    return cancelling is None or cancelling() > 0


if sys.version_info >= (3, 11):
    #: Starts an execution, and bounds its attempt by its timeout, in the same asyncio task.
    _start = asyncio.create_task
    _timeout = asyncio.timeout
else:  # Python 3.10: no Task.cancelling() nor asyncio.timeout(); asyncio.wait_for runs the
    # function in an asyncio task of its own, from which sys.exit() or KeyboardInterrupt stop
    # the event loop, and every CancelledError there would read as the worker's cancellation

    class _CountingTask(asyncio.Task):  # type: ignore[type-arg]
        """An asyncio task that counts the requests to cancel it, as Python 3.11's does
        (``cancelling()``, ``uncancel()``): a CancelledError met while none is pending is
        the task's function's own (a future it awaited was cancelled)."""

        _cancel_requests = 0

        def cancel(self, msg: Any = None) -> bool:
            if self.done():
                return False
            self._cancel_requests += 1
            return super().cancel(msg)

        def cancelling(self) -> int:
            return self._cancel_requests

        def uncancel(self) -> int:
            if self._cancel_requests > 0:
                self._cancel_requests -= 1
            return self._cancel_requests

    def _start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return _CountingTask(coro, loop=asyncio.get_running_loop())

    class _timeout:  # Python 3.11's asyncio.timeout(), for a _CountingTask
        """``async with _timeout(delay) as limit``: the block is cancelled at its deadline
        (``limit.when()``, loop time), which then raises asyncio.TimeoutError
        (``limit.expired()``); a CancelledError of the block's own, or a cancellation
        requested from outside, goes through as it is."""

        def __init__(self, delay: float) -> None:
            self._delay = delay
            self._when = 0.0
            self._expired = False
            self._cancelling = 0
            self._task: _CountingTask | None = None
            self._handle: asyncio.TimerHandle | None = None

        def when(self) -> float | None:
            return self._when

        def expired(self) -> bool:
            return self._expired

        async def __aenter__(self) -> _timeout:
            task = asyncio.current_task()
            if not isinstance(task, _CountingTask):
                raise RuntimeError("the worker's timeout runs in an execution it started (_start)")
            loop = asyncio.get_running_loop()
            self._task = task
            self._cancelling = task.cancelling()
            self._when = loop.time() + self._delay
            self._handle = loop.call_at(self._when, self._on_timeout)
            return self

        def _on_timeout(self) -> None:
            assert self._task is not None
            self._handle = None
            self._expired = True
            self._task.cancel()

        async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                            tb: TracebackType | None) -> None:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            assert self._task is not None
            if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise asyncio.TimeoutError from exc


def _failure(task: Task, started: float, finished: float, worker_id: str, kind: str, error: str, retryable: bool) -> TaskResult:
    return TaskResult.from_outcome(
        Outcome.failure(error, error_type=kind, retryable=retryable),
        task_id=task.id, attempt_id=task.attempt_id, started_at=started, finished_at=finished, worker_id=worker_id)


def _checked(outcome: object, executor: str) -> Outcome:
    """An executor must return an Outcome whose value and meta are storable JSON (see
    :func:`distsched.model.result.json_problem`); anything else fails this attempt alone."""
    if not isinstance(outcome, Outcome):
        return Outcome.failure(f"executor {executor!r} returned {type(outcome).__name__}, not an Outcome",
                               error_type="PluginError", retryable=False)
    problem = json_problem(outcome.value)
    if problem is not None:
        kind, reason = problem
        return Outcome.failure(f"the task's result cannot be stored: {reason}", error_type=kind, retryable=False)
    if outcome.meta:
        problem = json_problem(outcome.meta, MAX_RESULT_BYTES // 4)
        if problem is not None:
            return Outcome.failure(f"executor {executor!r} returned meta that cannot be stored: {problem[1]}",
                                   error_type="PluginError", retryable=False)
    return outcome


def _kept(result: TaskResult) -> TaskResult:
    """What a worker keeps of a finished attempt's result to report it again (bounded memory:
    10,000 of them): the result itself when its value is small, else the result without its
    value and meta (``meta.value_not_kept``); never its captured log (up to 256 KiB each)."""
    if result.log is not None:
        result = result.with_log(None)
    value = result.value
    if not result.meta and (value is None or isinstance(value, (bool, int, float))
                            or (isinstance(value, str) and len(value) <= 256)):
        return result
    return attrs.evolve(result, value=None, meta={"value_not_kept": True}, signature=None)
