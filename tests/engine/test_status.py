"""distsched.status: what ``distsched status`` and the dashboard say of each worker and
scheduler node, on the store's clock - alive by the leader's own rule (Worker.is_alive)."""

import pytest

from distsched.ports import SchedulerNode
from distsched.status import scheduler_status, worker_status
from distsched.testing import make_worker

NOW = 1_800_000_000.0
TTL = 10.0


@pytest.mark.parametrize(("heartbeat", "state"), [
    (NOW - 3, "alive"),
    (NOW + 3, "alive"),  # a little ahead: the clocks of two reads of the store
    (NOW - TTL - 1, "stale"),
    (NOW + 86400, "stale"),  # a day ahead: a broken record the leader reaps, never alive
    (float("inf"), "stale"),
    (float("nan"), "stale"),
    (0.0, "stopped"),
])
def test_a_worker_is_alive_by_the_leaders_rule(heartbeat, state):
    worker = make_worker("w1", now=NOW)
    worker.last_heartbeat = heartbeat
    status = worker_status(worker, NOW, TTL, queued=0)
    assert status.state == state
    assert status.heartbeat_age is None if state == "stopped" else status.heartbeat_age >= 0


@pytest.mark.parametrize(("heartbeat", "alive"), [
    (NOW - 3, True), (NOW + 3, True), (NOW - TTL - 1, False), (NOW + 86400, False), (float("inf"), False),
])
def test_a_scheduler_node_is_alive_within_the_ttl_of_the_store_clock(heartbeat, alive):
    node = SchedulerNode(id="s1", started_at=NOW - 60, last_heartbeat=heartbeat)
    assert scheduler_status(node, NOW, TTL).alive is alive
