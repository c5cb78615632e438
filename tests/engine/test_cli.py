"""The distsched command, in-process (click) and as a real process."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_help_everywhere(distsched_cli):
    for args in (["--help"], ["run", "--help"], ["explain", "--help"], ["plugins", "--help"],
                 ["scheduler", "--help"], ["worker", "--help"], ["status", "--help"], ["jobs", "--help"],
                 ["jobs", "add", "--help"]):
        result = distsched_cli(*args)
        assert result.exit_code == 0 and "Usage:" in result.output, args


def test_plugins_lists_the_builtins_with_their_distribution(distsched_cli):
    data = json.loads(distsched_cli("plugins", "--json").output)
    by_name = {p["name"]: p for p in data}
    assert by_name["memory"]["provides"] == {"storage": ["memory"], "election": ["memory"]}
    assert by_name["local"]["provides"] == {"executor": ["local"]}
    assert sorted(by_name["balancers"]["provides"]["balancer"]) == ["consistent-hash", "least-tasks", "round-robin"]
    assert all(p["dist"] == "distsched" for p in by_name.values() if p["name"] in ("memory", "local", "balancers"))
    text = distsched_cli("plugins").output
    assert "memory" in text and "distsched 0.2.0.dev0" in text


def test_disable_plugin(distsched_cli):
    data = json.loads(distsched_cli("--disable-plugin", "balancers", "plugins", "--json").output)
    assert {p["name"]: p["disabled"] for p in data}["balancers"] is True


def test_explain_shows_utc_and_the_jobs_zone(distsched_cli):
    result = distsched_cli("explain", "examples/jobs.toml", "nightly-report", "-n", "2", "--after", "2026-03-28T12:00:00Z")
    assert result.exit_code == 0, result.output
    # 02:30 Paris does not exist on 2026-03-29 (spring forward): shifted to 03:30 CEST.
    assert "2026-03-29T01:30:00Z" in result.output and "2026-03-29T03:30:00+02:00" in result.output
    assert "2026-03-30T00:30:00Z" in result.output and "2026-03-30T02:30:00+02:00" in result.output
    data = json.loads(distsched_cli("explain", "examples/jobs.toml", "tick", "-n", "3", "--json").output)
    assert len(data[0]["slots"]) == 3
    missing = distsched_cli("explain", "examples/jobs.toml", "nope")
    assert missing.exit_code != 0 and "no job named 'nope'" in missing.output


def test_run_refuses_a_bad_file_naming_job_and_field(distsched_cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [[jobs]]
        name = "x"
        every = "1s"
        target = "u"
        executor = "htp"

        [[jobs]]
        name = "y"
        every = "1s"
        target = "nope"
    """))
    result = distsched_cli("run", str(bad), "--duration", "0")
    assert result.exit_code != 0
    assert "job 'x': executor 'htp' is not registered" in result.output
    assert "job 'y': target: function 'nope' is not registered" in result.output
    assert "2 problem(s)" in result.output


def test_a_capacity_under_the_concurrency_is_refused_before_the_worker_starts(distsched_cli, tmp_path):
    # it registered never, retrying the store's refusal forever
    result = distsched_cli("worker", "--storage", "memory://", "--concurrency", "8", "--capacity", "2")
    assert result.exit_code != 0 and "capacity: must be at least concurrency (8), not 2" in result.output
    jobs = tmp_path / "jobs.toml"  # each from its own source: the jobs file's [worker] table, the command line
    jobs.write_text('[worker]\ncapacity = 4\n\n[[jobs]]\nname = "x"\nevery = "1s"\ntarget = "x"\n')
    result = distsched_cli("run", str(jobs), "--concurrency", "9", "--duration", "0")
    assert result.exit_code != 0 and "capacity: must be at least concurrency (9), not 4" in result.output


def _distsched(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "distsched", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_the_readme_example_runs(tmp_path):
    """What the README promises: periodic successes, retries by policy, a timeout; exit 0."""
    proc = _distsched("run", "examples/jobs.toml", "--duration", "8")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    tick_ok = [line for line in lines if " tick " in line and "succeeded" in line]
    assert len(tick_ok) >= 3, out
    flaky = [line for line in lines if " flaky " in line]
    assert any("attempt 1" in line and "retry in 0.50s" in line for line in flaky), out
    assert any("attempt 2" in line and "retry in 1.00s" in line for line in flaky), out
    assert any("attempt 3" in line and "failed" in line and "retry" not in line for line in flaky), out
    assert any(" slow " in line and "timed_out" in line for line in lines), out
    assert any(" http-ping " in line and "succeeded" in line for line in lines), out
    assert "stopped:" in err


def test_sigterm_stops_run_cleanly():
    proc = _distsched("run", "examples/jobs.toml")
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "tick" in line:
            break
    assert "tick" in line
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped:" in err


@pytest.mark.parametrize("args, message", [
    (["run", "examples/jobs.toml", "--storage", "nosuch://x", "--duration", "0"], "no storage plugin handles nosuch://"),
    (["run", "examples/jobs.toml", "--storage", "localhost", "--duration", "0"], "must be a URL"),
])
def test_bad_storage_urls(distsched_cli, args, message):
    result = distsched_cli(*args)
    assert result.exit_code != 0 and message in result.output


def test_extra_plugin_modules_and_the_storage_env(distsched_cli, tmp_path, monkeypatch):
    (tmp_path / "my_observer_plugin.py").write_text(
        "from distsched import hookimpl\n"
        "@hookimpl\n"
        "def distsched_register_executors(registry):\n"
        "    registry.add('noop-x', lambda ctx: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = json.loads(distsched_cli("-p", "my_observer_plugin", "plugins", "--json").output)
    assert {p["name"]: p["provides"] for p in data}["my_observer_plugin"] == {"executor": ["noop-x"]}
    data = json.loads(distsched_cli("plugins", "--json", env={"DISTSCHED_PLUGINS": "my_observer_plugin"}).output)
    assert "my_observer_plugin" in {p["name"] for p in data}
    bad = distsched_cli("-p", "no_such_plugin_module", "plugins")
    assert bad.exit_code != 0 and "plugin module 'no_such_plugin_module' failed to import" in bad.output
    # DISTSCHED_STORAGE is the default storage URL.
    result = distsched_cli("run", "examples/jobs.toml", "--duration", "0", env={"DISTSCHED_STORAGE": "nosuch://x"})
    assert result.exit_code != 0 and "no storage plugin handles nosuch://" in result.output
