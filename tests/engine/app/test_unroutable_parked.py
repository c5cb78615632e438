"""Tasks that no live worker may run wait *parked* out of the ready queue (``unroutable_wait``,
``TaskRepository.park``), so that more than ``dispatch_batch`` of them do not hold back every
other task - which is why the wait was opt-in (845e04c). Memory, Redis 7 and 6.2,
PostgreSQL; passes driven by the test, with its own clock values (no sleeping)."""

import re
import uuid

import pytest

from distsched.app.scheduler import UNROUTABLE_WAIT_PARKED, Scheduler
from distsched.cli.status import render
from distsched.model import FencedError, TaskState
from distsched.testing import make_task, make_worker

from .test_scheduler import Leader

AHEAD = 1500  # more than dispatch_batch (500): every ready read was theirs


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis6", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request):
    """None (memory), or a throwaway namespace on Redis 7 / Redis 6.2 (scripts, no library),
    or a throwaway PostgreSQL schema (a sync fixture, as test_serial_backlog's)."""
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url_for(namespace=f"p{uuid.uuid4().hex[:10]}")
    if request.param == "redis6":
        return request.getfixturevalue("redis6_server").url_for(namespace=f"p{uuid.uuid4().hex[:10]}")
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"p{uuid.uuid4().hex[:10]}")
    return None


async def _leader(store_url, **options):
    options.setdefault("unroutable_wait", 300.0)
    return await Leader.create(store_url, **options)


async def _nobody_offers(st, count, now, target="report.build"):
    """``count`` tasks of a function no live worker offers, submitted at ``now``."""
    await st.tasks.submit([make_task(f"r{i:05d}", now=now, target=target) for i in range(count)])


async def test_unroutable_tasks_ahead_do_not_hold_back_a_task_a_worker_offers(store_url):
    """1,500 tasks of a function no live worker offers, then one of a function the live
    worker offers, unroutable_wait 300 s: the leader read the oldest 500 (and its
    head-of-line reads, 500 at most), all waiting, pass after pass - the other task was
    never dispatched while they waited. Now the first pass parks them and dispatches it."""
    leader = await _leader(store_url)
    try:
        st, sched = leader.storage, leader.scheduler
        now = st.clock()
        await st.workers.register(make_worker("w1", now=now, capacity=10, functions=("tick",)))
        await _nobody_offers(st, AHEAD, now - 1.0)
        await st.tasks.submit([make_task("tick1", now=now, target="tick")])
        assert await sched.dispatch_ready(leader.fence, st.clock()) == (1, False)
        assert (await st.tasks.get("tick1")).state is TaskState.DISPATCHED
        parked = await st.tasks.parked()
        assert list(parked) == ["local:report.build"] and parked["local:report.build"][0] == AHEAD
        assert all(t.state is TaskState.PENDING for t in await st.tasks.get_many(["r00000", "r01499"]))
        # the next pass reads nothing of theirs
        assert await st.tasks.ready(st.clock(), 500) == []
        assert await sched.dispatch_ready(leader.fence, st.clock()) == (0, False)
    finally:
        await leader.app.stop()


async def test_a_parked_task_is_dispatched_once_a_worker_offering_it_joins(store_url):
    leader = await _leader(store_url)
    try:
        st, sched = leader.storage, leader.scheduler
        now = st.clock()
        await st.workers.register(make_worker("w1", now=now, capacity=50, functions=("tick",)))
        await _nobody_offers(st, 20, now)
        assert await sched.dispatch_ready(leader.fence, st.clock()) == (0, False)
        assert sched._parked and await st.tasks.parked(["local:report.build"]) != {}
        # a pass while nobody offers it moves nothing
        assert await sched.release_parked(leader.fence, st.clock()) == 0
        await st.workers.register(make_worker("w2", now=st.clock(), capacity=50, functions=("report.build",)))
        sched._workers_seen = None  # (a worker joining wakes the leader; its pass reads the list)
        assert await sched.release_parked(leader.fence, st.clock()) == 20
        assert await st.tasks.parked() == {} and sched._parked == {}
        assert await sched.dispatch_ready(leader.fence, st.clock()) == (20, False)
        tasks = await st.tasks.get_many([f"r{i:05d}" for i in range(20)])
        assert {(t.state, t.worker_id, t.dispatches) for t in tasks} == {(TaskState.DISPATCHED, "w2", 1)}
    finally:
        await leader.app.stop()


async def test_a_parked_task_fails_after_its_wait_naming_what_is_offered(store_url):
    leader = await _leader(store_url, unroutable_wait=1.0)
    try:
        st, sched = leader.storage, leader.scheduler
        now = st.clock()
        await st.workers.register(make_worker("w1", now=now, capacity=50, functions=("tick",)))
        await _nobody_offers(st, 3, now)
        assert await sched.dispatch_ready(leader.fence, now) == (0, False)
        (count, until), = (await st.tasks.parked()).values()
        assert count == 3 and until == pytest.approx(now + 1.0)
        assert await sched.release_parked(leader.fence, now + 0.5) == 0  # not yet
        later = now + 1.5  # (the worker's heartbeat is still fresh: it is offered the rest)
        assert await sched.release_parked(leader.fence, later) == 3
        assert (await sched.dispatch_ready(leader.fence, later))[0] == 0
        for task in await st.tasks.get_many(["r00000", "r00001", "r00002"]):
            assert task.state is TaskState.FAILED, task.state
            assert task.reason.startswith("waited 1.5s and no live worker offered function 'report.build' "
                                          "(they offer: tick); unroutable_wait is 1s"), task.reason
        assert await st.tasks.parked() == {}
    finally:
        await leader.app.stop()


async def test_parked_tasks_are_dispatched_exactly_once_across_a_failover(store_url):
    """A leader parks tasks and loses its lease; the next one learns what is parked at the
    start of its term and, once a worker offering it joins, dispatches each task once. The
    old leader's late writes (a release, a park) are refused."""
    old = await _leader(store_url)
    try:
        st = old.storage
        now = st.clock()
        await st.workers.register(make_worker("w1", now=now, capacity=50, functions=("tick",)))
        await _nobody_offers(st, 10, now)
        assert await old.scheduler.dispatch_ready(old.fence, now) == (0, False)
        await old.election.release(old.fence)
        new = Scheduler(storage=st, election=old.election, balancers=old.app.engine.balancer,
                        events=old.app.engine.events, config=old.app.config, rand=lambda: 0.5)
        fence = await old.election.acquire("new-leader")
        assert fence is not None and fence.term > old.fence.term
        await new._read_parked(st.clock())
        assert set(new._parked) == {"local:report.build"}
        await st.workers.register(make_worker("w2", now=st.clock(), capacity=50, functions=("report.build",)))
        old.scheduler._workers_seen = None
        with pytest.raises(FencedError):
            await old.scheduler.release_parked(old.fence, st.clock())
        assert await new.release_parked(fence, st.clock()) == 10
        with pytest.raises(FencedError):
            await st.tasks.park(old.fence, [(t, "local:report.build", now + 300)
                                            for t in await st.tasks.get_many(["r00000"])])
        assert await new.dispatch_ready(fence, st.clock()) == (10, False)
        assert await old.scheduler.dispatch_ready(fence, st.clock()) == (0, False)  # nothing ready is left
        tasks = await st.tasks.get_many([f"r{i:05d}" for i in range(10)])
        assert {(t.state, t.worker_id, t.dispatches) for t in tasks} == {(TaskState.DISPATCHED, "w2", 1)}
    finally:
        await old.app.stop()


async def test_the_wait_is_300s_by_default_where_the_store_parks(store_url):
    leader = await Leader.create(store_url)
    try:
        assert leader.app.config.unroutable_wait is None
        assert leader.scheduler.unroutable_wait == UNROUTABLE_WAIT_PARKED == 300.0
    finally:
        await leader.app.stop()


async def test_status_and_why_waiting_say_what_is_parked(store_url):
    """``status`` (the facade's, its text and ``--json`` form) counts the parked tasks per
    function or executor, with when the first one fails, and leaves them out of the oldest
    pending age; "why is this task waiting" says how many are parked for its function.
    Before, they were counted ``pending`` and nothing said where they were."""
    leader = await _leader(store_url)
    try:
        st, sched = leader.storage, leader.scheduler
        now = st.clock()
        await st.workers.register(make_worker("w1", now=now, capacity=50, functions=("tick",), executors=("local",)))
        await _nobody_offers(st, 3, now - 5.0)
        await st.tasks.submit([make_task("x1", now=now - 5.0, executor="cmd")])
        assert await sched.dispatch_ready(leader.fence, now) == (0, False)
        status = await leader.app.status()
        assert status.counts["pending"] == 4 and status.oldest_pending_age is None
        assert [(p.key, p.waiting) for p in status.parked] == [("local:report.build", 3), ("cmd", 1)]
        assert 290 < status.parked[0].fails_in <= 300
        text = render({"storage": "memory://", **status.to_dict()})
        assert "pending 4 (4 parked waiting for a worker)" in text, text
        assert "(the parked ones left out: the leader does not dispatch them yet)" in text, text
        assert re.search(r"parked +4 task\(s\) wait for a worker that may run them", text), text
        assert re.search(r"function 'report.build' +3 waiting, the first fails in 4m5\ds unless one starts", text), text
        assert re.search(r"executor 'cmd' +1 waiting, the first fails in 4m5\ds", text), text
        why = await leader.app.why_waiting("r00000")
        assert why.startswith("waiting for a worker that offers function 'report.build' ("), why
        assert "; parked: 3 task(s) wait for it out of the ready queue): none of the 1 live worker(s)" in why, why
    finally:
        await leader.app.stop()
