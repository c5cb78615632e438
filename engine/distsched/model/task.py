"""Task: one execution of a job's call (a schedule slot, or a one-off submission).

The task owns its lifecycle. States (``TaskState``):

``pending``     created, waiting for the leader to dispatch it
``dispatched``  pushed into one worker's queue (``worker_id`` says which)
``running``     the worker took it from its queue and started it
``retrying``    an attempt failed or timed out and the retry policy allows another one;
                the task waits until ``not_before`` and is then dispatched again
``succeeded``   terminal: the current attempt succeeded
``failed``      terminal: the last attempt failed and no retry is left (or it was not retryable)
``timed_out``   terminal: the last attempt exceeded the timeout and no retry is left
``cancelled``   terminal: cancelled by a user or replaced by a newer slot (overlap ``replace``)
``skipped``     terminal: a schedule slot that was deliberately not run (misfire policy, DST gap,
                overlap ``discard``, coalesced slots); ``reason`` says which. Recorded so that no
                slot is ever silently lost.

Each dispatch increments ``dispatches`` and so creates a new *attempt id*
(``"<task id>#<dispatches>"``): a start or result that carries an older attempt id is stale
and refused. A worker crash puts a dispatched or running task back to ``pending``
(``redeliveries`` + 1) without consuming the retry budget (``attempt`` stays).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .errors import InvalidTransition, StaleAttempt, ValidationError
from .newer import init_fields, refuse_newer
from .result import TaskResult
from .retry import RETRY_REQUESTED, RetryPolicy
from .spec import TaskSpec


class TaskState(str, enum.Enum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


S = TaskState
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.SKIPPED})
#: Non-terminal states in which a task occupies a worker.
ASSIGNED = frozenset({S.DISPATCHED, S.RUNNING})
#: Every legal move. Terminal states have none: a finished task never changes again.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    # pending/retrying -> failed: the leader cannot dispatch it at all (``Task.undispatchable``).
    S.PENDING: frozenset({S.DISPATCHED, S.CANCELLED, S.FAILED}),
    S.RETRYING: frozenset({S.DISPATCHED, S.CANCELLED, S.FAILED}),
    # dispatched -> finished directly: the result can overtake the "started" record.
    S.DISPATCHED: frozenset(
        {S.RUNNING, S.PENDING, S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.RETRYING, S.CANCELLED}
    ),
    S.RUNNING: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.RETRYING, S.CANCELLED}),
    **{state: frozenset() for state in TERMINAL},
}

#: After this many crash re-deliveries a task fails instead of looping forever (poison task).
DEFAULT_MAX_REDELIVERIES = 10


def slot_task_id(job: str, slot: float) -> str:
    """The deterministic id of the task for ``job``'s schedule slot at ``slot`` (UNIX seconds).

    Two leaders that fire the same slot compute the same id, which is what makes slot
    creation idempotent.
    """
    return f"{job}@{int(round(slot * 1000))}"


@attrs.define(kw_only=True)
class Task:
    """A task and its lifecycle. Mutating methods check the transition and record the time."""

    id: str
    spec: TaskSpec
    job: str | None = None
    slot: float | None = None
    state: TaskState = TaskState.PENDING
    created_at: float
    updated_at: float = attrs.field()
    not_before: float = attrs.field()
    attempt: int = 1
    dispatches: int = 0
    redeliveries: int = 0
    worker_id: str | None = None
    dispatched_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: TaskResult | None = None
    reason: str | None = None
    #: Overlap ``serial``: dispatch only while fewer than this many tasks of the job run.
    serial_limit: int | None = None
    #: Storage's optimistic version; the store bumps it on every write.
    version: int = 0
    #: The leader's signature of the current dispatch (``distsched.signing``); None unsigned.
    signature: str | None = None

    @updated_at.default
    def _updated_default(self) -> float:
        return self.created_at

    @not_before.default
    def _not_before_default(self) -> float:
        return self.created_at

    def __attrs_post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ValidationError("id", f"must be a non-empty string, not {self.id!r}")
        if not isinstance(self.state, TaskState):
            self.state = TaskState(self.state)

    # -- derived --------------------------------------------------------------------
    @property
    def attempt_id(self) -> str:
        """Identity of the current dispatch; results must carry it to be accepted."""
        return f"{self.id}#{self.dispatches}"

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def attempt_result(self) -> TaskResult | None:
        """The result of the current attempt (its ``attempt_id``), else None: once another
        dispatch (a requeue's, a retry's) or a failure before it followed, ``result`` still
        holds an earlier attempt's, which is not why the task is where it is."""
        result = self.result
        return result if result is not None and result.attempt_id == self.attempt_id else None

    @property
    def latest_result(self) -> TaskResult | None:
        """:attr:`attempt_result`, or, while the task waits to retry, the result of the attempt
        that failed (``result``: the retry is not dispatched yet)."""
        return self.result if self.state is TaskState.RETRYING else self.attempt_result

    @property
    def retry(self) -> RetryPolicy:
        return self.spec.retry

    def deadline(self, grace: float = 0.0) -> float | None:
        """When a running attempt must have finished: start + timeout + grace, the start
        being when its worker took it (or, until then, the dispatch) but never before
        ``not_before`` - a task dispatched ahead of its time is held by its worker until then."""
        if self.state not in ASSIGNED:
            return None
        since = self.started_at if self.started_at is not None else self.dispatched_at
        if since is None:
            return None
        return max(since, self.not_before) + self.spec.timeout + grace

    def last_attempt_times(self, now: float | None = None) -> tuple[float | None, float | None]:
        """(started, finished) of the latest attempt as its worker measured them, for a
        listing: those of the result when the current attempt has one, or when the task waits
        to retry (the result is then the last attempt's); otherwise when the attempt began as
        the record tells it (:meth:`attempt_began`, until ``finished_at`` or ``now``) and the
        record's ``finished_at`` (when the leader recorded the outcome). A slot held by its
        worker for its time, or cancelled before it, has not started: None."""
        result = self.latest_result
        if result is not None:
            return result.started_at, result.finished_at
        return self.attempt_began(self.finished_at if self.finished_at is not None else now), self.finished_at

    def attempt_began(self, until: float | None) -> float | None:
        """When the current (or, after a requeue, the lost) attempt began, as the record tells
        it - a result tells it better: when its worker took the task (``started_at``). But a
        worker that takes a task before ``not_before`` (a slot dispatched ahead by
        ``fire_ahead``) holds it until then: such an attempt has not begun (None) while
        ``until`` (its end, or now; None: not known) is before ``not_before``, and began at
        ``not_before`` once ``until`` reached it. A requeue moves ``not_before`` up to the
        requeue time: for a requeued task's lost attempt that reached its time, the take is
        all the record knows."""
        started = self.started_at
        if started is None or started >= self.not_before:
            return started
        if until is None or until < self.not_before:
            return None  # held for its time: not started
        return started if self.state is TaskState.PENDING else self.not_before

    def held_until(self, now: float) -> float | None:
        """For a display: ``not_before`` while the worker that took this task holds it for
        its time (state ``running``, taken before ``not_before``, which ``now`` has not
        reached: a slot dispatched ahead by ``fire_ahead``); None otherwise. The stored state
        stays ``running``: this only says it is not running yet."""
        if self.state is TaskState.RUNNING and self.attempt_began(now) is None and self.started_at is not None:
            return self.not_before
        return None

    def reasons(self) -> tuple[str | None, str | None]:
        """For a display: ``(why it is in its state, an earlier requeue's reason)``. A
        dispatched or running task keeps the ``reason`` of the requeue before its attempt (a
        dispatch does not rewrite the record for it: the busiest write path); it says why the
        task ran again, not why it runs - ``tasks show`` read ``running (worker w1 lost ...)``
        for a task running on w2. Any other state's reason is its own."""
        if self.state in ASSIGNED:
            return None, self.reason
        return self.reason, None

    # -- transitions ---------------------------------------------------------------
    def _move(self, target: TaskState, now: float) -> None:
        if target not in TRANSITIONS[self.state]:
            raise InvalidTransition(self.id, self.state.value, target.value)
        self.state = target
        self.updated_at = now

    def _check_attempt(self, attempt_id: str) -> None:
        if attempt_id != self.attempt_id:
            raise StaleAttempt(
                f"task {self.id!r}: attempt {attempt_id!r} is not the current one "
                f"({self.attempt_id!r})"
            )

    def dispatch(self, worker_id: str, now: float) -> str:
        """pending/retrying -> dispatched to ``worker_id``; returns the new attempt id.

        The task may be dispatched before ``not_before`` (a leader dispatches a little
        ahead); the worker does not start it before that time."""
        self._move(TaskState.DISPATCHED, now)
        self.dispatches += 1
        self.worker_id = worker_id
        self.dispatched_at = now
        self.started_at = None
        return self.attempt_id

    def start(self, attempt_id: str, now: float) -> None:
        """dispatched -> running, for the current attempt only."""
        self._check_attempt(attempt_id)
        self._move(TaskState.RUNNING, now)
        self.started_at = now

    def finish(self, result: TaskResult, now: float, *, rand: float = 0.5) -> TaskState:
        """Apply an attempt's result and the retry policy; returns the new state.

        A success ends the task. A failure or timeout becomes ``retrying`` (with
        ``not_before`` set by the policy and ``attempt`` + 1) when the result is retryable
        and the policy allows another attempt; otherwise ``failed`` / ``timed_out`` - with a
        ``reason`` when the policy's filters refused a retry that attempts were left for
        (``not retried: ValueError is not in retry_on (...)``), or the function asked for a
        retry (:class:`~distsched.model.retry.Retry`) with none left.
        The result says how the attempt ended: the ``reason`` of an earlier requeue (its
        worker was lost) is cleared - that attempt's record in the history keeps it.
        Raises ``StaleAttempt`` for a result of a superseded attempt.
        """
        self._check_attempt(result.attempt_id)
        if self.state not in ASSIGNED:
            raise InvalidTransition(self.id, self.state.value, result.outcome)
        if result.worker_id is not None and self.worker_id is not None and result.worker_id != self.worker_id:
            raise StaleAttempt(
                f"task {self.id!r}: result from worker {result.worker_id!r}, but attempt "
                f"{self.attempt_id!r} was dispatched to {self.worker_id!r}"
            )
        self.result = result
        self.reason = None
        if self.started_at is None:
            self.started_at = result.started_at
        if result.ok:
            target = TaskState.SUCCEEDED
        else:
            policy = self.spec.retry
            refused = policy.refusal(result.error_type) if result.retryable else None
            delay = (
                policy.delay_after(self.attempt, rand=rand, retry_after=result.retry_after)
                if result.retryable and refused is None
                else None
            )
            if delay is None:
                if refused is not None and self.attempt < policy.max_attempts:
                    self.reason = refused  # the filters, not the attempts spent, end it: say so
                elif result.error_type == RETRY_REQUESTED:
                    self.reason = f"retry requested, but no attempt left ({self.attempt} of {policy.max_attempts})"
                target = TaskState.TIMED_OUT if result.outcome == "timed_out" else TaskState.FAILED
            else:
                self._move(TaskState.RETRYING, now)
                self.attempt += 1
                self.not_before = now + delay
                self.worker_id = None
                return self.state
        self._move(target, now)
        self.finished_at = now
        return self.state

    def requeue(
        self,
        reason: str,
        now: float,
        *,
        max_redeliveries: int = DEFAULT_MAX_REDELIVERIES,
        consume_attempt: bool = False,
    ) -> TaskState:
        """The worker holding the task was lost: back to ``pending`` for re-dispatch.

        Does not consume the retry budget unless ``consume_attempt`` (then the lost attempt
        counts, and a task with no attempt left fails). After ``max_redeliveries`` crash
        re-deliveries the task fails instead (a poison task must not loop forever).
        """
        if self.state not in ASSIGNED:
            raise InvalidTransition(self.id, self.state.value, "pending (requeue)")
        self.reason = reason
        self.worker_id = None
        if consume_attempt and self.attempt >= self.spec.retry.max_attempts:
            self._move(TaskState.FAILED, now)
            self.finished_at = now
            self.reason = f"{reason}; no attempt left ({self.attempt} of {self.spec.retry.max_attempts})"
            return self.state
        if self.redeliveries >= max_redeliveries:
            self._move(TaskState.FAILED, now)
            self.finished_at = now
            self.reason = f"{reason}; gave up after {self.redeliveries} re-deliveries"
            return self.state
        if consume_attempt:
            self.attempt += 1
        self._move(TaskState.PENDING, now)
        self.redeliveries += 1
        # due at once, but never before its time: a task dispatched ahead (a slot, up to
        # ``fire_ahead``) whose worker left before its time still starts at its time
        self.not_before = max(self.not_before, now)
        return self.state

    def undispatchable(self, reason: str, now: float) -> None:
        """The leader cannot dispatch this task at all (its balancer is not registered on
        the leader): it fails, not retried, with ``reason`` saying why."""
        if self.state not in (TaskState.PENDING, TaskState.RETRYING):
            raise InvalidTransition(self.id, self.state.value, "failed (undispatchable)")
        self._move(TaskState.FAILED, now)
        self.reason = reason
        self.result = None  # (a retrying task's: that attempt's failure is not why it ends)
        self.started_at = None  # nor is that attempt's start the start of what failed here
        self.worker_id = None
        self.finished_at = now

    def cancel(self, reason: str, now: float) -> None:
        self._move(TaskState.CANCELLED, now)
        self.reason = reason
        self.finished_at = now

    # -- constructors and serialisation ---------------------------------------------
    @classmethod
    def skipped(cls, *, id: str, spec: TaskSpec, job: str, slot: float, reason: str, now: float) -> Task:
        """The record of a schedule slot that was deliberately not run."""
        return cls(
            id=id,
            spec=spec,
            job=job,
            slot=slot,
            state=TaskState.SKIPPED,
            created_at=now,
            finished_at=now,
            reason=reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.to_dict(),
            "job": self.job,
            "slot": self.slot,
            "state": self.state.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "not_before": self.not_before,
            "attempt": self.attempt,
            "dispatches": self.dispatches,
            "redeliveries": self.redeliveries,
            "worker_id": self.worker_id,
            "dispatched_at": self.dispatched_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result.to_dict() if self.result is not None else None,
            "reason": self.reason,
            "serial_limit": self.serial_limit,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """A task from its dict (``to_dict()``), validated. A field this version does not
        know, of the task or its spec (a newer node's), is refused naming it; one of its
        result is dropped with a WARNING (``distsched.model.newer``)."""
        refuse_newer("task", data, init_fields(cls))
        data = dict(data)
        data["spec"] = TaskSpec.from_dict(data["spec"])
        data["state"] = TaskState(data["state"])
        if data.get("result") is not None:
            data["result"] = TaskResult.from_dict(data["result"])
        return cls(**data)
