"""distsched: a plugin-based, distributed task-scheduling engine.

Public API (cheap to import: plugins are discovered only when an engine or a CLI command
is built):

* :class:`DistributeSchedule` - the facade: register functions, add jobs, submit tasks, run.
* :func:`task` - mark a module-level function as a task for ``[worker] imports``.
* :func:`current_task` - in a running task, its id, attempt, job, slot and deadline
  (:class:`~distsched.context.TaskContext`); None outside one.
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

__all__ = ["DistributeSchedule", "TaskContext", "__version__", "current_task", "hookimpl", "task"]


def __getattr__(name: str) -> Any:
    if name == "DistributeSchedule":
        from .facade import DistributeSchedule

        return DistributeSchedule
    if name in ("current_task", "TaskContext"):
        from . import context

        return getattr(context, name)
    raise AttributeError(f"module 'distsched' has no attribute {name!r}")
