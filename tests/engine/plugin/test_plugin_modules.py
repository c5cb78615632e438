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
