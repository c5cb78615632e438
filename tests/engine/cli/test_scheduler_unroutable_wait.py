"""`distsched scheduler --unroutable-wait` (and `unroutable_wait` in the config file's
`[scheduler]` table) reaches the leader: a task of a function no live worker offers waits
that long, then fails saying so. The setting had no command-line form: a deployment run by
`distsched scheduler` could not use it."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.config import WorkerConfig
from distsched.testing.redis_server import redis_server_binary


def tick() -> str:
    return "tock"


def test_the_option_and_the_config_key_are_read(distsched_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "distsched.toml").write_text(textwrap.dedent('[scheduler]\nunroutable_wait = "5m"\n'))
    shown = distsched_cli("scheduler", "--show-config").stdout
    assert any(line.split()[:2] == ["unroutable_wait", "300.0"] for line in shown.splitlines()), shown
    result = distsched_cli("scheduler", "--unroutable-wait", "-1", "--show-config")
    assert result.exit_code == 2 and "--unroutable-wait" in result.output, result.output


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
async def test_a_scheduler_started_with_it_fails_an_unroutable_task_after_the_wait(redis_server, distsched_process,
                                                                                   line_matching):
    url = redis_server.url_for(namespace=f"unr-{uuid.uuid4().hex[:8]}")
    scheduler = distsched_process("scheduler", "scheduler", "--storage", url, "--unroutable-wait", "1s")
    line_matching(scheduler, r"took the lease|leading|leader")
    worker = DistributeSchedule(url, worker=WorkerConfig(name="w-tick"))
    worker.task(tick, name="tick")
    await worker.start(scheduler=False, worker=True)
    try:
        task_id = await worker.submit("send_email")
        result = await worker.result(task_id, timeout=30)
        assert not result.ok and "unroutable_wait is 1s" in (result.error or ""), result
        assert "no live worker offered function 'send_email' (they offer: tick)" in result.error, result.error
    finally:
        await worker.stop()
