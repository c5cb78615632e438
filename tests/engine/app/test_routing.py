"""The leader routes a task by its executor and, for ``local``, its function (memory and real
Redis, in-process workers of their own apps).

A probe found that a worker without a third-party executor (``--disable-plugin cmd``) got
half the ``cmd`` tasks and failed them (``executor 'cmd' is not registered``), and that a
worker with no functions - one dedicated to a plugin executor - got ``local`` tasks and failed
them (``function 'tick' is not registered on this worker``), with either built-in balancer."""

from __future__ import annotations

import asyncio

import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.config import WorkerConfig
from distsched.model import Outcome
from distsched.testing.processes import wait_until_async


class CmdExecutor:
    def __init__(self, context):
        pass

    async def run(self, task):
        return Outcome.success(f"ran {task.spec.target}")


class CmdPlugin:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("cmd", CmdExecutor, description="a third-party executor")


def tick():
    return "tock"


async def _started(apps, url, *, scheduler=False, worker=None, functions=None, **kw):
    app = DistributeSchedule(url, worker=worker, **kw)
    for name, func in (functions or {}).items():
        app.task(func, name=name)
    apps.append(app)
    await app.start(scheduler=scheduler, worker=worker is not None)
    return app


@pytest.mark.parametrize("balancer", ["round-robin", "least-tasks"])
async def test_tasks_go_only_to_workers_that_have_their_executor_and_function(store_url, balancer):
    """``plain`` offers ``tick`` and lacks ``cmd``; ``dedicated`` has ``cmd`` and no function:
    every ``cmd`` task runs on ``dedicated``, every ``tick`` task on ``plain``, all succeed."""
    apps: list[DistributeSchedule] = []
    try:
        leader = await _started(apps, store_url, scheduler=True, plugins=[("cmd", CmdPlugin())])
        plain = await _started(apps, store_url, worker=WorkerConfig(name="plain", concurrency=2),
                               functions={"tick": tick})
        dedicated = await _started(apps, store_url, worker=WorkerConfig(name="dedicated", concurrency=2),
                                   plugins=[("cmd", CmdPlugin())])
        storage = await leader.engine.open()
        ids = {plain.engine.worker.id, dedicated.engine.worker.id}

        async def both_registered():
            live = {w.id for w in await storage.workers.list_workers() if w.is_alive(storage.clock())}
            return ids <= live

        await wait_until_async(both_registered, timeout=10.0, what="both workers registered")
        cmd_tasks = [await leader.submit(f"job{i}", executor="cmd", balancer=balancer) for i in range(8)]
        local_tasks = [await leader.submit("tick", balancer=balancer) for _ in range(8)]
        results = await asyncio.gather(*(leader.result(t, timeout=20.0) for t in cmd_tasks + local_tasks))
        failed = [(r.worker_id, r.error) for r in results if not r.ok]
        assert not failed, failed
        assert {r.worker_id for r in results[:8]} == {dedicated.engine.worker.id}
        assert {r.worker_id for r in results[8:]} == {plain.engine.worker.id}
    finally:
        for app in reversed(apps):
            await app.stop()


async def test_result_says_no_live_worker_has_the_executor(store_url):
    """A worker without the task's executor runs, no scheduler: the timeout says that none of
    the live workers has it (as it says for a function none offers), and which they have."""
    apps: list[DistributeSchedule] = []
    try:
        caller = DistributeSchedule(store_url, plugins=[("cmd", CmdPlugin())])
        apps.append(caller)
        await _started(apps, store_url, worker=WorkerConfig(name="plain"), functions={"tick": tick})
        storage = await caller.storage()

        async def registered():
            return await storage.workers.list_workers()

        await wait_until_async(registered, timeout=10.0, what="the worker registered")
        with pytest.raises(TimeoutError) as info:
            await caller.result(await caller.submit("job", executor="cmd"), timeout=0.3)
        message = str(info.value)
        assert "none of the 1 live worker(s) has executor 'cmd' (they have: http, local, rpc)" in message, message
        assert "plugin that provides it" in message
    finally:
        for app in reversed(apps):
            await app.stop()
