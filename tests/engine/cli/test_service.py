"""The long-running commands in a process of their own freeze what start-up built
(distsched.cli.service.freeze_startup_objects); a command run inside another program does not."""

from __future__ import annotations

import asyncio
import gc
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


# A jobs file whose one job runs the probe every 0.2 s, in the process that runs the jobs.
JOBS = '[worker]\nimports = ["freeze_probe"]\n\n[[jobs]]\nname = "probe"\nevery = "0.2s"\ntarget = "frozen"\n'


def _probe(tmp_path: Path, monkeypatch: Any) -> Path:
    """Write the probe module into ``tmp_path`` and point it (``FREEZE_PROBE_OUT``, which the
    processes started by the test inherit) at the file it appends to; that file."""
    (tmp_path / "freeze_probe.py").write_text(PROBE)
    out = tmp_path / "frozen.txt"
    monkeypatch.setenv("FREEZE_PROBE_OUT", str(out))
    return out


def _counts(out: Path) -> list[int]:
    return [int(line) for line in out.read_text().split()] if out.exists() else []


def test_run_in_its_own_process_freezes_the_startup_objects(tmp_path: Path, monkeypatch: Any) -> None:
    out = _probe(tmp_path, monkeypatch)
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS)
    # ``python -m`` puts its working directory (the probe's) first on sys.path
    proc = subprocess.run([sys.executable, "-m", "distsched", "run", str(jobs), "--duration", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
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
    out = _probe(tmp_path, monkeypatch)
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
    out = _probe(tmp_path, monkeypatch)
    monkeypatch.syspath_prepend(str(tmp_path))
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS)
    before = gc.get_freeze_count()
    result = distsched_cli("run", str(jobs), "--duration", "0.7")
    assert result.exit_code == 0, result.output
    assert _counts(out), result.output  # the task ran, in this process
    assert set(_counts(out)) == {before} and gc.get_freeze_count() == before


@pytest.mark.redis
def test_a_scheduler_started_with_jobs_syncs_them_again_when_the_store_lost_its_data(
        redis_server: Any, distsched_process: Any, line_matching: Any, tmp_path: Path) -> None:
    """Redis restarted empty (no persistence): the jobs were gone, the leader logged the loss
    (an incident drill finding, then said only), and nothing fired again until an operator
    synced by hand. A scheduler started with ``--jobs FILE`` syncs its file again when its
    store finds the loss (``store.data_lost``), and its jobs fire again (no worker here: the
    slots' tasks wait, pending)."""
    ns = f"l{uuid.uuid4().hex[:10]}"
    url, prefix = redis_server.url_for(namespace=ns), "{" + ns + "}:"
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[[jobs]]\nname = "tick"\nevery = "1s"\ntarget = "noop"\n')
    raw = redis_server.client()

    async def stored() -> list[str]:
        async with DistributeSchedule(url) as app:
            return [job.name for job in await (await app.storage()).jobs.list_jobs()]

    async def states() -> str:  # for a failure's message: what the store holds
        async with DistributeSchedule(url, reader=True) as app:
            page = await (await app.storage()).jobs.page(None, 10)
            keys = sorted(k if isinstance(k, str) else k.decode() for k in raw.scan_iter(match=prefix + "*"))
            return f"jobs: {page.jobs!r}\nkeys: {keys}"

    async def fired() -> int:
        async with DistributeSchedule(url) as app:
            return len((await app.tasks(job="tick")).tasks)

    try:
        node = distsched_process("scheduler", "scheduler", "--storage", url, "--jobs", str(jobs),
                                 "--heartbeat-ttl", "1.5", "--lease-ttl", "2", "--renew-interval", "0.5")
        line_matching(node, r"leading: ")
        assert asyncio.run(stored()) == ["tick"]
        raw.delete(*raw.scan_iter(match=prefix + "*"))  # at once, as a restart without persistence leaves it
        line_matching(node, rf"namespace '{ns}' lost its data")
        line_matching(node, r"the store lost its data: syncing the jobs of .*jobs\.toml again")
        wait_until(lambda: asyncio.run(stored()) == ["tick"] or None, 20, what="the job stored again",
                   detail=node.log_text)
        wait_until(lambda: asyncio.run(fired()) >= 2 or None, 20, what="the job firing again",
                   detail=lambda: node.log_text() + "\n" + asyncio.run(states()))
        assert node.alive(), node.log_text()
    finally:
        raw.close()


@pytest.mark.redis
def test_a_scheduler_started_with_jobs_syncs_them_again_when_the_store_put_a_job_aside(
        redis_server: Any, distsched_process: Any, line_matching: Any, tmp_path: Path) -> None:
    """Half of a job lost (its config deleted: a partial loss) is put aside by the leader; a
    scheduler started with ``--jobs FILE`` then syncs its file again, and the job fires again.
    The data-loss test above, deleting a namespace key by key, left such a half behind."""
    ns = f"q{uuid.uuid4().hex[:10]}"
    url, prefix = redis_server.url_for(namespace=ns), "{" + ns + "}:"
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[[jobs]]\nname = "tick"\nevery = "1s"\ntarget = "noop"\n')
    raw = redis_server.client()

    async def fired() -> int:
        async with DistributeSchedule(url, reader=True) as app:
            return len((await app.tasks(job="tick")).tasks)

    try:
        node = distsched_process("scheduler", "scheduler", "--storage", url, "--jobs", str(jobs),
                                 "--heartbeat-ttl", "1.5", "--lease-ttl", "2", "--renew-interval", "0.5")
        line_matching(node, r"leading: ")
        raw.hdel(prefix + "jobs", "tick")
        line_matching(node, r"the store put job 'tick' aside: syncing the jobs of .*jobs\.toml again")
        before = asyncio.run(fired())
        wait_until(lambda: asyncio.run(fired()) > before or None, 20, what="the job firing again",
                   detail=node.log_text)
        assert raw.hexists(prefix + "jobs", "tick")
        assert node.alive(), node.log_text()
    finally:
        raw.close()
