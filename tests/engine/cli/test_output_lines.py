"""The lines `distsched run` / `scheduler` print (issue 17.7): a timeout says how long the
attempt took; a lost worker is reported once."""

from __future__ import annotations

import re
import textwrap
import uuid

import pytest

from distsched.testing.redis_server import redis_server_binary

TASKS = """
import time
from distsched import task

@task
def sleepy(seconds):
    time.sleep(seconds)
    return "slept"
"""


def test_a_timeout_line_says_how_long_the_attempt_took(tmp_path, distsched_process, line_matching):
    (tmp_path / "ol_tasks.py").write_text(TASKS)
    (tmp_path / "jobs.toml").write_text(textwrap.dedent("""
        [worker]
        imports = ["ol_tasks"]

        [[jobs]]
        name = "slow"
        every = "1s"
        target = "sleepy"
        args = [1.0]
        timeout = "0.3s"
    """))
    run = distsched_process("run", "run", "jobs.toml")
    line = line_matching(run, r" slow .*timed_out")
    assert re.search(r"timed out after 0\.3s \(attempt took 0\.3s\)", line), line


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_a_lost_worker_is_reported_once(redis_server, tmp_path, distsched_process, line_matching):
    url = f"{redis_server.url}?namespace=lost-{uuid.uuid4().hex[:6]}"
    (tmp_path / "ol_tasks.py").write_text(TASKS)
    scheduler = distsched_process("scheduler", "scheduler", "--storage", url, "--lease-ttl", "1",
                                  "--renew-interval", "0.3", "--heartbeat-ttl", "1")
    worker = distsched_process("worker", "-v", "worker", "--storage", url, "--import", "ol_tasks", "--name", "doomed",
                               "--heartbeat-interval", "0.2")
    line_matching(worker, r"registered")
    worker.kill()  # kill -9: no deregistration, the leader finds its heartbeat too old
    line = line_matching(scheduler, r"worker doomed-\S+ lost")
    scheduler.stop()  # everything it was going to say about that worker is in its log now
    assert "no heartbeat for" in line and "0 task(s) requeued" in line, line
    output = scheduler.log_text()
    reports = [ln for ln in output.splitlines() if re.search(r"doomed-\S+ lost", ln)]
    assert len(reports) == 1, output
