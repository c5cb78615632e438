"""The plugin is installed, registers what it says, and works inside a real engine."""

import json

from distsched_example import hooks

from distsched.model.events import TaskFinished
from distsched.testing import discovered_plugins


def test_plugin_is_installed():
    # The first test of every plugin: a wrong entry point fails here, not in production.
    assert "example" in discovered_plugins()


def test_it_registers_the_echo_executor_and_the_most_free_balancer(distsched_plugin_manager):
    pm = distsched_plugin_manager
    for registry, name in ((pm.executors, "echo"), (pm.balancers, "most-free")):
        registration = registry.get(name)
        assert registration.origin.plugin == "example"
        assert registration.origin.dist == "distsched-example"
    [info] = [item for item in pm.describe() if item["name"] == "example"]
    assert info["error"] is None
    assert info["provides"] == {"executor": ["echo"], "balancer": ["most-free"]}
    assert sorted(info["hooks"]) == [
        "distsched_configure", "distsched_event", "distsched_register_balancers", "distsched_register_executors",
    ]


async def test_echo_refuses_options_when_a_job_is_added(tmp_path):
    # The validator registered with the executor runs before anything is stored.
    import pytest

    from distsched import DistributeSchedule
    from distsched.model import ValidationError

    async with DistributeSchedule(f"memory://{tmp_path.name}") as app:
        with pytest.raises(ValidationError) as info:
            await app.add_job("e", every="1s", executor="echo", target="hi", options={"colour": "red"})
        assert str(info.value) == "job 'e': options.colour: the echo executor takes no options"
        assert await app.jobs() == []
        await app.add_job("e", every="1s", executor="echo", target="hi")
        assert [job.name for job in await app.jobs()] == ["e"]


def test_the_hooks_module_imports_nothing_heavy():
    # The executor, balancer and observer modules are imported by the factories, not here.
    assert hooks.__dict__.keys().isdisjoint({"EchoExecutor", "MostFreeBalancer", "append_event"})


def test_observer_appends_json_lines(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv(hooks.EVENTS_ENV, str(path))
    event = TaskFinished(at=1.5, task_id="t1", job="j", state="succeeded", attempt=1, duration=0.25)
    hooks.distsched_event(event)
    hooks.distsched_event(event)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [event.to_dict()] * 2
    assert json.loads(lines[0])["kind"] == "task.finished"


def test_observer_is_off_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(hooks.EVENTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    hooks.distsched_event(TaskFinished(at=0.0, task_id="t", job=None, state="failed", attempt=1, duration=0.0))
    assert list(tmp_path.iterdir()) == []


async def test_echo_and_most_free_in_an_engine(distsched_app, tmp_path, monkeypatch):
    # Scheduler and worker in this process on a private memory:// store, with the installed
    # plugins (entry points): the task is balanced by most-free and run by echo, and the
    # observer sees it finish. (distsched_app is an async fixture: asyncio_mode = "auto".)
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(hooks.EVENTS_ENV, str(events))
    app = await distsched_app()  # started; stopped (and its events flushed) below
    task_id = await app.submit("hello", 1, "two", kwargs={"three": [3]}, executor="echo", balancer="most-free")
    result = await app.result(task_id, timeout=10)
    await app.stop()
    assert result.outcome == "succeeded"
    assert result.value == {"target": "hello", "args": [1, "two"], "kwargs": {"three": [3]}}
    finished = [e for e in map(json.loads, events.read_text().splitlines()) if e["kind"] == "task.finished"]
    assert [(e["task_id"], e["state"]) for e in finished] == [(task_id, "succeeded")]


def test_distsched_plugins_shows_it(distsched_cli):
    result = distsched_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    [example] = [item for item in json.loads(result.output) if item["name"] == "example"]
    assert (example["dist"], example["version"]) == ("distsched-example", "0.1.0")


async def test_the_observer_reads_its_file_from_the_plugins_table(tmp_path, monkeypatch):
    # [plugins.example] events = "..." in the config file; EngineConfig.plugin_settings here.
    from distsched import DistributeSchedule

    monkeypatch.delenv(hooks.EVENTS_ENV, raising=False)
    events = tmp_path / "events.jsonl"
    app = DistributeSchedule(f"memory://{tmp_path.name}", plugin_settings={"example": {"events": str(events)}})
    async with app.running():
        task_id = await app.submit("hi", executor="echo", balancer="most-free")
        assert (await app.result(task_id, timeout=10)).outcome == "succeeded"
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert "task.finished" in kinds


async def test_a_typo_in_the_plugins_table_stops_the_engine(tmp_path):
    import pytest

    from distsched import DistributeSchedule
    from distsched.model import ValidationError

    app = DistributeSchedule(f"memory://{tmp_path.name}", plugin_settings={"example": {"event": "x.jsonl"}})
    with pytest.raises(ValidationError) as info:
        await app.start()
    await app.stop()
    assert str(info.value) == "[plugins.example] event: unknown setting (the example plugin reads: events)"
