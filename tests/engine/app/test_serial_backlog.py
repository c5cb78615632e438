"""A serial job slower than its interval: its backlog of held slots must not starve the
other jobs' tasks, nor make every leader pass cost O(backlog)."""

import uuid

import pytest

from distsched.model import TaskResult, TaskState
from distsched.model import events as ev
from distsched.testing import make_task, make_worker
from distsched.testing.processes import wait_until_async

from .test_scheduler import Leader

BACKLOG = 1500  # more than dispatch_batch (500): every ready read was the backlog's oldest


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request):
    """None (memory), or a throwaway Redis namespace / PostgreSQL schema (a sync fixture:
    the servers' fixtures check the server with their own event loop)."""
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url_for(namespace=f"b{uuid.uuid4().hex[:10]}")
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"b{uuid.uuid4().hex[:10]}")
    return None


@pytest.fixture
async def leader(store_url):
    lead = await Leader.create(store_url)
    yield lead
    await lead.app.stop()


async def _backlog(leader, name="s", limit=1):
    """A serial job whose slots 100..100+BACKLOG-1 came due at once (misfire fire-all)."""
    # (max_backlog raised over its default, 100, for a backlog this long)
    await leader.add(name, 100.0, every="1s", overlap="serial", misfire="fire-all", max_instances=limit,
                     max_backlog=BACKLOG)
    while await leader.scheduler.fire_due(leader.fence, 100.0 + BACKLOG - 1):
        pass
    # (its later slots are not fired by the passes below, at the real clock)
    await leader.storage.jobs.set_paused(name, True)


async def test_a_serial_backlog_does_not_starve_another_jobs_task(leader):
    """1,500 held slots of a serial job ahead of a one-off task in the ready queue: the
    leader's ready read (at most dispatch_batch, 500, with its head-of-line reads) held only
    the backlog's slots, pass after pass: the one-off task never ran while the backlog stood
    (each pass read 3 x 500 tasks and the job's 1,500 live ones: 120 ms on Redis)."""
    st = leader.storage
    await st.workers.register(make_worker("w1", now=st.clock(), concurrency=1, capacity=10))
    await _backlog(leader)
    await st.tasks.submit([make_task("other", now=st.clock())])
    await leader.add("j", round(st.clock()) - 1.0, every="1s")
    await leader.scheduler.fire_due(leader.fence, st.clock())
    job_task = (await st.tasks.live("j"))[0]

    async def others_dispatched():
        await leader.scheduler.dispatch_ready(leader.fence, st.clock())
        states = [(await st.tasks.get(i)) for i in ("other", job_task.id)]
        return all(t is not None and t.state is TaskState.DISPATCHED for t in states)

    await wait_until_async(others_dispatched, 10, what="the other tasks to be dispatched beside the backlog")
    live = await st.tasks.live("s")
    assert sum(t.state is TaskState.DISPATCHED for t in live) == 1, "the serial job still runs one at a time"
    assert len(live) == BACKLOG


async def test_a_pass_with_a_serial_backlog_reads_only_what_it_dispatches(leader, monkeypatch):
    """With the serial job at its limit, a pass reads no task of its backlog: its ready read
    comes back empty (it read the oldest 500 held slots, and 2 more reads of them)."""
    st = leader.storage
    await st.workers.register(make_worker("w1", now=st.clock(), concurrency=1, capacity=10))
    await _backlog(leader, limit=2)
    assert (await leader.scheduler.dispatch_ready(leader.fence, st.clock()))[0] == 2
    read = []
    ready = st.tasks.ready

    async def counted(until, limit):
        found = await ready(until, limit)
        read.append(len(found))
        return found

    monkeypatch.setattr(st.tasks, "ready", counted)
    assert await leader.scheduler.dispatch_ready(leader.fence, st.clock()) == (0, False)
    assert read == [0]
    # one of the two finishes: the next slot, and only it, comes out of the backlog
    first = await st.tasks.get("s@100000")
    first.cancel("test", st.clock())
    assert await st.tasks.save(leader.fence, [first]) == [True]
    assert await leader.scheduler.dispatch_ready(leader.fence, st.clock()) == (1, False)
    assert sorted(t.slot for t in await st.tasks.live("s") if t.state is TaskState.DISPATCHED) == [101.0, 102.0]


@pytest.mark.redis
async def test_a_worker_settling_a_serial_run_wakes_the_leader_for_the_held_slot(redis_server):
    """The leader no longer waits for room while a serial job's slots are held (none is in
    the ready queue): a worker's own settling report of the job's run must wake it, or the
    next slot waited for the leader's idle tick (1 s)."""
    lead = await Leader.create(redis_server.url_for(namespace=f"w{uuid.uuid4().hex[:10]}"))
    try:
        st = lead.storage
        await st.workers.register(make_worker("w1", now=st.clock(), concurrency=1, capacity=10))
        await lead.add("s", 100.0, every="1s", overlap="serial", misfire="fire-all")
        await lead.scheduler.fire_due(lead.fence, 102.0)
        assert await lead.scheduler.dispatch_ready(lead.fence, st.clock()) == (1, False)
        await st.waiting_for_room(False)
        (run,) = await st.queues.pull("w1", 10, 1.0)
        notify = st.prefix + "notify"
        await st.client.delete(notify)
        await st.queues.report("w1", [TaskResult(task_id=run.id, attempt_id=run.attempt_id, outcome="succeeded",
                                                 started_at=1, finished_at=2, worker_id="w1")], settle=True)
        assert (await st.tasks.get(run.id)).state is TaskState.SUCCEEDED
        assert await st.client.llen(notify) == 1, "a held slot may go now: the leader is woken"
        assert await lead.scheduler.dispatch_ready(lead.fence, st.clock()) == (1, False)
    finally:
        await lead.app.stop()


async def test_a_serial_job_keeps_at_most_max_backlog_slots_waiting(leader):
    """A serial job that falls behind (here 10 slots come due at once, fire-all) keeps
    ``max_instances`` + ``max_backlog`` live; the store records the slots beyond as skipped,
    in the step that fires them - every slot ran or waited before, without bound."""
    st = leader.storage
    await st.workers.register(make_worker("w1", now=st.clock(), concurrency=1, capacity=10))
    await leader.add("s", 100.0, every="1s", overlap="serial", misfire="fire-all", max_backlog=3)
    await leader.scheduler.fire_due(leader.fence, 109.0)
    tasks = await leader.tasks("s")
    assert [t.state.value for t in tasks] == ["pending"] * 4 + ["skipped"] * 6
    assert {t.reason for t in tasks[4:]} == {"overlap: backlog full (max_backlog = 3)"}
    assert (await leader.scheduler.dispatch_ready(leader.fence, st.clock()))[0] == 1
    # the next slot while still full: skipped as well
    await leader.scheduler.fire_due(leader.fence, 110.0)
    assert (await leader.tasks("s"))[-1].state is TaskState.SKIPPED


async def test_the_default_max_backlog_bounds_a_serial_job():
    """Without max_backlog a serial job keeps 100 slots waiting (DEFAULT_MAX_BACKLOG)."""
    lead = await Leader.create()
    try:
        await lead.add("s", 100.0, every="1s", overlap="serial", misfire="fire-all")
        await lead.scheduler.fire_due(lead.fence, 100.0 + 149)
        states = [t.state for t in await lead.tasks("s")]
        assert states.count(TaskState.PENDING) == 101 and states.count(TaskState.SKIPPED) == 49
    finally:
        await lead.app.stop()


async def test_six_serial_jobs_at_their_default_backlog_do_not_starve_another_task(leader):
    """Six serial jobs each 100 slots behind (the default max_backlog): 600 waiting slots,
    more than a ready read (dispatch_batch, 500). On PostgreSQL they stayed in the ready
    queue ahead of a one-off task, which was never dispatched while they stood."""
    st = leader.storage
    await st.workers.register(make_worker("w1", now=st.clock(), concurrency=10, capacity=20))
    for n in range(6):
        await leader.add(f"s{n}", 100.0, every="1s", overlap="serial", misfire="fire-all")
        while await leader.scheduler.fire_due(leader.fence, 100.0 + 100):
            pass
        await st.jobs.set_paused(f"s{n}", True)
    await st.tasks.submit([make_task("other", now=st.clock())])

    async def other_dispatched():
        await leader.scheduler.dispatch_ready(leader.fence, st.clock())
        task = await st.tasks.get("other")
        return task is not None and task.state is TaskState.DISPATCHED

    await wait_until_async(other_dispatched, 10, what="the one-off task to be dispatched beside 600 waiting slots")
    for n in range(6):
        states = [t.state for t in await st.tasks.live(f"s{n}")]
        assert states.count(TaskState.DISPATCHED) == 1 and states.count(TaskState.PENDING) == 100


async def test_a_slot_the_store_skips_for_max_backlog_is_announced(leader):
    """The store records a serial slot beyond max_backlog skipped as it fires it; the fire
    report names it and the leader emits task.skipped for it, with the store's reason, as
    for every other skipped slot (observers - metrics, notifications - missed them)."""
    events = []
    leader.app.engine.events.listeners.append(events.append)
    await leader.add("s", 100.0, every="1s", overlap="serial", misfire="fire-all", max_backlog=3)
    await leader.scheduler.fire_due(leader.fence, 109.0)
    await leader.scheduler.fire_due(leader.fence, 110.0)  # still full: skipped too
    leader.app.engine.events.flush()
    skipped = [(e.task_id, e.job, e.slot, e.reason) for e in events if isinstance(e, ev.TaskSkipped)]
    reason = "overlap: backlog full (max_backlog = 3)"
    assert skipped == [(f"s@{int(at * 1000)}", "s", at, reason) for at in range(104, 111)]
    stored = [t.id for t in await leader.tasks("s") if t.state is TaskState.SKIPPED]
    assert stored == [e[0] for e in skipped]


async def test_a_discarded_slot_is_announced_once(leader):
    """discard's skip is decided by the leader, which builds the skipped record and announces
    it (task.skipped) - not again from the store's report."""
    events = []
    leader.app.engine.events.listeners.append(events.append)
    await leader.add("d", 100.0, every="10s", overlap="discard")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    await leader.scheduler.fire_due(leader.fence, 110.0)
    leader.app.engine.events.flush()
    skipped = [(e.task_id, e.reason) for e in events if isinstance(e, ev.TaskSkipped)]
    assert skipped == [("d@110000", "overlap: discarded (1 instance(s) still live)")]
