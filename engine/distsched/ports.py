"""Ports: the interfaces between the application services and the plugins.

The scheduler (leader) and worker loops talk to storage, election, executors and balancers
only through these protocols. A storage plugin implements :class:`StorageBackend` (a bundle
of the repositories, the per-worker queues and the result channel); see ``docs/plugins.md``
for what each method must guarantee and ``distsched.testing.contracts`` for the tests that
check it.

Conventions:

* Times are UNIX seconds (float, UTC) from :meth:`StorageBackend.clock`.
* Every *leader write* takes a :class:`Fence` (the leader's node id and election term). The
  store refuses it with :class:`~distsched.model.FencedError` when the term is no longer the
  current one, atomically with the write: a paused ex-leader cannot change anything.
* Task writes are optimistic: ``save`` writes a task only when the stored version equals
  ``task.version`` and then bumps it; the result list says which writes were applied.
* Payloads are JSON. No pickle anywhere.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .config import EngineConfig
from .model import JobState, Outcome, Task, TaskConfig, TaskResult, Worker
from .model.newer import ignore_newer, init_fields


@attrs.frozen
class Fence:
    """A leader's credentials for one term of leadership."""

    node_id: str
    term: int


@attrs.frozen(kw_only=True)
class Firing:
    """One job's fired slots, committed by :meth:`JobRepository.fire` in one atomic step.

    ``expected_next`` is the ``next_fire_at`` the leader read; the store applies the firing
    only if it is still the stored one (so two leaders cannot both advance a job).
    ``tasks`` are the new slot tasks (pending, or skipped records); a task whose id already
    exists is left as it is (slot creation is idempotent). ``last_slot`` is the new
    high-water mark. ``max_backlog`` (a ``serial`` job's; None: any other): a pending task
    with a ``serial_limit`` is stored as ``skipped`` (reason ``overlap: backlog full
    (max_backlog = N)``) when the job already has ``serial_limit + max_backlog`` live tasks -
    decided by the store in the same atomic step, counting the tasks this firing adds.
    """

    job: str
    expected_next: float
    next_fire_at: float | None
    last_slot: float | None
    tasks: tuple[Task, ...]
    max_backlog: int | None = None

    @property
    def backlog_full(self) -> str:
        """The reason of a slot the store records skipped for ``max_backlog``."""
        return f"overlap: backlog full (max_backlog = {self.max_backlog})"


@attrs.frozen(kw_only=True)
class FireReport:
    """What :meth:`JobRepository.fire` did: tasks ``created``, ``existing`` ones left as they
    were, the jobs whose firing was a ``conflict`` (not applied), and ``skipped``: the
    ``(task id, reason)`` of each pending slot the store itself created as ``skipped``
    (``Firing.max_backlog``), in firing order - the leader announces them (``task.skipped``)
    as it does the skipped records it built itself. A store that reports none (an older
    plugin) leaves it empty: those slots are then not announced.

    ``existing_ids``: the ids of the ``existing`` tasks (one per task of an applied firing
    that the store left as it was because its id was stored already), decided in the same
    atomic step as the rest. The leader announces no ``task.skipped`` for a skipped record of
    its firing whose id is among them: that slot was stored - and announced - before (by
    this leader or an earlier one), or it is a live task that runs. None: the store does not
    name them (a third-party store written before they existed; optional); the leader then
    announces every skipped record of an applied firing, as before - with ``existing`` 0 it
    knows none existed."""

    created: int = 0
    existing: int = 0
    conflicts: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    existing_ids: tuple[str, ...] | None = None


@attrs.frozen(kw_only=True)
class SettledTask:
    """A task :meth:`ResultChannel.settle` finished: enough for the ``TaskFinished`` event."""

    task_id: str
    job: str | None
    attempt: int
    started_at: float
    finished_at: float
    #: When the store settled it (the task's ``updated_at``).
    at: float


@attrs.frozen(kw_only=True)
class Settled:
    """What :meth:`ResultChannel.settle` did: ``settled`` successes applied, ``stale`` results
    of superseded attempts dropped, ``left`` results still waiting for :meth:`~ResultChannel.peek`,
    and the settled tasks (only when asked for, in the order settled)."""

    settled: int = 0
    stale: int = 0
    left: int = 0
    tasks: tuple[SettledTask, ...] = ()


#: Longest error text and result value (as JSON text) kept in an attempt record.
ATTEMPT_TEXT_CAP = 2000
#: Earlier attempts kept per task (the oldest dropped first); the current one is always read.
ATTEMPTS_KEPT = 50
#: Per-minute throughput buckets are kept this long by the store (seconds).
THROUGHPUT_KEEP = 7200


@attrs.frozen(kw_only=True)
class TaskPage:
    """One page of :meth:`TaskRepository.query`: tasks newest first (by ``created_at``, ties
    by id, both descending) and the opaque cursor of the next page (None: no more)."""

    tasks: tuple[Task, ...]
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class Attempt:
    """One attempt (one dispatch) of a task, as :meth:`TaskRepository.detail` reads it.

    ``number`` is the retry-policy attempt (1 = first; a crash re-delivery keeps it), and
    ``attempt_id`` the dispatch (``"<task id>#<dispatches>"``). ``outcome`` is the result's
    (``succeeded``, ``failed``, ``timed_out``), or ``lost`` (its worker died and the task was
    requeued, or failed for a worker lost once too often), ``cancelled``, or - for the attempt in flight - ``dispatched`` / ``running``.
    ``error`` and ``value`` are capped (:data:`ATTEMPT_TEXT_CAP`); ``truncated`` says so.
    ``retry_at`` is when the retry policy scheduled the next attempt (None: no retry)."""

    number: int
    attempt_id: str
    worker_id: str | None = None
    dispatched_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    retry_at: float | None = None
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        known = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@attrs.frozen(kw_only=True)
class TaskDetail:
    """A task and every attempt it made, oldest first (one consistent read)."""

    task: Task
    attempts: tuple[Attempt, ...]


@attrs.frozen(kw_only=True)
class JobPage:
    """One page of :meth:`JobRepository.page`: jobs by name with their schedule state, and
    the name to pass as ``after`` for the next page (None: no more)."""

    jobs: tuple[tuple[TaskConfig, JobState], ...]
    next_after: str | None = None


@attrs.frozen(kw_only=True)
class ThroughputBucket:
    """Tasks that reached a final state during one minute (``minute``: its start, UNIX
    seconds), by state (``succeeded``, ``failed``, ``timed_out``, ``cancelled``)."""

    minute: float
    counts: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class LeaseInfo:
    """The lease as the store last recorded it, in store time. ``holder`` is kept after the
    lease lapsed or was released, so a status can say "expired" rather than nothing:
    ``expired`` is true once ``now >= expires_at``."""

    holder: str
    term: int
    acquired_at: float
    renewed_at: float
    expires_at: float
    now: float
    #: The holder's renew interval (seconds) as it recorded it when it took the lease, so a
    #: status tells a late renewal by the holder's own interval; None when the record has
    #: none (written by a node of an older version, or a store that keeps none).
    renew_interval: float | None = None

    @property
    def expired(self) -> bool:
        return self.now >= self.expires_at


@attrs.frozen(kw_only=True)
class SchedulerNode:
    """A scheduler process as it registered itself (heartbeats in store time). ``role`` is
    ``leader`` or ``standby`` as the node last reported it."""

    id: str
    host: str = ""
    pid: int = 0
    started_at: float
    last_heartbeat: float
    role: str = "standby"
    #: The node signs what it dispatches when it leads (it has a signing key).
    signed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchedulerNode:
        """A node from its stored record; a field this version does not know (a newer
        node's) is left out, with one WARNING per field per process (``model.newer``)."""
        return cls(**ignore_newer("scheduler", dict(data), init_fields(cls)))


@runtime_checkable
class JobRepository(Protocol):
    """Job definitions (TaskConfig) and their schedule state (JobState).

    A store may also define ``async count() -> tuple[int, int]``: how many jobs are stored
    and how many of them are enabled (``TaskConfig.enabled``; a paused job counts as
    enabled), ``(total, enabled)``, for ``distsched status``. One consistent read, not
    fenced; no job is sent or decoded, so it costs far less than reading the jobs (Redis:
    O(1), ``HLEN`` less a kept set of the disabled jobs; PostgreSQL: one ``count(*)``, 1 ms
    at 10,000 jobs; memory: in process). A store without it gets one :meth:`page` of
    ``distsched.status.JOBS_COUNTED`` jobs counted instead, which says only "more than that
    many" past it."""

    async def add(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        """Store a new job (version becomes 1). Raises AlreadyExists."""

    async def add_many(self, jobs: Sequence[tuple[TaskConfig, float | None]], *,
                       all_or_nothing: bool = False) -> builtins.list[TaskConfig | None]:
        """Store new jobs in bulk, each with its ``next_fire_at``: each one whose name is free
        is stored (version 1) and returned; ``None`` for a name that already exists (that job
        is left unchanged). Names are distinct within one call.

        With ``all_or_nothing``, one atomic step for the whole call: when any name already
        exists nothing is stored and AlreadyExists is raised, its ``names`` listing every
        existing one in the order given; else every job is stored."""

    async def update(self, config: TaskConfig, *, next_fire_at: float | None) -> TaskConfig:
        """Replace a job if ``config.version`` is the stored one; returns it with version + 1.
        Raises VersionConflict (stale version) or NotFound. ``next_fire_at`` replaces the
        schedule's next slot; the high-water mark is kept."""

    async def get(self, name: str) -> TaskConfig:
        """Raises NotFound."""

    async def list_jobs(self) -> builtins.list[TaskConfig]:
        """Every job, by name. Reads them all: for pages use :meth:`page`."""

    async def page(self, after: str | None = None, limit: int = 50) -> JobPage:
        """Jobs with their state, by name (code point order), the first ``limit`` whose name
        is greater than ``after``. One consistent read; cost grows with ``limit`` (plus the
        log of the number of jobs), never with the number of jobs."""

    async def remove(self, name: str) -> bool:
        """Delete the job and its schedule; its existing tasks stay. False if absent."""

    async def state(self, name: str) -> JobState:
        """Raises NotFound. ``last_outcome`` / ``last_outcome_at`` / ``last_task`` are
        written by the store in the same atomic step that finishes a task of the job (a
        skipped slot is not an outcome)."""

    async def set_paused(self, name: str, paused: bool, *, next_fire_at: float | None = None) -> None:
        """Pause or resume; resuming may move ``next_fire_at`` (None keeps it)."""

    async def due(self, now: float, limit: int) -> builtins.list[tuple[TaskConfig, JobState]]:
        """Enabled, unpaused jobs whose ``next_fire_at <= now``, earliest first, at most
        ``limit``. Cost grows with the number of due jobs, not with the number defined."""

    async def next_due_at(self) -> float | None:
        """The earliest ``next_fire_at`` of an enabled, unpaused job."""

    async def fire(self, fence: Fence, firings: Sequence[Firing]) -> FireReport:
        """Fenced. Atomically, per firing: check ``expected_next`` and that the job is still
        enabled and not paused (a pause or disable committed after :meth:`due` read the job
        makes the firing a conflict: nothing is created, the schedule stays), create the
        tasks that do not exist yet, make new pending ones ready, advance the schedule."""


@runtime_checkable
class TaskRepository(Protocol):
    """Tasks, their indexes and queues.

    A store may also define ``async held_slots(jobs=None) -> dict[str, tuple[int, float]]``:
    for each serial job with slots *held* (pending slots kept out of the ready queue while
    the job has its ``serial_limit`` of tasks live: its backlog), ``(how many, the earliest
    not_before among them)``; ``jobs`` (a sequence of names) asks only those, None every
    job that has some; a job with none is left out. For the operator's commands and pages
    (``distsched status``, ``jobs list``, the dashboard), never the leader's passes. Each
    job's pair is one consistent read, not fenced; the jobs are not read atomically
    together. Cost grows with the jobs asked (or that have held slots), not with the tasks
    stored: Redis: ``ZCARD`` and the first entry of ``{ns}:sh:<job>`` per job, in one
    pipeline (``SMEMBERS {ns}:shj`` first for every job); PostgreSQL: one grouped read of
    the ``tasks_held`` index (it grows with the held slots, at most ``max_backlog`` a job);
    memory: the job's held heap. A store without it shows no backlog.

    A store may also *park* ready tasks that no live worker may run (``unroutable_wait``: no
    live worker has the task's executor or offers its function), so that they wait out of
    the ready queue - at its head they would fill every ready read (``dispatch_batch``) and
    hold back every other task. It then defines the three methods below, all of them (the
    leader uses the capability only when it finds all three; a store without them keeps the
    old behaviour: such tasks wait in the ready queue, and ``unroutable_wait`` defaults to 0
    there). A parked task stays ``pending`` / ``retrying`` with its version and record
    unchanged: only its place changes. Every write of a parked task (``save``, ``cancel``,
    ``reap``) takes it out of the parked set in the same atomic step - into the ready queue
    again if it is still pending or retrying - and ``dispatch`` never dispatches one.

    ``async park(fence, parked: Sequence[tuple[Task, str, float]]) -> list[bool]``: fenced
    (refused whole with ``FencedError``, atomically with the write). For each ``(task, key,
    until)``: ``key`` is what it waits for (the executor name, or ``local:<function>``),
    ``until`` when its wait runs out (store time); the task moves from the ready queue to
    the parked set of ``key`` only while its stored version is ``task.version``, it is
    pending or retrying and in the ready queue (not held, not parked): one bool each, True
    when it was parked. One atomic step for the call; cost grows with the tasks given.

    ``async unpark(fence, keys: Sequence[str], until: float, limit: int) -> int``: fenced, as
    above. In one atomic step moves back to the ready queue (at its ``not_before``, as
    before it was parked) at most ``limit`` parked tasks: first those parked under
    ``keys`` (a worker that may run them is live now), oldest ``until`` first, then those of
    any key whose ``until`` is at or before ``until`` (their wait ran out: the leader fails
    them as it did before the parking). Returns how many it moved (``limit``: call again).
    Cost grows with the tasks moved and the keys that have parked tasks, never with the
    tasks stored.

    ``async parked(keys: Sequence[str] | None = None) -> dict[str, tuple[int, float]]``: per
    key with parked tasks (only ``keys`` when given), ``(how many, the earliest until)``;
    a key with none is left out. Not fenced; each key's pair is one consistent read. The
    leader reads it when its term starts and after an ``unpark`` (it then keeps its own
    view: it is the only one that parks). Cost grows with the keys that have parked tasks (a
    handful: the functions whose workers are away), not with the tasks - but on PostgreSQL:
    one grouped read of its ``tasks_parked`` index, which grows with the parked tasks."""

    async def submit(self, tasks: Sequence[Task]) -> builtins.list[bool]:
        """Store new pending tasks (one-off submissions; not fenced). Idempotent by id:
        False for a task whose id already exists (it is left unchanged)."""

    async def get(self, task_id: str) -> Task | None: ...

    async def get_many(self, task_ids: Sequence[str]) -> builtins.list[Task | None]: ...

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
        """Retained tasks newest first by ``created_at`` (ties: by id; both descending), at
        most ``limit`` (1..1000), after ``cursor`` (the ``next_cursor`` of the page before;
        opaque; ValidationError naming ``cursor`` when it is not one).

        Filters: ``job``; ``state`` (a TaskState value); ``worker`` (tasks dispatched to that
        worker at least once); ``since`` (created at or after, store time). Any combination
        is allowed; the store walks one index (job, else worker, else state, else all, by
        creation) and filters the rest, so a combination of several may return a short
        page with a ``next_cursor`` - keep paging. Cost grows with the page (and the
        entries a combined filter skips, capped per call), never with the store size.
        Not atomic across pages: a task created meanwhile shows up on no page already read.

        A store may also define ``async finished(states, since, limit) -> list[Task]``:
        retained tasks in one of the terminal ``states`` whose ``finished_at`` is at or after
        ``since`` (store time), newest finish first (ties: by id, descending), at most
        ``limit`` (1..1000) - "what failed in the last hour", whenever the tasks were
        created. Cost grows with ``limit`` or at most with the tasks of those states that
        finished since ``since``, never with the store size. Without it, the
        facade's :meth:`~distsched.facade.DistributeSchedule.finished_tasks` falls back to
        :meth:`query` by creation (a task created before ``since`` is then missed)."""

    async def detail(self, task_id: str) -> TaskDetail | None:
        """The task and every attempt it made, oldest first, in one consistent read; None
        when the task does not exist. The store records an attempt in the same atomic step
        that ends it (``save``/``reap``: a result applied, a requeue, a cancel); the latest
        attempt - the one in flight, or the one the task ended with, e.g. settled by
        ``ResultChannel.settle`` - is read from the task itself. At most
        :data:`ATTEMPTS_KEPT` earlier attempts are kept; they expire with the task."""

    async def counts(self) -> dict[str, int]:
        """Number of tasks per state."""

    async def throughput(self, minutes: int = 60) -> builtins.list[ThroughputBucket]:
        """Tasks that reached succeeded / failed / timed_out / cancelled per minute over the
        last ``minutes`` (1..120) minutes of store time, oldest first, one bucket per minute
        (empty ones included, the current minute last). Counted in the atomic step that
        finished the tasks (``save``, ``reap``, ``settle``); kept :data:`THROUGHPUT_KEEP` s."""

    async def ready(self, now: float, limit: int) -> builtins.list[Task]:
        """Pending tasks and retrying tasks whose ``not_before <= now``, oldest first."""

    async def next_ready_at(self) -> float | None:
        """The earliest ``not_before`` among pending and retrying tasks."""

    async def live(self, job: str) -> builtins.list[Task]:
        """Non-terminal tasks of a job (for the overlap policy)."""

    async def assigned(self, worker_id: str) -> builtins.list[Task]:
        """Dispatched and running tasks assigned to a worker."""

    async def overdue(self, now: float, limit: int) -> builtins.list[Task]:
        """Dispatched/running tasks whose deadline (start + timeout) is before ``now``."""

    async def save(self, fence: Fence, tasks: Sequence[Task], *, ack_results: int = 0) -> builtins.list[bool]:
        """Fenced optimistic write (see module doc); keeps the indexes and the workers' loads
        right. ``ack_results`` drops that many results (the oldest, as returned by
        ``ResultChannel.peek``) in the same atomic step."""

    async def cancel(self, task: Task) -> bool:
        """Not fenced (any caller may cancel): an optimistic write of ``task`` after
        ``Task.cancel`` - written only when the stored version is ``task.version`` and the
        stored task is not final, then the version is bumped. Keeps the indexes, the
        worker's load and the counts right, records the attempt it ends (a dispatched or
        running one: its late result is then stale and dropped), and wakes the leader. One
        atomic step. False when not written (re-read and try again, or it finished)."""

    async def dispatch(self, fence: Fence, tasks: Sequence[Task]) -> builtins.list[bool]:
        """Fenced optimistic write of tasks the leader moved to ``dispatched`` (read as
        pending or retrying, then only ``Task.dispatch`` applied: a store may write just the
        fields a dispatch changes), and, for each one written, a push onto the queue of
        ``task.worker_id`` - in one atomic step."""


@runtime_checkable
class WorkerRepository(Protocol):
    async def register(self, worker: Worker) -> None: ...

    async def heartbeat(self, worker_id: str, *, draining: bool = False, blocked: int = 0) -> bool:
        """Refresh the heartbeat (store time), the draining flag and ``blocked`` (execution
        slots held by attempts that are over but cannot be stopped; see ``Worker.blocked``),
        in one atomic step. False when the worker is unknown: it was declared dead and must
        stop and re-register under a new id."""

    async def deregister(self, worker_id: str) -> None:
        """The worker is leaving (drained or stopping): mark it dead at once so the leader
        reaps it without waiting for the heartbeat TTL, requeuing whatever it still holds."""

    async def list_workers(self) -> builtins.list[Worker]:
        """Every registered worker, with ``load`` = tasks assigned to it. A deregistered
        (or declared dead) worker stays, with ``last_heartbeat`` 0, until the leader reaps it."""

    async def queue_depths(self) -> dict[str, int]:
        """Per registered worker, the entries waiting in its queue (not yet pulled; stale
        entries a pull would drop may be counted). One read; cost grows with the workers."""

    async def reap(self, fence: Fence, worker_id: str, tasks: Sequence[Task]) -> builtins.list[bool]:
        """Fenced. Save ``tasks`` (its tasks, requeued by the leader) and remove a dead
        worker with its queue - atomically.

        The worker is removed only when every write succeeded and no task is assigned to it
        any more. Otherwise (a task changed after the leader read it: the worker, only slow,
        took it) the writes that could be made are made, the worker is declared dead - its
        ``heartbeat`` returns False from now on and its ``last_heartbeat`` reads 0 - and its
        record stays for the leader's next pass to requeue what it still holds."""


@runtime_checkable
class SchedulerRepository(Protocol):
    """Scheduler nodes register themselves like workers do, so a status lists the standbys.
    Not fenced (a standby writes here too); each call is one atomic step."""

    async def register(self, node: SchedulerNode) -> None:
        """Store (or replace) the node; its heartbeat becomes store time. Records whose
        heartbeat is older than an hour are dropped in the same step."""

    async def heartbeat(self, node_id: str, *, role: str) -> bool:
        """Refresh the heartbeat (store time) and the role (``leader`` / ``standby``).
        False when the node is unknown (it must register again)."""

    async def deregister(self, node_id: str) -> None:
        """The node stops cleanly: remove its record."""

    async def list_schedulers(self) -> builtins.list[SchedulerNode]:
        """Every registered node, by id."""


@runtime_checkable
class WorkerQueue(Protocol):
    """Per-worker queues. A worker only ever reads its own."""

    async def pull(self, worker_id: str, max_items: int, timeout: float) -> builtins.list[Task]:
        """Wait up to ``timeout`` s for tasks in ``worker_id``'s queue; take up to
        ``max_items`` and mark them running. Entries whose attempt
        is no longer current are dropped, never returned."""

    async def report(self, worker_id: str, results: Sequence[TaskResult], *, settle: bool = False) -> None:
        """Append results to the result channel (and wake the leader). Atomic per call (per
        chunk of a few thousand results); not fenced.

        ``settle=True`` (a worker that does not sign its results) lets the store, in the
        same atomic step, finish each success of this worker's current attempt whose
        dispatch was not signed exactly as :meth:`ResultChannel.settle` would, instead of
        appending it. The store then keeps a summary of each such task for the leader: the
        next ``settle`` counts them in ``Settled.settled`` and returns them in
        ``Settled.tasks`` (when asked), so the leader still emits every ``TaskFinished``
        event and counts every outcome. Everything else - failures, timeouts, stale or
        signed successes - is appended as without it. A report that only settled
        successes need not wake the leader unless it said that ready tasks wait for room
        (``StorageBackend.waiting_for_room``); its next pass takes the summaries. A store
        may ignore ``settle``.

        A store may also define ``async report_and_pull(worker_id, results, max_items, *,
        settle=False) -> list[Task]``: :meth:`report` of ``results`` (as with that
        ``settle``) and then :meth:`pull` of up to ``max_items`` without waiting (what is
        queued now, nothing when the queue is empty), in one atomic step (one round trip):
        the worker carries its finished results on its next pull. Not fenced, like both.
        A call that failed may have done both or neither (never the take without the
        report): the worker reports those results again (the leader drops a repeated
        result as stale) and, as after a failed ``pull``, looks for tasks the lost reply
        took. A store without it gets ``report`` then ``pull``, two calls."""


@runtime_checkable
class ResultChannel(Protocol):
    """The results workers report, oldest first, for the leader."""

    async def settle(self, fence: Fence, max_items: int, *, want_tasks: bool = False) -> Settled:
        """Fenced. The leader's fast path for successes, in one atomic step: walk the oldest
        results (at most ``max_items``) and, for as long as each one is a success, apply it
        as ``Task.finish`` would (the task of its current attempt, dispatched or running on
        the worker that reported it, becomes ``succeeded``) or drop it as stale (a
        superseded attempt, a task that is gone); stop at the first result that needs the
        retry policy (a failure, a timeout) or that the store cannot judge, and leave it
        and everything after it for :meth:`peek`. The walked results are removed.

        A store may settle nothing and return ``Settled(left=n)``: the leader then applies
        every result itself through ``peek`` and ``TaskRepository.save``."""

    async def peek(self, max_items: int) -> builtins.list[TaskResult]:
        """The oldest unacknowledged results (leader side; acknowledged through
        ``TaskRepository.save(..., ack_results=n)``)."""


@attrs.frozen(kw_only=True)
class Quarantined:
    """A stored record the engine could not decode, moved out of the way (see
    :class:`Quarantine`): ``kind`` is ``job``, ``task``, ``worker``, ``count`` (or a
    backend's own), ``key`` its name or id, ``reason`` the decoding error, ``at`` store time."""

    kind: str
    key: str
    reason: str
    at: float


@runtime_checkable
class Quarantine(Protocol):
    """Records moved aside because they could not be decoded (poison isolation).

    A backend whose records can be corrupted from outside (a shared server anyone with
    credentials can write to) never lets one bad record fail a read: the read leaves it out
    and moves it aside - out of every index, its bytes kept, the reason recorded - in one
    atomic step, logs an ERROR once, and goes on. Not fenced (any node may meet the record;
    moving garbage aside twice is harmless). Optional: a backend offers it as
    ``StorageBackend.quarantine``; the leader reports new entries as ``record.quarantined``
    events and ``distsched status`` shows them.

    It may also define ``async drop(kind, key) -> bool`` (``distsched quarantine drop``):
    forget one quarantined record - its kept bytes first, then its entry, so that a drop cut
    off between the two is listed still and done again by the next - and True when it was
    quarantined. Not fenced (an operator's act; the record already left every index).

    And ``async quarantined_since(seq, limit) -> (int, list[Quarantined])``: the quarantine's
    sequence number - how many times the store moved a record aside, ever: a record moved
    aside again under the same (kind, key) counts again (its entry replaced, listed first
    with its new ``at``), and a drop does not lower it - and the entries moved aside after
    number ``seq``, newest first, at most ``limit`` (0: the number alone), in one atomic
    read that costs O(log n) at most. The number grows in the same atomic step as the entry
    is written. The leader asks it once per housekeeping pass; a store without it gets
    :meth:`count` compared with the count it last saw, which misses a record moved aside
    again, or after a drop, between two looks."""

    async def count(self) -> int:
        """Number of quarantined records (O(1))."""

    async def list_quarantined(self, limit: int = 100) -> builtins.list[Quarantined]:
        """The quarantined records, newest first, at most ``limit``."""


@runtime_checkable
class StorageBackend(Protocol):
    """All the ports over one store. A backend may also define ``transient_errors``, a tuple
    of the exception types that mean the store is unreachable or not ready for now (down,
    restarting, cut off): a leader whose pass fails with one of them (or with an ``OSError``
    or ``asyncio.TimeoutError``) steps down with a warning instead of an error. Likewise
    ``refusing_errors``: the types that mean the store answers but refuses writes for now
    (full - Redis's ``maxmemory``, a full disk -, or a read-only replica): the leader steps
    down with a warning that says so (reason ``store refusing writes: ...``). A backend
    may also define ``quarantine`` (a :class:`Quarantine`) and ``async housekeeping(budget)
    -> int``: the leader calls it on every housekeeping pass (each heartbeat interval) to
    drop what the retention let expire (index entries of finished tasks whose records are
    gone), at most ``budget`` entries per call, not fenced (idempotent); it returns how many
    entries were due, and the leader calls again at once while that is ``budget`` or more.
    And ``data_losses``, an int: how many times this store object found, since it was
    opened, that the data it held is gone (a Redis restarted empty, a FLUSHALL); the leader
    reads it after each housekeeping call and emits ``store.data_lost`` when it grew (a
    scheduler with a jobs file syncs it again).
    And ``async warnings() -> list[str]``: what the store itself says is wrong with it now,
    one line each, that no node can cure - it refuses writes (Redis at ``maxmemory``, a
    read-only replica, a PostgreSQL standby), or it may drop records (an evicting
    ``maxmemory-policy``); ``[]`` when nothing is. A few cheap reads, not fenced; ``distsched
    status`` and the dashboard show them (a leader only sees its writes refused).
    And ``async next_times() -> (next_due_at, next_ready_at)``: the results of
    ``jobs.next_due_at()`` and ``tasks.next_ready_at()`` (each read as those do, not
    necessarily atomic together) in one round trip; the leader calls it at the end of every
    pass instead of the two. And ``async waiting_for_room(waiting: bool)``: the leader's hint,
    said when it changes (and again each second while true), that ready tasks wait for room
    (worker capacity, a serial limit); a store whose settling reports (``WorkerQueue.report``
    with ``settle=True``) wake the leader only when needed must wake it on every report while
    the hint holds, and may forget it a few seconds after it was last said. Not fenced."""

    url: str
    jobs: JobRepository
    tasks: TaskRepository
    workers: WorkerRepository
    schedulers: SchedulerRepository
    queues: WorkerQueue
    results: ResultChannel

    def clock(self) -> float:
        """Current time in UNIX seconds, as the store sees it (shared by all nodes)."""

    async def wait_for_activity(self, timeout: float) -> None:
        """Return after ``timeout`` s, or earlier when a result, a submission, a job change
        or a worker change arrived: the leader sleeps here instead of polling."""

    async def close(self) -> None: ...


@runtime_checkable
class Election(Protocol):
    """A lease with a fencing term. Terms strictly increase with every acquisition."""

    ttl: float
    renew_interval: float

    async def acquire(self, node_id: str) -> Fence | None:
        """Try once to take the lease; the new term on success, else None."""

    async def renew(self, fence: Fence) -> bool:
        """Extend the lease if ``fence`` still holds it (compare-and-set)."""

    async def release(self, fence: Fence) -> None:
        """Give the lease up if ``fence`` still holds it, so another node takes over at once."""

    async def current(self) -> Fence | None:
        """The current holder and term, if any."""

    async def lease(self) -> LeaseInfo | None:
        """The lease as last recorded (holder, term, acquired / renewed / expiry times, the
        holder's renew interval when it recorded one, and the store's ``now``), also after it
        lapsed or was released (then ``expired``); None when no lease was ever taken."""


@runtime_checkable
class Executor(Protocol):
    async def run(self, task: Task) -> Outcome:
        """Run one task and return its Outcome. Raising is allowed (a failed, retryable
        outcome). The worker enforces ``task.spec.timeout`` around this call."""


@runtime_checkable
class Balancer(Protocol):
    def select(self, task: Task, workers: Sequence[Worker], *, now: float, ttl: float) -> Worker | None:
        """Pick a worker for ``task``, or None when none can take it. Must never pick a
        worker that is full, draining, or whose heartbeat is older than ``ttl``."""


class ServedEngine(Protocol):
    """What a server started through ``distsched_serve`` may use of the engine it runs beside
    (a ``distsched.app.engine.Engine``; typed here so that the hook specifications need not
    import the application layer)."""

    #: The engine's configuration.
    config: EngineConfig
    #: The engine's plugin manager: ``register(obj, name)`` adds an observer for as long as
    #: the server runs, ``unregister(name)`` removes it.
    plugins: Any

    async def open(self) -> StorageBackend:
        """The engine's store (opened once, shared)."""

    async def open_election(self) -> Election:
        """The engine's election (opened once, shared)."""


@runtime_checkable
class FunctionLookup(Protocol):
    """The functions an executor may run, by registered name (what
    ``ExecutorContext.functions`` is: the plugins' ``distsched_register_functions`` plus the
    application's ``@app.task``; a :class:`distsched.registry.FunctionRegistry`)."""

    def __contains__(self, name: object) -> bool:
        """True when ``name`` is registered and usable (not provided twice)."""

    def names(self) -> builtins.list[str]:
        """The usable names, sorted."""

    def function(self, name: str) -> Callable[..., Any]:
        """The callable registered as ``name``. Raises ``distsched.model.errors.UnknownName``
        (nobody registered it) or ``NameConflict`` (two plugins did)."""


@attrs.frozen(kw_only=True)
class ExecutorContext:
    """What an executor factory receives: the worker's settings and the app's functions."""

    functions: FunctionLookup
    concurrency: int = 8
    settings: dict[str, Any] = attrs.field(factory=dict)


__all__ = [
    "ATTEMPTS_KEPT", "ATTEMPT_TEXT_CAP", "THROUGHPUT_KEEP",
    "Attempt", "Balancer", "Election", "Executor", "ExecutorContext", "Fence", "FireReport", "Firing",
    "FunctionLookup", "JobPage", "JobRepository", "LeaseInfo", "Quarantine", "Quarantined", "ResultChannel",
    "SchedulerNode", "SchedulerRepository", "ServedEngine", "Settled", "SettledTask", "StorageBackend", "TaskDetail", "TaskPage",
    "TaskRepository", "ThroughputBucket", "WorkerQueue",
    "WorkerRepository",
]
