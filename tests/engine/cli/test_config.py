"""Deployable services (issue 17.6): options from a config file and the environment
(command line > environment > config file > jobs file table > default), and roles that wait
for an unreachable store instead of exiting (`--fail-fast` for the old behaviour)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from distsched.jobs import load_jobs_file
from distsched.testing.redis_server import RedisServer, free_port, redis_server_binary

CONFIG = """
storage = "redis://:s3cret@127.0.0.1:1/0"

[scheduler]
jobs = "jobs.toml"
lease_ttl = "20s"
renew_interval = 5
node_id = "from-file"

[worker]
concurrency = 3
imports = ["cfg_tasks"]
http_allow = ["127.0.0.1"]
"""

JOBS = """
[scheduler]
heartbeat_ttl = "30s"
lease_ttl = 15

[worker]
capacity = 100
heartbeat_interval = "1s"
concurrency = 2

[[jobs]]
name = "a"
every = "1s"
target = "x"
"""


def _shown(output: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in output.splitlines():
        key, rest = line.split(None, 1)
        value, source = rest.rsplit("(", 1)
        out[key] = (value.strip(), source.rstrip(")"))
    return out


@pytest.fixture
def deploy_dir(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "distsched.toml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "etc" / "jobs.toml").write_text(textwrap.dedent(JOBS))
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DISTSCHED_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_scheduler_options_flags_over_environment_over_file_over_jobs_file(distsched_cli, deploy_dir):
    result = distsched_cli("scheduler", "--config", "etc/distsched.toml", "--show-config", "--node-id", "n1",
                           env={"DISTSCHED_SCHEDULER_RENEW_INTERVAL": "4"})
    assert result.exit_code == 0, result.output
    shown = _shown(result.stdout)
    assert shown["node_id"] == ("n1", "command line")
    assert shown["renew_interval"] == ("4.0", "environment")
    assert shown["lease_ttl"] == ("20.0", "etc/distsched.toml [scheduler]")  # the file beats the jobs file
    assert shown["heartbeat_ttl"] == ("30.0", "etc/jobs.toml [scheduler]")  # relative to the config file
    assert shown["jobs"] == ("etc/jobs.toml", "etc/distsched.toml [scheduler]")
    assert shown["prune"] == ("False", "default")
    assert shown["storage"][0] == "redis://:***@127.0.0.1:1/0", "the password is never shown"
    # $DISTSCHED_STORAGE beats the file; DISTSCHED_CONFIG names the file.
    result = distsched_cli("scheduler", "--show-config",
                           env={"DISTSCHED_CONFIG": "etc/distsched.toml", "DISTSCHED_STORAGE": "memory://env"})
    assert _shown(result.stdout)["storage"] == ("memory://env", "environment")


def test_worker_options_and_executor_settings_from_the_files(distsched_cli, deploy_dir):
    result = distsched_cli("worker", "--config", "etc/distsched.toml", "--show-config", "--jobs", "etc/jobs.toml")
    assert result.exit_code == 0, result.output
    shown = _shown(result.stdout)
    assert shown["concurrency"] == ("3", "etc/distsched.toml [worker]")
    assert shown["capacity"] == ("100", "etc/jobs.toml [worker]")
    assert shown["heartbeat_interval"] == ("1.0", "etc/jobs.toml [worker]")
    assert shown["imports"] == ("cfg_tasks", "etc/distsched.toml [worker]")
    assert shown["http_allow"][1] == "executor setting, config file"
    # ./distsched.toml is read when no --config is given.
    (deploy_dir / "distsched.toml").write_text('[worker]\nconcurrency = 7\n')
    assert _shown(distsched_cli("worker", "--show-config").stdout)["concurrency"] == ("7", "distsched.toml [worker]")
    # The jobs file with its [scheduler] table still loads (its options are not executor settings).
    loaded = load_jobs_file(deploy_dir / "etc" / "jobs.toml")
    assert "heartbeat_interval" not in loaded.worker.settings and loaded.worker.capacity == 100


def test_durations_take_units_from_every_source(distsched_cli, deploy_dir):
    """docs/cli.md: "Durations take units or numbers of seconds", for the four sources of
    options; the command line and the environment took numbers only (`'20s' is not a valid
    float range`), and a config file's "0s" for the drain was held to an interval's range."""
    result = distsched_cli("scheduler", "--show-config", "--lease-ttl", "20s", env={
        "DISTSCHED_SCHEDULER_RENEW_INTERVAL": "500ms"})
    assert result.exit_code == 0, result.output
    shown = _shown(result.stdout)
    assert shown["lease_ttl"] == ("20.0", "command line") and shown["renew_interval"] == ("0.5", "environment")
    (deploy_dir / "distsched.toml").write_text('[worker]\ndrain_timeout = "0s"\n')
    worker = distsched_cli("worker", "--show-config", "--heartbeat-interval", "1m")
    assert worker.exit_code == 0, worker.output
    shown = _shown(worker.stdout)
    assert shown["drain_timeout"] == ("0.0", "distsched.toml [worker]") and shown["heartbeat_interval"][0] == "60.0"
    for bad, why in (("1x", "must be a duration such as '10s'"), ("0.1", "0.1 is not in the range 0.2<=x<=3600")):
        refused = distsched_cli("scheduler", "--show-config", "--lease-ttl", bad)
        assert refused.exit_code == 2 and why in refused.output, refused.output


@pytest.mark.parametrize("body, message", [
    ('[scheduler]\nlease_ttl = "abc"\n', "distsched.toml: [scheduler] lease_ttl: "),
    ('[scheduler]\nlease_tl = 5\n', "[scheduler] lease_tl: unknown option (did you mean 'lease_ttl'?)"),
    ('[schedular]\nlease_ttl = 5\n', "unknown top-level key 'schedular' (did you mean 'scheduler'?)"),
    ('[scheduler]\nprune = "yes"\n', "[scheduler] prune: must be true or false"),
    ('[scheduler]\nlease_ttl = 99999\n', "[scheduler] lease_ttl: "),
    ('[scheduler\n', "distsched.toml: invalid TOML"),
])
def test_a_bad_config_value_names_the_file_table_and_key(distsched_cli, deploy_dir, body, message):
    (deploy_dir / "distsched.toml").write_text(body)
    result = distsched_cli("scheduler", "--show-config")
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_roles_wait_for_a_store_that_comes_up_later(tmp_path, distsched_process, line_matching):
    (tmp_path / "cfg_tasks.py").write_text("from distsched import task\n\n@task\ndef ping():\n    return 'pong'\n")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0?namespace=late"
    scheduler = distsched_process("scheduler", "-v", "scheduler", "--storage", url)
    worker = distsched_process("worker", "-v", "worker", "--storage", url, "--import", "cfg_tasks")
    for node in (scheduler, worker):
        line_matching(node, rf"{node.name}: store redis://127.0.0.1:{port}/0\?namespace=late unreachable \(attempt 1: ")
        line_matching(node, r"unreachable \(attempt 2: .*retrying in \d+\.\ds \(--fail-fast to exit instead\)")
    server = RedisServer(port=port).start()
    try:
        line_matching(scheduler, r"scheduler: store .* reachable after \d+ attempts")
        line_matching(scheduler, r"leading with term")
        line_matching(worker, r"worker: store .* reachable after \d+ attempts")
        line_matching(worker, r"registered")
        assert scheduler.alive() and worker.alive()
        assert worker.stop() == 0 and scheduler.stop() == 0
    finally:
        server.stop()


def test_fail_fast_exits_with_the_error(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run([sys.executable, "-m", "distsched", "scheduler", "--storage", url, "--fail-fast"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "could not open" in result.stderr and "Traceback" not in result.stderr and "retrying" not in result.stderr


def test_a_store_that_refuses_is_not_retried(tmp_path):
    result = subprocess.run([sys.executable, "-m", "distsched", "worker", "--storage", "nosuch://x"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no storage plugin handles nosuch://" in result.stderr
    assert "retrying" not in result.stderr


def test_shell_completion_as_documented(tmp_path):
    env = {**os.environ, "_DISTSCHED_COMPLETE": "bash_source"}
    exe = os.path.join(os.path.dirname(sys.executable), "distsched")
    source = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "_distsched_completion()" in source.stdout and "complete " in source.stdout
    env = {**os.environ, "_DISTSCHED_COMPLETE": "bash_complete", "COMP_WORDS": "distsched scheduler --lea", "COMP_CWORD": "2"}
    words = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout
    assert "plain,--lease-ttl" in words.split()
    env["COMP_WORDS"], env["COMP_CWORD"] = "distsched jobs sy", "2"
    assert "plain,sync" in subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout.split()
