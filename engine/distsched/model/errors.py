"""Errors raised by the domain model and the ports.

Every error names what it is about (a job, a task, a field) so that a user can act on it
without reading a traceback.
"""

from __future__ import annotations


class DistschedError(Exception):
    """Base class of every error distsched raises on purpose."""


class ValidationError(DistschedError, ValueError):
    """A value given to the model is invalid. ``field`` names it; ``reason`` says why."""

    #: Longest reason kept: a hostile value echoed in full would make a megabyte error line.
    MAX_REASON = 500

    def __init__(self, field: str, reason: str, *, where: str | None = None) -> None:
        if len(reason) > self.MAX_REASON:
            reason = reason[: self.MAX_REASON - 40] + f"... ({len(reason)} characters in all)"
        self.field = field
        self.reason = reason
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{field}: {reason}")


class InvalidTransition(DistschedError):
    """A task was asked to move to a state its lifecycle does not allow."""

    def __init__(self, task_id: str, current: str, target: str) -> None:
        self.task_id = task_id
        self.current = current
        self.target = target
        super().__init__(f"task {task_id!r}: cannot go from {current!r} to {target!r}")


class WorkerFull(DistschedError):
    """A worker was asked to accept a task beyond its capacity."""


class StaleAttempt(DistschedError):
    """A result or start arrived for an attempt that is no longer the task's current one."""


class FencedError(DistschedError):
    """A leader write carried a fencing term that is no longer current; nothing was written."""


class VersionConflict(DistschedError):
    """An optimistic update was based on a stale version; nothing was written."""


class NotFound(DistschedError, KeyError):
    """A job, task or worker that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class TaskCancelled(DistschedError):
    """A task whose result was asked for was cancelled: it has no result of its own. Names
    the task (``task_id``) and why (``reason``); ``result`` is its last attempt's, when one
    failed before the cancel (else None)."""

    def __init__(self, task_id: str, reason: str | None, result: object = None) -> None:
        self.task_id = task_id
        self.reason = reason
        self.result = result
        why = f" ({reason})" if reason else ""
        super().__init__(f"task {task_id!r} was cancelled{why}: it has no result")


class TaskSkipped(DistschedError):
    """A task whose result was asked for is a schedule slot that was deliberately not run
    (its job's misfire or overlap policy, a DST gap): it never ran, so it has no result.
    Names the task (``task_id``), why (``reason``: ``misfire: skipped``, ``overlap:
    discarded``...), its ``job`` and ``slot`` (UNIX seconds)."""

    def __init__(self, task_id: str, reason: str | None, *, job: str | None = None,
                 slot: float | None = None) -> None:
        self.task_id = task_id
        self.reason = reason
        self.job = job
        self.slot = slot
        why = f" ({reason})" if reason else ""
        of = f" of job {job!r}" if job else ""
        super().__init__(f"task {task_id!r}{of} was skipped{why}: it never ran, so it has no result")


class StartInterrupted(DistschedError, RuntimeError):
    """``DistributeSchedule.start()`` was interrupted by a ``stop()`` called while it was
    starting (the store opening, the worker registering): nothing of the app runs."""


class AlreadyExists(DistschedError):
    """A job with that name already exists. ``names``: every existing name, when a bulk
    call refused several at once."""

    def __init__(self, message: str, *, names: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.names = tuple(names)


# -- plugins ------------------------------------------------------------------------------
# Defined here (not in distsched.plugin) so that the application services, which depend on
# the ports only, can tell a plugin failure from a task failure; ``distsched.plugin.errors``
# re-exports them for plugin authors.
class PluginError(DistschedError):
    """A plugin failed: it did not import, a hook raised, or it returned something unusable.
    The message names the plugin and the distribution it came from."""


class PluginLoadError(PluginError):
    """A plugin's entry point could not be loaded."""


class DuplicateRegistration(PluginError):
    """One name registered twice in the same family (by one plugin, or by the application)."""


class UnknownName(PluginError, LookupError):
    """A configuration names an executor, balancer, storage scheme... nobody registered."""


class NameConflict(DuplicateRegistration, LookupError):
    """Two plugins provide the same name and the operator allowed neither to replace the
    other: the name is unusable (fail closed). The message names both distributions and how
    to disable one (or to allow a declared replacement)."""
