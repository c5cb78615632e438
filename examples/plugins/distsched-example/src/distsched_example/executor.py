"""The ``echo`` executor: its result is what it was asked to run.

It runs nothing (no process, no import, no network): the result of a task is
``{"target": ..., "args": [...], "kwargs": {...}}``. Two targets behave differently so
that the failure and timeout paths can be tried (the contract suite does):

* ``fail``: a failed, non-retryable :class:`~distsched.model.Outcome`;
* ``hang``: never finishes on its own; the worker's timeout cancels it.
"""

from __future__ import annotations

import asyncio

from distsched.model import Outcome, Task
from distsched.ports import ExecutorContext

#: Longer than any timeout a task may have (7 days): only the worker's timeout ends it.
HANG_SECONDS = 8 * 24 * 3600.0


class EchoExecutor:
    def __init__(self, context: ExecutorContext) -> None:
        # The [worker] table of the jobs file; nothing here reads it, a real executor might.
        self.settings = dict(context.settings)

    async def run(self, task: Task) -> Outcome:
        spec = task.spec
        if spec.target == "fail":
            return Outcome.failure(
                "echo: the target 'fail' fails on purpose",
                error_type="EchoFailure",
                retryable=False,
            )
        if spec.target == "hang":
            await asyncio.sleep(HANG_SECONDS)
        # Args and kwargs are JSON already (TaskSpec checks it), so the value is JSON too.
        value = {"target": spec.target, "args": list(spec.args), "kwargs": dict(spec.kwargs)}
        return Outcome.success(value, attempt_id=task.attempt_id)

    async def close(self) -> None:
        """Called once when the worker stops (optional; nothing to release here)."""
