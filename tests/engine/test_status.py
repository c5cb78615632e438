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


def _lease(renewed_ago: float, *, ttl: float = 10.0, held: float = 60.0, renew_interval: float | None = None):
    from distsched.ports import LeaseInfo

    return LeaseInfo(holder="s1", term=7, acquired_at=NOW - held, renewed_at=NOW - renewed_ago,
                     expires_at=NOW - renewed_ago + ttl, now=NOW, renew_interval=renew_interval)


@pytest.mark.parametrize(("renewed_ago", "ttl", "overdue"), [
    (1.0, 10.0, False),   # a live holder renews every 3 s (the default, of a 10 s lease)
    (5.9, 10.0, False),   # one renewal late: not yet two intervals
    (8.3, 10.0, True),    # the probe's dead leader: renewed 8.3 s ago, expires in 1.7 s
    (10.5, 10.0, False),  # expired: shown EXPIRED, not overdue
    (1.0, 2.0, False),    # a 2 s lease (renewed every 0.6 s by the default share)
    (1.3, 2.0, True),
])
def test_a_lease_renewed_longer_ago_than_two_renew_intervals_is_flagged(renewed_ago, ttl, overdue):
    """A dead leader read as healthy for the whole lease TTL (`renewed 8.3s ago, expires in
    1.7s`, no flag) while workers are `silent` after two heartbeat intervals. Now its
    renewal is `overdue` past two renew intervals - the default share of the lease's TTL, as
    the record gives it (status does not know the holder's renew interval)."""
    from distsched.status import leader_status

    leader = leader_status(_lease(renewed_ago, ttl=ttl))
    assert leader is not None and leader.renewal_overdue is overdue
    assert leader.renewal_overdue_after == pytest.approx(0.6 * ttl)
    text = render({**Status(now=NOW, leader=leader, schedulers=(), workers=(), counts={},
                            oldest_pending_age=None).to_dict(), "storage": "redis://x"})
    line = next(line for line in text.splitlines() if line.startswith("leader"))
    if overdue:
        assert (f"(renewal overdue: renewed {beat(renewed_ago)} - the holder may be dead; the lease expires in "
                f"{ttl - renewed_ago:.1f}s)") in line, line
    else:
        assert "overdue" not in line, line


@pytest.mark.parametrize(("recorded", "overdue_after", "shown"), [
    (8.0, 16.0, 8.0),     # renewing every 8 s of a 10 s lease: never overdue before it expires
    (1.0, 2.0, 1.0),
    (None, 6.0, None),    # a record written by an older node: the default share of its TTL
    (float("nan"), 6.0, None), (float("inf"), 6.0, None), (0.0, 6.0, None), (-3.0, 6.0, None),
])
def test_the_holders_recorded_renew_interval_measures_its_renewal(recorded, overdue_after, shown):
    """The renew interval was estimated as 30 % of the lease TTL: a deployment renewing every
    8 s of a 10 s lease read `renewal overdue` on its live leader 6 s after each renewal. The
    lease record carries the holder's own interval now; a record without one (an older node)
    or with one that is no interval is measured by the estimate, as before."""
    from distsched.status import leader_status

    leader = leader_status(_lease(7.0, renew_interval=recorded))
    assert leader.renewal_overdue_after == overdue_after and leader.renew_interval == shown
    assert leader.renewal_overdue is (7.0 > overdue_after)
    if recorded == 8.0:  # what the live leader read: renewed 7 s ago, a second before its next renewal
        line = next(line for line in render({**Status(now=NOW, leader=leader, schedulers=(), workers=(), counts={},
                                                      oldest_pending_age=None).to_dict(), "storage": "redis://x"}
                                            ).splitlines() if line.startswith("leader"))
        assert "overdue" not in line and "(renewed 7.0s ago, expires in 3.0s)" in line, line


def test_a_known_renew_interval_is_used_and_a_record_without_a_ttl_flags_nothing():
    from distsched.status import leader_status

    assert leader_status(_lease(2.5), renew_interval=1.0).renewal_overdue is True  # 2.5 s > 2 x 1 s
    assert leader_status(_lease(2.5), renew_interval=3.0).renewal_overdue is False
    broken = leader_status(_lease(5.0, ttl=-1.0))  # expires before its renewal: no TTL to measure by
    assert broken.renewal_overdue is False and broken.renewal_overdue_after is None


def test_a_scheduler_nodes_state_is_its_role_while_alive_and_silent_after() -> None:
    """After a failover `status --json` (and the dashboard's API) gave two nodes `role:
    leader` - the killed one and the one that took over - with only `alive` telling them
    apart; `state` says it: `silent` for the node not heard from."""
    def node(node_id: str, role: str, beat_age: float) -> SchedulerStatus:
        return scheduler_status(SchedulerNode(id=node_id, started_at=NOW - 60, last_heartbeat=NOW - beat_age, role=role),
                                NOW, TTL)

    states = [(s.role, s.alive, s.state) for s in (node("s1", "leader", TTL + 1), node("s2", "leader", 0.5),
                                                   node("s3", "standby", 0.5), node("s4", "standby", TTL + 1))]
    assert states == [("leader", False, "silent"), ("leader", True, "leader"), ("standby", True, "standby"),
                      ("standby", False, "silent")]


class _JobsWithoutCount:
    """A store's jobs as a third-party store may offer them: no ``count`` (it is optional)."""

    def __init__(self, jobs):
        self._jobs = jobs

    def __getattr__(self, name):
        if name == "count":
            raise AttributeError(name)
        return getattr(self._jobs, name)


async def test_the_status_counts_every_job_where_the_store_counts_them_and_one_page_elsewhere():
    """The status read one page of jobs (JOBS_COUNTED) and said only "more than 200" past
    it, on every store. Where the store counts them (``jobs.count``, optional: each built-in
    store) it shows them all; a store without it is counted by the page, as before."""
    import uuid

    from distsched import DistributeSchedule
    from distsched.model.build import build_job
    from distsched.status import JOBS_COUNTED, JobCount

    app = DistributeSchedule(f"memory://count-{uuid.uuid4().hex}")
    try:
        await app.put_jobs([build_job(f"job-{i:04d}", every=60, target="double", enabled=i >= 3)
                            for i in range(JOBS_COUNTED + 50)], replace=True)
        assert (await app.status()).jobs == JobCount(total=JOBS_COUNTED + 50, enabled=JOBS_COUNTED + 47)
        storage = await app.storage()
        storage.jobs = _JobsWithoutCount(storage.jobs)
        assert (await app.status()).jobs == JobCount(total=JOBS_COUNTED, enabled=None, more=True)
    finally:
        await app.stop()


def _worker_lines(*, shown_functions: tuple[str, ...] | None = None, **fields) -> tuple[dict, list[str]]:
    """The worker's row and the line under it; ``shown_functions``: the row says these (names
    the model refuses, which a store puts aside: the line must still not break)."""
    row = worker_status(make_worker("w1", now=NOW, **fields), NOW, TTL, queued=0, interval=2.0)
    status = Status(now=NOW, leader=None, schedulers=(), workers=(row,), counts={}, oldest_pending_age=None)
    data = status.to_dict()
    if shown_functions is not None:
        data["workers"][0]["functions"] = list(shown_functions)
    lines = render({**data, "storage": "memory://"}).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  w1 "))
    return data["workers"][0], [line.strip() for line in lines[at + 1:at + 2]]


@pytest.mark.parametrize(("executors", "functions", "shown"), [
    (("local", "http", "cmd"), ("tick", "report"), "executors local, http, cmd; functions tick, report"),
    # a worker dedicated to a plugin's executor: no local executor, no function
    (("cmd",), (), "executors cmd"),
    (("cmd", "local"), (), "executors cmd, local; functions none (gets no local task)"),
    # the record of an earlier version says neither: it is taken to have and offer everything
    ((), (), "executors not said (an older worker: gets every task)"),
])
def test_status_shows_what_a_worker_advertises(executors, functions, shown):
    row, detail = _worker_lines(executors=executors, functions=functions)
    assert (list(row["executors"]), list(row["functions"])) == (list(executors), list(functions))
    assert detail == [shown]


def test_names_no_worker_may_advertise_cannot_break_the_line():
    """The model refuses them (a store puts such a record aside); the line quotes them if a
    row says them all the same."""
    _, detail = _worker_lines(executors=("local",), functions=("f",), shown_functions=("a\nb", "c\x1b[2J"))
    assert detail == [r"executors local; functions 'a\nb', 'c\x1b[2J'"]


def test_a_long_function_list_is_capped_and_counted():
    names = tuple(f"function_with_a_long_name_{i:03d}" for i in range(200))
    row, [detail] = _worker_lines(executors=("local",), functions=names)
    assert list(row["functions"]) == list(names), "the JSON has them all"
    assert detail.startswith("executors local; functions function_with_a_long_name_000")
    shown = detail.split("functions ", 1)[1].split(" (+")[0].split(", ")
    assert shown == list(names[:len(shown)]) and 1 <= len(shown) < 10
    assert detail.endswith(f" (+{200 - len(shown)} more)") and len(detail) <= 100
    # one name longer than the line is cut, never the count
    row, [detail] = _worker_lines(executors=("local",), functions=("x" * 128, "y"), shown_functions=("x" * 500, "y"))
    assert detail.endswith("... (+1 more)") and len(detail) <= 100, detail
