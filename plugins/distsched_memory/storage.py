"""``memory://`` storage: every port of distsched in one process, with the same semantics as
the distributed stores (fenced leader writes, optimistic versions, per-worker queues,
idempotent slot creation), so the embedded default behaves like production.

``memory://`` opens a private store; ``memory://NAME`` opens (or creates) a store shared by
every engine of this process that names it, which is how several in-process schedulers and
workers can share one store in tests.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from distsched.asyncutil import WakeSignal as _Signal
from distsched.history import (
    SCAN_BASE,
    SCAN_FACTOR,
    check_finished,
    check_limit,
    check_since,
    check_state,
    decode_cursor,
    encode_cursor,
    ended_attempt,
    merge_attempts,
    newest_finished,
)
from distsched.model import (
    ASSIGNED,
    AlreadyExists,
    FencedError,
    InvalidTransition,
    JobState,
    NotFound,
    StaleAttempt,
    Task,
    TaskConfig,
    TaskResult,
    TaskSpec,
    TaskState,
    ValidationError,
    VersionConflict,
    Worker,
)
from distsched.ports import (
    ATTEMPTS_KEPT,
    THROUGHPUT_KEEP,
    Attempt,
    Fence,
    FireReport,
    Firing,
    JobPage,
    Quarantined,
    SchedulerNode,
    Settled,
    SettledTask,
    TaskDetail,
    TaskPage,
    ThroughputBucket,
)
from distsched.urls import redact_url

READY = (TaskState.PENDING, TaskState.RETRYING)
#: Terminal tasks kept (oldest dropped first) so a long run does not grow without bound.
DEFAULT_KEEP_FINISHED = 100_000


#: Scheduler records whose heartbeat is older than this are dropped (seconds).
SCHEDULER_FORGET = 3600.0
#: Finished states counted per minute (skipped slots are not work done).
COUNTED = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.CANCELLED})


@attrs.define
class Lease:
    holder: str | None = None
    term: int = 0
    expires_at: float = 0.0
    acquired_at: float = 0.0
    renewed_at: float = 0.0
    #: The last holder, kept after a release or expiry (for the status).
    last_holder: str | None = None
    #: The renew interval (seconds) the holder took the lease with, for the status (None:
    #: no lease taken yet).
    renew_interval: float | None = None


class _Index:
    """Task ids sorted by (created_at, id), read newest first from a cursor."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: list[tuple[float, str]] = []

    def add(self, key: tuple[float, str]) -> None:
        keys = self.keys
        if not keys or keys[-1] < key:
            keys.append(key)
            return
        i = bisect.bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            keys.insert(i, key)

    def discard(self, key: tuple[float, str]) -> None:
        keys = self.keys
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            del keys[i]

    def before(self, cursor: tuple[float, str] | None) -> int:
        """Position just after the first entry to return (walk down from there)."""
        return len(self.keys) if cursor is None else bisect.bisect_left(self.keys, cursor)


class _State:
    def __init__(self, keep_finished: int = DEFAULT_KEEP_FINISHED) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        #: The job names, sorted (jobs.page).
        self.job_names: list[str] = []
        self.job_state: dict[str, JobState] = {}
        self.due_heap: list[tuple[float, str]] = []
        self.tasks: dict[str, Task] = {}
        self.ready_heap: list[tuple[float, int, str]] = []
        self.deadline_heap: list[tuple[float, str]] = []
        self.assigned: dict[str, set[str]] = {}
        self.live_by_job: dict[str, set[str]] = {}
        #: A serial job's held tasks: fired while the job had ``serial_limit`` tasks live,
        #: kept out of ``ready_heap`` (they would fill every ready read) until it has room:
        #: job -> heap of (not_before, id), the ids still held, and the job's limit.
        self.held: dict[str, tuple[list[tuple[float, str]], set[str], int]] = {}
        #: Parked tasks (``TaskRepository.park``: no live worker may run them), kept out of
        #: ``ready_heap``: id -> (key, until), and key -> (heap of (until, id), the ids).
        self.parked: dict[str, tuple[str, float]] = {}
        self.parked_keys: dict[str, tuple[list[tuple[float, str]], set[str]]] = {}
        self.finished: deque[str] = deque()
        self.keep_finished = keep_finished
        self.queues: dict[str, deque[tuple[str, str]]] = {}
        self.inflight: dict[str, set[str]] = {}
        self.results: deque[TaskResult] = deque()
        self.workers: dict[str, Worker] = {}
        #: Workers declared dead whose record stays until a reap could requeue all they held.
        self.dead: set[str] = set()
        self.lease = Lease()
        self.activity = _Signal()
        self.queue_signals: dict[str, _Signal] = {}
        self.seq = itertools.count()
        # history indexes (TaskRepository.query / detail / throughput)
        self.by_created = _Index()
        self.by_job: dict[str, _Index] = {}
        self.by_state: dict[str, _Index] = {}
        self.by_worker: dict[str, _Index] = {}
        self.attempts: dict[str, deque[Attempt]] = {}
        self.minutes: dict[int, Counter[str]] = {}
        self.schedulers: dict[str, SchedulerNode] = {}

    def holds(self, fence: Fence, now: float) -> bool:
        lease = self.lease
        return lease.holder == fence.node_id and lease.term == fence.term and lease.expires_at > now

    # -- task indexes -----------------------------------------------------------------
    def put_task(self, old: Task | None, new: Task, *, hold: bool = False) -> None:
        self.tasks[new.id] = new
        if old is not None and self.held and new.job in self.held and new.id in self.held[new.job][1]:
            # a held task written (cancelled...): no longer held; if still ready, it is in
            # the ready queue as any other (the leader's serial check still holds it back)
            self.held[new.job][1].discard(new.id)
            if new.state in READY:
                heapq.heappush(self.ready_heap, (new.not_before, next(self.seq), new.id))
        if old is not None and self.parked and new.id in self.parked:
            # a parked task written (cancelled...): parked no more; still ready, it is ready
            self.unpark_one(new.id)
            if new.state in READY:
                heapq.heappush(self.ready_heap, (new.not_before, next(self.seq), new.id))
        key = (new.created_at, new.id)
        if old is None:
            self.by_created.add(key)
            if new.job is not None:
                self.by_job.setdefault(new.job, _Index()).add(key)
        if old is None or old.state is not new.state:
            if old is not None:
                self.by_state.setdefault(old.state.value, _Index()).discard(key)
            self.by_state.setdefault(new.state.value, _Index()).add(key)
        if new.state in ASSIGNED and new.worker_id and (
                old is None or old.state not in ASSIGNED or old.worker_id != new.worker_id):
            self.by_worker.setdefault(new.worker_id, _Index()).add(key)
        if old is not None and old.state in ASSIGNED and new.state not in ASSIGNED:
            record = ended_attempt(new, old.worker_id)
            if record is not None:
                self.attempts.setdefault(new.id, deque(maxlen=ATTEMPTS_KEPT)).append(record)
        if new.terminal and old is not None and not old.terminal:
            now = time.time()
            if new.state in COUNTED:
                minute = int(now // 60)
                self.minutes.setdefault(minute, Counter())[new.state.value] += 1
                if len(self.minutes) > THROUGHPUT_KEEP // 60:
                    for stale in [m for m in self.minutes if m < minute - THROUGHPUT_KEEP // 60]:
                        del self.minutes[stale]
            if new.job is not None and new.state is not TaskState.SKIPPED:
                st = self.job_state.get(new.job)
                if st is not None:
                    st.last_outcome, st.last_outcome_at, st.last_task = new.state.value, now, new.id
        if hold and new.job is not None and new.serial_limit is not None:
            heap, ids, _ = self.held.setdefault(new.job, ([], set(), new.serial_limit))
            heapq.heappush(heap, (new.not_before, new.id))
            ids.add(new.id)
            self.held[new.job] = (heap, ids, new.serial_limit)
        elif new.state in READY and (old is None or old.state not in READY or old.not_before != new.not_before):
            heapq.heappush(self.ready_heap, (new.not_before, next(self.seq), new.id))
        if old is not None and old.state in ASSIGNED and old.worker_id:
            self.assigned.get(old.worker_id, set()).discard(old.id)
            if new.state not in ASSIGNED or new.worker_id != old.worker_id:
                self.inflight.get(old.worker_id, set()).discard(old.id)
        if new.state in ASSIGNED and new.worker_id:
            self.assigned.setdefault(new.worker_id, set()).add(new.id)
            deadline = new.deadline()
            if deadline is not None:
                heapq.heappush(self.deadline_heap, (deadline, new.id))
        if new.job is not None:
            live = self.live_by_job.setdefault(new.job, set())
            if new.terminal:
                live.discard(new.id)
            else:
                live.add(new.id)
        if new.terminal and (old is None or not old.terminal):
            self.finished.append(new.id)
            while len(self.finished) > self.keep_finished:
                gone_id = self.finished.popleft()
                task = self.tasks.get(gone_id)
                if task is not None and task.terminal:
                    self.drop_task(task)

    def must_hold(self, task: Task) -> bool:
        """Whether a new task of a serial job waits in the job's held queue: the job has
        ``serial_limit`` tasks live and not held, or held ones (slot order)."""
        if task.serial_limit is None or task.job is None or task.state is not TaskState.PENDING:
            return False
        held = self.held.get(task.job)
        waiting = len(held[1]) if held is not None else 0
        return waiting > 0 or len(self.live_by_job.get(task.job, ())) - waiting >= task.serial_limit

    def release_held(self) -> None:
        """Move the oldest held tasks of each serial job that has room (fewer than its limit
        live and not held) to the ready queue. O(jobs with held tasks + tasks moved)."""
        for job in list(self.held):
            heap, ids, limit = self.held[job]
            live = len(self.live_by_job.get(job, ()))
            while heap:
                at, task_id = heap[0]
                if task_id not in ids:
                    heapq.heappop(heap)  # written since (cancelled...): not held any more
                    continue
                if live - len(ids) >= limit:
                    break
                heapq.heappop(heap)
                ids.discard(task_id)
                task = self.tasks.get(task_id)
                if task is not None and task.state in READY:
                    heapq.heappush(self.ready_heap, (task.not_before, next(self.seq), task_id))
            if not heap:
                del self.held[job]

    def unpark_one(self, task_id: str) -> None:
        """Forget that ``task_id`` is parked (its key's heap drops the entry lazily)."""
        key, _ = self.parked.pop(task_id)
        entry = self.parked_keys.get(key)
        if entry is not None:
            entry[1].discard(task_id)
            if not entry[1]:
                del self.parked_keys[key]

    def drop_task(self, task: Task) -> None:
        """Forget a finished task and its index entries (its worker indexes drop it lazily)."""
        del self.tasks[task.id]
        key = (task.created_at, task.id)
        self.by_created.discard(key)
        if task.job is not None and task.job in self.by_job:
            self.by_job[task.job].discard(key)
        self.by_state.setdefault(task.state.value, _Index()).discard(key)
        self.attempts.pop(task.id, None)


class MemoryStorage:
    """All ports over one in-process :class:`_State`."""

    _shared: dict[str, _State] = {}

    def __init__(self, url: str, state: _State) -> None:
        self.url = url
        self.state = state
        self.jobs = _Jobs(self)
        self.tasks = _Tasks(self)
        self.workers = _Workers(self)
        self.schedulers = _Schedulers(self)
        self.queues = _Queues(self)
        self.results = _Results(self)
        self.quarantine = _Quarantine()

    @classmethod
    def open(cls, url: str) -> MemoryStorage:
        parts = urlsplit(url)
        if parts.scheme != "memory":
            raise ValidationError("storage", f"{redact_url(url)!r} is not a memory:// URL")
        name = (parts.netloc + parts.path).strip("/")
        if not name:
            return cls(url, _State())
        state = cls._shared.get(name)
        if state is None:
            state = cls._shared[name] = _State()
        return cls(url, state)

    def clock(self) -> float:
        return time.time()

    async def wait_for_activity(self, timeout: float) -> None:
        await self.state.activity.wait(timeout)

    async def close(self) -> None:
        return None

    def check_fence(self, fence: Fence) -> None:
        if not self.state.holds(fence, self.clock()):
            lease = self.state.lease
            raise FencedError(
                f"write by {fence.node_id!r} with term {fence.term} refused: the current lease is "
                f"held by {lease.holder!r} with term {lease.term}"
            )

    def _cas(self, tasks: Sequence[Task]) -> list[bool]:
        out = []
        state = self.state
        for task in tasks:
            old = state.tasks.get(task.id)
            if old is None or old.version != task.version:
                out.append(False)
                continue
            task.version += 1
            state.put_task(old, copy.copy(task))
            out.append(True)
        return out


class _Jobs:
    def __init__(self, store: MemoryStorage) -> None:
        self.store = store
        self.s = store.state

    def _push(self, name: str, st: JobState) -> None:
        if st.next_fire_at is not None and not st.paused:
            heapq.heappush(self.s.due_heap, (st.next_fire_at, name))
        self.s.activity.set()

    async def add(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        if config.name in self.s.jobs:
            raise AlreadyExists(f"job {config.name!r} already exists")
        stored = attrs.evolve(config, version=1)
        self.s.jobs[config.name] = stored.to_dict()
        bisect.insort(self.s.job_names, config.name)
        st = self.s.job_state[config.name] = JobState(name=config.name, next_fire_at=next_fire_at)
        self._push(config.name, st)
        return stored

    async def add_many(self, jobs: Sequence[tuple[TaskConfig, float | None]], *,
                       all_or_nothing: bool = False) -> list[TaskConfig | None]:
        if all_or_nothing:  # (no await before the writes below: one atomic step)
            existing = tuple(c.name for c, _ in jobs if c.name in self.s.jobs)
            if existing:
                raise AlreadyExists(f"{len(existing)} job(s) already exist", names=existing)
        out: list[TaskConfig | None] = []
        for config, next_fire_at in jobs:
            try:
                out.append(await self.add(config, next_fire_at=next_fire_at))
            except AlreadyExists:
                out.append(None)
        return out

    async def update(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        current = self.s.jobs.get(config.name)
        if current is None:
            raise NotFound(f"job {config.name!r} does not exist")
        if current["version"] != config.version:
            raise VersionConflict(
                f"job {config.name!r}: update based on version {config.version}, but the stored "
                f"version is {current['version']}; reload the job and apply the change again"
            )
        stored = attrs.evolve(config, version=config.version + 1)
        self.s.jobs[config.name] = stored.to_dict()
        st = self.s.job_state[config.name]
        st.next_fire_at = next_fire_at
        self._push(config.name, st)
        return stored

    async def get(self, name: str) -> TaskConfig:
        data = self.s.jobs.get(name)
        if data is None:
            raise NotFound(f"job {name!r} does not exist")
        return TaskConfig.from_dict(data)

    async def list_jobs(self) -> list[TaskConfig]:
        return [TaskConfig.from_dict(d) for _, d in sorted(self.s.jobs.items())]

    async def page(self, after: str | None = None, limit: int = 50) -> JobPage:
        check_limit(limit)
        if after is not None and not isinstance(after, str):
            raise ValidationError("after", f"must be a job name, not {after!r}")
        names = self.s.job_names
        start = 0 if after is None else bisect.bisect_right(names, after)
        chosen = names[start:start + limit]
        more = start + limit < len(names)
        return JobPage(
            jobs=tuple((TaskConfig.from_dict(self.s.jobs[n]), copy.copy(self.s.job_state[n])) for n in chosen),
            next_after=chosen[-1] if more and chosen else None,
        )

    async def count(self) -> tuple[int, int]:
        return len(self.s.jobs), sum(1 for data in self.s.jobs.values() if data["enabled"])

    async def remove(self, name: str) -> bool:
        self.s.job_state.pop(name, None)
        names = self.s.job_names
        i = bisect.bisect_left(names, name)
        if i < len(names) and names[i] == name:
            del names[i]
        return self.s.jobs.pop(name, None) is not None

    async def state(self, name: str) -> JobState:
        st = self.s.job_state.get(name)
        if st is None:
            raise NotFound(f"job {name!r} does not exist")
        return copy.copy(st)

    async def set_paused(self, name: str, paused: bool, *, next_fire_at: float | None = None) -> None:
        st = self.s.job_state.get(name)
        if st is None:
            raise NotFound(f"job {name!r} does not exist")
        st.paused = paused
        if next_fire_at is not None:
            st.next_fire_at = next_fire_at
        self._push(name, st)

    def _valid(self, at: float, name: str) -> bool:
        st = self.s.job_state.get(name)
        data = self.s.jobs.get(name)
        return (
            st is not None and data is not None and not st.paused and data["enabled"]
            and st.next_fire_at == at
        )

    async def due(self, now: float, limit: int) -> list[tuple[TaskConfig, JobState]]:
        heap = self.s.due_heap
        taken: list[tuple[float, str]] = []
        seen: set[str] = set()
        while heap and heap[0][0] <= now and len(taken) < limit:
            at, name = heapq.heappop(heap)
            if name not in seen and self._valid(at, name):
                seen.add(name)
                taken.append((at, name))
        for item in taken:
            heapq.heappush(heap, item)
        return [
            (TaskConfig.from_dict(self.s.jobs[name]), copy.copy(self.s.job_state[name]))
            for _, name in taken
        ]

    async def next_due_at(self) -> float | None:
        heap = self.s.due_heap
        while heap and not self._valid(*heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    async def fire(self, fence: Fence, firings: Sequence[Firing]) -> FireReport:
        self.store.check_fence(fence)
        created = existing = 0
        conflicts = []
        skipped: list[tuple[str, str]] = []
        there: list[str] = []
        for f in firings:
            st = self.s.job_state.get(f.job)
            data = self.s.jobs.get(f.job)
            # a job paused or disabled since the leader read it due does not fire
            if st is None or data is None or st.next_fire_at != f.expected_next or st.paused or not data["enabled"]:
                conflicts.append(f.job)
                continue
            for task in f.tasks:
                if task.id in self.s.tasks:
                    existing += 1
                    there.append(task.id)
                    continue
                new = copy.copy(task)
                new.version = 1
                if f.max_backlog is not None and new.serial_limit is not None and new.state is TaskState.PENDING \
                        and len(self.s.live_by_job.get(f.job, ())) >= new.serial_limit + f.max_backlog:
                    new.state, new.reason, new.finished_at = TaskState.SKIPPED, f.backlog_full, new.created_at
                    skipped.append((new.id, f.backlog_full))
                self.s.put_task(None, new, hold=self.s.must_hold(new))
                created += 1
            st.next_fire_at = f.next_fire_at
            st.last_slot = f.last_slot
            self._push(f.job, st)
        return FireReport(created=created, existing=existing, conflicts=tuple(conflicts), skipped=tuple(skipped),
                          existing_ids=tuple(there))


class _Tasks:
    def __init__(self, store: MemoryStorage) -> None:
        self.store = store
        self.s = store.state

    async def submit(self, tasks: Sequence[Task]) -> list[bool]:
        out = []
        for task in tasks:
            if task.id in self.s.tasks:
                out.append(False)
                continue
            new = copy.copy(task)
            new.spec = _json_copy(task.spec)  # kept as a real store keeps it: the caller's later changes stay out
            new.version = 1
            task.version = 1
            self.s.put_task(None, new)
            out.append(True)
        self.s.activity.set()
        return out

    async def get(self, task_id: str) -> Task | None:
        task = self.s.tasks.get(task_id)
        return copy.copy(task) if task is not None else None

    async def get_many(self, task_ids: Sequence[str]) -> list[Task | None]:
        return [await self.get(t) for t in task_ids]

    async def finished(self, states: Sequence[str], since: float, limit: int) -> list[Task]:
        # scans the tasks of those states: this store holds every task in memory anyway
        check_limit(limit)
        names, since = check_finished(states, since)
        out = []
        for state in names:
            index = self.s.by_state.get(state)
            for _, task_id in index.keys if index is not None else ():
                task = self.s.tasks.get(task_id)
                if task is not None and task.state.value == state and (task.finished_at or 0.0) >= since:
                    out.append(task)
        return [copy.copy(t) for t in newest_finished(out, limit)]

    async def query(
        self,
        *,
        job: str | None = None,
        state: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> TaskPage:
        check_limit(limit)
        state = check_state(state)
        since = check_since(since)
        after = decode_cursor(cursor) if cursor is not None else None
        s = self.s
        if job is not None:
            index = s.by_job.get(job)
        elif worker is not None:
            index = s.by_worker.get(worker)
        elif state is not None:
            index = s.by_state.get(state)
        else:
            index = s.by_created
        if index is None:
            return TaskPage(tasks=())
        keys = index.keys
        i = index.before(after)
        out: list[Task] = []
        budget = SCAN_BASE + SCAN_FACTOR * limit
        last: tuple[float, str] | None = None
        while i > 0 and len(out) < limit and budget > 0:
            i -= 1
            key = keys[i]
            if since is not None and key[0] < since:
                return TaskPage(tasks=tuple(out))
            budget -= 1
            last = key
            task = s.tasks.get(key[1])
            if task is None or task.created_at != key[0]:
                del keys[i]  # forgotten since (a worker index is pruned lazily)
                continue
            if (state is not None and task.state.value != state) or (job is not None and task.job != job) \
                    or (worker is not None and not self._on_worker(task, worker)):
                continue
            out.append(copy.copy(task))
        more = i > 0 and last is not None and not (since is not None and keys[i - 1][0] < since)
        return TaskPage(tasks=tuple(out), next_cursor=encode_cursor(*last) if more and last else None)

    def _on_worker(self, task: Task, worker: str) -> bool:
        index = self.s.by_worker.get(worker)
        if index is None:
            return False
        key = (task.created_at, task.id)
        i = bisect.bisect_left(index.keys, key)
        return i < len(index.keys) and index.keys[i] == key

    async def detail(self, task_id: str) -> TaskDetail | None:
        task = self.s.tasks.get(task_id)
        if task is None:
            return None
        return TaskDetail(task=copy.copy(task), attempts=merge_attempts(task, self.s.attempts.get(task_id, ())))

    async def counts(self) -> dict[str, int]:
        # the per-state history indexes hold every stored task exactly once
        return {state: len(index.keys) for state, index in self.s.by_state.items() if index.keys}

    async def throughput(self, minutes: int = 60) -> list[ThroughputBucket]:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 120:
            raise ValidationError("minutes", f"must be an integer between 1 and 120, not {minutes!r}")
        current = int(self.store.clock() // 60)
        return [ThroughputBucket(minute=m * 60.0, counts=dict(self.s.minutes.get(m, {})))
                for m in range(current - minutes + 1, current + 1)]

    async def ready(self, now: float, limit: int) -> list[Task]:
        if self.s.held:
            self.s.release_held()
        heap = self.s.ready_heap
        taken: list[tuple[float, int, str]] = []
        out: list[Task] = []
        seen: set[str] = set()
        while heap and heap[0][0] <= now and len(out) < limit:
            item = heapq.heappop(heap)
            task = self.s.tasks.get(item[2])
            if task is None or task.state not in READY or task.not_before != item[0] or task.id in seen \
                    or (self.s.parked and task.id in self.s.parked):
                continue
            seen.add(task.id)
            taken.append(item)
            out.append(copy.copy(task))
        for item in taken:
            heapq.heappush(heap, item)
        return out

    async def next_ready_at(self) -> float | None:
        heap = self.s.ready_heap
        while heap:
            at, _, task_id = heap[0]
            task = self.s.tasks.get(task_id)
            if task is not None and task.state in READY and task.not_before == at and task_id not in self.s.parked:
                return at
            heapq.heappop(heap)
        return None

    async def park(self, fence: Fence, parked: Sequence[tuple[Task, str, float]]) -> list[bool]:
        """Move ready tasks no live worker may run to their key's parked set (``TaskRepository``):
        fenced; each only while its stored version is the one given and it is ready (not held,
        not parked). No await between the checks and the writes: one atomic step."""
        self.store.check_fence(fence)
        s = self.s
        out: list[bool] = []
        for task, key, until in parked:
            stored = s.tasks.get(task.id)
            held = stored is not None and stored.job is not None and stored.job in s.held \
                and task.id in s.held[stored.job][1]
            if stored is None or stored.version != task.version or stored.state not in READY \
                    or task.id in s.parked or held:
                out.append(False)
                continue
            s.parked[task.id] = (key, until)
            heap, ids = s.parked_keys.setdefault(key, ([], set()))
            heapq.heappush(heap, (until, task.id))
            ids.add(task.id)
            out.append(True)  # its ready_heap entry is dropped by the next read (it is parked)
        return out

    async def unpark(self, fence: Fence, keys: Sequence[str], until: float, limit: int) -> int:
        """Move parked tasks back to the ready queue (``TaskRepository``): those of ``keys``,
        then those of any key whose wait ran out by ``until``; at most ``limit``. Fenced."""
        self.store.check_fence(fence)
        s = self.s
        moved = 0

        def take(key: str, by: float | None) -> None:
            nonlocal moved
            entry = s.parked_keys.get(key)
            if entry is None:
                return
            heap, ids = entry
            while heap and moved < limit:
                at, task_id = heap[0]
                if task_id not in ids:
                    heapq.heappop(heap)  # written since (cancelled...): not parked any more
                    continue
                if by is not None and at > by:
                    break
                heapq.heappop(heap)
                s.unpark_one(task_id)
                moved += 1
                task = s.tasks.get(task_id)
                if task is not None and task.state in READY:
                    heapq.heappush(s.ready_heap, (task.not_before, next(s.seq), task_id))

        for key in dict.fromkeys(keys):
            take(key, None)
        for key in list(s.parked_keys):
            if moved >= limit:
                break
            take(key, until)
        return moved

    async def parked(self, keys: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """Per key with parked tasks: how many, and their earliest ``until`` (``TaskRepository``)."""
        out: dict[str, tuple[int, float]] = {}
        for key in (list(self.s.parked_keys) if keys is None else [k for k in keys if k in self.s.parked_keys]):
            heap, ids = self.s.parked_keys[key]
            while heap and heap[0][1] not in ids:
                heapq.heappop(heap)
            if ids and heap:
                out[key] = (len(ids), heap[0][0])
        return out

    async def held_slots(self, jobs: Sequence[str] | None = None) -> dict[str, tuple[int, float]]:
        """Per serial job with held slots: how many, and their earliest ``not_before``
        (``TaskRepository``); entries written since (cancelled...) are dropped from the top."""
        out: dict[str, tuple[int, float]] = {}
        for job in (self.s.held if jobs is None else [j for j in jobs if j in self.s.held]):
            heap, ids, _ = self.s.held[job]
            while heap and heap[0][1] not in ids:
                heapq.heappop(heap)
            if ids and heap:
                out[job] = (len(ids), heap[0][0])
        return out

    async def live(self, job: str) -> list[Task]:
        ids = self.s.live_by_job.get(job, ())
        return sorted((copy.copy(self.s.tasks[i]) for i in ids if i in self.s.tasks), key=lambda t: t.created_at)

    async def assigned(self, worker_id: str) -> list[Task]:
        return [copy.copy(self.s.tasks[i]) for i in self.s.assigned.get(worker_id, ()) if i in self.s.tasks]

    async def overdue(self, now: float, limit: int) -> list[Task]:
        heap = self.s.deadline_heap
        taken: list[tuple[float, str]] = []
        out: list[Task] = []
        while heap and heap[0][0] < now and len(out) < limit:
            item = heapq.heappop(heap)
            task = self.s.tasks.get(item[1])
            if task is None or task.deadline() != item[0] or (taken and taken[-1] == item):
                continue  # gone, moved on, or a second entry of the same deadline (a take ahead of time)
            taken.append(item)
            out.append(copy.copy(task))
        for item in taken:
            heapq.heappush(heap, item)
        return out

    async def save(self, fence: Fence, tasks: Sequence[Task], *, ack_results: int = 0) -> list[bool]:
        self.store.check_fence(fence)
        out = self.store._cas(tasks)
        for _ in range(min(ack_results, len(self.s.results))):
            self.s.results.popleft()
        return out

    async def cancel(self, task: Task) -> bool:
        if task.state is not TaskState.CANCELLED:
            raise ValidationError("state", f"cancel writes a cancelled task, not a {task.state.value} one")
        old = self.s.tasks.get(task.id)
        if old is None or old.terminal:
            return False
        ok = self.store._cas([task])[0]
        self.s.activity.set()
        return ok

    async def dispatch(self, fence: Fence, tasks: Sequence[Task]) -> list[bool]:
        self.store.check_fence(fence)
        parked = self.s.parked
        if parked and any(t.id in parked for t in tasks):  # a parked task is never dispatched
            written = iter(self.store._cas([t for t in tasks if t.id not in parked]))
            out = [False if t.id in parked else next(written) for t in tasks]
        else:
            out = self.store._cas(tasks)
        for task, ok in zip(tasks, out):
            if ok and task.worker_id:
                self.s.queues.setdefault(task.worker_id, deque()).append((task.id, task.attempt_id))
                signal = self.s.queue_signals.get(task.worker_id)
                if signal is not None:
                    signal.set()
        return out


class _Workers:
    def __init__(self, store: MemoryStorage) -> None:
        self.store = store
        self.s = store.state

    async def register(self, worker: Worker) -> None:
        stored = copy.copy(worker)
        stored.last_heartbeat = self.store.clock()
        self.s.workers[worker.id] = stored
        self.s.dead.discard(worker.id)
        self.s.activity.set()

    async def heartbeat(self, worker_id: str, *, draining: bool = False, blocked: int = 0) -> bool:
        worker = self.s.workers.get(worker_id)
        if worker is None or worker_id in self.s.dead:
            return False
        worker.heartbeat(self.store.clock())
        worker.draining = draining
        worker.blocked = max(0, int(blocked))
        return True

    async def deregister(self, worker_id: str) -> None:
        worker = self.s.workers.get(worker_id)
        if worker is not None and worker_id not in self.s.dead:
            worker.draining = True
            worker.last_heartbeat = 0.0  # dead now: the leader reaps it and requeues its tasks
        self.s.activity.set()

    async def list_workers(self) -> list[Worker]:
        out = []
        for worker in self.s.workers.values():
            w = copy.copy(worker)
            w.load = len(self.s.assigned.get(w.id, ()))
            out.append(w)
        return out

    async def queue_depths(self) -> dict[str, int]:
        return {w: len(self.s.queues.get(w, ())) for w in self.s.workers}

    async def reap(self, fence: Fence, worker_id: str, tasks: Sequence[Task]) -> list[bool]:
        self.store.check_fence(fence)
        out = self.store._cas(tasks)
        worker = self.s.workers.get(worker_id)
        held = self.s.assigned.get(worker_id)
        if held:  # entries whose task is gone would keep the worker forever
            held.difference_update([i for i in held if i not in self.s.tasks])
        if not all(out) or self.s.assigned.get(worker_id):
            # A task changed since the leader read it (the worker, only slow, took it): the
            # worker is dead from now on (its heartbeat is refused) and stays for the next
            # pass to requeue what it still holds.
            if worker is not None:
                self.s.dead.add(worker_id)
                worker.last_heartbeat = 0.0
            return out
        self.s.workers.pop(worker_id, None)
        self.s.dead.discard(worker_id)
        self.s.queues.pop(worker_id, None)
        self.s.inflight.pop(worker_id, None)
        signal = self.s.queue_signals.get(worker_id)
        if signal is not None:
            signal.set()
        return out


class _Schedulers:
    def __init__(self, store: MemoryStorage) -> None:
        self.store = store
        self.s = store.state

    async def register(self, node: SchedulerNode) -> None:
        now = self.store.clock()
        for gone in [n.id for n in self.s.schedulers.values() if n.last_heartbeat < now - SCHEDULER_FORGET]:
            del self.s.schedulers[gone]
        self.s.schedulers[node.id] = attrs.evolve(node, last_heartbeat=now)

    async def heartbeat(self, node_id: str, *, role: str) -> bool:
        node = self.s.schedulers.get(node_id)
        if node is None:
            return False
        self.s.schedulers[node_id] = attrs.evolve(node, last_heartbeat=self.store.clock(), role=role)
        return True

    async def deregister(self, node_id: str) -> None:
        self.s.schedulers.pop(node_id, None)

    async def list_schedulers(self) -> list[SchedulerNode]:
        return [self.s.schedulers[k] for k in sorted(self.s.schedulers)]


class _Queues:
    def __init__(self, store: MemoryStorage) -> None:
        self.store = store
        self.s = store.state

    async def pull(self, worker_id: str, max_items: int, timeout: float) -> list[Task]:
        queue = self.s.queues.setdefault(worker_id, deque())
        if not queue:
            signal = self.s.queue_signals.setdefault(worker_id, _Signal())
            await signal.wait(timeout)
        return self._take(worker_id, max_items)

    def _take(self, worker_id: str, max_items: int) -> list[Task]:
        queue = self.s.queues.get(worker_id) or deque()
        out: list[Task] = []
        now = self.store.clock()
        inflight = self.s.inflight.setdefault(worker_id, set())
        while queue and len(out) < max_items:
            task_id, attempt_id = queue.popleft()
            task = self.s.tasks.get(task_id)
            if (
                task is None or task.attempt_id != attempt_id
                or task.state is not TaskState.DISPATCHED or task.worker_id != worker_id
            ):
                continue  # stale entry: the task was re-dispatched, cancelled or finished
            new = copy.copy(task)
            new.start(attempt_id, now)
            new.version += 1
            self.s.put_task(task, new)
            inflight.add(task_id)
            out.append(copy.copy(new))
        return out

    async def report(self, worker_id: str, results: Sequence[TaskResult], *, settle: bool = False) -> None:
        # settle is a hint this store does not take: results.settle finishes the successes
        inflight = self.s.inflight.get(worker_id, set())
        for result in results:
            self.s.results.append(_json_result(result))
            inflight.discard(result.task_id)
        self.s.activity.set()

    async def report_and_pull(self, worker_id: str, results: Sequence[TaskResult], max_items: int, *,
                              settle: bool = False) -> list[Task]:
        # one step: nothing between the report and the take awaits
        await self.report(worker_id, results, settle=settle)
        return self._take(worker_id, max(0, max_items))


def _json_copy(spec: TaskSpec) -> TaskSpec:
    """``spec`` as a store that keeps JSON reads it back: a copy (a tuple is a list...)."""
    if not spec.kwargs and not spec.options and all(isinstance(a, (str, int, float, bool, type(None)))
                                                    for a in spec.args):
        return spec  # nothing a caller could change, nothing JSON would change
    return TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict())))


def _json_result(result: TaskResult) -> TaskResult:
    """A result as a store that keeps JSON reads it back: its value and meta copied (a tuple
    is a list, an int key a string; the function's later changes to what it returned stay
    out). The worker checked that they are JSON (``json_problem``)."""
    value = result.value
    if not result.meta and (value is None or isinstance(value, (str, int, float, bool))):
        return result
    return attrs.evolve(result, value=json.loads(json.dumps(value)), meta=json.loads(json.dumps(result.meta)))


def _settled(task: Task) -> SettledTask:
    result = task.result
    assert result is not None
    return SettledTask(task_id=task.id, job=task.job, attempt=task.attempt, started_at=result.started_at,
                       finished_at=result.finished_at, at=task.updated_at)


class _Results:
    def __init__(self, store: MemoryStorage) -> None:
        self.store = store
        self.s = store.state

    async def settle(self, fence: Fence, max_items: int, *, want_tasks: bool = False) -> Settled:
        self.store.check_fence(fence)
        results = self.s.results
        settled: list[Task] = []
        stale = 0
        now = self.store.clock()
        while results and len(settled) + stale < max_items and results[0].ok:
            result = results.popleft()
            task = self.s.tasks.get(result.task_id)
            if task is None:
                stale += 1
                continue
            new = copy.copy(task)
            try:
                new.finish(result, now)
            except (StaleAttempt, InvalidTransition):
                stale += 1
                continue
            new.version += 1
            self.s.put_task(task, new)
            settled.append(new)
        return Settled(settled=len(settled), stale=stale, left=len(results),
                       tasks=tuple(_settled(t) for t in settled) if want_tasks else ())

    async def peek(self, max_items: int) -> list[TaskResult]:
        return list(itertools.islice(self.s.results, max_items))


class _Quarantine:
    """Memory holds objects, never bytes: nothing here can fail to decode."""

    async def count(self) -> int:
        return 0

    async def list_quarantined(self, limit: int = 100) -> list[Quarantined]:
        return []
