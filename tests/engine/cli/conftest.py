"""Helpers for the tests that run `distsched` as real processes (distsched.testing.processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distsched.testing.processes import NodeProcess, wait_until


def line_matching(node: NodeProcess, pattern: str, timeout: float = 30.0) -> str:
    """The first line of ``node``'s log matching ``pattern``, waiting up to ``timeout`` s
    (WaitTimeout with the log otherwise)."""
    regex = re.compile(pattern)

    def found() -> str | None:
        return next((line for line in node.log_text().splitlines() if regex.search(line)), None)

    return wait_until(found, timeout, what=f"a line matching {pattern!r} from {node.name}", detail=node.log_text)


@pytest.fixture
def distsched_process(tmp_path: Path):
    """``distsched_process(name, *args, cwd=tmp_path)``: a started ``python -m distsched ARGS``
    (its output in ``<name>.log``), stopped after the test."""
    started: list[NodeProcess] = []

    def start(name: str, *args: str, cwd: Path | None = None) -> NodeProcess:
        node = NodeProcess(name, args, directory=cwd or tmp_path).start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop(timeout=30)


@pytest.fixture(name="line_matching")
def line_matching_fixture():
    """:func:`line_matching` as a fixture (test modules cannot import the conftest)."""
    return line_matching
