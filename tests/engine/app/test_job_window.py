"""A job's active window and jitter as a running leader and worker apply them, on memory, on
real Redis and on PostgreSQL (its ds_fire and the deadline it computes from not_before): a job whose start_date is a little ahead fires no slot before it (its first
slot is the start), one whose end_date passes stops and is left ended (no next slot, still
stored), and a jittered slot's task keeps its slot as its identity and starts at its
jittered time."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from distsched.model.task import slot_task_id
from distsched.testing.processes import wait_until_async


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


async def _tasks(app, job: str) -> list:
    return (await app.job_history(job, limit=200)).tasks


async def test_no_slot_before_start_date_and_none_after_end_date(distsched_app, any_store_url):
    calls: list[float] = []
    app = await distsched_app(any_store_url, functions={"tick": lambda: calls.append(time.time())})
    storage = await app.storage()
    now = storage.clock()
    start, end = round(now + 0.6, 3), round(now + 1.25, 3)
    await app.add_job("windowed", every="0.15s", target="tick", start_date=_at(start), end_date=_at(end))
    first = (await storage.jobs.state("windowed")).next_fire_at
    assert first == start  # counted from its start_date, not from the epoch

    async def ended():
        state = await storage.jobs.state("windowed")
        return state if state.next_fire_at is None else None

    await wait_until_async(ended, 15, what="the job's last slot before its end_date")
    tasks = await _tasks(app, "windowed")
    slots = sorted(t.slot for t in tasks)
    assert slots == [round(start + 0.15 * k, 3) for k in range(5)], slots  # start ... end, both inside
    assert all(start <= s <= end for s in slots)
    assert all(t.id == slot_task_id("windowed", t.slot) for t in tasks)
    job = await app.get_job("windowed")  # stays stored, listed as ended
    assert job.ended(None)

    async def all_ran():
        done = [t for t in await _tasks(app, "windowed") if t.state.value == "succeeded"]
        return done if len(done) == 5 else None

    done = await wait_until_async(all_ran, 15, what="the 5 tasks of the window to run")
    assert all(t.result.started_at >= start for t in done) and min(calls) >= start


async def test_a_jittered_slot_starts_at_its_jittered_time(distsched_app, any_store_url):
    app = await distsched_app(any_store_url, functions={"tick": lambda: "ok"})
    await app.add_job("jittered", every="0.5s", target="tick", jitter="0.4s")
    config = await app.get_job("jittered")

    async def two_ran():
        done = [t for t in await _tasks(app, "jittered") if t.state.value == "succeeded"]
        return done if len(done) >= 2 else None

    done = await wait_until_async(two_ran, 15, what="two jittered slots to run")
    for task in done:
        assert task.id == slot_task_id("jittered", task.slot)
        assert task.not_before == config.start_at(task.slot) and task.slot <= task.not_before <= task.slot + 0.4
        assert task.result.started_at >= task.not_before
    assert any(t.not_before > t.slot for t in done)  # a delay was applied
