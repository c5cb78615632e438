"""Events the engine emits to observers (the ``distsched_event`` hook).

Frozen values; ``kind`` is a stable string for generic forwarders (webhooks, metrics).
Adding an event type changes no hook signature.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs


@attrs.frozen(kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **attrs.asdict(self)}


@attrs.frozen(kw_only=True)
class TaskDispatched(Event):
    kind: ClassVar[str] = "task.dispatched"
    task_id: str
    job: str | None
    worker_id: str
    attempt_id: str
    #: When the task became ready for dispatch: its creation, retry time or requeue, or its
    #: slot minus the leader's ``fire_ahead``; ``at - ready_at`` is the dispatch lag.
    ready_at: float | None = None


@attrs.frozen(kw_only=True)
class AttemptStarted(Event):
    """Emitted by the worker that started an attempt (on that worker's process)."""

    kind: ClassVar[str] = "attempt.started"
    task_id: str
    job: str | None
    attempt_id: str
    worker_id: str
    #: The schedule slot of a slot task (``at - slot`` is the fire lag), else None.
    slot: float | None = None
    #: When the attempt was due: its slot, retry time or submission (``not_before``).
    due_at: float | None = None
    #: When the leader pushed it into this worker's queue (the leader's clock).
    dispatched_at: float | None = None


@attrs.frozen(kw_only=True)
class AttemptFinished(Event):
    """Emitted by the worker when an attempt ended, before its result is reported."""

    kind: ClassVar[str] = "attempt.finished"
    task_id: str
    job: str | None
    attempt_id: str
    worker_id: str
    outcome: str
    duration: float


@attrs.frozen(kw_only=True)
class ResultDropped(Event):
    """Emitted by a worker told it was declared dead (its heartbeat refused): an attempt it
    finished under its old id (``worker_id``; ``attempt.finished`` counted it) whose result
    the store did not apply - the leader had requeued its task (the attempt reads ``lost``),
    so the late result is dropped (superseded)."""

    kind: ClassVar[str] = "result.dropped"
    task_id: str
    job: str | None
    attempt_id: str
    worker_id: str
    outcome: str


@attrs.frozen(kw_only=True)
class TaskFinished(Event):
    """A task reached a terminal state through a result: succeeded, failed or timed_out."""

    kind: ClassVar[str] = "task.finished"
    task_id: str
    job: str | None
    state: str
    attempt: int
    duration: float
    error: str | None = None
    #: The last attempt's worker and its result's ``error_type`` (None when the task ended
    #: without a result, or succeeded).
    worker_id: str | None = None
    error_type: str | None = None
    #: Why it ended without a retry when attempts were left (the retry policy's filters:
    #: ``not retried: ValueError is not in retry_on (...)``; a ``distsched.Retry`` with none
    #: left), else None.
    reason: str | None = None


@attrs.frozen(kw_only=True)
class TaskRetryScheduled(Event):
    kind: ClassVar[str] = "task.retry_scheduled"
    task_id: str
    job: str | None
    failed_attempt: int
    outcome: str
    duration: float
    delay: float
    error: str | None = None


@attrs.frozen(kw_only=True)
class TaskSkipped(Event):
    kind: ClassVar[str] = "task.skipped"
    task_id: str
    job: str | None
    slot: float | None
    reason: str


@attrs.frozen(kw_only=True)
class TaskRequeued(Event):
    """A task went back to pending because its worker was lost (not a retry)."""

    kind: ClassVar[str] = "task.requeued"
    task_id: str
    job: str | None
    worker_id: str | None
    reason: str


@attrs.frozen(kw_only=True)
class TaskCancelled(Event):
    kind: ClassVar[str] = "task.cancelled"
    task_id: str
    job: str | None
    reason: str


@attrs.frozen(kw_only=True)
class RecordQuarantined(Event):
    """A stored record the engine could not use was put out of the way so that the rest
    goes on: ``kind`` ``job`` / ``task`` / ``worker`` / ``count``; ``action`` says what was
    done (``quarantined`` by the store, ``paused`` for a job whose schedule fails,
    ``cancelled`` for a task its balancer fails on)."""

    kind: ClassVar[str] = "record.quarantined"
    record: str
    key: str
    reason: str
    action: str


@attrs.frozen(kw_only=True)
class LeaderElected(Event):
    kind: ClassVar[str] = "leader.elected"
    node_id: str
    term: int
    #: When this node last found the lease held by another node (its last refused
    #: acquisition), None if it never did: ``at - lease_seen_held_at`` is the hand-over gap
    #: this node saw. It cannot include the time a crashed leader's lease took to expire.
    lease_seen_held_at: float | None = None


@attrs.frozen(kw_only=True)
class StoreDataLost(Event):
    """Emitted by the leader when its store found the data it held gone (the store's
    ``data_losses`` grew: a Redis restarted without persistence or from an older snapshot,
    a FLUSHALL, a failover to an empty replica): the jobs, tasks and worker records stored
    before are lost. Workers register again by themselves; a scheduler or ``run`` started
    with a jobs file syncs that file again on it."""

    kind: ClassVar[str] = "store.data_lost"
    node_id: str


@attrs.frozen(kw_only=True)
class LeadershipLost(Event):
    kind: ClassVar[str] = "leader.lost"
    node_id: str
    term: int
    reason: str


@attrs.frozen(kw_only=True)
class WorkerJoined(Event):
    """The leader saw a new live worker. Once per worker: a new leader does not announce
    again the workers that started before another node last led (or, when it saw none
    lead, more than one ``lease_ttl`` before its term)."""

    kind: ClassVar[str] = "worker.joined"
    worker_id: str


@attrs.frozen(kw_only=True)
class WorkerLost(Event):
    """The leader removed a worker: it left (``reason`` "worker left") or was lost (no
    heartbeat within the TTL, or declared dead); ``requeued`` tasks it held went back to
    pending. Emitted once per worker, when its record is removed."""

    kind: ClassVar[str] = "worker.lost"
    worker_id: str
    requeued: int
    reason: str = ""


@attrs.frozen(kw_only=True)
class WorkerLoad:
    """One worker's load as the leader read it from the store (part of ``WorkersSeen``):
    ``load`` counts the tasks it holds, queued and running. ``alive``: heard from within the
    heartbeat TTL (not reaped); ``fresh``: within two of its heartbeat intervals too
    (``Worker.is_fresh``) - an alive worker that is not fresh is ``silent`` in ``status``
    and given no task."""

    worker_id: str
    load: int
    capacity: int
    alive: bool
    draining: bool
    fresh: bool = True


@attrs.frozen(kw_only=True)
class WorkersSeen(Event):
    """The leader's view of every registered worker, at each housekeeping pass (about
    once a second while it leads): one event for all workers, not one per worker."""

    kind: ClassVar[str] = "workers.seen"
    workers: tuple[WorkerLoad, ...]


@attrs.frozen(kw_only=True)
class DuplicatesSuppressed(Event):
    """The store refused duplicates: ``what`` is ``slot`` (a slot task that already
    existed, e.g. fired again by a new leader) or ``result`` (a result of a superseded
    attempt, or reported twice). One event per leader pass, with the count."""

    kind: ClassVar[str] = "duplicates.suppressed"
    what: str
    count: int


__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "DuplicatesSuppressed",
    "Event",
    "LeaderElected",
    "LeadershipLost",
    "RecordQuarantined",
    "ResultDropped",
    "StoreDataLost",
    "TaskCancelled",
    "TaskDispatched",
    "TaskFinished",
    "TaskRequeued",
    "TaskRetryScheduled",
    "TaskSkipped",
    "WorkerJoined",
    "WorkerLoad",
    "WorkerLost",
    "WorkersSeen",
]
