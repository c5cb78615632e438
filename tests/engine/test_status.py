"""distsched.status: what ``distsched status`` and the dashboard say of each worker and
scheduler node, on the store's clock - alive by the leader's own rule (Worker.is_alive)."""

import pytest

from distsched.cli.status import beat, render
from distsched.ports import SchedulerNode
from distsched.status import (
    LeaderStatus,
    SchedulerStatus,
    Status,
    leader_claimed_by,
    scheduler_status,
    worker_status,
)
from distsched.testing import make_worker

NOW = 1_800_000_000.0
TTL = 10.0


@pytest.mark.parametrize(("heartbeat", "state", "age", "shown"), [
    (NOW - 3, "alive", 3.0, "3.0s ago"),
    (NOW + 3, "alive", 0.0, "0.0s ago"),  # a little ahead: the clocks of two reads of the store
    # two heartbeat intervals (2 s) missed: the leader gives it no task (maybe kill -9), reaped at the TTL
    (NOW - 5, "silent", 5.0, "5.0s ago"),
    (NOW - TTL - 1, "stale", TTL + 1, "11s ago"),
    # a day ahead: a broken record the leader reaps, never alive - nor "0.0s ago", a beat just now
    (NOW + 86400, "stale", -86400.0, "24h00m ahead"),
    (float("inf"), "stale", None, "-"),
    (float("nan"), "stale", None, "-"),
    (0.0, "stopped", None, "-"),
])
def test_a_worker_is_alive_by_the_leaders_rule_and_its_heartbeat_age_says_where_it_is(heartbeat, state, age, shown):
    worker = make_worker("w1", now=NOW)
    worker.last_heartbeat = heartbeat
    status = worker_status(worker, NOW, TTL, queued=0, interval=2.0)
    assert (status.state, status.heartbeat_age) == (state, age)
    assert beat(status.heartbeat_age) == shown


def test_a_silent_worker_is_counted_apart_and_by_its_own_interval():
    quiet = make_worker("w1", now=NOW - 5)  # registered with the default interval (2 s here)
    slow = make_worker("w2", now=NOW - 5, heartbeat_interval=4.0)  # beats every 4 s: 5 s is one missed beat
    rows = tuple(worker_status(w, NOW, TTL, queued=0, interval=2.0) for w in (quiet, slow))
    assert [r.state for r in rows] == ["silent", "alive"]
    status = Status(now=NOW, leader=None, schedulers=(), workers=rows, counts={}, oldest_pending_age=None)
    assert "workers     2 (1 alive, 1 silent: given no task)" in render({**status.to_dict(), "storage": "memory://"})


@pytest.mark.parametrize(("heartbeat", "alive"), [
    (NOW - 3, True), (NOW + 3, True), (NOW - TTL - 1, False), (NOW + 86400, False), (float("inf"), False),
])
def test_a_scheduler_node_is_alive_within_the_ttl_of_the_store_clock(heartbeat, alive):
    node = SchedulerNode(id="s1", started_at=NOW - 60, last_heartbeat=heartbeat)
    status = scheduler_status(node, NOW, TTL)
    assert status.alive is alive
    assert status.heartbeat_age == (None if heartbeat == float("inf") else -86400.0 if heartbeat == NOW + 86400
                                    else max(0.0, NOW - heartbeat))


def _status(leader, *roles: tuple[str, bool]) -> dict:
    """What ``distsched status --json`` holds (``Status.to_dict()`` and the storage) for nodes
    s1, s2... with these (role, alive); ``leader``: a LeaderStatus or None."""
    nodes = tuple(SchedulerStatus(id=f"s{i}", host="h", pid=1, role=role, started_at=NOW, heartbeat_age=1.0,
                                  alive=alive) for i, (role, alive) in enumerate(roles, 1))
    status = Status(now=NOW, leader=leader, schedulers=nodes, workers=(), counts={}, oldest_pending_age=None,
                    leader_claimed_by=leader_claimed_by(leader, nodes))
    return {**status.to_dict(), "storage": "memory://"}


def test_no_lease_shown_while_a_live_node_reports_leading_says_the_record_cannot_be_read():
    # both stores give no lease for a lease record they cannot read, until the holder's next
    # renewal writes it: "no scheduler ever took the lease" was untrue then
    data = _status(None, ("standby", True), ("leader", True))
    assert data["leader_claimed_by"] == ("s2",)
    assert "leader      unknown: the lease record cannot be read while s2 reports leading" in render(data)
    for roles in ((), (("standby", True),), (("leader", False),)):
        data = _status(None, *roles)
        assert data["leader_claimed_by"] == ()
        assert "leader      none (no scheduler ever took the lease)" in render(data)
    lease = LeaderStatus(node_id="s2", term=3, acquired_at=NOW - 5, lease_age=5.0, renewed_age=1.0, expires_in=9.0,
                         expired=False)
    data = _status(lease, ("standby", True), ("leader", True))
    assert data["leader_claimed_by"] == () and "leader      s2  term 3" in render(data)
