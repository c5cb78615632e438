"""A one-off task submitted for later (``submit(delay=)`` / ``at=``) runs when due and never
before - also when the leader dispatches it ahead (``fire_ahead``: its worker holds it) - is
dispatched after tasks due before it, and a cancel before its time means it never runs: on
memory and on real Redis."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from distsched.config import WorkerConfig
from distsched.model import TaskState
from distsched.testing.processes import wait_until_async


async def _state(app, task_id, *states):
    task = await app.get_task(task_id)
    return task if task.state in states else None


async def test_a_delayed_task_waits_for_its_time_then_runs(distsched_app, store_url):
    calls: list[float] = []
    app = await distsched_app(store_url, functions={"mark": lambda: calls.append(time.time()) or "ran"})
    task_id = await app.submit("mark", delay="1.5s")
    submitted = await app.get_task(task_id)
    assert submitted.state is TaskState.PENDING
    due = submitted.not_before
    assert due == submitted.created_at + 1.5
    done = await app.wait(task_id, timeout=15)
    assert done.state is TaskState.SUCCEEDED and done.result is not None and done.result.value == "ran"
    assert len(calls) == 1 and calls[0] >= due, f"ran {due - calls[0]:.3f} s before its time"
    assert done.result.started_at >= due and done.dispatched_at is not None


async def test_dispatched_ahead_it_is_held_by_its_worker_until_its_time(distsched_app, store_url):
    """With fire_ahead 2 s, a task due in 3 s is dispatched ~1 s after its submission: its
    worker takes it and holds it; the function is called at its time, not at the dispatch."""
    calls: list[float] = []
    app = await distsched_app(store_url, fire_ahead=2.0, functions={"mark": lambda: calls.append(time.time())},
                              worker=WorkerConfig(name="holder"))
    storage = await app.storage()
    at = datetime.fromtimestamp(storage.clock() + 3.0, timezone.utc)
    task_id = await app.submit("mark", at=at)
    due = (await app.get_task(task_id)).not_before
    assert due == at.timestamp()
    held = await wait_until_async(lambda: _state(app, task_id, TaskState.RUNNING, TaskState.SUCCEEDED), 10,
                                  what="the task to be taken by its worker")
    assert held.state is TaskState.RUNNING, "the test was too slow to see it held"
    assert held.dispatched_at is not None and held.dispatched_at < due
    assert held.held_until(storage.clock()) == due
    assert calls == [], "the function was called before its time"
    done = await app.wait(task_id, timeout=15)
    assert done.state is TaskState.SUCCEEDED
    assert len(calls) == 1 and calls[0] >= due, f"ran {due - calls[0]:.3f} s before its time"


async def test_the_ready_queue_is_ordered_by_due_time(distsched_app, store_url):
    """Submitted first but due later, it runs after the tasks due before it (one worker slot)."""
    order: list[str] = []
    app = await distsched_app(store_url, fire_ahead=0.0, functions={"log": order.append},
                              worker=WorkerConfig(name="one", concurrency=1))
    later = await app.submit("log", "later", delay="1s")
    sooner = await app.submit("log", "sooner", delay="0.3s")
    now = await app.submit("log", "now")
    for task_id in (now, sooner, later):
        assert (await app.wait(task_id, timeout=15)).state is TaskState.SUCCEEDED
    assert order == ["now", "sooner", "later"]


async def test_a_cancel_before_its_time_means_it_never_runs(distsched_app, store_url):
    calls: list[float] = []
    app = await distsched_app(store_url, functions={"mark": lambda: calls.append(time.time())})
    task_id = await app.submit("mark", delay="1s")
    cancelled = await app.cancel_task(task_id, "changed my mind")
    assert cancelled.state is TaskState.CANCELLED
    due = cancelled.not_before
    marker = await app.submit("mark", delay="1.5s")  # runs after the cancelled one's time
    assert (await app.wait(marker, timeout=15)).state is TaskState.SUCCEEDED
    assert len(calls) == 1 and calls[0] > due
    task = await app.get_task(task_id)
    assert task.state is TaskState.CANCELLED and task.dispatches == 0
