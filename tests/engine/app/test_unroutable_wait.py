"""A task no live worker may run (none offers its function, none has its executor) waits for
one, up to ``EngineConfig.unroutable_wait`` (memory and real Redis, in-process workers of
their own apps).

Before, the leader sent such a task to any worker, whose executor failed it at once and for
good (``UnknownFunction``, not retried): the ``send_email`` tasks submitted while the only
workers that run ``send_email`` restarted (a deploy) failed, where a Celery or RQ queue holds
them."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from click.testing import CliRunner

from distsched import DistributeSchedule, hookimpl
from distsched.cli import cli
from distsched.config import EngineConfig, WorkerConfig
from distsched.model import Outcome, TaskState, ValidationError
from distsched.testing.processes import wait_until_async


def send_email():
    return "sent"


def tick():
    return "tock"


class CmdExecutor:
    def __init__(self, context):
        pass

    async def run(self, task):
        return Outcome.success(f"ran {task.spec.target}")


class CmdPlugin:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("cmd", CmdExecutor, description="a third-party executor")


async def _started(apps, url, *, scheduler=False, worker=None, functions=None, **kw):
    app = DistributeSchedule(url, worker=worker, **kw)
    for name, func in (functions or {}).items():
        app.task(func, name=name)
    apps.append(app)
    await app.start(scheduler=scheduler, worker=worker is not None)
    return app


async def _live(app, ids, *, present=True):
    storage = await app.storage()

    async def check():
        live = {w.id for w in await storage.workers.list_workers() if w.is_alive(storage.clock())}
        return (set(ids) <= live) if present else not (set(ids) & live)

    await wait_until_async(check, timeout=10.0, what=f"workers {sorted(ids)} {'live' if present else 'gone'}")


async def _a_pass_went_by(leader):
    """A leader pass dispatched a ``tick`` task submitted after the task under test, so the
    pass considered that one first (oldest first): what it did to it is done."""
    probe = await leader.submit("tick")
    assert (await leader.result(probe, timeout=20.0)).ok


async def test_a_task_waits_while_the_workers_of_its_function_restart(store_url):
    """The only worker offering ``send_email`` stops (a deploy); another worker, without it,
    is live. A ``send_email`` task submitted meanwhile stays pending - and the caller is told
    why and how long it may still wait - until a worker offering it starts again, which runs
    it. Before: it failed at once, for good (``function 'send_email' is not registered``)."""
    apps: list[DistributeSchedule] = []
    try:
        leader = await _started(apps, store_url, scheduler=True, unroutable_wait=300.0)
        other = await _started(apps, store_url, worker=WorkerConfig(name="other"), functions={"tick": tick})
        mailer = await _started(apps, store_url, worker=WorkerConfig(name="mailer"),
                                functions={"send_email": send_email})
        first_mailer = mailer.engine.worker.id
        await _live(leader, {other.engine.worker.id, first_mailer})
        await mailer.stop()
        await _live(leader, {first_mailer}, present=False)

        task_id = await leader.submit("send_email")
        await _a_pass_went_by(leader)
        task = await leader.get_task(task_id)
        assert task.state is TaskState.PENDING, (task.state, task.reason, task.result)
        with pytest.raises(TimeoutError) as info:
            await leader.result(task_id, timeout=0.2)
        message = str(info.value)
        assert "waiting for a worker that offers function 'send_email'" in message, message
        assert "s left before it fails" in message, message
        # ``tasks show`` (another client of the store) says the same on its ``why`` line
        shown = await asyncio.to_thread(CliRunner().invoke, cli, ["tasks", "show", task_id, "--storage", store_url])
        assert shown.exit_code == 0, shown.output
        # (a process that does not know the leader's unroutable_wait - the CLI's is 0 - says so)
        assert re.search(r"why +waiting for a worker that offers function 'send_email' \(the leader's "
                         r"unroutable_wait bounds the wait; parked: 1 task\(s\) wait for it out of the ready "
                         r"queue\)", shown.output), shown.output

        await _started(apps, store_url, worker=WorkerConfig(name="mailer2"), functions={"send_email": send_email})
        result = await leader.result(task_id, timeout=20.0)
        assert result.ok, (result.error_type, result.error)
        assert result.value == "sent"
    finally:
        for app in reversed(apps):
            await app.stop()


async def test_a_task_of_an_executor_no_live_worker_has_waits_for_one(store_url):
    """The same for an executor: a ``cmd`` task waits while the only live worker lacks
    ``cmd``, and runs on a worker with it that starts later - by default (unroutable_wait
    not set: 300 s on these stores, which park it out of the ready queue)."""
    apps: list[DistributeSchedule] = []
    try:
        leader = await _started(apps, store_url, scheduler=True, plugins=[("cmd", CmdPlugin())])
        other = await _started(apps, store_url, worker=WorkerConfig(name="other"), functions={"tick": tick})
        await _live(leader, {other.engine.worker.id})
        task_id = await leader.submit("job", executor="cmd")
        await _a_pass_went_by(leader)
        task = await leader.get_task(task_id)
        assert task.state is TaskState.PENDING, (task.state, task.reason, task.result)
        parked = await (await leader.storage()).tasks.parked()
        assert list(parked) == ["cmd"] and parked["cmd"][0] == 1, parked
        why = await leader.why_waiting(task_id)
        assert re.match(r"waiting for a worker that has executor 'cmd' \((300|29\d)s left before it fails; parked: 1 "
                        r"task\(s\) wait for it out of the ready queue\)", why), why
        await _started(apps, store_url, worker=WorkerConfig(name="cmd"), plugins=[("cmd", CmdPlugin())])
        result = await leader.result(task_id, timeout=20.0)
        assert result.ok, (result.error_type, result.error)
        assert result.value == "ran job"
    finally:
        for app in reversed(apps):
            await app.stop()


async def test_past_the_bound_the_task_fails_saying_what_it_waited_for(store_url):
    """With ``unroutable_wait=1``, a task of a function no live worker offers fails after
    about a second, its error naming the function, the wait and what the live workers
    offer; the leader goes on dispatching the rest meanwhile."""
    apps: list[DistributeSchedule] = []
    try:
        leader = await _started(apps, store_url, scheduler=True, unroutable_wait=1.0)
        other = await _started(apps, store_url, worker=WorkerConfig(name="other"), functions={"tick": tick})
        await _live(leader, {other.engine.worker.id})
        began = time.monotonic()
        task_id = await leader.submit("send_emial")  # a typo
        await _a_pass_went_by(leader)
        result = await leader.result(task_id, timeout=20.0)
        waited = time.monotonic() - began
        assert not result.ok
        assert "no live worker offered function 'send_emial'" in result.error, result.error
        assert re.search(r"^waited \d+\.\ds and ", result.error), result.error
        assert "unroutable_wait is 1s" in result.error, result.error
        assert "(they offer: tick)" in result.error, result.error
        assert 1.0 <= waited < 6.0, waited
    finally:
        for app in reversed(apps):
            await app.stop()


async def test_a_bound_of_zero_fails_at_once(store_url):
    """``unroutable_wait=0``: such a task goes to any worker, whose executor fails it at once,
    for good, as before the setting (``UnknownFunction``, naming what the worker has)."""
    apps: list[DistributeSchedule] = []
    try:
        leader = await _started(apps, store_url, scheduler=True, unroutable_wait=0)
        other = await _started(apps, store_url, worker=WorkerConfig(name="other"), functions={"tick": tick})
        await _live(leader, {other.engine.worker.id})
        task = await leader.wait(await leader.submit("send_email"), timeout=10.0)
        assert task.state is TaskState.FAILED and task.attempt == 1, (task.state, task.attempt)
        assert task.result is not None and task.result.error_type == "UnknownFunction", task.result
        assert "function 'send_email' is not registered on this worker (registered: tick)" in task.result.error
    finally:
        for app in reversed(apps):
            await app.stop()


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
def test_the_setting_is_checked(store_url):
    # not set: 300 s where the store parks the waiting tasks, else 0 (the leader decides)
    assert EngineConfig(storage=store_url).unroutable_wait is None
    assert EngineConfig(storage=store_url, unroutable_wait=0).unroutable_wait == 0
    for bad in (-1, "5", float("nan"), True, 86_401):
        with pytest.raises(ValidationError) as info:
            EngineConfig(storage=store_url, unroutable_wait=bad)
        assert info.value.field == "unroutable_wait"
