"""``distsched.current_task()``: a task function reads its own id, attempt, job, slot and
deadline (Celery's ``self.request``, arq's ``ctx``) - through a real worker, for ``async def``
functions (and the asyncio tasks they start) and for sync functions in their threads; None
outside a task."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import distsched
from distsched import TaskContext, current_task
from distsched.config import WorkerConfig
from distsched.model import TaskState
from distsched.model.task import slot_task_id
from distsched.testing.processes import wait_until_async


def _fields(me: TaskContext | None) -> dict[str, Any] | None:
    if me is None:
        return None
    return {"id": me.id, "attempt": me.attempt, "attempt_id": me.attempt_id, "job": me.job, "slot": me.slot,
            "deadline": me.deadline, "worker_id": me.worker_id, "max_attempts": me.max_attempts, "now": time.time()}


def sync_me() -> Any:
    return _fields(current_task())


async def async_me() -> Any:
    return _fields(current_task())


async def async_child() -> Any:
    """An asyncio task the function starts sees it too."""
    return await asyncio.create_task(async_me())


def flaky(fail_until: int) -> Any:
    me = current_task()
    assert me is not None
    if me.attempt < fail_until:
        raise RuntimeError(f"attempt {me.attempt} fails")
    return _fields(me)


FUNCTIONS = {"sync_me": sync_me, "async_me": async_me, "async_child": async_child, "flaky": flaky}


async def test_outside_a_task_there_is_none():
    assert current_task() is None
    assert distsched.current_task is current_task
    assert await asyncio.to_thread(current_task) is None


async def test_a_one_off_reads_its_id_attempt_and_deadline(distsched_app):
    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(name="ctx-worker", concurrency=4))
    for target in ("sync_me", "async_me", "async_child"):
        task_id = await app.submit(target, timeout="30s", task_id=f"{target}-{uuid.uuid4().hex[:6]}")
        task = await app.wait(task_id, timeout=10)
        assert task.state is TaskState.SUCCEEDED, task.result
        me = task.result.value
        assert me["id"] == task_id and me["attempt"] == 1 and me["attempt_id"] == f"{task_id}#1"
        assert me["job"] is None and me["slot"] is None and me["max_attempts"] == 1
        assert me["worker_id"] == task.worker_id and me["worker_id"].startswith("ctx-worker")
        assert me["now"] < me["deadline"] <= me["now"] + 30
        assert abs(me["deadline"] - (task.result.started_at + 30)) < 1.0
    assert current_task() is None  # the worker's own context is left as it was


async def test_concurrent_sync_tasks_each_see_their_own(distsched_app):
    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(name="many", concurrency=8))
    ids = [await app.submit("sync_me" if i % 2 else "async_me") for i in range(16)]
    for task_id in ids:
        task = await app.wait(task_id, timeout=15)
        assert task.state is TaskState.SUCCEEDED and task.result.value["id"] == task_id


async def test_a_retry_reads_its_attempt_number(distsched_app):
    app = await distsched_app(functions=FUNCTIONS)
    task_id = await app.submit("flaky", 3, retry={"max_attempts": 3, "delay": "0.05s", "backoff": "fixed"})
    task = await app.wait(task_id, timeout=15)
    assert task.state is TaskState.SUCCEEDED, task.result
    me = task.result.value
    assert me["attempt"] == 3 and me["max_attempts"] == 3 and me["attempt_id"] == task.attempt_id


async def test_a_jobs_slot_reads_its_job_and_slot(distsched_app):
    app = await distsched_app(functions=FUNCTIONS)
    storage = await app.storage()
    slot = round(storage.clock() + 1.0, 3)
    await app.add_job("ctx-job", at=datetime.fromtimestamp(slot, timezone.utc).isoformat(), target="sync_me")
    task_id = slot_task_id("ctx-job", slot)

    async def finished() -> Any:
        task = await storage.tasks.get(task_id)
        return task if task is not None and task.terminal else None

    task = await wait_until_async(finished, 15, what="the job's slot to run")
    assert task.state is TaskState.SUCCEEDED, task.result
    me = task.result.value
    assert me["id"] == task_id and me["job"] == "ctx-job" and me["slot"] == slot
