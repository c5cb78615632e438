"""The long-running commands in a process of their own freeze what start-up built
(distsched.cli.service.freeze_startup_objects); a command run inside another program does not."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.testing.processes import wait_until
from distsched.testing.redis_server import redis_server_binary

# A task that records, in the worker's own process, how many objects the collector has frozen.
PROBE = '''
import gc, os
from distsched import task

@task
def frozen():
    with open(os.environ["FREEZE_PROBE_OUT"], "a") as out:
        out.write(f"{gc.get_freeze_count()}\\n")
'''


def _probe(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "freeze_probe.py").write_text(PROBE)
    out = tmp_path / "frozen.txt"
    env = {**os.environ, "FREEZE_PROBE_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return out, env


def _counts(out: Path) -> list[int]:
    return [int(line) for line in out.read_text().split()] if out.exists() else []


def test_run_in_its_own_process_freezes_the_startup_objects(tmp_path: Path) -> None:
    out, env = _probe(tmp_path)
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[worker]\nimports = ["freeze_probe"]\n\n[[jobs]]\nname = "probe"\nevery = "0.2s"\ntarget = "frozen"\n')
    proc = subprocess.run([sys.executable, "-m", "distsched", "run", str(jobs), "--duration", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    counts = _counts(out)
    assert counts, proc.stderr
    # the interpreter, click, attrs, the plugins and the task module: thousands of objects
    assert min(counts) > 5_000, counts


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_a_worker_process_freezes_once_its_store_is_open(tmp_path: Path, redis_server: Any,
                                                         distsched_process: Any, monkeypatch: Any) -> None:
    out, env = _probe(tmp_path)
    monkeypatch.setenv("FREEZE_PROBE_OUT", env["FREEZE_PROBE_OUT"])  # the nodes inherit this environment
    url = f"{redis_server.url}?namespace=freeze-{uuid.uuid4().hex[:6]}"  # the server is the session's
    node = distsched_process("worker", "worker", "--storage", url, "--import", "freeze_probe")
    distsched_process("scheduler", "scheduler", "--storage", url)

    async def submit() -> None:
        app = DistributeSchedule(url)
        try:
            await app.submit("frozen")
        finally:
            await app.engine.close()

    asyncio.run(submit())
    counts = wait_until(lambda: _counts(out) or None, 30, what="the probe task's line", detail=node.log_text)
    assert counts[0] > 5_000, counts


def test_a_command_run_inside_another_program_leaves_its_collector_alone(distsched_cli: Any, tmp_path: Path,
                                                                        monkeypatch: Any) -> None:
    out, env = _probe(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FREEZE_PROBE_OUT", env["FREEZE_PROBE_OUT"])
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[worker]\nimports = ["freeze_probe"]\n\n[[jobs]]\nname = "probe"\nevery = "0.2s"\ntarget = "frozen"\n')
    before = gc.get_freeze_count()
    result = distsched_cli("run", str(jobs), "--duration", "0.7")
    assert result.exit_code == 0, result.output
    assert _counts(out), result.output  # the task ran, in this process
    assert set(_counts(out)) == {before} and gc.get_freeze_count() == before
