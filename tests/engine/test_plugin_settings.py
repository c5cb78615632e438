"""Settings for any plugin: ``[plugins.<name>]`` tables of the config file, or
``EngineConfig.plugin_settings``, read through the ``distsched_configure(config)`` hook by an
observer, a balancer factory, a server - not only by an executor (``[worker]``)."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.config import EngineConfig
from distsched.model import ValidationError
from distsched.model.events import Event

CLI_TIMEOUT = 60


class Notify:
    """A third-party "notify on failure" plugin: its webhook and its filter come from its table."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] | None = None
        self.configured = 0
        self.seen: list[str] = []
        self.balancer_settings: list[dict[str, Any]] = []

    @hookimpl
    def distsched_configure(self, config: EngineConfig) -> None:
        table = config.plugin_settings.get("notify", {})
        url = table.get("webhook_url", "")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationError("webhook_url", "must be an http(s) URL")
        self.settings = table
        self.configured += 1

    @hookimpl
    def distsched_event(self, event: Event) -> None:
        assert self.settings is not None, "an event came before distsched_configure"
        if event.kind in self.settings.get("kinds", ()):
            self.seen.append(event.kind)

    @hookimpl
    def distsched_register_balancers(self, registry: Any) -> None:
        registry.add("notify-first", self._balancer)

    def _balancer(self) -> Any:
        assert self.settings is not None, "a balancer was built before distsched_configure"
        self.balancer_settings.append(dict(self.settings))
        return First()


class First:
    def select(self, task: Any, workers: Any, *, now: float, ttl: float) -> Any:
        return next((w for w in sorted(workers, key=lambda w: w.id) if w.can_accept(now, ttl)), None)


def _app(plugin: Any, settings: dict[str, Any], **kw: Any) -> DistributeSchedule:
    return DistributeSchedule("memory://", plugins=[("notify", plugin)], plugin_settings=settings, **kw)


# -- the Python API: EngineConfig.plugin_settings ------------------------------------------
def test_a_table_that_is_not_a_table_is_refused_naming_it():
    with pytest.raises(ValidationError, match=r"\[plugins\.notify\]: must be a table"):
        EngineConfig(plugin_settings={"notify": "https://hooks.example"})


@pytest.mark.parametrize("value", [datetime.date(2026, 1, 1), {1, 2}, float("nan"), {"a": {3: "x"}}])
def test_a_value_that_is_not_json_is_refused_naming_the_key(value):
    with pytest.raises(ValidationError, match=r"\[plugins\.notify\] extra: .*not JSON"):
        EngineConfig(plugin_settings={"notify": {"webhook_url": "https://x", "extra": value}})


def test_a_secret_value_is_never_in_the_configs_repr():
    config = EngineConfig(plugin_settings={"notify": {"webhook_url": "https://x", "api_token": "s3cret-t0ken"}})
    assert "s3cret-t0ken" not in repr(config)
    assert "api_token" in repr(config)


async def test_hook_distsched_configure_serves_an_observer_and_a_balancer_factory():
    plugin = Notify()
    app = _app(plugin, {"notify": {"webhook_url": "https://hooks.example/x", "kinds": ["task.finished"]}})
    app.task(name="ok")(lambda: 1)
    async with app.running():
        task_id = await app.submit("ok", balancer="notify-first")
        result = await app.result(task_id, timeout=30)
        assert result.outcome == "succeeded"
    assert plugin.configured == 1  # once per engine, before anything else used the plugin
    assert plugin.balancer_settings and plugin.balancer_settings[0]["webhook_url"] == "https://hooks.example/x"
    assert plugin.seen == ["task.finished"]


class OnDemand:
    """A plugin whose observer exists only when its table asks for it: registered through the
    ``plugins`` argument of distsched_configure, on that engine alone."""

    def __init__(self) -> None:
        self.finished: list[Event] = []

    @hookimpl
    def distsched_configure(self, config: EngineConfig, plugins: Any) -> None:
        if config.plugin_settings.get("ondemand", {}).get("observe"):
            owner = self

            class Observer:
                @hookimpl
                def distsched_event(self, event: Event) -> None:
                    if event.kind == "task.finished":
                        owner.finished.append(event)

            plugins.register(Observer(), "ondemand-observer")


async def test_distsched_configure_may_register_an_observer_for_its_engine_only():
    def boom() -> None:
        raise KeyError("gone")

    plugin = OnDemand()
    idle = DistributeSchedule("memory://", plugins=[("ondemand", plugin)])
    async with idle.running():
        assert not idle.engine.events.active  # nobody observes: no events are built
    app = DistributeSchedule("memory://", plugins=[("ondemand", plugin)], plugin_settings={"ondemand": {"observe": True}})
    app.task(name="boom")(boom)
    async with app.running():
        assert app.engine.events.active
        task = await app.wait(await app.submit("boom"), timeout=30)
        for _ in range(200):  # events are delivered off the scheduling path
            if plugin.finished:
                break
            await asyncio.sleep(0.01)
    [finished] = plugin.finished
    assert (finished.state, finished.worker_id, finished.error_type) == ("failed", task.worker_id, "KeyError")


async def test_a_plugin_refusing_its_table_stops_the_engine_naming_the_table_and_key():
    app = _app(Notify(), {"notify": {"webhook_url": "ftp://nope"}})
    with pytest.raises(ValidationError) as caught:
        await app.start()
    await app.stop()
    assert str(caught.value) == "[plugins.notify] webhook_url: must be an http(s) URL"


async def test_a_table_for_no_loaded_plugin_is_a_warning_and_a_disabled_ones_is_not(caplog):
    caplog.set_level(logging.WARNING, "distsched")
    settings = {"notify": {"webhook_url": "https://x"}, "notfy": {"webhook_url": "https://y"},
                "balancers": {"anything": 1}}
    app = _app(Notify(), settings, disabled_plugins=["balancers"])
    await app.storage()
    await app.engine.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("[plugins.notfy]" in w and "did you mean 'notify'" in w for w in warnings), warnings
    assert not any("[plugins.balancers]" in w for w in warnings), warnings


# -- the config file, through real processes ------------------------------------------------
PLUGIN = '''
import json
from distsched import hookimpl

SETTINGS = {}

@hookimpl
def distsched_configure(config):
    table = config.plugin_settings.get("notify_plugin", {})
    if not str(table.get("webhook_url", "")).startswith("https://"):
        from distsched.model import ValidationError
        raise ValidationError("webhook_url", "must be an https URL")
    SETTINGS.update(table)

@hookimpl
def distsched_event(event):
    if event.kind in SETTINGS.get("kinds", ()):
        with open(SETTINGS["out"], "a") as out:
            out.write(json.dumps({"kind": event.kind, "url": SETTINGS["webhook_url"]}) + "\\n")
'''


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DISTSCHED_")}
    return subprocess.run([sys.executable, "-m", "distsched", "-p", "notify_plugin", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)


def _config(tmp_path: Path, text: str) -> str:
    (tmp_path / "notify_plugin.py").write_text(PLUGIN)
    (tmp_path / "d.toml").write_text(textwrap.dedent(text))
    return "d.toml"


def test_plugins_shows_which_plugins_have_settings_from_the_file_keys_only(tmp_path):
    config = _config(tmp_path, """
        [plugins.notify_plugin]
        webhook_url = "https://hooks.example/T0/B0/xyz"
        api_token = "s3cret-t0ken"

        [plugins.metrics]
        max_jobs = 5
        """)
    proc = _cli(tmp_path, "plugins", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert "s3cret-t0ken" not in proc.stdout + proc.stderr
    assert "hooks.example" not in proc.stdout + proc.stderr
    block = proc.stdout.split("notify_plugin", 1)[1]
    assert "settings   d.toml: api_token, webhook_url" in block
    proc = _cli(tmp_path, "plugins", "--json", "--config", config)
    data = {item["name"]: item for item in json.loads(proc.stdout)}
    assert data["notify_plugin"]["settings"] == ["api_token", "webhook_url"]
    assert data["metrics"]["settings"] == ["max_jobs"]
    assert data["local"]["settings"] is None
    assert "s3cret-t0ken" not in proc.stdout


@pytest.mark.parametrize("text, message", [
    ("[plugins]\nnotify_plugin = 3\n",
     "d.toml: 1 problem(s):\n  - [plugins.notify_plugin]: must be a table ([plugins.notify_plugin]), not int"),
    ("plugins = 3\n", "d.toml: 1 problem(s):\n  - plugins: must be a table ([plugins])"),
    ("[plugins.notify_plugin]\nwebhook_url = \"https://x\"\nwhen = 2026-01-01\n",
     "d.toml: 1 problem(s):\n  - [plugins.notify_plugin] when: a TOML date or time is not JSON (quote it)"),
    ("[plugins.notify_plugin]\nwebhook_url = \"ftp://x\"\n",
     "[plugins.notify_plugin] webhook_url: must be an https URL"),
])
def test_a_bad_plugin_table_stops_the_scheduler_with_one_line(tmp_path, text, message):
    config = _config(tmp_path, text)
    proc = _cli(tmp_path, "scheduler", "--config", config, "--fail-fast")
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_scheduler_observer_reads_its_table_from_the_config_file(tmp_path):
    out = tmp_path / "notified.jsonl"
    config = _config(tmp_path, f"""
        [plugins.notify_plugin]
        webhook_url = "https://hooks.example/x"
        kinds = ["leader.elected"]
        out = {json.dumps(str(out))}

        [plugins.notfy_plugin]
        x = 1
        """)
    proc = subprocess.Popen([sys.executable, "-m", "distsched", "-p", "notify_plugin", "scheduler", "--config",
                             config], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from distsched.testing.processes import wait_until

        wait_until(lambda: out.exists() and out.read_text().strip(), 30, what="the observer's line")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=CLI_TIMEOUT)
    assert json.loads(out.read_text().splitlines()[0]) == {"kind": "leader.elected", "url": "https://hooks.example/x"}
    assert "[plugins.notfy_plugin]" in stderr and "did you mean 'notify_plugin'" in stderr


def test_show_config_lists_plugin_tables_with_secrets_masked(tmp_path):
    config = _config(tmp_path, """
        [plugins.notify_plugin]
        webhook_url = "https://hooks.example/x"
        api_token = "s3cret-t0ken"
        """)
    proc = _cli(tmp_path, "worker", "--config", config, "--show-config")
    assert proc.returncode == 0, proc.stderr
    assert "s3cret-t0ken" not in proc.stdout
    assert "[plugins.notify_plugin] api_token" in proc.stdout and "***" in proc.stdout


def test_show_config_masks_a_webhook_urls_token_path(tmp_path):
    """``[plugins.alerts] webhook_urls``: a Slack or Mattermost webhook URL's path is its
    token. ``--show-config`` showed it whole (only keys named like a secret were masked);
    now its scheme, host and port, the path as ``/***`` - the other settings as they are."""
    config = _config(tmp_path, """
        [plugins.alerts]
        webhook_urls = ["https://hooks.slack.com/services/T0AAAA/B0BBBB/Zq8rT2vX9kLmN4pQ7sW1yB3c",
                        "https://chat.example.com/hooks/xkq9z8abc7defgh6ijk5lmno4p"]
        dashboard_url = "https://distsched.example.com"
        """)
    proc = _cli(tmp_path, "scheduler", "--config", config, "--show-config")
    assert proc.returncode == 0, proc.stderr
    assert "Zq8rT2vX9kLmN4pQ7sW1yB3c" not in proc.stdout and "xkq9z8abc7" not in proc.stdout
    assert "T0AAAA" not in proc.stdout
    lines = {line.split(" = ")[0]: line for line in proc.stdout.splitlines() if line.startswith("[plugins.alerts]")}
    assert lines["[plugins.alerts] webhook_urls"].startswith(
        '[plugins.alerts] webhook_urls = ["https://hooks.slack.com/***", "https://chat.example.com/***"] ('), lines
    assert '[plugins.alerts] dashboard_url = "https://distsched.example.com" (' in lines["[plugins.alerts] dashboard_url"]


# -- the jobs file's [plugins.<name>] tables ------------------------------------------------
JOBS = '''
[worker]
imports = ["notify_tasks"]

[[jobs]]
name = "tick"
every = "1h"
target = "tick"
'''


def _jobs(tmp_path: Path, text: str) -> str:
    (tmp_path / "notify_tasks.py").write_text("from distsched import task\n\n@task\ndef tick():\n    return 1\n")
    (tmp_path / "j.toml").write_text(textwrap.dedent(text) + JOBS)
    return "j.toml"


def test_run_gives_the_jobs_files_plugin_tables_to_its_plugins(tmp_path):
    """`distsched run FILE` reads no config file: a plugin's table in the jobs file is how it
    is configured there (before, the jobs file refused a `plugins` key)."""
    out = tmp_path / "notified.jsonl"
    _config(tmp_path, "")
    _jobs(tmp_path, f"""
        [plugins.notify_plugin]
        webhook_url = "https://hooks.example/run"
        kinds = ["leader.elected"]
        out = {json.dumps(str(out))}
        """)
    proc = _cli(tmp_path, "run", "j.toml", "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text().splitlines()[0]) == {"kind": "leader.elected", "url": "https://hooks.example/run"}


def test_a_bad_plugin_table_in_the_jobs_file_is_one_of_its_problems(tmp_path):
    _config(tmp_path, "")
    _jobs(tmp_path, "[plugins.notify_plugin]\nwebhook_url = \"https://x\"\nwhen = 2026-01-01\n")
    proc = _cli(tmp_path, "run", "j.toml", "--duration", "1")
    assert proc.returncode == 1, proc.stderr
    assert "j.toml: 1 problem(s):\n  - [plugins.notify_plugin] when: a TOML date or time is not JSON (quote it)" \
        in proc.stderr
    assert "2026-01-01" not in proc.stderr and "Traceback" not in proc.stderr


def test_the_config_files_plugin_table_wins_over_the_jobs_files_key_by_key(tmp_path):
    config = _config(tmp_path, """
        [plugins.notify_plugin]
        webhook_url = "https://config.example/hook"
        """)
    _jobs(tmp_path, """
        [plugins.notify_plugin]
        webhook_url = "https://jobs.example/hook"
        kinds = ["leader.elected"]
        """)
    proc = _cli(tmp_path, "scheduler", "--config", config, "--jobs", "j.toml", "--show-config")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[plugins.")]
    assert lines == ['[plugins.notify_plugin] kinds = ["leader.elected"] (plugin setting, j.toml)',
                     # (a webhook URL's path is masked: mask_settings)
                     '[plugins.notify_plugin] webhook_url = "https://config.example/***" (plugin setting, '
                     f"{config})"], proc.stdout
