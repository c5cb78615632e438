"""ExecutorContract: success, failure, timeout and the shape of what comes back.

Provide ``executor_name`` and three fixtures returning tasks for this executor:
``succeeding_task`` (its Outcome is ok), ``failing_task`` (not ok, error text set) and
``hanging_task`` (takes longer than its timeout). Optionally ``executor_context``.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from ...model import Outcome, Task
from ...plugin.registry import FunctionRegistry
from ...ports import Executor, ExecutorContext
from ._harness import plugin_manager_for


class ExecutorContract:
    @pytest.fixture
    def executor_name(self) -> str:  # pragma: no cover - must be overridden
        raise NotImplementedError("an ExecutorContract subclass must provide the executor_name fixture")

    @pytest.fixture
    def executor_context(self) -> ExecutorContext:
        return ExecutorContext(functions=FunctionRegistry(), concurrency=2)

    @pytest.fixture
    def make_executor(self, request: pytest.FixtureRequest, executor_name: str, executor_context: ExecutorContext):
        reg = plugin_manager_for(request).executors.get(executor_name)

        def make() -> Executor:
            executor = reg.factory(executor_context)
            assert isinstance(executor, Executor)
            return executor

        return make

    @staticmethod
    def _run(make, task: Task, *, timeout: float | None = None) -> Outcome:
        async def main() -> Outcome:
            executor = make()
            try:
                return await asyncio.wait_for(executor.run(task), timeout or task.spec.timeout)
            finally:
                close = getattr(executor, "close", None)
                if close is not None:
                    await close()

        return asyncio.run(main())

    def test_success(self, make_executor, succeeding_task: Task) -> None:
        outcome = self._run(make_executor, succeeding_task)
        assert isinstance(outcome, Outcome) and outcome.ok and outcome.error is None
        json.dumps([outcome.value, outcome.meta])  # JSON only

    def test_failure_is_an_outcome_or_an_exception(self, make_executor, failing_task: Task) -> None:
        try:
            outcome = self._run(make_executor, failing_task)
        except Exception:
            return  # the worker turns an exception into a failed, retryable result
        assert isinstance(outcome, Outcome) and not outcome.ok and outcome.error
        json.dumps([outcome.value, outcome.meta])

    def test_timeout_is_honoured(self, make_executor, hanging_task: Task) -> None:
        start = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            self._run(make_executor, hanging_task)
        assert time.monotonic() - start < hanging_task.spec.timeout + 2.0
