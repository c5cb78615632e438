"""The ``local`` executor: runs a callable the application registered, by name.

A task's ``target`` is a *registered name*, never an import path: a stored ``os:system`` or
``builtins.eval`` is refused because nobody registered it. Async functions are awaited;
sync ones run in a thread pool sized to the worker's concurrency (a timed-out sync function
cannot be killed: its thread finishes in the background and its result is discarded). Such
abandoned threads still hold a slot of the pool: :meth:`LocalExecutor.blocked` counts them,
so the worker pulls no task it could not start and reports its real free capacity.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from concurrent.futures import Future, ThreadPoolExecutor

from distsched.model import NameConflict, Outcome, Task
from distsched.ports import ExecutorContext


class LocalExecutor:
    def __init__(self, context: ExecutorContext) -> None:
        self.functions = context.functions
        self._pool = ThreadPoolExecutor(max_workers=max(1, context.concurrency), thread_name_prefix="distsched-local")
        #: Calls whose attempt was abandoned (timed out, cancelled) while their thread runs on.
        self._abandoned: set[Future[object]] = set()

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
        if inspect.iscoroutinefunction(func):
            value = await func(*args, **kwargs)
        else:
            future = self._pool.submit(functools.partial(func, *args, **kwargs))
            try:
                value = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                if not future.cancel():  # already running: its thread stays busy until it returns
                    self._abandoned.add(future)
                    future.add_done_callback(self._abandoned.discard)
                raise
            if inspect.isawaitable(value):
                value = await value
        return Outcome.success(value)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
