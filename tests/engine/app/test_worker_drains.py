"""A stopping worker drains (docs/architecture.md): it stops pulling, hands back what it holds
for a time after the drain, lets running tasks finish - and starts those held for a time
within it -, reports and deregisters; on memory and on real Redis. (A running task that
finishes during the drain: tests/engine/test_facade.py.)"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from distsched.config import WorkerConfig
from distsched.model import TaskState
from distsched.model.task import slot_task_id
from distsched.testing.processes import wait_until_async


async def _slot_held_by_first(distsched_app, store_url, drain_timeout, ran):
    """A leader (fire_ahead 3 s), a worker ``first`` holding a slot about 3 s ahead, and a
    second worker: (leader's storage, first, second, task id, slot)."""

    def quick(name: str) -> str:
        ran.append(name)
        return "ran"

    leader = await distsched_app(store_url, worker=False, fire_ahead=3.0)
    storage = await leader.storage()
    first = await distsched_app(store_url, scheduler=False, functions={"quick": quick},
                                worker=WorkerConfig(name="first", drain_timeout=drain_timeout))
    slot = round(storage.clock() + 4.0, 3)
    at = datetime.fromtimestamp(slot, timezone.utc).isoformat()
    await leader.add_job("later", at=at, target="quick", args=["later"], timeout="5s")
    task_id = slot_task_id("later", slot)

    async def held_by_first():
        task = await storage.tasks.get(task_id)
        return task if task is not None and task.state is TaskState.RUNNING else None

    held = await wait_until_async(held_by_first, 10, what=f"slot task {task_id} to be taken")
    assert held.worker_id is not None and held.worker_id.startswith("first-")
    second = await distsched_app(store_url, scheduler=False, functions={"quick": quick},
                                 worker=WorkerConfig(name="second"))
    assert storage.clock() < slot - 2.0, "the test was too slow to stop the worker long before the slot"
    return storage, first, second, task_id, slot


async def _finished(storage, task_id):
    async def finished():
        task = await storage.tasks.get(task_id)
        return task if task is not None and task.terminal else None

    return await wait_until_async(finished, 20, what=f"slot task {task_id} to finish")


async def test_a_task_held_for_a_time_after_the_drain_is_handed_back_at_once(distsched_app, store_url, caplog):
    """A slot is dispatched ``fire_ahead`` before its time and its worker takes it, then waits
    for the time. A worker stopped meanwhile used to wait for it until ``drain_timeout``, so
    with ``fire_ahead`` above ``drain_timeout`` every stop took the whole drain and then gave
    the task back; it now hands it back at once, and the slot runs on time on another
    worker."""
    ran: list[str] = []
    storage, first, _, task_id, slot = await _slot_held_by_first(distsched_app, store_url, 1.0, ran)
    with caplog.at_level(logging.INFO, logger="distsched"):
        await first.stop()
    said = [r.getMessage() for r in caplog.records]
    assert any("handed back 1 task(s) held for a time after the drain" in m for m in said), said
    assert not any("still running after" in m for m in said), "the worker waited for the drain timeout"
    assert ran == [], "the stopped worker started the task"

    task = await _finished(storage, task_id)
    assert task.state is TaskState.SUCCEEDED, task.result
    assert task.result.worker_id is not None and task.result.worker_id.startswith("second-")
    assert task.result.started_at >= slot
    assert task.attempt == 1, "handing the task back used none of its retries"
    assert ran == ["later"]


async def test_a_task_held_for_a_time_within_the_drain_runs_there_on_time(distsched_app, store_url):
    """With the slot's time within ``drain_timeout``, the stopping worker starts it at its time
    (handed back, it would wait in the store until the worker deregisters)."""
    ran: list[str] = []
    storage, first, _, task_id, slot = await _slot_held_by_first(distsched_app, store_url, 30.0, ran)
    await first.stop()
    assert ran == ["later"]
    task = await _finished(storage, task_id)
    assert task.state is TaskState.SUCCEEDED, task.result
    assert task.result.worker_id is not None and task.result.worker_id.startswith("first-")
    assert task.result.started_at >= slot
