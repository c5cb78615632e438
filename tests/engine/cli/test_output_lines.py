"""The lines `distsched run` / `scheduler` print (issue 17.7): a timeout says how long the
attempt took; a lost worker is reported once; a node says when it takes or loses the lease."""

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


def test_task_lines_of_leadership_taken_and_lost():
    from distsched.cli import task_json, task_line
    from distsched.model import events as ev

    taken = ev.LeaderElected(at=1796428054.25, node_id="s2", term=17)
    lost = ev.LeadershipLost(at=1796428064.5, node_id="s2", term=17, reason="lease lost")
    assert task_line(taken) == "23:47:34.250  leading: s2 took the lease, term 17"
    assert task_line(lost) == "23:47:44.500  stopped leading: s2, term 17 (lease lost)"
    assert '"kind":"leader.elected"' in task_json(taken) and '"reason":"lease lost"' in task_json(lost)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_a_failover_shows_in_the_task_log_at_the_default_log_level(redis_server, tmp_path, distsched_process,
                                                                   line_matching):
    """After the leader was killed, the new leader's output said nothing (`leading with term`
    is logged at INFO, below the default level). Each node's task log (stdout) now has a line
    when it takes the lease (with the term) and when it loses it (why)."""
    url = f"{redis_server.url}?namespace=failover-{uuid.uuid4().hex[:6]}"
    nodes = {name: distsched_process(name, "scheduler", "--storage", url, "--node-id", name, "--lease-ttl", "1",
                                     "--renew-interval", "0.3") for name in ("s1", "s2")}

    def first_leader() -> str | None:
        return next((name for name, node in nodes.items() if f"leading: {name} took the lease" in node.log_text()),
                    None)

    from distsched.testing.processes import wait_until

    first = wait_until(first_leader, 30, what="a node taking the lease")
    other = "s2" if first == "s1" else "s1"
    term = int(line_matching(nodes[first], rf"leading: {first} took the lease, term \d+").rsplit(" ", 1)[1])
    nodes[first].kill()  # kill -9: its lease lapses
    taken = line_matching(nodes[other], rf"leading: {other} took the lease, term \d+")
    assert int(taken.rsplit(" ", 1)[1]) > term, taken
    nodes[other].stop()
    assert re.search(rf"stopped leading: {other}, term \d+ \(shutdown\)", nodes[other].log_text()), \
        nodes[other].log_text()
    assert "Traceback" not in nodes[other].log_text()


FAILING_BALANCER = """
from distsched import hookimpl


class Broken:
    def select(self, task, workers, *, now, ttl):
        raise RuntimeError("no worker for you")


@hookimpl
def distsched_register_balancers(registry):
    registry.add("broken", lambda: Broken())
"""


def test_a_task_its_balancer_fails_on_is_a_line_and_counted(tmp_path, distsched_process, line_matching):
    """A balancer whose select() raises has its task cancelled: `run` printed no line for it
    and left it out of its summary (`stopped: 0 succeeded, 0 failed, 0 timed out`), so the
    tasks seemed to vanish (a plugin author's probe)."""
    (tmp_path / "ol_tasks.py").write_text(TASKS)
    (tmp_path / "ol_broken.py").write_text(FAILING_BALANCER)
    (tmp_path / "jobs.toml").write_text(textwrap.dedent("""
        [worker]
        imports = ["ol_tasks"]

        [[jobs]]
        name = "routed"
        every = "0.5s"
        target = "sleepy"
        args = [0]
        balancer = "broken"
    """))
    run = distsched_process("run", "-p", "ol_broken", "run", "jobs.toml", "--duration", "1.6")
    line = line_matching(run, r" routed .*cancelled")
    assert re.search(r"cancelled: balancer 'broken' .*failed on this task: RuntimeError: no worker for you", line), line
    assert run.wait(timeout=60) == 0, run.log_text()
    summary = next(ln for ln in run.log_text().splitlines() if ln.startswith("stopped: "))
    cancelled = len([ln for ln in run.log_text().splitlines() if re.search(r" routed .*cancelled", ln)])
    assert f"timed out, {cancelled} cancelled, " in summary, summary
    assert "ERROR" not in run.log_text(), "each cancel is told once, by its line"


FILTERED = """
from distsched import task

@task
def picky():
    raise ValueError("bad row 7")
"""


def test_a_failure_the_retry_filters_do_not_retry_says_why(tmp_path, distsched_process, line_matching):
    """The line of a task ended by its retry policy's filters, with attempts left, said only
    its error: why it was not retried (`tasks show` said) was missing from the run's log."""
    (tmp_path / "ol_filtered.py").write_text(FILTERED)
    (tmp_path / "jobs.toml").write_text(textwrap.dedent("""
        [worker]
        imports = ["ol_filtered"]

        [[jobs]]
        name = "picky"
        every = "1s"
        target = "picky"
        retry = { max_attempts = 3, retry_on = ["ConnectionError"] }
    """))
    run = distsched_process("run", "run", "jobs.toml")
    line = line_matching(run, r" picky .*attempt 1 +failed")
    assert line.endswith("ValueError: bad row 7 (not retried: ValueError is not in retry_on (ConnectionError))"), line
