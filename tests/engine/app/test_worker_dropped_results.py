"""A worker declared dead while it ran an attempt (frozen past the heartbeat TTL, cut off
from the store) may finish that attempt and report it before a heartbeat tells it it was
declared dead: the store drops the late result (the leader had requeued the task, the
attempt reads ``lost``). Told so, the worker emits a ``result.dropped`` event for each such
result, and none for a result the store applied. On memory and on real Redis: the leader and
the worker are two apps on one store, the worker's heartbeats held back by the test."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from distsched.config import WorkerConfig
from distsched.model import TaskState
from distsched.model import events as ev
from distsched.testing.processes import wait_until_async


async def test_a_result_dropped_after_the_worker_was_declared_dead_is_said(distsched_app, store_url, monkeypatch):
    release, running = threading.Event(), threading.Event()

    def held() -> str:
        running.set()
        release.wait(30)  # the test releases it once the leader declared the worker dead
        return "late"

    def quick() -> str:
        return "ok"

    # the leader reaps a worker silent for 2 s; the worker beats every 0.4 s (fresh for 0.8 s)
    leader = await distsched_app(store_url, worker=False, heartbeat_ttl=2.0, heartbeat_interval=0.4)
    store = await leader.storage()
    worker = await distsched_app(store_url, scheduler=False, functions={"held": held, "quick": quick},
                                 worker=WorkerConfig(name="w", drain_timeout=0.5), heartbeat_interval=0.4,
                                 heartbeat_ttl=2.0)
    dropped: list[Any] = []
    worker.listeners.append(lambda e: dropped.append(e) if isinstance(e, ev.ResultDropped) else None)
    refused: list[Any] = []
    leader.listeners.append(lambda e: refused.append(e) if isinstance(e, ev.DuplicatesSuppressed) else None)
    service = worker.engine.worker
    old_id = service.id

    # the worker's heartbeats wait while the gate is closed, as a frozen worker's do
    gate = asyncio.Event()
    gate.set()
    beat = service.storage.workers.heartbeat

    async def gated(*args: Any, **kwargs: Any) -> bool:
        await gate.wait()
        return await beat(*args, **kwargs)

    monkeypatch.setattr(service.storage.workers, "heartbeat", gated)

    held_id = await leader.submit("held", timeout=60)
    assert await asyncio.to_thread(running.wait, 10)
    gate.clear()
    # finished and applied after the last heartbeat that found the worker alive: not dropped
    quick_id = await leader.submit("quick", timeout=60)

    async def task(task_id: str, *states: TaskState) -> Any:
        found = await store.tasks.get(task_id)
        return found if found is not None and found.state in states else None

    await wait_until_async(lambda: task(quick_id, TaskState.SUCCEEDED), 10, what="the quick task applied")
    await wait_until_async(lambda: task(held_id, TaskState.PENDING), 15,
                           what="the worker declared dead and its attempt requeued")
    release.set()  # it finishes now, and reports its result: the store drops it
    await wait_until_async(lambda: asyncio.sleep(0, refused), 10, what="the leader dropping the late result")
    assert not dropped, "nothing is said before the worker hears it was declared dead"
    gate.set()
    await wait_until_async(lambda: asyncio.sleep(0, dropped), 10, what="the result.dropped event")
    assert service.id != old_id, "the worker re-registered under a new id"
    assert [(e.task_id, e.attempt_id, e.worker_id, e.outcome) for e in dropped] == [
        (held_id, f"{held_id}#1", old_id, "succeeded")]
