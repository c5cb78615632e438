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


@attrs.frozen(kw_only=True)
class AttemptStarted(Event):
    """Emitted by the worker that started an attempt (on that worker's process)."""

    kind: ClassVar[str] = "attempt.started"
    task_id: str
    job: str | None
    attempt_id: str
    worker_id: str


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
class TaskFinished(Event):
    """A task reached a terminal state through a result: succeeded, failed or timed_out."""

    kind: ClassVar[str] = "task.finished"
    task_id: str
    job: str | None
    state: str
    attempt: int
    duration: float
    error: str | None = None


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
class LeaderElected(Event):
    kind: ClassVar[str] = "leader.elected"
    node_id: str
    term: int


@attrs.frozen(kw_only=True)
class LeadershipLost(Event):
    kind: ClassVar[str] = "leader.lost"
    node_id: str
    term: int
    reason: str


@attrs.frozen(kw_only=True)
class WorkerJoined(Event):
    kind: ClassVar[str] = "worker.joined"
    worker_id: str


@attrs.frozen(kw_only=True)
class WorkerLost(Event):
    kind: ClassVar[str] = "worker.lost"
    worker_id: str
    requeued: int


__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "Event",
    "LeaderElected",
    "LeadershipLost",
    "TaskCancelled",
    "TaskDispatched",
    "TaskFinished",
    "TaskRequeued",
    "TaskRetryScheduled",
    "TaskSkipped",
    "WorkerJoined",
    "WorkerLost",
]
