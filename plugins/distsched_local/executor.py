"""The ``local`` executor: runs a callable the application registered, by name.

A task's ``target`` is a *registered name*, never an import path: a stored ``os:system`` or
``builtins.eval`` is refused because nobody registered it. Async functions are awaited;
sync ones run in a thread pool sized to the worker's concurrency (a timed-out sync function
cannot be killed: its thread finishes in the background and its result is discarded).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor

from distsched.model import Outcome, Task
from distsched.plugin.errors import NameConflict
from distsched.ports import ExecutorContext


class LocalExecutor:
    def __init__(self, context: ExecutorContext) -> None:
        self.functions = context.functions
        self._pool = ThreadPoolExecutor(max_workers=max(1, context.concurrency), thread_name_prefix="distsched-local")

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
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))
            if inspect.isawaitable(value):
                value = await value
        return Outcome.success(value)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
