"""Tasks a worker holds for their time (slots dispatched ``fire_ahead`` ahead) take no execution
slot until then, and ``concurrency`` still bounds what runs at once - on memory and on real
Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from distsched.config import WorkerConfig
from distsched.model import TaskState
from distsched.model.task import slot_task_id
from distsched.testing.processes import wait_until_async


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


async def _held(storage, task_ids):
    tasks = await storage.tasks.get_many(task_ids)
    return all(t is not None and t.state is TaskState.RUNNING for t in tasks)


async def _finished(storage, task_ids):
    tasks = await storage.tasks.get_many(task_ids)
    return tasks if all(t is not None and t.terminal for t in tasks) else None


async def test_a_task_held_for_its_time_takes_no_execution_slot(distsched_app, store_url):
    """Two slots held 4 s ahead by a worker of concurrency 2 took both its execution slots:
    a task submitted meanwhile waited for the slots' time (4.6 s) before it ran."""
    app = await distsched_app(store_url, fire_ahead=4.0, functions={"noop": lambda: None, "now": lambda: "now"},
                              worker=WorkerConfig(name="holder", concurrency=2))
    storage = await app.storage()
    slot = round(storage.clock() + 5.0, 3)
    for name in ("a", "b"):
        await app.add_job(name, at=_iso(slot), target="noop")
    slots = [slot_task_id(name, slot) for name in ("a", "b")]
    await wait_until_async(lambda: _held(storage, slots), 10, what="both slots to be held by the worker")
    assert storage.clock() < slot - 1.0, "the test was too slow to submit before the slots"
    task = await app.wait(await app.submit("now"), timeout=20)
    assert task.state is TaskState.SUCCEEDED and task.result is not None
    assert task.result.finished_at < slot, "the submitted task waited for the held slots' time"
    for held in await wait_until_async(lambda: _finished(storage, slots), 20, what="the slots to run"):
        assert held.state is TaskState.SUCCEEDED and held.result is not None
        assert held.result.started_at >= slot


async def test_held_tasks_still_run_at_most_concurrency_at_once(distsched_app, store_url):
    """Three slots of one instant held by a worker of concurrency 1 run one after another."""
    spans: list[tuple[float, float]] = []

    async def busy() -> None:
        began = time.time()
        await asyncio.sleep(0.3)
        spans.append((began, time.time()))

    app = await distsched_app(store_url, fire_ahead=3.0, functions={"busy": busy},
                              worker=WorkerConfig(name="one", concurrency=1))
    storage = await app.storage()
    slot = round(storage.clock() + 3.5, 3)
    names = ("x", "y", "z")
    for name in names:
        await app.add_job(name, at=_iso(slot), target="busy", timeout="5s")
    slots = [slot_task_id(name, slot) for name in names]
    done = await wait_until_async(lambda: _finished(storage, slots), 30, what="the three slots to run")
    assert all(t.state is TaskState.SUCCEEDED for t in done), [t.result for t in done]
    assert len(spans) == 3
    spans.sort()
    for (_, ended), (began, _) in zip(spans, spans[1:]):
        assert began >= ended, f"two tasks ran at once on a worker of concurrency 1: {spans}"
    assert min(t.result.started_at for t in done) >= slot
