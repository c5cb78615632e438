"""The lines `distsched run` / `scheduler` print (issue 17.7): a timeout says how long the
attempt took; a lost worker is reported once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
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


def test_a_timeout_line_says_how_long_the_attempt_took(tmp_path, lines):
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
    proc = subprocess.Popen([sys.executable, "-m", "distsched", "run", "jobs.toml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = lines(proc.stdout).until(r" slow .*timed_out")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert re.search(r"timed out after 0\.3s \(attempt took 0\.3s\)", line), line


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_a_lost_worker_is_reported_once(redis_server, tmp_path, lines):
    url = f"{redis_server.url}?namespace=lost-{uuid.uuid4().hex[:6]}"
    (tmp_path / "ol_tasks.py").write_text(TASKS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distsched", "scheduler", "--storage", url, "--lease-ttl", "1",
         "--renew-interval", "0.3", "--heartbeat-ttl", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    worker = subprocess.Popen(
        [sys.executable, "-m", "distsched", "-v", "worker", "--storage", url, "--import", "ol_tasks", "--name", "doomed",
         "--heartbeat-interval", "0.2"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    out = lines(scheduler.stdout)
    try:
        lines(worker.stderr).until(r"registered")
        worker.kill()  # kill -9: no deregistration, the leader finds its heartbeat too old
        worker.wait(timeout=10)
        line = out.until(r"worker doomed-\S+ lost")
    finally:
        for proc in (worker, scheduler):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=30)
    output = out.rest()
    assert "no heartbeat for" in line and "0 task(s) requeued" in line, line
    reports = [ln for ln in output.splitlines() if re.search(r"doomed-\S+ lost", ln)]
    assert len(reports) == 1, output
