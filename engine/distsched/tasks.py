"""The ``@distsched.task`` marker for functions in modules listed in ``[worker] imports``.

The decorator only marks the function (no global registry): when a worker imports the
module, it collects the marked functions into its own registry. Only marked (or otherwise
registered) functions can ever be run by the ``local`` executor.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar, overload

from .model.errors import DuplicateRegistration
from .model.spec import check_name

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__distsched_task__"


@overload
def task(func: F) -> F: ...
@overload
def task(func: str, *, name: None = None) -> Callable[[F], F]: ...
@overload
def task(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def task(func: Any = None, *, name: str | None = None) -> Any:
    """Mark ``func`` as runnable by the local executor under ``name`` (default: its __name__):
    ``@task``, ``@task("name")`` or ``@task(name="name")``."""
    func, name = decorator_arguments("distsched.task", func, name)

    def mark(f: F) -> F:
        task_name = name or f.__name__
        check_name("task name", task_name)
        setattr(f, MARK, task_name)
        return f

    return mark(func) if func is not None else mark


def decorator_arguments(decorator: str, func: Any, name: Any) -> tuple[Callable[..., Any] | None, str | None]:
    """``(func, name)`` of a task decorator called as ``@decorator``, ``@decorator("name")`` or
    ``@decorator(name="name")``; a TypeError saying how to call it otherwise."""
    if isinstance(func, str):
        if name is not None:
            raise TypeError(f"{decorator}() takes the task name once: @{decorator}({func!r}) or "
                            f"@{decorator}(name={func!r}), not both")
        return None, func
    if func is not None and not callable(func):
        raise TypeError(f"{decorator}() takes a function or a task name, not {type(func).__name__} {func!r:.80}: "
                        f"use @{decorator}, @{decorator}(\"name\") or @{decorator}(name=\"name\")")
    return func, name


def qualified_name(func: Any) -> str:
    """``module:qualname`` of a function, to name it in a message."""
    module = getattr(func, "__module__", None) or "?"
    return f"{module}:{getattr(func, '__qualname__', None) or repr(func)}"


def duplicate_function(task_name: str, first: Any, second: Any, where: str = "") -> DuplicateRegistration:
    """The error for two different functions registered under one task name."""
    prefix = f"{where}: " if where else ""
    return DuplicateRegistration(
        f"{prefix}task name {task_name!r} is given to two different functions, {qualified_name(first)} and "
        f"{qualified_name(second)}: one name runs one function; register one of them under another name "
        f"(name=...)")


def marked_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The functions of ``module`` marked with :func:`task`, by task name. Two different
    functions marked with one name raise DuplicateRegistration naming both (the same function
    under two attribute names is one function)."""
    out: dict[str, Callable[..., Any]] = {}
    for value in vars(module).values():
        task_name = getattr(value, MARK, None)
        if isinstance(task_name, str) and callable(value):
            first = out.setdefault(task_name, value)
            if first is not value:
                raise duplicate_function(task_name, first, value, f"module {module.__name__!r}")
    return out
