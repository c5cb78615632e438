"""The http and rpc executors run the shared executor contract, against the fixture server."""

import pytest

from distsched.model import Task, TaskSpec
from distsched.testing.contracts import ExecutorContract


def _task(executor: str, url: str, timeout: float = 2.0, **options) -> Task:
    return Task(id=f"{executor}-task", spec=TaskSpec(executor=executor, target=url, options=options, timeout=timeout),
                created_at=0.0)


class TestHttpExecutorContract(ExecutorContract):
    @pytest.fixture
    def executor_name(self):
        return "http"

    @pytest.fixture
    def succeeding_task(self, server):
        return _task("http", server.url("/ok"))

    @pytest.fixture
    def failing_task(self, server):
        return _task("http", server.url("/status/404"))

    @pytest.fixture
    def hanging_task(self, server):
        return _task("http", server.url("/slow"), timeout=0.3)


class TestRpcExecutorContract(ExecutorContract):
    @pytest.fixture
    def executor_name(self):
        return "rpc"

    @pytest.fixture
    def succeeding_task(self, server):
        return _task("rpc", server.url("/rpc"), method="add", params=[1, 2])

    @pytest.fixture
    def failing_task(self, server):
        return _task("rpc", server.url("/rpc"), method="fail")

    @pytest.fixture
    def hanging_task(self, server):
        return _task("rpc", server.url("/slow"), timeout=0.3, method="add", params=[1])
