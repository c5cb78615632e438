"""The leader's passes, driven with explicit times on the memory store."""

import asyncio
import uuid
from datetime import datetime, timezone

import attrs
import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.app import scheduler as scheduler_module
from distsched.app.scheduler import Scheduler
from distsched.model import TaskResult, TaskState, build_job
from distsched.model.task import slot_task_id
from distsched.model.times import iso_utc
from distsched.testing import all_tasks, make_task, make_worker
from distsched.testing.processes import wait_until_async


class Leader:
    """A scheduler whose passes the test calls itself, with its own clock values."""

    @classmethod
    async def create(cls, url=None, **engine_options):
        self = cls()
        self.app = DistributeSchedule(url or f"memory://sched-{uuid.uuid4().hex}", **engine_options)
        self.storage = await self.app.engine.open()
        self.election = await self.app.engine.open_election()
        self.scheduler = Scheduler(storage=self.storage, election=self.election, balancers=self.app.engine.balancer,
                                   events=self.app.engine.events, config=self.app.config, rand=lambda: 0.5,
                                   balancer_origin=self.app.engine.balancer_origin)
        self.fence = await self.election.acquire(self.app.config.node_id)
        return self

    async def add(self, name, first, **fields):
        job = build_job(name, **fields)
        return await self.storage.jobs.add(job, next_fire_at=first)

    async def tasks(self, job):
        return sorted(await all_tasks(self.storage, job=job), key=lambda t: t.slot or 0)


@pytest.fixture
async def leader():
    lead = await Leader.create()
    yield lead
    await lead.app.stop()


async def test_each_due_slot_fires_once_with_a_deterministic_id(leader):
    await leader.add("j", 100.0, every="10s")
    assert await leader.scheduler.fire_due(leader.fence, 105.0) == 1
    assert await leader.scheduler.fire_due(leader.fence, 105.0) == 0
    await leader.scheduler.fire_due(leader.fence, 125.0)
    tasks = await leader.tasks("j")
    assert [(t.id, t.state.value) for t in tasks] == [
        ("j@100000", "pending"), ("j@110000", "pending"), ("j@120000", "pending")]
    state = await leader.storage.jobs.state("j")
    assert (state.next_fire_at, state.last_slot) == (130.0, 120.0)


@pytest.mark.parametrize("mode, fired, reasons", [
    ("fire-all", [100, 110, 120, 130, 140, 150], []),
    ("fire-once", [150], ["misfire: coalesced"] * 5),
    ("skip", [150], ["misfire: skipped"] * 5),
])
async def test_misfire_policies_record_every_missed_slot(leader, mode, fired, reasons):
    # The job was due at 100 but no leader ran until 155: slots 100..140 are missed
    # (grace 10 s), 150 is on time.
    await leader.add("j", 100.0, every="10s", misfire=mode, misfire_grace=10)
    await leader.scheduler.fire_due(leader.fence, 155.0)
    tasks = await leader.tasks("j")
    assert [t.slot for t in tasks] == [100, 110, 120, 130, 140, 150], "every slot is recorded"
    assert [t.slot for t in tasks if t.state is TaskState.PENDING] == fired
    assert [t.reason for t in tasks if t.state is TaskState.SKIPPED] == reasons


async def test_a_firing_the_store_refused_announces_no_skipped_slot(leader, monkeypatch):
    """A firing that conflicts (another leader's pass moved the job first) is not applied:
    the skipped records this pass built for it were never stored, so no task.skipped for
    them - the pass that stored them announced them, once each."""
    from distsched.model import events as ev

    events = []
    leader.app.engine.events.listeners.append(events.append)
    await leader.add("j", 100.0, every="10s", misfire="skip", misfire_grace=10)
    fire = leader.storage.jobs.fire
    raced = []

    async def racing_fire(fence, firings):
        if not raced:  # the first pass's firing: another pass fires the same slots first
            raced.append(True)
            await leader.scheduler.fire_due(leader.fence, 155.0)
        return await fire(fence, firings)

    monkeypatch.setattr(leader.storage.jobs, "fire", racing_fire)
    await leader.scheduler.fire_due(leader.fence, 155.0)
    leader.app.engine.events.flush()
    assert leader.scheduler.stats["fire_conflicts"] == 1
    skipped = [e.task_id for e in events if isinstance(e, ev.TaskSkipped)]
    assert skipped == [f"j@{slot}000" for slot in (100, 110, 120, 130, 140)]


async def test_a_slot_stored_already_is_not_announced_skipped_again(leader):
    """A job set back to slots it fired already (resumed inside ``fire_ahead``, re-timed...)
    fires them again: the store leaves those tasks as they are (``FireReport.existing_ids``).
    A slot the pass then records skipped was not announced again - neither one announced
    skipped when it was stored (it was announced twice), nor one stored pending, which runs
    (announced skipped, then finished)."""
    from distsched.model import events as ev

    events = []
    leader.app.engine.events.listeners.append(events.append)
    await leader.add("m", 100.0, every="10s", misfire="skip", misfire_grace=0)
    await leader.add("d", 100.0, every="10s", overlap="discard")
    await leader.scheduler.fire_due(leader.fence, 115.0, horizon=115.0)
    for name in ("m", "d"):  # set back to slot 100
        await leader.storage.jobs.set_paused(name, True)
        await leader.storage.jobs.set_paused(name, False, next_fire_at=100.0)
    await leader.scheduler.fire_due(leader.fence, 125.0, horizon=125.0)
    leader.app.engine.events.flush()
    skipped = [e.task_id for e in events if isinstance(e, ev.TaskSkipped)]
    # the first pass: m@100 and m@110 missed (late), d@110 discarded (d@100 live); the
    # second only the slots new to the store: m@120 missed, d@120 discarded
    assert sorted(skipped) == ["d@110000", "d@120000", "m@100000", "m@110000", "m@120000"], skipped
    assert leader.scheduler.stats["slots_existing"] == 4
    assert [t.state for t in await leader.tasks("d")] == [TaskState.PENDING, TaskState.SKIPPED, TaskState.SKIPPED]


@pytest.mark.parametrize("mode", ["skip", "fire-once"])
async def test_a_slot_fired_ahead_is_not_late_with_a_grace_under_fire_ahead(leader, mode):
    """The leader fires up to ``fire_ahead`` before a slot: a ``misfire_grace`` under it (0 s)
    skipped every slot of a healthy leader, recorded ``misfire: skipped`` 0.2 s before its time."""
    await leader.add("j", 100.0, every="10s", misfire=mode, misfire_grace=0)
    await leader.scheduler.fire_due(leader.fence, 99.9, horizon=100.1)
    assert [(t.slot, t.state.value) for t in await leader.tasks("j")] == [(100, "pending")]


async def test_fire_once_with_only_missed_slots_runs_the_latest(leader):
    await leader.add("j", 100.0, every="10s", misfire="fire-once", misfire_grace=1)
    await leader.scheduler.fire_due(leader.fence, 135.0)
    tasks = await leader.tasks("j")
    assert [(t.slot, t.state.value) for t in tasks] == [
        (100, "skipped"), (110, "skipped"), (120, "skipped"), (130, "pending")]


async def _one_worker(leader, capacity=10, heartbeat_interval=None):
    await leader.storage.workers.register(make_worker("w1", now=leader.storage.clock(), concurrency=1, capacity=capacity,
                                                      heartbeat_interval=heartbeat_interval))


async def test_overlap_discard_records_the_dropped_slot(leader):
    await _one_worker(leader)
    await leader.add("j", 100.0, every="10s", overlap="discard")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
    await leader.scheduler.fire_due(leader.fence, 110.0)
    tasks = await leader.tasks("j")
    assert [t.state.value for t in tasks] == ["dispatched", "skipped"]
    assert tasks[1].reason == "overlap: discarded (1 instance(s) still live)"


async def test_overlap_replace_cancels_the_running_one(leader):
    await _one_worker(leader)
    await leader.add("j", 100.0, every="10s", overlap="replace")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
    await leader.scheduler.fire_due(leader.fence, 110.0)
    tasks = await leader.tasks("j")
    assert [t.state.value for t in tasks] == ["cancelled", "pending"]
    assert tasks[0].reason == "overlap: replaced by the slot at 1970-01-01T00:01:50Z"  # a time, not 110.000


@pytest.mark.parametrize("limit", [1, 2])
async def test_overlap_replace_runs_only_the_latest_of_slots_fired_together(leader, limit):
    """Slots that come due in one pass (a backlog within the misfire grace after a leader's
    downtime): each replaces the one before it, so only the latest ``max_instances`` run;
    the others are recorded skipped, naming the slot that replaced them. The replaced ones,
    created in the same pass, ran too: seven copies at once after a 6 s restart."""
    await _one_worker(leader)
    await leader.add("j", 100.0, every="10s", overlap="replace", max_instances=limit)
    await leader.scheduler.fire_due(leader.fence, 140.0)
    tasks = await leader.tasks("j")
    assert [t.state.value for t in tasks] == ["skipped"] * (5 - limit) + ["pending"] * limit
    assert [t.reason for t in tasks[: 5 - limit]] == [
        f"overlap: replaced by the slot at {iso_utc(slot + 10 * limit)}" for slot in range(100, 150 - 10 * limit, 10)]
    assert (await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()))[0] == limit


async def test_overlap_serial_waits_for_a_run_waiting_to_retry():
    """A serial job's earlier run waiting for its retry is still live: the next slot waits
    for it, and the two run in slot order. (Only the dispatched and running ones counted: the
    next slot ran while the earlier one waited for its retry, which then ran after it.)"""
    leader = await Leader.create(heartbeat_ttl=60.0)  # the worker still alive at the retry's time below
    try:
        await _serial_behind_a_retry(leader)
    finally:
        await leader.app.stop()


async def _serial_behind_a_retry(leader):
    await _one_worker(leader, heartbeat_interval=25.0)
    await leader.add("j", 100.0, every="10s", overlap="serial",
                     retry={"max_attempts": 2, "backoff": "fixed", "delay": "20s"})
    await leader.scheduler.fire_due(leader.fence, 100.0)
    assert (await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()))[0] == 1

    async def finish(outcome):
        (task,) = await leader.storage.queues.pull("w1", 1, 1.0)
        await leader.storage.queues.report("w1", [TaskResult(
            task_id=task.id, attempt_id=task.attempt_id, outcome=outcome, started_at=1, finished_at=2,
            error=None if outcome == "succeeded" else "boom")])
        await leader.scheduler.apply_results(leader.fence, leader.storage.clock())
        return task.id

    assert await finish("failed") == "j@100000"
    await leader.scheduler.fire_due(leader.fence, 110.0)
    now = leader.storage.clock()
    # (the next slot is held by the store: not in the ready queue, so no pass is blocked by it)
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, False)
    assert [t.state.value for t in await leader.tasks("j")] == ["retrying", "pending"]
    # The retry's time: it goes first, the next slot still waits behind it.
    assert await leader.scheduler.dispatch_ready(leader.fence, now + 21) == (1, False)
    assert [t.state.value for t in await leader.tasks("j")] == ["dispatched", "pending"]
    assert await finish("succeeded") == "j@100000"
    assert await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()) == (1, False)
    assert [t.state.value for t in await leader.tasks("j")] == ["succeeded", "dispatched"]


async def test_overlap_serial_queues_behind_the_running_one(leader):
    await _one_worker(leader)
    await leader.add("j", 100.0, every="10s", overlap="serial")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    await leader.scheduler.fire_due(leader.fence, 110.0)
    dispatched, blocked = await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
    assert (dispatched, blocked) == (1, False), "the second is held by the store, not read and skipped"
    tasks = await leader.tasks("j")
    assert [t.state.value for t in tasks] == ["dispatched", "pending"]
    # The first finishes: the second goes.
    first = tasks[0]
    await leader.storage.queues.pull("w1", 1, 1.0)
    first = await leader.storage.tasks.get(first.id)
    await leader.storage.queues.report("w1", [TaskResult(
        task_id=first.id, attempt_id=first.attempt_id, outcome="succeeded", started_at=1, finished_at=2)])
    await leader.scheduler.apply_results(leader.fence, leader.storage.clock())
    assert await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()) == (1, False)
    assert [t.state.value for t in await leader.tasks("j")] == ["succeeded", "dispatched"]


async def test_overlap_parallel_runs_everything(leader):
    await _one_worker(leader)
    await leader.add("j", 100.0, every="10s")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    await leader.scheduler.fire_due(leader.fence, 110.0)
    assert (await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()))[0] == 2


async def test_a_dead_workers_tasks_are_requeued_without_using_retries(leader):
    await leader.storage.workers.register(make_worker("dead", now=leader.storage.clock(), concurrency=1, capacity=5))
    await leader.app.submit_many([build_job("x", every="1s", target="noop").spec] * 3)
    now = leader.storage.clock()
    assert (await leader.scheduler.dispatch_ready(leader.fence, now))[0] == 3
    await leader.storage.queues.pull("dead", 1, 1.0)
    # Ten seconds of silence later the leader reaps it.
    reaped = await leader.scheduler.reap_workers(leader.fence, now + leader.app.config.heartbeat_ttl + 1)
    assert reaped == 1
    tasks = await all_tasks(leader.storage)
    assert all(t.state is TaskState.PENDING and t.redeliveries == 1 and t.attempt == 1 for t in tasks)
    assert leader.scheduler.stats["requeued"] == 3


async def test_a_worker_that_takes_a_task_while_it_is_reaped_is_reaped_again_next_pass(leader):
    from distsched.model import events as ev

    events = []
    leader.app.listeners.append(events.append)
    await leader.storage.workers.register(make_worker("slow", now=leader.storage.clock(), concurrency=1, capacity=5))
    await leader.app.submit_many([build_job("x", every="1s", target="noop").spec] * 2)
    now = leader.storage.clock()
    assert (await leader.scheduler.dispatch_ready(leader.fence, now))[0] == 2
    # The worker is only slow: it takes a task after the leader read what it held.
    assigned = leader.storage.tasks.assigned

    async def assigned_then_pull(worker_id):
        held = await assigned(worker_id)
        await leader.storage.queues.pull(worker_id, 1, 0.01)
        return held

    leader.storage.tasks.assigned = assigned_then_pull
    later = now + leader.app.config.heartbeat_ttl + 1
    assert await leader.scheduler.reap_workers(leader.fence, later) == 0
    leader.storage.tasks.assigned = assigned
    states = sorted(t.state.value for t in await all_tasks(leader.storage))
    assert states == ["pending", "running"]
    [kept] = await leader.storage.workers.list_workers()
    assert kept.id == "slow" and not kept.is_alive(later, leader.app.config.heartbeat_ttl)
    assert await leader.storage.workers.heartbeat("slow") is False, "it is told it was declared dead"
    leader.scheduler.events.flush()
    assert [type(e) for e in events if isinstance(e, (ev.WorkerLost, ev.TaskRequeued))] == [ev.TaskRequeued]
    # The next pass requeues the task it took and removes it: one worker.lost for both.
    assert await leader.scheduler.reap_workers(leader.fence, later + 1) == 1
    assert await leader.storage.workers.list_workers() == []
    tasks = await all_tasks(leader.storage)
    assert all(t.state is TaskState.PENDING and t.redeliveries == 1 for t in tasks)
    leader.scheduler.events.flush()
    lost = [e for e in events if isinstance(e, ev.WorkerLost)]
    assert [(e.worker_id, e.requeued) for e in lost] == [("slow", 2)]
    assert sum(isinstance(e, ev.TaskRequeued) for e in events) == 2
    assert leader.scheduler.stats["requeued"] == 2 and leader.scheduler.stats["workers_lost"] == 1


async def test_the_leader_times_out_a_task_whose_result_never_came(leader):
    # (a worker that still heartbeats: its interval is long enough for the times below)
    await _one_worker(leader, heartbeat_interval=5.0)
    [task_id] = await leader.app.submit_many([build_job("x", every="1s", target="noop", timeout=1,
                                                        retry={"max_attempts": 2, "delay": 5}).spec])
    now = leader.storage.clock()
    await leader.scheduler.dispatch_ready(leader.fence, now)
    assert await leader.scheduler.check_timeouts(leader.fence, now + 1 + leader.app.config.timeout_grace - 0.5) == 0
    assert await leader.scheduler.check_timeouts(leader.fence, now + 1 + leader.app.config.timeout_grace + 0.5) == 1
    task = await leader.storage.tasks.get(task_id)
    assert task.state is TaskState.RETRYING and task.attempt == 2 and task.result.outcome == "timed_out"


async def test_a_stale_result_is_never_accepted():
    leader = await Leader.create(heartbeat_ttl=0.3, heartbeat_interval=0.1)
    try:
        await _one_worker(leader)
        [task_id] = await leader.app.submit_many([build_job("x", every="1s", target="noop").spec])
        await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
        old = await leader.storage.tasks.get(task_id)
        # w1 goes silent: the leader declares it dead and requeues its task.
        for _ in range(100):
            if await leader.scheduler.reap_workers(leader.fence, leader.storage.clock()):
                break
            await asyncio.sleep(0.02)
        await leader.storage.workers.register(make_worker("w2", now=leader.storage.clock()))
        await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
        # The zombie reports for the old attempt.
        await leader.storage.queues.report("w1", [TaskResult(
            task_id=task_id, attempt_id=old.attempt_id, outcome="succeeded", started_at=1, finished_at=2)])
        await leader.scheduler.apply_results(leader.fence, leader.storage.clock())
        task = await leader.storage.tasks.get(task_id)
        assert task.state is TaskState.DISPATCHED and task.worker_id == "w2" and task.dispatches == 2
        assert leader.scheduler.stats["stale_results"] == 1
        assert await leader.storage.results.peek(10) == [], "the stale result is consumed, not left to block"
    finally:
        await leader.app.stop()


async def test_a_fenced_leader_steps_down():
    from distsched.model import FencedError

    lead = await Leader.create()
    try:
        await lead.add("j", 1.0, every="1s")
        assert await lead.election.acquire("other") is None
        await lead.election.release(lead.fence)
        newer = await lead.election.acquire("other")
        assert newer.term > lead.fence.term
        with pytest.raises(FencedError):
            await lead.scheduler.fire_due(lead.fence, 5.0)
        assert (await lead.storage.jobs.state("j")).next_fire_at == 1.0
        assert await all_tasks(lead.storage, job="j") == []
    finally:
        await lead.app.stop()


async def test_failover_between_two_in_process_schedulers():
    url = f"memory://failover-{uuid.uuid4().hex}"
    options = {"lease_ttl": 0.4, "renew_interval": 0.1}
    a, b = DistributeSchedule(url, **options), DistributeSchedule(url, **options)
    await a.start(worker=False)
    await b.start(worker=False)
    try:
        async def leader_of():
            for app in (a, b):
                if app.engine.scheduler.is_leader.is_set():
                    return app
            return None

        for _ in range(200):
            if await leader_of():
                break
            await asyncio.sleep(0.01)
        first = await leader_of()
        assert first is not None
        second = b if first is a else a
        await first.stop()  # graceful: releases the lease
        await asyncio.wait_for(second.engine.scheduler.is_leader.wait(), 2.0)
        assert second.engine.scheduler.fence.term > 1
    finally:
        await a.stop()
        await b.stop()


async def test_slots_are_fired_ahead_and_held_until_their_time(leader):
    await _one_worker(leader)
    # the next slot on the store's clock, within a second of it: the leader's "now" below
    # (slot - 0.2) must stay within the heartbeat TTL of the worker's heartbeat, which is
    # the store's time (a slot up to 10 s ahead made the worker look dead now and then)
    slot = float(int(leader.storage.clock()) + 1)
    await leader.add("j", slot, every="1s")
    assert await leader.scheduler.fire_due(leader.fence, slot - 0.2, horizon=slot) == 1
    [task] = await leader.tasks("j")
    assert task.slot == slot and task.not_before == slot
    # Dispatched 0.2 s early: the worker holds it until its not_before.
    assert await leader.scheduler.dispatch_ready(leader.fence, slot - 0.2, ahead=0.2) == (1, False)
    assert await leader.scheduler.fire_due(leader.fence, slot - 0.2, horizon=slot) == 0


@pytest.mark.parametrize("settles", [True, False], ids=["store-settles", "store-settles-nothing"])
async def test_results_are_applied_whether_or_not_the_store_settles(leader, settles):
    """Successes are finished by the store's settle; with a store that settles nothing the
    leader applies them itself. Either way: the same states, stats and events."""
    from distsched.ports import Settled

    if not settles:
        async def settle_nothing(fence, max_items, *, want_tasks=False):
            return Settled(left=len(await leader.storage.results.peek(10_000)))

        leader.storage.results.settle = settle_nothing
    events = []
    leader.app.engine.events.listeners.append(events.append)
    await _one_worker(leader)
    spec = build_job("x", every="1s", target="noop").spec
    failing = build_job("y", every="1s", target="noop", retry={"max_attempts": 2, "delay": 5}).spec
    ids = await leader.app.submit_many([spec, failing, spec])
    now = leader.storage.clock()
    assert (await leader.scheduler.dispatch_ready(leader.fence, now))[0] == 3
    pulled = {t.id: t for t in await leader.storage.queues.pull("w1", 10, 1.0)}
    outcomes = ["succeeded", "failed", "succeeded"]
    await leader.storage.queues.report("w1", [
        TaskResult(task_id=i, attempt_id=pulled[i].attempt_id, outcome=o, started_at=now, finished_at=now + 0.25,
                   worker_id="w1") for i, o in zip(ids, outcomes)])
    assert await leader.scheduler.apply_results(leader.fence, leader.storage.clock()) >= 1
    while await leader.storage.results.peek(10):
        await leader.scheduler.apply_results(leader.fence, leader.storage.clock())
    states = [t.state for t in await leader.storage.tasks.get_many(ids)]
    assert states == [TaskState.SUCCEEDED, TaskState.RETRYING, TaskState.SUCCEEDED]
    assert (leader.scheduler.stats["succeeded"], leader.scheduler.stats["retrying"]) == (2, 1)
    leader.app.engine.events.flush()  # deliver now instead of on the bus's next loop turn
    finished = sorted((e.task_id, e.state, e.attempt, round(e.duration, 6)) for e in events
                      if type(e).__name__ == "TaskFinished")
    assert finished == sorted([(ids[0], "succeeded", 1, 0.25), (ids[2], "succeeded", 1, 0.25)])


class _StoreFull(Exception):
    """What a store's ``refusing_errors`` names: it answers, and refuses writes for now."""


@pytest.mark.parametrize("error, level, reason", [
    (ConnectionResetError("store went away"), "WARNING", "store unreachable"),
    # was an ERROR with a traceback at every pass, counted as a fault of the engine's (an
    # incident probe: Redis at its maxmemory under noeviction)
    (_StoreFull("command not allowed when used memory > 'maxmemory'"), "WARNING", "store refusing writes"),
    (RuntimeError("a bug"), "ERROR", "error"),
])
async def test_a_leader_whose_pass_fails_steps_down_quietly_only_for_a_store_outage(error, level, reason, caplog):
    import logging

    from distsched.model import events as ev

    lead = await Leader.create(lease_ttl=1.0, renew_interval=0.2)
    lead.storage.refusing_errors = (_StoreFull,)
    lost = []
    lead.app.listeners.append(lambda e: lost.append(e) if isinstance(e, ev.LeadershipLost) else None)
    await lead.election.release(lead.fence)
    ready = lead.storage.tasks.ready
    calls = 0

    async def failing_once(now, limit):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return await ready(now, limit)

    lead.storage.tasks.ready = failing_once
    await lead.storage.workers.register(make_worker("w1", now=lead.storage.clock()))
    scheduler = lead.scheduler
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="distsched.scheduler"):
        runner = asyncio.create_task(scheduler.run(stop))
        try:
            for _ in range(300):  # it steps down, then leads again
                if calls >= 2 and scheduler.is_leader.is_set():
                    break
                await asyncio.sleep(0.01)
            assert scheduler.is_leader.is_set() and scheduler.stats["terms"] == 2
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5.0)
            await lead.app.stop()
    scheduler.events.flush()
    assert lost[0].reason.startswith(reason + ":"), lost[0].reason
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in records] == [level], [(r.levelname, r.getMessage()) for r in records]


async def test_a_store_stall_gives_workers_a_heartbeat_ttl_before_they_are_reaped(leader):
    """Redis was down for a while, but not long enough for the lease to expire: the term goes
    on, yet the workers could not heartbeat either. The leader must not reap them at once."""
    ttl = leader.app.config.heartbeat_ttl
    leader.scheduler._term_started = float("-inf")  # well into the term
    await leader.storage.workers.register(make_worker("w1", now=0.0))
    beat = (await leader.storage.workers.list_workers())[0].last_heartbeat
    leader.scheduler._stalled_at = beat + ttl  # the stall ended just as w1's heartbeat got too old
    assert await leader.scheduler.reap_workers(leader.fence, beat + ttl + 0.1) == 0
    assert await leader.scheduler.reap_workers(leader.fence, beat + 2 * ttl - 0.1) == 0
    assert await leader.scheduler.reap_workers(leader.fence, beat + 2 * ttl + 0.1) == 1, "silent after the grace"


async def test_a_slow_or_hanging_lease_renewal_counts_as_a_store_stall():
    import time

    leader = await Leader.create(renew_interval=0.05, lease_ttl=5.0)
    try:
        renewed = asyncio.Event()
        real_renew = leader.election.renew

        async def slow_renew(fence):
            await asyncio.sleep(0.3)
            renewed.set()
            return await real_renew(fence)

        leader.election.renew = slow_renew
        renewing = asyncio.create_task(leader.scheduler._renew(leader.fence, asyncio.Event()))
        await asyncio.wait_for(renewed.wait(), 5)
        deadline = time.monotonic() + 5
        while not leader.scheduler.stats["store_stalls"] and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        renewing.cancel()
        assert leader.scheduler.stats["store_stalls"] >= 1
        # a renewal hanging right now puts the leader in the grace too
        leader.scheduler._stalled_at = float("-inf")
        leader.scheduler._term_started = float("-inf")
        leader.scheduler._renewing_since = time.monotonic() - 1.0
        assert leader.scheduler._in_grace(leader.storage.clock())
        leader.scheduler._renewing_since = None
        leader.scheduler._stalled_at = float("-inf")
        assert not leader.scheduler._in_grace(leader.storage.clock())
    finally:
        await leader.app.stop()


async def test_a_renewal_stuck_in_its_own_cancellation_still_steps_the_leader_down_in_time():
    """A store client may wait out its own cancellation (asyncpg sends a cancel request and
    waits for it - through the same cut network): the renewal's timeout must still bound the
    step-down, and leader.lost must record when the node stopped leading, not when the stuck
    call unwound (found by the chaos harness on PostgreSQL: a blackholed leader led on for the
    whole cut)."""
    import time

    from distsched.model import events as ev

    lead = await Leader.create(lease_ttl=1.0, renew_interval=0.2)
    lost = []
    lead.app.listeners.append(lambda e: lost.append(e) if isinstance(e, ev.LeadershipLost) else None)
    await lead.election.release(lead.fence)
    # The stored lease outlives the scheduler's renewal budget (0.8 s): no leader write is
    # refused meanwhile, so only the renewal's own timeout can end the term.
    lead.election.ttl = 30.0
    unstick = asyncio.Event()
    hung_at: list[float] = []
    real_renew = lead.election.renew

    async def stuck_renew(fence):
        if hung_at:  # only the first renewal hangs
            return await real_renew(fence)
        hung_at.append(lead.storage.clock())
        try:
            await unstick.wait()
        except asyncio.CancelledError:
            await unstick.wait()  # unwinds only when the network heals
            raise
        return await real_renew(fence)

    lead.election.renew = stuck_renew
    scheduler = lead.scheduler
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(stop))
    try:
        deadline = time.monotonic() + 5
        while not hung_at and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert hung_at, "the renewal never ran"
        while not lost and time.monotonic() < deadline:
            scheduler.events.flush()
            await asyncio.sleep(0.01)
        assert lost, "the leader never stepped down"
        # the renewal's budget is lease ttl - renew interval = 0.8 s
        assert lost[0].at - hung_at[0] < 1.5 and lost[0].reason == "lease lost", (lost, hung_at)
    finally:
        unstick.set()
        stop.set()
        await asyncio.wait_for(runner, 5.0)
        await lead.app.stop()


async def test_a_task_whose_balancer_the_leader_lacks_fails_naming_it(leader):
    # Stored past the facade's check (another node with other plugins, or a plugin removed
    # since): the leader must not run it on some other balancer.
    await _one_worker(leader)
    await leader.add("j", 100.0, every="10s", balancer="fastest")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    sent, _ = await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
    assert sent == 0
    (task,) = await leader.tasks("j")
    assert task.state is TaskState.FAILED and task.worker_id is None
    assert "balancer 'fastest' is not registered" in task.reason
    assert "available: consistent-hash, least-tasks, round-robin" in task.reason
    assert leader.scheduler.stats["undispatchable"] == 1
    # a task of a known balancer in the same batch is dispatched as usual
    await leader.add("k", 100.0, every="10s")
    await leader.scheduler.fire_due(leader.fence, 100.0)
    sent, _ = await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock())
    assert sent == 1


async def test_a_worker_is_reported_lost_once(leader):
    # A task id left in the store's assigned index after its record is gone: the reap drops
    # it and removes the worker; it is reported lost once, not on every pass.
    seen = []
    leader.app.engine.events.emit = seen.append
    leader.scheduler.events = leader.app.engine.events
    await leader.storage.workers.register(make_worker("w1", now=leader.storage.clock()))
    leader.storage.state.assigned.setdefault("w1", set()).add("ghost")
    leader.scheduler._term_started = float("-inf")  # no new-term grace
    now = leader.storage.clock() + 60  # its heartbeat is a minute old
    for _ in range(3):
        await leader.scheduler.reap_workers(leader.fence, now)
    assert [e.worker_id for e in seen if e.kind == "worker.lost"] == ["w1"]
    assert await leader.storage.workers.list_workers() == []


async def test_an_overdue_attempt_of_a_silent_worker_is_a_crash_redelivery(leader):
    # kill -9 of the worker (default settings: heartbeats every 2 s, TTL 10 s): at timeout +
    # grace its heartbeat is 6.5 s old - silent for more than two intervals, not reaped yet.
    await _one_worker(leader, heartbeat_interval=2.0)
    [task_id] = await leader.app.submit_many([build_job("x", every="1s", target="noop", timeout=1,
                                                        retry={"max_attempts": 1}).spec])
    now = leader.storage.clock()
    await leader.scheduler.dispatch_ready(leader.fence, now)
    seen = []
    leader.scheduler.events.emit = seen.append
    assert await leader.scheduler.check_timeouts(leader.fence, now + 1 + leader.app.config.timeout_grace + 0.5) == 1
    task = await leader.storage.tasks.get(task_id)
    assert task.state is TaskState.PENDING and task.redeliveries == 1 and task.attempt == 1 and task.result is None
    assert task.worker_id is None and "worker w1 lost (no heartbeat for" in task.reason
    assert [e.kind for e in seen] == ["task.requeued"]
    assert leader.scheduler.stats["leader_timeouts"] == 0


async def test_a_worker_silent_for_two_heartbeat_intervals_is_not_chosen(leader):
    await _one_worker(leader, heartbeat_interval=2.0)
    now = leader.storage.clock()
    await leader.app.submit_many([build_job("x", every="1s", target="noop").spec])
    # 4.5 s without a heartbeat (TTL 10 s: still "alive", not reaped): no balancer gets it
    assert await leader.scheduler.dispatch_ready(leader.fence, now + 4.5) == (0, True)
    assert await leader.scheduler.dispatch_ready(leader.fence, now + 3.5) == (1, False)
class _SecondRoundRobin:
    @hookimpl
    def distsched_register_balancers(self, registry):
        registry.add("round-robin", lambda: None)


@pytest.mark.parametrize("name, why", [("round-robin", "is provided by plugin 'balancers'"),
                                       ("no-such-balancer", "is not registered")])
async def test_a_task_whose_balancer_nobody_or_two_plugins_provide_fails_naming_why(name, why):
    lead = await Leader.create(plugins=[("second", _SecondRoundRobin())])
    try:
        await _one_worker(lead)
        # Stored before the conflict appeared (the facade refuses such a task now).
        await lead.storage.tasks.submit([make_task("t1", balancer=name)])
        assert await lead.scheduler.dispatch_ready(lead.fence, lead.storage.clock()) == (0, True)
        task = await lead.storage.tasks.get("t1")
        assert task.state is TaskState.FAILED and task.worker_id is None
        assert f"balancer {name!r} {why}" in task.reason
    finally:
        await lead.app.stop()


class _BrokenBalancers:
    @hookimpl
    def distsched_register_balancers(self, registry):
        def exploding_factory():
            raise RuntimeError("balancer factory exploded")

        class WrongAnswer:
            def select(self, task, workers, *, now, ttl):
                return "w1"  # a name, not one of the workers it was offered

        class Raises:
            def select(self, task, workers, *, now, ttl):
                raise ValueError("no worker suits me")

        registry.add("explode-bal", exploding_factory)
        registry.add("wrong-bal", WrongAnswer)
        registry.add("raise-bal", Raises)


async def test_a_broken_balancer_fails_its_tasks_only():
    """A third-party balancer whose factory raises, or whose ``select`` raises or returns
    something that is not one of the workers it was offered, fails (or cancels) the tasks that
    ask for it, naming it and its plugin (select's failures named the balancer only); the
    other tasks go on. The leader's pass failed whole ("leader loop failed: PluginError ...",
    "AttributeError: 'str' object has no attribute 'can_accept'") and no task of any job was
    dispatched again."""
    lead = await Leader.create(plugins=[("broken", _BrokenBalancers())])
    try:
        await _one_worker(lead)
        await lead.storage.tasks.submit([make_task("e1", balancer="explode-bal"), make_task("e2", balancer="explode-bal"),
                                         make_task("w1", balancer="wrong-bal"), make_task("r1", balancer="raise-bal"),
                                         make_task("ok")])
        assert (await lead.scheduler.dispatch_ready(lead.fence, lead.storage.clock()))[0] == 1
        assert await _dispatched(lead) == {"ok": "w1"}
        for task_id, why in (("e1", "balancer 'explode-bal' from plugin 'broken' failed: RuntimeError: balancer factory "
                                    "exploded"),
                             ("e2", "balancer 'explode-bal' from plugin 'broken' failed"),
                             ("w1", "balancer 'wrong-bal' from plugin 'broken' failed on this task: it returned a "
                                    "str, not one of the workers it was offered"),
                             ("r1", "balancer 'raise-bal' from plugin 'broken' failed on this task: ValueError: no "
                                    "worker suits me")):
            task = await lead.storage.tasks.get(task_id)
            assert task.state in (TaskState.FAILED, TaskState.CANCELLED) and why in task.reason, (task_id, task.reason)
    finally:
        await lead.app.stop()


async def test_the_leader_tells_a_store_that_wants_it_when_ready_tasks_wait_for_room(leader, monkeypatch):
    """StorageBackend.waiting_for_room (optional): said when it changes, and again while it
    holds after ROOM_REFRESH; a store without it is left alone (the memory store here)."""

    said: list[bool] = []

    async def waiting_for_room(waiting):
        said.append(waiting)

    monkeypatch.setattr(leader.storage, "waiting_for_room", waiting_for_room, raising=False)
    await leader.app.submit_many([build_job("x", every="1s", target="noop").spec])
    now = leader.storage.clock()
    blocked = (await leader.scheduler.dispatch_ready(leader.fence, now))[1]
    assert blocked, "no worker: the ready task waits for room"
    for _ in range(3):
        await leader.scheduler._say_waiting_for_room(blocked)
    assert said == [True], "said once while it holds"
    monkeypatch.setattr(scheduler_module, "ROOM_REFRESH", 0.0)
    await leader.scheduler._say_waiting_for_room(True)
    assert said == [True, True], "and again after ROOM_REFRESH (the store may forget it)"
    await _one_worker(leader)
    assert await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()) == (1, False)
    await leader.scheduler._say_waiting_for_room(False)
    await leader.scheduler._say_waiting_for_room(False)
    assert said == [True, True, False]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def any_leader(request):
    """A leader on the memory store or on a real Redis (a namespace of the test's own)."""
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url_for(namespace=f"s{uuid.uuid4().hex[:10]}")
    lead = await Leader.create(url)
    yield lead
    await lead.app.stop()


def _count_ready_reads(leader, monkeypatch):
    """The limits of the pass's reads of the ready queue, in order."""
    reads = []
    ready = leader.storage.tasks.ready

    async def counted(until, limit):
        reads.append(limit)
        return await ready(until, limit)

    monkeypatch.setattr(leader.storage.tasks, "ready", counted)
    return reads


async def _dispatched(leader):
    return {t.id: t.worker_id for t in await all_tasks(leader.storage) if t.state is TaskState.DISPATCHED}


async def test_tasks_an_idle_worker_offers_are_not_stuck_behind_those_only_a_full_one_offers(any_leader, monkeypatch):
    """Head-of-line blocking: 100 ready tasks for f, whose only worker is full, head the
    queue; the idle worker that offers g gets the g tasks behind them in the same pass."""
    leader = any_leader
    now = leader.storage.clock()
    await leader.storage.workers.register(make_worker("wf", now=now, concurrency=1, capacity=2, functions=["f"]))
    await leader.storage.workers.register(make_worker("wg", now=now, concurrency=1, capacity=2, functions=["g"]))
    await leader.storage.tasks.submit([make_task(f"a-f-{i:03}", target="f") for i in range(100)])
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (2, True)
    assert await _dispatched(leader) == {"a-f-000": "wf", "a-f-001": "wf"}, "wf is now full"
    # The last pass saw 4 free slots: this one reads 4 ready tasks, all for f, then further.
    await leader.storage.tasks.submit([make_task(f"z-g-{i}", target="g") for i in range(2)])
    reads = _count_ready_reads(leader, monkeypatch)
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (2, True)
    assert len(reads) <= 1 + scheduler_module.HOL_READS and max(reads) <= leader.app.config.dispatch_batch, "bounded"
    assert await _dispatched(leader) == {"a-f-000": "wf", "a-f-001": "wf", "z-g-0": "wg", "z-g-1": "wg"}
    # Nothing placeable is left: the queue keeps the f tasks, in their order.
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, True)
    assert [t.id for t in await leader.storage.tasks.ready(now, 3)] == ["a-f-002", "a-f-003", "a-f-004"]


async def test_a_serial_jobs_backlog_does_not_hold_back_the_tasks_behind_it(any_leader):
    leader = any_leader
    await _one_worker(leader, capacity=2)
    await leader.add("s", 100.0, every="10s", overlap="serial")
    await leader.scheduler.fire_due(leader.fence, 140.0)  # slots 100..140: five tasks, one may run
    await leader.storage.tasks.submit([make_task("p1", now=150.0), make_task("p2", now=150.0)])
    assert await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()) == (2, False)
    assert await _dispatched(leader) == {"s@100000": "w1", "p1": "w1"}
    assert [t.state.value for t in await leader.tasks("s")] == ["dispatched"] + ["pending"] * 4


async def test_a_pass_that_skips_nothing_reads_the_ready_queue_once(any_leader, monkeypatch):
    leader = any_leader
    await _one_worker(leader, capacity=3)
    await leader.storage.tasks.submit([make_task(f"t{i}") for i in range(5)])
    reads = _count_ready_reads(leader, monkeypatch)
    assert await leader.scheduler.dispatch_ready(leader.fence, leader.storage.clock()) == (3, False)
    assert len(reads) == 1


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_slot_dispatched_further_ahead_than_the_grace_runs(distsched_app, store, request):
    """A slot is dispatched ``fire_ahead`` before its time and its worker takes it at once,
    then holds it: the leader's deadline counts from the slot. With ``fire_ahead`` longer
    than timeout + grace, it counted from the take and the leader timed the slot out before
    it ran."""
    url = (f"memory://ahead-{uuid.uuid4().hex}" if store == "memory"
           else request.getfixturevalue("redis_server").url_for(namespace=f"a{uuid.uuid4().hex[:10]}"))
    app = await distsched_app(url, functions={"quick": lambda: "ran"}, fire_ahead=2.0, timeout_grace=0.2)
    storage = await app.storage()
    slot = round(storage.clock() + 2.5, 3)
    at = datetime.fromtimestamp(slot, timezone.utc).isoformat()
    await app.add_job("ahead", at=at, target="quick", timeout="0.5s")
    task_id = slot_task_id("ahead", slot)

    async def finished():
        task = await storage.tasks.get(task_id)
        return task if task is not None and task.terminal else None

    task = await wait_until_async(finished, 20, what=f"slot task {task_id} to finish")
    assert task.state is TaskState.SUCCEEDED, task.result
    assert task.result.started_at >= slot


async def test_a_new_leader_announces_only_the_workers_that_joined_since_the_last_one_led():
    """``worker.joined`` (``distsched_workers_joined``) once per worker, not at each
    failover: a new leader announced every live worker again, a worker that had run for
    an hour included."""
    from distsched.model import events as ev

    leader = await Leader.create(lease_ttl=2.0, renew_interval=0.5)
    try:
        await leader.election.release(leader.fence)  # the helper's own term: the run below campaigns
        now = leader.storage.clock()
        await leader.storage.workers.register(make_worker("old", now=now - 3600))
        await leader.storage.workers.register(make_worker("new", now=now - 1))
        assert await leader.storage.workers.heartbeat("old")  # alive, started an hour ago
        events = []
        leader.app.engine.events.listeners.append(events.append)
        stop = asyncio.Event()
        run = asyncio.create_task(leader.scheduler.run(stop))

        async def joined():
            leader.app.engine.events.flush()
            return [e.worker_id for e in events if isinstance(e, ev.WorkerJoined)]

        try:
            assert await wait_until_async(joined, 10, what="the new worker announced") == ["new"]
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
    finally:
        await leader.app.stop()


@pytest.mark.parametrize("leader_signs", [True, False])
async def test_a_worker_whose_signing_differs_from_the_leaders_gets_no_task(leader_signs, caplog):
    """A mixed deployment fails closed without losing work: a worker without the key under a
    signing leader (it could not check the signatures, and the leader refuses its unsigned
    results) - or one that checks under a leader that does not sign (it would refuse every
    task) - is given no task; the tasks wait for a worker that matches, and the leader says
    why once. It was given its share: each attempt ran, its result was refused, the task
    timed out and ran again, up to its attempts."""
    leader = await Leader.create(signing_keys=("test-signing-key-0123456789",) if leader_signs else ())
    try:
        now = leader.storage.clock()
        await leader.storage.workers.register(make_worker("odd", now=now, concurrency=4, capacity=10,
                                                          signed=not leader_signs))
        await leader.storage.tasks.submit([make_task(f"t{i}", now=now) for i in range(3)])
        with caplog.at_level("ERROR"):
            assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, True)
            assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, True)
        assert caplog.text.count("worker 'odd'") == 1 and "given no task" in caplog.text, caplog.text
        await leader.storage.workers.register(make_worker("match", now=now, concurrency=4, capacity=10,
                                                          signed=leader_signs))
        leader.scheduler._workers_seen = None  # (the pass's short-lived copy of the list)
        assert await leader.scheduler.dispatch_ready(leader.fence, now) == (3, False)
        assert set((await _dispatched(leader)).values()) == {"match"}
    finally:
        await leader.app.stop()


async def test_the_workers_told_of_a_signing_mismatch_are_forgotten_once_gone(caplog):
    """Was: the leader's set of workers it had logged a signing mismatch for only grew (each
    start of a worker registers a new id). A worker gone from the store - reaped by this
    leader or by another - is forgotten; one still registered is still logged once only."""
    leader = await Leader.create(signing_keys=("test-signing-key-0123456789",))
    try:
        now = leader.storage.clock()
        ids = [f"odd{i}" for i in range(50)]
        for worker_id in [*ids, "stays", "other"]:
            await leader.storage.workers.register(make_worker(worker_id, now=now, concurrency=1, capacity=1,
                                                              signed=False))
        await leader.storage.tasks.submit([make_task("t", now=now)])
        with caplog.at_level("ERROR"):
            assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, True)
        assert leader.scheduler._signing_said == {*ids, "stays", "other"}
        for worker_id in ids:  # they stop: deregistered, this leader reaps them
            await leader.storage.workers.deregister(worker_id)
        assert await leader.scheduler.reap_workers(leader.fence, now) == len(ids)
        assert leader.scheduler._signing_said == {"stays", "other"}
        await leader.storage.workers.reap(leader.fence, "other", [])  # as another leader would
        await leader.scheduler.reap_workers(leader.fence, now)
        assert leader.scheduler._signing_said == {"stays"}
        caplog.clear()
        with caplog.at_level("ERROR"):
            leader.scheduler._workers_seen = None
            assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, True)
        assert "given no task" not in caplog.text, "a worker still registered is told of once"
    finally:
        await leader.app.stop()


async def test_the_workers_a_leader_saw_join_are_forgotten_once_gone():
    """Was: the set of workers a leader had seen join was emptied only by its own reaps, so
    within a term it kept every worker another leader reaped or removed (a worker's id is
    new at each start: a fleet that restarts its workers grew it without end)."""
    from distsched.model import events as ev

    leader = await Leader.create()
    try:
        now = leader.storage.clock()
        for worker_id in ("stays", "other"):
            await leader.storage.workers.register(make_worker(worker_id, now=now))
        joined: list[str] = []
        leader.app.engine.events.listeners.append(
            lambda e: joined.append(e.worker_id) if isinstance(e, ev.WorkerJoined) else None)
        leader.scheduler._joined_after = 0.0  # these registered before the term: count them as joining
        await leader.scheduler.reap_workers(leader.fence, now)
        assert leader.scheduler._known_workers == {"stays", "other"}
        await leader.storage.workers.reap(leader.fence, "other", [])  # as another leader would
        await leader.scheduler.reap_workers(leader.fence, now)
        assert leader.scheduler._known_workers == {"stays"}
        leader.app.engine.events.flush()
        assert sorted(joined) == ["other", "stays"], "a worker still registered joined once"
    finally:
        await leader.app.stop()


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_leader_stopped_in_its_pause_after_an_error_releases_the_lease(store, request, monkeypatch):
    """After its loop fails, the leader pauses (``renew_interval``) still holding the lease,
    then campaigns again; stopped during that pause it hands the lease over as a clean stop
    does. It returned holding it, and the lease lapsed only at its TTL: a standby waited up
    to ``lease_ttl``."""
    url = None if store == "memory" else request.getfixturevalue("redis_server").url_for(
        namespace=f"s{uuid.uuid4().hex[:10]}")
    lead = await Leader.create(url, lease_ttl=30.0, renew_interval=10.0)
    try:
        await lead.election.release(lead.fence)  # the helper's own term: the run below campaigns
        failed = asyncio.Event()

        async def broken(*args, **kwargs):
            failed.set()
            raise RuntimeError("a bug in the leader's pass")

        monkeypatch.setattr(lead.scheduler, "fire_due", broken)
        stop = asyncio.Event()
        run = asyncio.create_task(lead.scheduler.run(stop))
        await asyncio.wait_for(failed.wait(), 10)
        await wait_until_async(lambda: _async(not lead.scheduler.is_leader.is_set()), 10, what="the step-down")
        assert (await lead.election.current()) is not None, "it holds the lease through its pause"
        stop.set()
        await asyncio.wait_for(run, 10)
        assert (await lead.election.current()) is None, "released at once, not left to lapse"
    finally:
        await lead.app.stop()


async def _async(value):
    return value


async def test_a_worker_that_advertises_executors_and_no_functions_gets_no_local_task(any_leader):
    """A worker of this version says its executors: one with no functions (dedicated to a
    plugin's executor) offers no function, and one without an executor gets none of its
    tasks - while a worker that says it has them is live. A worker record of an earlier
    version (neither executors nor functions) still counts as running everything."""
    leader = any_leader
    # a task no live worker may run waits for one (opt-in: unroutable_wait), below
    leader.scheduler.config = attrs.evolve(leader.scheduler.config, unroutable_wait=300.0)
    now = leader.storage.clock()
    await leader.storage.workers.register(make_worker("w-local", now=now, capacity=50, executors=["local", "http"],
                                                      functions=["f"]))
    await leader.storage.workers.register(make_worker("w-cmd", now=now, capacity=50, executors=["cmd", "local"]))
    [stored] = [w for w in await leader.storage.workers.list_workers() if w.id == "w-cmd"]
    assert stored.executors == ("cmd", "local") and stored.functions == ()
    for balancer in ("round-robin", "least-tasks"):
        await leader.storage.tasks.submit([make_task(f"{balancer}-f{i}", target="f", balancer=balancer) for i in range(4)]
                                          + [make_task(f"{balancer}-c{i}", executor="cmd", balancer=balancer)
                                             for i in range(4)])
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (16, False)
    placed = await _dispatched(leader)
    assert {w for t, w in placed.items() if "-f" in t} == {"w-local"}
    assert {w for t, w in placed.items() if "-c" in t} == {"w-cmd"}
    # An executor nobody says it has: its tasks wait for a worker that has it (unroutable_wait),
    # parked out of the ready queue (the leader does not spin on them, nor wait for room).
    await leader.storage.tasks.submit([make_task(f"x-r{i}", executor="rpc", balancer="round-robin") for i in range(4)])
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (0, False)
    assert not [t for t in await _dispatched(leader) if t.startswith("x-r")]
    assert await leader.storage.tasks.parked() == {"rpc": (4, pytest.approx(now + 300.0))}
    # A worker of an earlier version (no executors, no functions) may run anything: it shares
    # the tasks of every executor and function with those that say they have them.
    await leader.storage.workers.register(make_worker("w-old", now=now, capacity=50))
    leader.scheduler._workers_seen = None  # (the pass's short-lived copy of the list)
    assert await leader.scheduler.release_parked(leader.fence, now) == 4  # one may run them now
    await leader.storage.tasks.submit([make_task(f"o-f{i}", target="f", balancer="round-robin") for i in range(4)]
                                      + [make_task(f"o-c{i}", executor="cmd", balancer="round-robin") for i in range(4)]
                                      + [make_task(f"o-x{i}", executor="exotic", balancer="round-robin")
                                         for i in range(2)])
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (14, False)
    placed = await _dispatched(leader)
    assert {w for t, w in placed.items() if t.startswith("x-r")} == {"w-old"}, "the waiting ones, at last"
    assert {w for t, w in placed.items() if t.startswith("o-f")} == {"w-local", "w-old"}
    assert {w for t, w in placed.items() if t.startswith("o-c")} == {"w-cmd", "w-old"}
    assert {w for t, w in placed.items() if t.startswith("o-x")} == {"w-old"}, "the only one that may have it"


async def test_a_task_nobody_may_run_waits_from_when_nobody_may_then_fails_saying_why(any_leader):
    """A task of ``f`` that waited 1,000 s already (for room, say) when no live worker offers
    ``f`` gets the whole ``unroutable_wait`` (1 s here) from then, not none: it stays pending
    (parked: not waiting for room) while a ``g`` task behind it is dispatched, and fails past
    the bound (released, then failed) naming the wait, the function and what the live
    workers offer."""
    leader = any_leader
    leader.scheduler.config = attrs.evolve(leader.scheduler.config, unroutable_wait=1.0)
    now = leader.storage.clock()
    await leader.storage.workers.register(make_worker("w-g", now=now, capacity=50, executors=["local"],
                                                      functions=["g"]))
    await leader.storage.tasks.submit([make_task("old-f", now=now - 1000, target="f")])
    await leader.storage.tasks.submit([make_task("g1", now=now, target="g")])
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (1, False)
    assert await leader.scheduler.release_parked(leader.fence, now + 0.5) == 0
    assert await leader.scheduler.dispatch_ready(leader.fence, now + 0.5) == (0, False)
    assert (await leader.storage.tasks.get("old-f")).state is TaskState.PENDING
    assert set(await _dispatched(leader)) == {"g1"}
    assert await leader.scheduler.release_parked(leader.fence, now + 1.5) == 1
    assert await leader.scheduler.dispatch_ready(leader.fence, now + 1.5) == (0, True)
    task = await leader.storage.tasks.get("old-f")
    assert task.state is TaskState.FAILED
    assert task.reason == ("waited 1.5s and no live worker offered function 'f' (they offer: g); "
                           "unroutable_wait is 1s"), task.reason


async def test_an_older_worker_alone_gets_every_task(any_leader):
    leader = any_leader
    now = leader.storage.clock()
    await leader.storage.workers.register(make_worker("w-old", now=now, capacity=50))
    await leader.storage.tasks.submit([make_task("a", target="f"), make_task("b", executor="cmd"),
                                       make_task("c", executor="http", target="https://example.com")])
    assert await leader.scheduler.dispatch_ready(leader.fence, now) == (3, False)
    assert await _dispatched(leader) == {"a": "w-old", "b": "w-old", "c": "w-old"}
