"""Servers beside an engine: the distsched_serve hook and EngineConfig.serve."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.config import EngineConfig, parse_address
from distsched.model import ValidationError
from distsched.model import events as ev
from distsched.plugin.errors import PluginError


class Probe:
    """A third-party server plugin: serves ``probe``, observes the engine while it runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.events: list[str] = []
        self.closed = asyncio.Event()
        self.saw_services: bool | None = None

    @hookimpl
    def distsched_serve(self, engine, name, address):
        if name != "probe":
            return None
        self.calls.append((name, address))
        self.saw_services = engine.scheduler is not None or engine.worker is not None
        probe = self

        class Observer:
            @hookimpl
            def distsched_event(self, event):
                probe.events.append(event.kind)

        engine.plugins.register(Observer(), "probe-observer")

        class Handle:
            async def aclose(self):
                engine.plugins.unregister("probe-observer")
                probe.closed.set()

        return Handle()


def _app(plugin: Probe, **serve: str) -> DistributeSchedule:
    app = DistributeSchedule(f"memory://serve-{uuid.uuid4().hex}", plugins=[("probe", plugin)], serve=serve)

    @app.task
    def hello():
        return "hi"

    return app


async def test_a_plugin_serves_beside_the_engine_and_observes_it_only_while_running():
    probe = Probe()
    app = _app(probe, probe="127.0.0.1:0")
    assert not app.engine.events.active  # no observer before the server runs
    async with app.running():
        assert probe.calls == [("probe", "127.0.0.1:0")]
        assert probe.saw_services is False  # started before the scheduler and worker
        assert app.engine.events.active
        task_id = await app.submit("hello")
        assert (await app.result(task_id, timeout=5)).value == "hi"
    assert probe.closed.is_set()
    assert not app.engine.events.active  # the observer left with the server
    assert {"task.dispatched", "attempt.started", "task.finished"} <= set(probe.events)


async def test_nobody_serving_a_name_stops_the_engine_naming_it():
    app = _app(Probe(), nothing="127.0.0.1:0")
    with pytest.raises(PluginError, match="no plugin serves 'nothing'"):
        await app.start()
    await app.stop()


async def test_a_failing_server_plugin_is_named_and_nothing_keeps_running():
    class Broken:
        @hookimpl
        def distsched_serve(self, engine, name, address):
            if name == "other":
                raise OSError("address in use")

    probe = Probe()
    app = DistributeSchedule(f"memory://serve-{uuid.uuid4().hex}", plugins=[("probe", probe), ("broken", Broken())],
                             serve={"probe": "127.0.0.1:0", "other": "127.0.0.1:1"})
    with pytest.raises(PluginError, match="plugin 'broken'.*could not serve .*address in use"):
        await app.start()
    # the probe started first, and was closed when the next server failed
    assert probe.closed.is_set() and not app.engine.servers
    await app.stop()


@pytest.mark.parametrize(("serve", "field"), [
    ({"metrics": "localhost"}, "serve.metrics"), ({"metrics": "127.0.0.1:99999"}, "serve.metrics"),
    ({"metrics": ":80"}, "serve.metrics"), ({"bad name": "127.0.0.1:1"}, "serve"), (["x"], "serve"),
])
def test_bad_serve_settings_name_the_field(serve, field):
    with pytest.raises(ValidationError) as info:
        EngineConfig(storage="memory://", serve=serve)
    assert info.value.field == field


def test_parse_address():
    assert parse_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_address("[::1]:0") == ("::1", 0)
    with pytest.raises(ValidationError, match="--metrics"):
        parse_address("nope", "--metrics")


def test_plugins_registered_at_run_time_can_be_removed():
    app = DistributeSchedule("memory://", plugins=[("probe", Probe())])
    pm = app.plugins
    with pytest.raises(PluginError, match="already registered"):
        pm.register(object(), "probe")
    with pytest.raises(PluginError, match="cannot be unregistered"):
        pm.unregister("probe")
    pm.unregister("not-there")  # nothing to do

    class Observer:
        @hookimpl
        def distsched_event(self, event):
            pass

    pm.register(Observer(), "o")
    assert pm.has_observers
    pm.unregister("o")
    assert not pm.has_observers
    assert ev.LeaderElected(at=1, node_id="n", term=1).lease_seen_held_at is None
