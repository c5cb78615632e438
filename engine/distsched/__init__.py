"""distsched: a plugin-based, distributed task-scheduling engine.

Public API (cheap to import: plugins are discovered only when an engine or a CLI command
is built):

* :class:`DistributeSchedule` - the facade: register functions, add jobs, submit tasks, run.
* :func:`task` - mark a module-level function as a task for ``[worker] imports``.
* :func:`current_task` - in a running task, its id, attempt, job, slot and deadline
  (:class:`~distsched.context.TaskContext`); None outside one.
* :class:`Retry` - raised by a task function to ask for another attempt
  (``raise distsched.Retry("busy", after=30)``), counted against the job's ``max_attempts``.
* :data:`hookimpl` - the marker plugins use for their hook implementations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .__about__ import __version__
from .hookspecs import hookimpl
from .tasks import task

if TYPE_CHECKING:
    from .context import TaskContext, current_task
    from .facade import DistributeSchedule
    from .model.retry import Retry

__all__ = ["DistributeSchedule", "Retry", "TaskContext", "__version__", "current_task", "hookimpl", "task"]


def __getattr__(name: str) -> Any:
    if name == "DistributeSchedule":
        from .facade import DistributeSchedule

        return DistributeSchedule
    if name == "Retry":
        from .model.retry import Retry

        return Retry
    if name in ("current_task", "TaskContext"):
        from . import context

        return getattr(context, name)
    raise AttributeError(f"module 'distsched' has no attribute {name!r}")
