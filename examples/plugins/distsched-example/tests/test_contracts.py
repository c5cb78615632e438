"""The example plugin passes distsched's shipped contract suites."""

import pytest

from distsched.testing import make_task
from distsched.testing.contracts import BalancerContract, ExecutorContract


class TestEchoExecutor(ExecutorContract):
    @pytest.fixture
    def executor_name(self):
        return "echo"

    @pytest.fixture
    def succeeding_task(self):
        return make_task("ok", executor="echo", target="anything", args=(1, "a"), kwargs={"k": True})

    @pytest.fixture
    def failing_task(self):
        return make_task("fail", executor="echo", target="fail")

    @pytest.fixture
    def hanging_task(self):
        return make_task("hang", executor="echo", target="hang", timeout=0.2)


class TestMostFreeBalancer(BalancerContract):
    deterministic = True  # the pick depends only on the workers, not on the list order

    @pytest.fixture
    def balancer_name(self):
        return "most-free"
