"""A worker stops an attempt the store no longer holds as current (issue 15.1, first point):
overlap ``replace`` cancels the running attempt on its worker within one heartbeat, not
only in the store. On the memory store and on a real Redis."""

from __future__ import annotations

import asyncio
import threading
import time

from distsched.config import WorkerConfig
from distsched.model import TaskState
from distsched.testing import all_tasks

HEARTBEAT = 0.2
#: The slot in flight at the end runs forever too: do not wait for it when stopping.
QUICK_STOP = WorkerConfig(drain_timeout=0.2)


async def _cancelled_in_store(app, job, deadline):
    storage = await app.storage()
    while time.monotonic() < deadline:
        tasks = await all_tasks(storage, job=job)
        gone = [t for t in tasks if t.state is TaskState.CANCELLED]
        if gone:
            return gone[0], time.monotonic()
        await asyncio.sleep(0.02)
    raise AssertionError("the leader never replaced the running attempt")


async def test_replace_cancels_the_running_coroutine_on_its_worker(distsched_app, store_url):
    started = asyncio.Event()
    cancelled_at: list[float] = []

    async def forever():
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled_at.append(time.monotonic())
            raise

    app = await distsched_app(store_url, functions={"forever": forever}, worker=QUICK_STOP,
                              heartbeat_interval=HEARTBEAT, heartbeat_ttl=5.0)
    await app.add_job("r", every="1s", target="forever", overlap="replace", timeout=600)
    await asyncio.wait_for(started.wait(), 10)
    victim, seen = await _cancelled_in_store(app, "r", time.monotonic() + 10)
    assert victim.reason.startswith("overlap: replaced by the slot")
    deadline = time.monotonic() + 5
    while not cancelled_at and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert cancelled_at, "the replaced attempt kept running on its worker"
    # the worker learns it within one heartbeat (plus the time of one check)
    assert cancelled_at[0] - seen <= HEARTBEAT + 0.3
    assert app.engine.worker.abandoned >= 1
    # its result is not reported: the cancelled task stays cancelled
    storage = await app.storage()
    assert (await storage.tasks.get(victim.id)).state is TaskState.CANCELLED


async def test_replace_abandons_a_sync_functions_thread(distsched_app):
    release = threading.Event()
    running = threading.Event()

    def blocking():
        running.set()
        release.wait(30)
        return "late"

    app = await distsched_app(functions={"blocking": blocking}, worker=QUICK_STOP, heartbeat_interval=HEARTBEAT, heartbeat_ttl=5.0)
    try:
        await app.add_job("b", every="1s", target="blocking", overlap="replace", timeout=600)
        assert await asyncio.to_thread(running.wait, 10)
        victim, _ = await _cancelled_in_store(app, "b", time.monotonic() + 10)
        worker = app.engine.worker
        deadline = time.monotonic() + 5
        while worker.blocked() < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert worker.blocked() >= 1, "the replaced attempt's thread was not abandoned"
        assert worker.abandoned >= 1
    finally:
        release.set()
