"""The plugin API type-checks: the example third-party plugin passes ``mypy --strict``
against distsched's public types, and a plugin that misuses them does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugins" / "distsched-example" / "src" / "distsched_example"

pytest.importorskip("mypy", reason="mypy is in the dev extra")

MISUSE = '''
from distsched import hookimpl
from distsched.model import Outcome, Task
from distsched.ports import ExecutorContext
from distsched.registry import BalancerRegistry, ExecutorRegistry


@hookimpl
def distsched_register_executors(registry: ExecutorRegistry) -> None:
    registry.add("bad", 42)                                  # not a factory


@hookimpl
def distsched_register_balancers(registry: BalancerRegistry) -> None:
    registry.add("bad", lambda: None, replace="yes")          # not a bool


class Bad:
    def __init__(self, context: ExecutorContext) -> None:
        self.f = context.functions.get("x")                   # FunctionLookup has function(), not get()

    async def run(self, task: Task) -> Outcome:
        return Outcome.success(task.spec.no_such_field)
'''


def _mypy(tmp_path: Path, *targets: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         *map(str, targets)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_the_example_plugin_type_checks_strictly_against_the_public_api(tmp_path: Path) -> None:
    proc = _mypy(tmp_path, EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_plugin_misusing_the_api_fails_the_type_check(tmp_path: Path) -> None:
    bad = tmp_path / "distsched_bad_plugin.py"
    bad.write_text(MISUSE)
    proc = _mypy(tmp_path, bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout
    assert 'Argument 2 to "add" of "ExecutorRegistry" has incompatible type "int"' in lines, lines
    assert 'Argument "replace" to "add" of "Registry" has incompatible type "str"' in lines, lines
    assert '"FunctionLookup" has no attribute "get"' in lines, lines
    assert '"TaskSpec" has no attribute "no_such_field"' in lines, lines
