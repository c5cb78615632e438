"""The ``@distsched.task`` marker for functions in modules listed in ``[worker] imports``.

The decorator only marks the function (no global registry): when a worker imports the
module, it collects the marked functions into its own registry. Only marked (or otherwise
registered) functions can ever be run by the ``local`` executor.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar, overload

from .model.spec import check_name

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__distsched_task__"


@overload
def task(func: F) -> F: ...
@overload
def task(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def task(func: Any = None, *, name: str | None = None) -> Any:
    """Mark ``func`` as runnable by the local executor under ``name`` (default: its __name__)."""

    def mark(f: F) -> F:
        task_name = name or f.__name__
        check_name("task name", task_name)
        setattr(f, MARK, task_name)
        return f

    return mark(func) if func is not None else mark


def marked_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The functions of ``module`` marked with :func:`task`, by task name."""
    out: dict[str, Callable[..., Any]] = {}
    for value in vars(module).values():
        task_name = getattr(value, MARK, None)
        if isinstance(task_name, str) and callable(value):
            out[task_name] = value
    return out
