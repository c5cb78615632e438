"""The composition root: what the engine builds through the plugin manager and hands to the
scheduler and the worker."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid

import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.app.engine import Engine
from distsched.config import EngineConfig, WorkerConfig
from distsched.model import Outcome
from distsched.plugin.errors import NameConflict, PluginError
from distsched.plugin.manager import PluginManager


class _Contexts:
    """Two executors that keep the context they were built with; a storage that cannot open."""

    def __init__(self):
        self.contexts = []

    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("keeps-a", self.make)
        registry.add("keeps-b", self.make_async)

    @hookimpl
    def distsched_register_functions(self, registry):
        registry.add("from-plugin", lambda: 1)

    @hookimpl
    def distsched_register_storage(self, registry):
        registry.add("broken", schemes=("broken",), factory=self.refuse)

    def make(self, context):
        self.contexts.append(context)
        return _Echo()

    async def make_async(self, context):
        await asyncio.sleep(0)
        self.contexts.append(context)
        return _Echo()

    @staticmethod
    def refuse(url, *, options):
        raise ConnectionError("connection refused")


class _Echo:
    async def run(self, task):
        return Outcome.success(task.spec.target)


async def test_a_workers_executors_share_one_context_with_the_apps_and_plugins_functions():
    plugin = _Contexts()
    app = DistributeSchedule(f"memory://engine-{uuid.uuid4().hex}", plugins=[("contexts", plugin)])
    app.task(lambda: 2, name="from-app")
    build = app.engine.executors_for(WorkerConfig(concurrency=3, settings={"key": "value"}))
    a, b = await build("keeps-a"), await build("keeps-b")  # a plain factory and an async one
    assert isinstance(a, _Echo) and isinstance(b, _Echo)
    first, second = plugin.contexts
    assert first is second
    assert (first.concurrency, first.settings) == (3, {"key": "value"})
    assert {"from-app", "from-plugin"} <= set(first.functions.names())
    assert first.functions.function("from-app")() == 2
    with pytest.raises(PluginError, match=r"executor 'nope' is not registered \(available: .*keeps-a"):
        await build("nope")


async def test_a_storage_that_cannot_open_is_named_with_its_plugin_and_a_redacted_url():
    engine = Engine(EngineConfig(storage="broken://admin:s3cret@db.example:5432/x"),
                    plugins=PluginManager(plugins=[("contexts", _Contexts())]))
    with pytest.raises(PluginError) as err:
        await engine.open()
    message = str(err.value)
    assert message == ("storage 'broken' from plugin 'contexts' could not open broken://admin:***@db.example:5432/x: "
                       "ConnectionError: connection refused")
    assert "s3cret" not in message


class _OtherLocal:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("local", lambda context: _Echo())


async def test_an_executor_provided_twice_is_not_built():
    app = DistributeSchedule(f"memory://engine-{uuid.uuid4().hex}", plugins=[("other", _OtherLocal())])
    build = app.engine.executors_for(WorkerConfig())
    with pytest.raises(NameConflict, match=r"executor 'local' is provided by plugin 'local' \(distsched .*\) and "
                                           r"plugin 'other'"):
        await build("local")


class _BlockingObserver:
    """A plugin whose event hook blocks - it runs on the process's event loop."""

    def __init__(self):
        self.blocked = asyncio.Event()

    @hookimpl
    def distsched_event(self, event):
        if event.kind == "task.finished" and not self.blocked.is_set():
            time.sleep(0.6)  # the mistake: a blocking call on the loop
            self.blocked.set()


async def test_a_plugin_hook_that_holds_the_loop_is_named(monkeypatch, caplog):
    """The engine watches its event loop whatever holds it: a plugin's blocking event hook (no
    task) is reported at its file and line, naming what waits in this process."""
    from distsched.app import engine as engine_module

    monkeypatch.setattr(engine_module, "LOOP_HELD_WARNING", 0.2)
    caplog.set_level("WARNING", logger="distsched.engine")
    observer = _BlockingObserver()
    app = DistributeSchedule(f"memory://engine-{uuid.uuid4().hex}", plugins=[("blocks", observer)])
    app.task(lambda: 1, name="one")
    await app.start()
    try:
        await app.result(await app.submit("one"), timeout=20)
        await asyncio.wait_for(observer.blocked.wait(), 20)
        deadline = time.monotonic() + 10
        while not any("the event loop was held for about" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            await asyncio.sleep(0.05)
    finally:
        await app.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "distsched.engine"]
    held = [m for m in messages if "has been held" in m]
    assert len(held) == 1, messages
    lines, first = inspect.getsourcelines(_BlockingObserver.distsched_event)
    line = first + next(i for i, text in enumerate(lines) if "time.sleep" in text)
    assert f"{__file__}:{line} in distsched_event()" in held[0], held[0]
    assert "the worker's other tasks, heartbeats and reports, the scheduler's passes and lease renewals" in held[0]
    freed = [m for m in messages if "was held for about" in m]
    assert len(freed) == 1 and "by task" not in freed[0], messages  # a hook, not a task


def _always_fails():
    raise RuntimeError("again")


async def test_the_engine_draws_nothing_from_the_global_random_stream(distsched_app):
    """An application that seeds ``random`` for a reproducible sequence of its own keeps it:
    the retry jitter and the reconnect backoff draw from the engine's own stream (and a
    hypothesis strategy drawn beside an engine in another thread sees no state change)."""
    import random

    from distsched.app.backoff import Backoff

    app = await distsched_app(f"memory://rand-{uuid.uuid4().hex}", functions={"fails": _always_fails})
    random.seed(1234)
    state = random.getstate()
    task = await app.wait(await app.submit("fails", retry={"max_attempts": 3, "delay": 0.01, "jitter": 0.5}),
                          timeout=20)
    assert task.state.value == "failed" and task.attempt == 3
    assert 0 < Backoff().next() <= 0.05
    assert random.getstate() == state
