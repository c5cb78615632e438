"""`distsched -p MODULE`: a plugin module in the current directory is found by the
`distsched` console script too (a plugin author's probe: only `python -m distsched` found it,
as only it puts the current directory on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN = """
from distsched import hookimpl


class First:
    def select(self, task, workers, *, now, ttl):
        return workers[0] if workers else None


@hookimpl
def distsched_register_balancers(registry):
    registry.add("first-one", lambda: First(), description="the first worker")
"""


def test_the_console_script_finds_a_plugin_module_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "cwd_probe_plugin.py").write_text(PLUGIN)
    script = Path(sys.executable).with_name("distsched")
    assert script.exists(), script
    env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_PLUGINS"}
    assert str(tmp_path) not in env.get("PYTHONPATH", "")
    result = subprocess.run([str(script), "-p", "cwd_probe_plugin", "plugins"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cwd_probe_plugin" in result.stdout and "first-one" in result.stdout, result.stdout


OBSERVER = """
from distsched import hookimpl


@hookimpl
def distsched_event(event):
    pass
"""


def test_a_module_named_as_an_installed_plugin_is_refused_naming_both(tmp_path: Path) -> None:
    """`-p alerts` (a user's own alerts.py) once the built-in `alerts` plugin exists: pluggy
    refused the name with an ERROR holding a dump of every plugin module, and the command ran
    on without the user's module - without its observer, silently."""
    (tmp_path / "alerts.py").write_text(OBSERVER)
    env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_PLUGINS"}
    for args in (["plugins"], ["status", "--storage", "memory://"]):
        result = subprocess.run([sys.executable, "-m", "distsched", "-p", "alerts", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stdout + result.stderr
        assert ("Error: plugin module 'alerts' cannot be loaded as 'alerts': plugin 'alerts' (distsched "
                in result.stderr), result.stderr
        assert "has that name; give your module another name" in result.stderr
        assert "<module" not in result.stderr and "Traceback" not in result.stderr


def test_the_same_module_given_twice_is_loaded_once(tmp_path: Path) -> None:
    (tmp_path / "twice_plugin.py").write_text(PLUGIN)
    env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_PLUGINS"}
    result = subprocess.run([sys.executable, "-m", "distsched", "-p", "twice_plugin", "-p", "twice_plugin", "plugins"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first-one" in result.stdout and "ERROR" not in result.stderr, result.stdout + result.stderr
