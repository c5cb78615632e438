"""The process harness of distsched.testing: waiting with a deadline, percentiles, child and
node processes with their logs, and a Deployment on a real redis-server."""

from __future__ import annotations

import importlib.util
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from distsched.testing.processes import (
    ChildProcess,
    Deployment,
    NodeProcess,
    StoreServer,
    WaitTimeout,
    percentile,
    wait_until,
    wait_until_async,
)
from distsched.testing.redis_server import RedisServer, redis_server_binary

ROOT = Path(__file__).resolve().parents[3]
needs_redis = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")


def test_wait_until_returns_the_first_truthy_value():
    calls = []

    def third_time() -> str | None:
        calls.append(1)
        return "ready" if len(calls) >= 3 else None

    assert wait_until(third_time, 5, interval=0.001) == "ready"
    assert len(calls) == 3


def test_wait_until_names_what_it_waited_for_and_the_detail():
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 0.2s waiting for the moon\nlogs: none") as info:
        wait_until(lambda: 0, 0.2, what="the moon", interval=0.01, detail=lambda: "logs: none")
    assert 0.2 <= time.monotonic() - started < 5
    assert isinstance(info.value, AssertionError), "a test reports it as a failed expectation"


async def test_wait_until_async_awaits_the_predicate():
    seen = []

    async def fourth() -> int:
        seen.append(1)
        return len(seen) if len(seen) == 4 else 0

    assert await wait_until_async(fourth, 5, interval=0.001) == 4
    with pytest.raises(WaitTimeout, match="waiting for nothing"):
        await wait_until_async(_never, 0.05, what="nothing", interval=0.01)


async def _never() -> bool:
    return False


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(10, 0, -1)]  # unordered input: 10 .. 1
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 99) == 10.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.5], 99) == 3.5
    assert percentile([], 50) is None


def _python(tmp_path, code: str, log: str = "child.log") -> ChildProcess:
    return ChildProcess([sys.executable, "-c", code], tmp_path / log, cwd=tmp_path)


def test_a_child_that_exits_on_sigterm_is_stopped_gracefully(tmp_path):
    child = _python(tmp_path, "import time\nprint('ready', flush=True)\ntime.sleep(60)")
    wait_until(lambda: "ready" in child.log.read_text(), 20, what="the child", interval=0.01)
    assert child.alive()
    assert child.stop(timeout=10) == -signal.SIGTERM
    assert not child.forced and not child.alive()


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    child = _python(tmp_path, code)
    wait_until(lambda: "ready" in child.log.read_text(), 20, what="the child", interval=0.01)
    assert child.stop(timeout=0.3) == -signal.SIGKILL
    assert child.forced


class _Echo(NodeProcess):
    """Runs a small script instead of distsched (command() is the documented extension point)."""

    def command(self) -> list[str]:
        script = ("import os, sys; print('gen', sys.argv[1], 'storage', os.environ.get('DISTSCHED_STORAGE'), "
                  "'unbuffered', os.environ.get('PYTHONUNBUFFERED'), 'extra', os.environ.get('EXTRA'), "
                  "'cwd', os.getcwd())")
        return [sys.executable, "-c", script, str(self.gen)]


def test_each_start_is_a_generation_with_its_own_log(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTSCHED_STORAGE", "redis://secret@elsewhere/0")
    proc = _Echo("n1", directory=tmp_path, log_dir=tmp_path / "logs", env={"EXTRA": "x"},
                 log_name="{name}-g{gen}.log")
    (tmp_path / "logs").mkdir()
    assert proc.start().wait(20) == 0
    first = proc.pid
    assert proc.start().wait(20) == 0
    assert proc.gen == 2 and proc.pids == [first, proc.pid] and proc.log_path.name == "n1-g2.log"
    assert (tmp_path / "logs" / "n1-g1.log").read_text().split() == [
        "gen", "1", "storage", "None", "unbuffered", "1", "extra", "x", "cwd", str(tmp_path)]
    assert proc.log_text().split()[:2] == ["gen", "2"]


@needs_redis
def test_a_redis_server_is_a_store_server():
    assert isinstance(RedisServer(), StoreServer)  # not started: construction only checks the binary
    assert not isinstance(object(), StoreServer)


@needs_redis
@pytest.mark.redis
@pytest.mark.slow
def test_a_deployment_runs_nodes_on_its_store(tmp_path):
    with Deployment(RedisServer(), directory=tmp_path, url_options={"namespace": "dep"}) as dep:
        assert dep.url.endswith("?namespace=dep") and dep.store.running
        s1 = dep.spawn("s1", "-v", "scheduler", "--storage", dep.url, "--node-id", "s1")
        assert dep.wait_for(dep.leader, 30, "s1 to lead") == "s1"
        # The store names the leader a moment before s1 logs it: pausing s1 in between would
        # freeze it before the line the timeout message below must show.
        dep.wait_for(lambda: "leading with term" in s1.log_text(), 30, "s1 to log its leadership")
        s1.pause()
        assert s1.paused and s1.alive()
        with pytest.raises(WaitTimeout, match=r"(?s)waiting for the impossible.*--- s1\n.*leading with term"):
            dep.wait_for(lambda: False, 0.1, "the impossible")
        codes = dep.stop_all(timeout=20)
        assert codes == {s1: 0}, "a paused node is resumed, then stops gracefully on SIGTERM"
        assert dep.leader() is None, "it released its lease on the way out"
        store = dep.store
    assert not store.running, "closing the deployment stops the store"


@needs_redis
@pytest.mark.redis
@pytest.mark.slow
def test_the_plugins_page_sample_runs(tmp_path):
    page = (ROOT / "docs" / "plugins.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "Deployment(" in b]
    path = tmp_path / "plugins_md_processes_sample.py"
    path.write_text(block)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "run").mkdir()
    module.test_a_task_runs_on_real_processes(tmp_path / "run")
    assert (tmp_path / "run" / "w1.log").exists() and (tmp_path / "run" / "s1.log").exists()
