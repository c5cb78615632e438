"""The built-in local executor runs the shared executor contract."""

import asyncio

import pytest

from distsched.plugin.registry import FunctionRegistry
from distsched.ports import ExecutorContext
from distsched.testing import make_task
from distsched.testing.contracts import ExecutorContract


def ok(x):
    return {"double": 2 * x}


def broken():
    raise RuntimeError("broken on purpose")


async def hang():
    await asyncio.sleep(60)


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def executor_name(self):
        return "local"

    @pytest.fixture
    def executor_context(self):
        functions = FunctionRegistry()
        for func in (ok, broken, hang):
            functions.add(func.__name__, func)
        return ExecutorContext(functions=functions, concurrency=2)

    @pytest.fixture
    def succeeding_task(self):
        return make_task("ok", target="ok", args=(21,))

    @pytest.fixture
    def failing_task(self):
        return make_task("broken", target="broken")

    @pytest.fixture
    def hanging_task(self):
        return make_task("hang", target="hang", timeout=0.2)
