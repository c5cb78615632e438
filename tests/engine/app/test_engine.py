"""The composition root: what the engine builds through the plugin manager and hands to the
scheduler and the worker."""

from __future__ import annotations

import asyncio
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
