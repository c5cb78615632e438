"""A ``[worker]`` key that is neither an option of the worker nor a setting a loaded executor
declares (``registry.add(..., settings=[...])``) is refused with a did-you-mean, in a config
file, a jobs file and a worker started from Python. Before, ``concurency = 2`` and
``http_alow = [...]`` became executor settings that nothing read: a typo silently removed
the HTTP allow-list."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.config import WorkerConfig
from distsched.model import ValidationError
from distsched.plugin.manager import PluginManager
from distsched.testing.processes import wait_until

TYPOS = """
[worker]
concurency = 2
http_alow = ["10.0.0.0/8"]
"""


def _write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_a_typo_in_the_config_files_worker_table_is_refused(distsched_cli: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, "t.toml", TYPOS)
    result = distsched_cli("worker", "--config", path, "--show-config")
    assert result.exit_code == 1, result.output
    assert f"{path}: [worker] concurency, http_alow: unknown settings (" in result.output
    assert "concurency: did you mean 'concurrency'?" in result.output
    assert "http_alow: did you mean 'http_allow'?" in result.output
    assert "executor setting" not in result.output  # not listed as one
    # Spelled right, both are taken (as an option and as a setting the http executor declares).
    fixed = _write(tmp_path, "t.toml", TYPOS.replace("concurency", "concurrency").replace("http_alow", "http_allow"))
    shown = distsched_cli("worker", "--config", fixed, "--show-config")
    assert shown.exit_code == 0, shown.output
    assert "http_allow" in shown.output and "(executor setting, config file)" in shown.output


def test_a_typo_in_the_jobs_files_worker_table_is_refused(distsched_cli: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, "jobs.toml", '[worker]\nhttp_alow = ["10.0.0.0/8"]\n')
    result = distsched_cli("worker", "--jobs", path, "--show-config")
    assert result.exit_code == 1, result.output
    assert f"{path}: [worker] http_alow: unknown setting (did you mean 'http_allow'?" in result.output


def test_run_refuses_a_typo_before_it_starts(distsched_cli: Any, tmp_path: Path) -> None:
    """`distsched run` refuses it at once, naming the file, as the worker command does: it
    printed its start line and stored the jobs first, and failed as its worker started."""
    _write(tmp_path, "probe_typo_tasks.py", "from distsched import task\n\n@task\ndef noop():\n    pass\n")
    path = _write(tmp_path, "jobs.toml", '[worker]\nimports = ["probe_typo_tasks"]\nhttp_alow = ["10.0.0.0/8"]\n\n'
                                         '[[jobs]]\nname = "j"\nevery = "1h"\ntarget = "noop"\n')
    result = distsched_cli("run", path, "--duration", "5")
    assert result.exit_code == 1, result.output
    assert f"{path}: [worker] http_alow: unknown setting (did you mean 'http_allow'?" in result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output, result.output


def test_a_worker_started_from_python_refuses_a_typo() -> None:
    app = DistributeSchedule(f"memory://settings-{uuid.uuid4().hex[:8]}",
                             worker=WorkerConfig(settings={"http_alow": ["10.0.0.0/8"]}))

    async def main() -> None:
        async with app.running(scheduler=False):
            pass

    with pytest.raises(ValidationError, match=r"worker: \[worker\] http_alow: unknown setting \(did you mean 'http_allow'\?"):
        asyncio.run(main())


class _Undeclared:
    """A third-party executor that does not declare its settings (registered as before)."""

    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("acme", lambda context: None)


def test_an_executor_that_does_not_declare_its_settings_gets_a_warning_not_a_refusal(caplog) -> None:
    pm = PluginManager(plugins=[("acme", _Undeclared())])
    with caplog.at_level(logging.WARNING, logger="distsched.plugins"):
        pm.executors.check_settings({"acme_endpoint": "e", "http_allow": []}, where="worker")
    [record] = [r for r in caplog.records if "acme_endpoint" in r.getMessage()]
    assert "no executor declares this setting" in record.getMessage()
    assert "'acme' from" in record.getMessage()
    # Without it, the same key is a typo.
    with pytest.raises(ValidationError, match=r"\[worker\] acme_endpoint: unknown setting"):
        PluginManager().executors.check_settings({"acme_endpoint": "e"}, where="worker")


class _BadDeclaration:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("bad-settings", lambda context: None, settings="http_allow")


def test_settings_must_be_a_list_of_names() -> None:
    pm = PluginManager(plugins=[("bad", _BadDeclaration())])
    assert "settings must be a list of setting names" in (pm.plugins["bad"].error or "")


ACME_PLUGIN = """\
from distsched import hookimpl


@hookimpl
def distsched_register_executors(registry):
    registry.add("acme", lambda context: None)  # a third-party executor: no settings declared
"""

ACME_JOBS = """\
[worker]
acme_endpoint = "https://acme.example"

[[jobs]]
name = "j"
every = "1h"
executor = "acme"
target = "noop"
"""


def _unjudged_warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "acme_endpoint: no executor declares this setting" in line]


@pytest.mark.redis
def test_a_setting_no_executor_can_judge_is_warned_about_once_per_command(
        tmp_path: Path, distsched_process: Any, line_matching: Any, distsched_cli: Any, redis_server: Any) -> None:
    """Was (noticed by the last stop): `distsched run` (and `worker --jobs FILE`) warned twice
    about a `[worker]` key that an executor that does not declare its settings may read: once
    as the command checked the file before storing its jobs, once as its worker started.
    Once each now, naming the file; `scheduler --jobs FILE` and `jobs sync` as before. A real
    plugin (-p MODULE, the module in the processes' working folder) in real processes."""
    (tmp_path / "acme_plugin.py").write_text(ACME_PLUGIN)
    path = _write(tmp_path, "jobs.toml", ACME_JOBS)
    said = f"{path}: [worker] acme_endpoint: no executor declares this setting; executor(s) 'acme' from plugin "

    run = distsched_process("run", "-p", "acme_plugin", "run", path, "--duration", "0.3")
    assert run.wait(timeout=60) == 0, run.log_text()
    assert "stopped: " in run.log_text(), run.log_text()  # its worker started and stopped
    warnings = _unjudged_warnings(run.log_text())
    assert len(warnings) == 1 and said in warnings[0], run.log_text()

    url = redis_server.url_for(namespace=f"acme{uuid.uuid4().hex[:8]}")
    worker = distsched_process("worker", "-p", "acme_plugin", "worker", "--jobs", path, "--storage", url,
                               "--fail-fast")
    line_matching(worker, r"^worker on ")

    def registered() -> bool:
        status = distsched_cli("status", "--storage", url, "--json")
        return status.exit_code == 0 and bool(json.loads(status.stdout)["workers"])

    wait_until(registered, 30, what="the worker registered (after its start's settings check)",
               detail=worker.log_text)
    worker.stop()
    warnings = _unjudged_warnings(worker.log_text())
    assert len(warnings) == 1 and said in warnings[0], worker.log_text()

    scheduler = distsched_process("scheduler", "-p", "acme_plugin", "scheduler", "--jobs", path, "--storage", url,
                                  "--fail-fast")
    line_matching(scheduler, r"^scheduler \S+ on ")  # after its sync
    scheduler.stop()
    assert len(_unjudged_warnings(scheduler.log_text())) == 1, scheduler.log_text()
    sync = distsched_process("sync", "-p", "acme_plugin", "jobs", "sync", path, "--storage", url)
    assert sync.wait(timeout=60) == 0, sync.log_text()
    assert len(_unjudged_warnings(sync.log_text())) == 1, sync.log_text()


def test_settings_the_app_accepted_are_not_checked_again_as_its_worker_starts(caplog: Any) -> None:
    """The same from Python: ``check_worker_settings`` before the worker starts (as the
    commands do) is the one warning; settings not checked before are checked at the start."""

    async def main(app: DistributeSchedule) -> None:
        async with app.running(scheduler=False):
            pass

    settings = {"acme_endpoint": "e"}
    for checked_before in (True, False):
        caplog.clear()
        app = DistributeSchedule(f"memory://settings-{uuid.uuid4().hex[:8]}", plugins=[("acme", _Undeclared())],
                                 worker=WorkerConfig(settings=settings))
        with caplog.at_level(logging.WARNING, logger="distsched.plugins"):
            if checked_before:
                app.check_worker_settings(settings, where="jobs.toml")
            asyncio.run(main(app))
        said = [r.getMessage() for r in caplog.records if "acme_endpoint" in r.getMessage()]
        assert len(said) == 1, (checked_before, said)
        assert said[0].startswith("jobs.toml: " if checked_before else "worker: "), said



ACME_CONFIG = """\
[worker]
acme_token_file = "/etc/acme/token"
"""


def _warned_about(key: str, text: str) -> list[str]:
    """The WARNING lines naming ``key`` as a setting no executor declares."""
    return [line.split(" WARNING distsched.plugins: ", 1)[-1] for line in text.splitlines()
            if "no executor declares" in line and (f"] {key}:" in line or f"] {key}," in line or f", {key}:" in line)]


@pytest.mark.redis
def test_a_setting_no_executor_can_judge_is_warned_about_once_whatever_its_source(
        tmp_path: Path, distsched_process: Any, distsched_cli: Any, redis_server: Any) -> None:
    """Was (left by the last fix): `worker --config C --jobs F` warned about the jobs file's
    key twice (once naming F, once more as `worker:` at its start, with the config file's key)
    and about the config file's key only as `worker:`, not naming the file; `worker --config
    C` alone the same. Once per key now, before the worker starts, each naming the file the
    worker takes it from (the config file when both have it: its value is the one used).
    Real processes; each worker is stopped once it registered (its start's check is behind)."""
    (tmp_path / "acme_plugin.py").write_text(ACME_PLUGIN)
    jobs = _write(tmp_path, "jobs.toml", ACME_JOBS)
    config = _write(tmp_path, "distsched-worker.toml", ACME_CONFIG)
    both = _write(tmp_path, "both.toml", ACME_CONFIG + 'acme_endpoint = "https://acme.internal"\n')

    def worker_log(name: str, *args: str) -> str:
        url = redis_server.url_for(namespace=f"acme{uuid.uuid4().hex[:8]}")
        worker = distsched_process(name, "-p", "acme_plugin", "worker", *args, "--storage", url, "--fail-fast")

        def registered() -> bool:
            status = distsched_cli("status", "--storage", url, "--json")
            return status.exit_code == 0 and bool(json.loads(status.stdout)["workers"])

        wait_until(registered, 30, what=f"worker {name} registered", detail=worker.log_text)
        worker.stop()
        return worker.log_text()

    said = "[worker] {}: no executor declares this setting; executor(s) 'acme' from plugin 'acme_plugin' "
    text = worker_log("both-sources", "--config", config, "--jobs", jobs)
    assert _warned_about("acme_endpoint", text) == [f"{jobs}: " + said.format("acme_endpoint") + ANY_TAIL], text
    assert _warned_about("acme_token_file", text) == [f"{config}: " + said.format("acme_token_file") + ANY_TAIL], text

    text = worker_log("config-only", "--config", config)
    assert _warned_about("acme_token_file", text) == [f"{config}: " + said.format("acme_token_file") + ANY_TAIL], text

    text = worker_log("in-both", "--config", both, "--jobs", jobs)  # the config file's value is the one used
    [line] = _warned_about("acme_endpoint", text)
    assert line.startswith(f"{both}: [worker] acme_endpoint, acme_token_file: no executor declares these settings"), text
    assert _warned_about("acme_token_file", text) == [line], text


#: The rest of the warning: who may read the setting, and what a typo does.
ANY_TAIL = "do not declare their settings and may read it - a typo is read by nothing"


def test_a_value_the_worker_refuses_in_the_config_file_is_refused_naming_it_before_the_worker_starts(
        distsched_cli: Any, tmp_path: Path) -> None:
    """The config file's executor settings are checked with the jobs file's before the worker
    starts, each named by its file: a bad `http_allow` entry in the config file was refused
    only as the worker started (after its start line), as `worker: [worker] http_allow: ...`."""
    path = _write(tmp_path, "distsched.toml", '[worker]\nhttp_allow = ["not a host!"]\n')
    result = distsched_cli("worker", "--config", path, "--storage", f"memory://cfg-{uuid.uuid4().hex[:8]}")
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {path}: [worker] http_allow: 'not a host!' is not a host name"), \
        result.output
