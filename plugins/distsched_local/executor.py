"""The ``local`` executor: runs a callable the application registered, by name.

A task's ``target`` is a *registered name*, never an import path: a stored ``os:system`` or
``builtins.eval`` is refused because nobody registered it. Async functions are awaited;
sync ones run in a thread pool sized to the worker's concurrency (a timed-out sync function
cannot be killed: its thread finishes in the background and its result is discarded). Such
abandoned threads still hold a slot of the pool: :meth:`LocalExecutor.blocked` counts them,
so the worker pulls no task it could not start and reports its real free capacity.

Each call gets arguments of its own: the stores share one decoded spec between the tasks of
a job (and its retries), so a list or dict argument is copied (at every depth) before the
call - what a function does to its arguments reaches no other task, retry or store. Scalar
arguments, the common case, are passed as they are.

The call runs with :func:`distsched.current_task` set to the task's context (id, attempt,
job, slot, deadline): a coroutine in this asyncio task (and the tasks it starts), a sync
function in a copy of that context in its thread.

What the call logs through :mod:`logging` is captured for its attempt alone (the worker's
``log_capture`` setting: its last 16 KiB by default, 0 for none; ``log_capture_level``: its
records at INFO and above by default, whatever the root logger's level; :mod:`.capture`) and
handed to the worker (:func:`distsched.context.report_log`), which keeps it with the
attempt's result however it ended - returned, raised or timed out.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import time
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from distsched.context import TaskContext, report_log, running
from distsched.model import NameConflict, Outcome, Task
from distsched.ports import ExecutorContext

from . import capture

#: Argument types a call cannot change: passed as they are.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _own(value: Any) -> Any:
    """``value`` for one call: its lists and dicts (at any depth) new, its scalars shared."""
    kind = value.__class__
    if kind in _SCALARS:
        return value
    if kind is list:
        return [_own(v) for v in value]
    if kind is dict:
        return {k: _own(v) for k, v in value.items()}
    if kind is tuple:
        return tuple(_own(v) for v in value)
    return copy.deepcopy(value)  # another type a store kept as given (memory): a subclass, say


class _Raised:
    """An exception of a sync function that cannot cross into the worker's asyncio future as
    it is: ``StopIteration`` (asyncio refuses it: the future would never finish) and
    ``concurrent.futures.CancelledError`` (asyncio turns it into a cancellation of the task)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def failure(self) -> Outcome:
        """The attempt's failure, as the worker words a raised exception (``Kind: message``)."""
        kind = type(self.exc).__name__
        try:
            text = str(self.exc)
        except (Exception, KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
            text = f"<{kind} object: str() raised {type(exc).__name__}>"
        return Outcome.failure(f"{kind}: {text}", error_type=kind, retryable=True)


def _call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return func(*args, **kwargs)
    except (StopIteration, FutureCancelled) as exc:
        return _Raised(exc)


class LocalExecutor:
    def __init__(self, context: ExecutorContext) -> None:
        self.functions = context.functions
        self._pool = ThreadPoolExecutor(max_workers=max(1, context.concurrency), thread_name_prefix="distsched-local")
        #: Calls whose attempt was abandoned (timed out, cancelled) while their thread runs on.
        self._abandoned: set[Future[object]] = set()
        #: Bytes of each task's log kept with its result (0: none captured).
        settings = context.settings or {}
        self.log_capture = capture.capture_limit(settings.get("log_capture"))
        #: The lowest level of a task's records captured (a :mod:`logging` level).
        self.log_capture_level = capture.capture_level(settings.get("log_capture_level"))
        if self.log_capture:
            capture.install()

    def blocked(self) -> int:
        """Threads of the pool still running a call whose attempt is over."""
        return len(self._abandoned)

    async def run(self, task: Task) -> Outcome:
        target = task.spec.target
        if target not in self.functions:
            try:
                self.functions.function(target)
            except NameConflict as exc:  # two plugins registered it: refuse (fail closed)
                return Outcome.failure(str(exc), error_type="NameConflict", retryable=False)
            except LookupError:
                pass
            names = ", ".join(self.functions.names()) or "none"
            return Outcome.failure(
                f"function {target!r} is not registered on this worker (registered: {names})",
                error_type="UnknownFunction",
                retryable=False,
            )
        func = self.functions.function(target)
        args, kwargs = task.spec.args, task.spec.kwargs
        for arg in args:
            if arg.__class__ not in _SCALARS:
                args = _own(args)
                break
        if kwargs:  # ``**kwargs`` makes a new dict: only its values may need copying
            for arg in kwargs.values():
                if arg.__class__ not in _SCALARS:
                    kwargs = _own(kwargs)
                    break
        if not self.log_capture:
            with running(TaskContext.of(task, time.time())):
                return await self._call(func, args, kwargs)
        state = capture.start(self.log_capture, self.log_capture_level)
        try:
            with running(TaskContext.of(task, time.time())):
                return await self._call(func, args, kwargs)
        finally:  # returned, raised or cancelled (its timeout): what it logged goes with its result
            report_log(capture.stop(state))

    async def _call(self, func: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Outcome:
        """Call ``func`` in the current context (``current_task()`` set)."""
        if inspect.iscoroutinefunction(func):
            value = await func(*args, **kwargs)
        else:
            # the thread runs a copy of this context: current_task() answers there too
            future = self._pool.submit(contextvars.copy_context().run, _call, func, args, kwargs)
            try:
                value = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                if not future.cancel():  # already running: its thread stays busy until it returns
                    self._abandoned.add(future)
                    future.add_done_callback(self._abandoned.discard)
                raise
            if value.__class__ is _Raised:
                return value.failure()
            if inspect.isawaitable(value):
                value = await value
        return Outcome.success(value)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
