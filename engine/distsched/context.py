"""The running task's context: :func:`current_task` (Celery's ``self.request``, arq's ``ctx``).

>>> from distsched import current_task, task
>>> @task
... def build_report():
...     me = current_task()          # None outside a task
...     return f"{me.id} attempt {me.attempt} of job {me.job}"

The ``local`` executor sets it around each call through a :class:`~contextvars.ContextVar`:
an ``async def`` function and the asyncio tasks it starts see it, and so does a sync
function in its thread (the call runs in a copy of the context). Another executor (``http``,
``rpc``...) runs nothing in this process and sets nothing.

The worker also gives each attempt an :class:`AttemptLog` (:func:`collecting_log`): an
executor that captured what the task logged hands it over with :func:`report_log`, and the
worker stores it with the attempt's result (``TaskResult.log``) however the attempt ended -
returned, raised or timed out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import attrs

from .model.task import Task


@attrs.frozen(kw_only=True)
class TaskContext:
    """What a running task knows of itself (read-only)."""

    #: The task id (``<job>@<slot ms>`` for a job's slot; a one-off's uuid or the id given).
    id: str
    #: The attempt number, 1 first; each retry after a failure counts up (a crash
    #: re-delivery keeps its number).
    attempt: int
    #: This dispatch's id (``<id>#<n>``): the one its result carries.
    attempt_id: str
    #: The job's name; None for a one-off task.
    job: str | None
    #: The job's schedule slot (UNIX seconds); None for a one-off or a manual trigger.
    slot: float | None
    #: When the attempt is stopped (UNIX seconds, this machine's clock): its start plus its
    #: ``timeout``.
    deadline: float
    #: The worker running it.
    worker_id: str | None
    #: How many attempts it may have in all (its retry policy's ``max_attempts``).
    max_attempts: int

    @classmethod
    def of(cls, task: Task, started: float) -> TaskContext:
        """The context of ``task``'s current attempt, started at ``started``."""
        return cls(id=task.id, attempt=task.attempt, attempt_id=task.attempt_id, job=task.job, slot=task.slot,
                   deadline=started + task.spec.timeout, worker_id=task.worker_id,
                   max_attempts=task.spec.retry.max_attempts)


_current: ContextVar[TaskContext | None] = ContextVar("distsched_current_task", default=None)


def current_task() -> TaskContext | None:
    """The task this code runs in (:class:`TaskContext`), or None outside one - in code the
    ``local`` executor did not call, or in a thread the task started itself without copying
    its context (``contextvars.copy_context().run``; ``asyncio.to_thread`` copies it)."""
    return _current.get()


@contextlib.contextmanager
def running(context: TaskContext) -> Iterator[None]:
    """Make ``context`` the current task for the ``with`` block (for an executor)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


class AttemptLog:
    """Where an executor leaves the log it captured of the attempt running (``text``; None:
    nothing captured)."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None


_attempt_log: ContextVar[AttemptLog | None] = ContextVar("distsched_attempt_log", default=None)


@contextlib.contextmanager
def collecting_log(log: AttemptLog) -> Iterator[AttemptLog]:
    """For the worker: what :func:`report_log` is given in the ``with`` block goes to ``log``."""
    token = _attempt_log.set(log)
    try:
        yield log
    finally:
        _attempt_log.reset(token)


def report_log(text: str | None) -> None:
    """For an executor: ``text`` is the log it captured of the attempt running now (secrets
    already masked); the worker keeps it with the attempt's result. Outside an attempt the
    worker collects, nothing happens."""
    log = _attempt_log.get()
    if log is not None:
        log.text = text


__all__ = ["AttemptLog", "TaskContext", "collecting_log", "current_task", "report_log", "running"]
