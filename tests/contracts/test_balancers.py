"""The built-in balancers run the shared balancer contract."""

import pytest

from distsched.testing.contracts import BalancerContract


class TestLeastTasks(BalancerContract):
    deterministic = True

    @pytest.fixture
    def balancer_name(self):
        return "least-tasks"


class TestRoundRobin(BalancerContract):
    @pytest.fixture
    def balancer_name(self):
        return "round-robin"


class TestConsistentHash(BalancerContract):
    deterministic = True

    @pytest.fixture
    def balancer_name(self):
        return "consistent-hash"
