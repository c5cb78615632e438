"""TaskResult: the immutable record of what one attempt of a task produced."""

from __future__ import annotations

from typing import Any

import attrs

from .errors import ValidationError

#: The outcomes an attempt can have. ``timed_out`` is set by the worker (or by the leader's
#: double check) when the attempt exceeded the job's timeout.
OUTCOMES = ("succeeded", "failed", "timed_out")


def _outcome(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in OUTCOMES:
        raise ValidationError("outcome", f"must be one of {', '.join(OUTCOMES)}, not {value!r}")


@attrs.frozen(kw_only=True)
class Outcome:
    """What an executor reports for one run, before the worker adds identity and timing.

    Executors return this (or raise: an exception becomes a failed, retryable outcome).
    ``retryable`` tells the retry policy whether another attempt can help (a 404 cannot);
    ``retry_after`` is a server's hint in seconds (HTTP ``Retry-After``); ``meta`` holds
    executor-specific JSON facts such as a status code or a body excerpt.
    """

    ok: bool
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool = True
    retry_after: float | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def success(cls, value: Any = None, **meta: Any) -> Outcome:
        return cls(ok=True, value=value, meta=meta)

    @classmethod
    def failure(
        cls,
        error: str,
        *,
        error_type: str = "Error",
        retryable: bool = True,
        retry_after: float | None = None,
        **meta: Any,
    ) -> Outcome:
        return cls(
            ok=False,
            error=error,
            error_type=error_type,
            retryable=retryable,
            retry_after=retry_after,
            meta=meta,
        )


@attrs.frozen(kw_only=True)
class TaskResult:
    """The result of one attempt: identity (task and attempt), outcome, timing, payload.

    Times are UNIX seconds (float, UTC). ``attempt_id`` is ``"<task_id>#<dispatch>"`` and lets
    the store refuse a late result from a superseded attempt.
    """

    task_id: str
    attempt_id: str
    outcome: str = attrs.field(validator=_outcome)
    started_at: float
    finished_at: float
    worker_id: str | None = None
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool = True
    retry_after: float | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @classmethod
    def from_outcome(
        cls,
        outcome: Outcome,
        *,
        task_id: str,
        attempt_id: str,
        started_at: float,
        finished_at: float,
        worker_id: str | None = None,
    ) -> TaskResult:
        return cls(
            task_id=task_id,
            attempt_id=attempt_id,
            outcome="succeeded" if outcome.ok else "failed",
            started_at=started_at,
            finished_at=finished_at,
            worker_id=worker_id,
            value=outcome.value,
            error=outcome.error,
            error_type=outcome.error_type,
            retryable=outcome.retryable,
            retry_after=outcome.retry_after,
            meta=dict(outcome.meta),
        )

    @classmethod
    def timed_out(
        cls,
        *,
        task_id: str,
        attempt_id: str,
        started_at: float,
        finished_at: float,
        timeout: float,
        worker_id: str | None = None,
    ) -> TaskResult:
        return cls(
            task_id=task_id,
            attempt_id=attempt_id,
            outcome="timed_out",
            started_at=started_at,
            finished_at=finished_at,
            worker_id=worker_id,
            error=f"timed out after {timeout:g}s (attempt took {max(0.0, finished_at - started_at):.1f}s)",
            error_type="Timeout",
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        return cls(**data)
