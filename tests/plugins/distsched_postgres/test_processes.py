"""Real `distsched scheduler` and `distsched worker` processes on PostgreSQL (a schema of its
own per test in the session's throwaway database): leader kill -9, a paused leader fenced,
worker kill -9, graceful drain - the same scenarios as the Redis multi-process tests.

Each test prints its measured figure, so the CI log shows them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from distsched import DistributeSchedule
from distsched.model import TaskState
from distsched.testing import all_tasks

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE_TTL, RENEW, HEARTBEAT_TTL = 2.0, 0.5, 2.0
TASKS = '''
import time
from distsched import task

@task
def quick():
    return "ok"

@task
def sleepy(seconds):
    time.sleep(seconds)
    return "slept"
'''


class Deployment:
    """A schema of the session's PostgreSQL database and the distsched processes started on it."""

    def __init__(self, tmp_path: Path, database) -> None:
        self.tmp = tmp_path
        self.url = database.url_for(schema=f"mp_{uuid.uuid4().hex[:12]}")
        self.procs: dict[str, subprocess.Popen] = {}
        (tmp_path / "mp_tasks.py").write_text(TASKS)

    def jobs_file(self, body: str) -> Path:
        path = self.tmp / "jobs.toml"
        path.write_text('[worker]\nimports = ["mp_tasks"]\nconcurrency = 2\n\n' + textwrap.dedent(body))
        return path

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "distsched", "-v", *args], cwd=self.tmp,
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs[name] = proc
        return proc

    def scheduler(self, name: str, jobs: Path | None = None) -> subprocess.Popen:
        args = ["scheduler", "--storage", self.url, "--node-id", name, "--lease-ttl", str(LEASE_TTL),
                "--renew-interval", str(RENEW), "--heartbeat-ttl", str(HEARTBEAT_TTL)]
        return self._start(name, *args, *(["--jobs", str(jobs)] if jobs else []))

    def worker(self, name: str, concurrency: int = 2) -> subprocess.Popen:
        return self._start(name, "worker", "--storage", self.url, "--name", name, "--import", "mp_tasks",
                           "--concurrency", str(concurrency), "--heartbeat-interval", "0.3")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def call(self, coro_fn):
        async def main():
            app = DistributeSchedule(self.url)
            try:
                return await coro_fn(app, await app.storage())
            finally:
                await app.engine.close()

        return asyncio.run(main())

    def leader(self) -> str | None:
        async def current(app, storage):
            fence = await (await app.engine.open_election()).current()
            return fence.node_id if fence else None

        return self.call(current)

    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        logs = "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n in self.procs)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")

    def job_tasks(self, job: str):
        async def tasks(app, storage):
            return sorted(await all_tasks(storage, job=job), key=lambda t: t.slot)

        return self.call(tasks)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def deployment(tmp_path, postgres_database):
    dep = Deployment(tmp_path, postgres_database)
    yield dep
    dep.close()


def _slot_figures(tasks, interval: float):
    slots = [t.slot for t in tasks]
    twice = sum(1 for t in tasks if t.dispatches > 1 and t.redeliveries == 0)
    expected = round((slots[-1] - slots[0]) / interval) + 1 if slots else 0
    return twice, expected - len(set(slots))


def test_one_leader_then_failover_after_kill9(deployment, capsys):
    jobs = deployment.jobs_file('''
        [[jobs]]
        name = "beat"
        every = "0.5s"
        target = "quick"
        misfire = "fire-all"
    ''')
    s1 = deployment.scheduler("s1", jobs)
    s2 = deployment.scheduler("s2", jobs)
    deployment.worker("w1")
    first = deployment.wait_for(deployment.leader, 15, "a leader")
    # Exactly one leads: the other is a follower (its log never says it leads).
    time.sleep(1.0)  # let both campaign for a few renew intervals before looking
    leading = [n for n in ("s1", "s2") if "leading with term" in deployment.log(n)]
    assert leading == [first]
    status = subprocess.run([sys.executable, "-m", "distsched", "status", "--storage", deployment.url, "--json"],
                            capture_output=True, text=True, timeout=30)
    data = json.loads(status.stdout)
    assert data["leader"]["node_id"] == first and len(data["workers"]) == 1

    victim = s1 if first == "s1" else s2
    killed_at = time.monotonic()
    victim.kill()
    other = deployment.wait_for(lambda: (lambda n: n if n and n != first else None)(deployment.leader()),
                                LEASE_TTL + RENEW + 5, "the other scheduler to lead")
    takeover = time.monotonic() - killed_at
    time.sleep(2.0)  # let the new leader fire a few slots after the takeover
    tasks = deployment.job_tasks("beat")
    twice, missing = _slot_figures(tasks, 0.5)
    with capsys.disabled():
        print(f"\n[figure] leader kill -9: {other} led after {takeover:.2f}s (bound {LEASE_TTL + RENEW + 1:.1f}s); "
              f"slots {len(tasks)}, fired twice: {twice}, missing: {missing}")
    assert takeover <= LEASE_TTL + RENEW + 1.0
    assert twice == 0 and missing == 0


def test_a_paused_leader_is_fenced(deployment, capsys):
    jobs = deployment.jobs_file('''
        [[jobs]]
        name = "beat"
        every = "0.5s"
        target = "quick"
        misfire = "fire-all"
    ''')
    procs = {"s1": deployment.scheduler("s1", jobs), "s2": deployment.scheduler("s2", jobs)}
    deployment.worker("w1")
    first = deployment.wait_for(deployment.leader, 15, "a leader")
    paused = procs[first]
    paused.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    other = deployment.wait_for(lambda: (lambda n: n if n and n != first else None)(deployment.leader()),
                                LEASE_TTL + RENEW + 5, "the other scheduler to lead")
    takeover = time.monotonic() - stopped_at
    paused.send_signal(signal.SIGCONT)
    deployment.wait_for(lambda: "stopped leading term" in deployment.log(first), 10, "the old leader to step down")
    time.sleep(1.5)  # the resumed process runs its stale loop, if it had one
    log = deployment.log(first)
    reason = log.split("stopped leading term", 1)[1].split("\n", 1)[0]
    tasks = deployment.job_tasks("beat")
    twice, missing = _slot_figures(tasks, 0.5)
    with capsys.disabled():
        print(f"\n[figure] leader SIGSTOP past its TTL: {other} led after {takeover:.2f}s; the resumed leader stepped "
              f"down{reason.split(')')[0].split(' ', 2)[-1]}); slots {len(tasks)}, fired twice: {twice}, missing: {missing}")
    assert "(fenced)" in reason or "(lease lost)" in reason
    assert deployment.leader() == other
    assert twice == 0 and missing == 0


def test_a_killed_workers_tasks_are_redispatched(deployment, capsys):
    deployment.scheduler("s1")
    w1 = deployment.worker("w1", concurrency=4)
    deployment.worker("w2", concurrency=4)

    async def both_registered(app, storage):
        return len([w for w in await storage.workers.list_workers() if w.is_alive(storage.clock(), 5)]) == 2

    deployment.wait_for(lambda: deployment.call(both_registered), 15, "two workers")

    async def submit(app, storage):
        return await app.submit_many([_sleepy_spec(1.5) for _ in range(8)])

    ids = deployment.call(submit)

    async def running_on_w1(app, storage):
        return [t for t in await storage.tasks.get_many(ids) if t.state is TaskState.RUNNING and t.worker_id.startswith("w1-")]

    held = deployment.wait_for(lambda: deployment.call(running_on_w1), 15, "w1 to run tasks")
    killed_at = time.time()
    w1.kill()

    async def all_done(app, storage):
        tasks = await storage.tasks.get_many(ids)
        return tasks if all(t.terminal for t in tasks) else None

    tasks = deployment.wait_for(lambda: deployment.call(all_done), HEARTBEAT_TTL + 20, "every task to finish")
    moved = [t for t in tasks if t.redeliveries]
    delays = [t.dispatched_at - killed_at for t in moved]
    lost = sum(1 for t in tasks if t.state is not TaskState.SUCCEEDED)
    with capsys.disabled():
        print(f"\n[figure] worker kill -9 holding {len(held)} running task(s): {len(moved)} re-dispatched after "
              f"{max(delays):.2f}s (bound {HEARTBEAT_TTL + 1:.1f}s + a leader pass); tasks lost: {lost} of {len(ids)}")
    assert lost == 0
    assert {t.id for t in held} <= {t.id for t in moved}
    assert all(t.worker_id.startswith("w2-") for t in moved)
    assert max(delays) <= HEARTBEAT_TTL + 2.0
    assert all(t.attempt == 1 for t in moved), "a crash re-delivery does not use the retry budget"


def test_sigterm_drains_a_worker(deployment):
    deployment.scheduler("s1")
    w1 = deployment.worker("w1")

    async def registered(app, storage):
        return bool(await storage.workers.list_workers())

    deployment.wait_for(lambda: deployment.call(registered), 15, "the worker")
    [task_id] = deployment.call(lambda app, storage: app.submit_many([_sleepy_spec(1.0)]))

    async def running(app, storage):
        return (await storage.tasks.get(task_id)).state is TaskState.RUNNING

    deployment.wait_for(lambda: deployment.call(running), 15, "the task to run")
    w1.send_signal(signal.SIGTERM)
    assert w1.wait(timeout=20) == 0
    task = deployment.call(lambda app, storage: app.wait(task_id, timeout=10))
    assert task.state is TaskState.SUCCEEDED and task.worker_id.startswith("w1-") and task.redeliveries == 0

    async def gone(app, storage):
        return not [w for w in await storage.workers.list_workers() if w.is_alive(storage.clock(), 10)]

    deployment.wait_for(lambda: deployment.call(gone), 10, "the worker to deregister")


def test_postgres_crash_and_restart_mid_run(tmp_path, capsys):
    """A cluster of the test's own: ``pg_ctl stop -m immediate`` (a crash), one second down,
    then started again; the scheduler and the worker ride it out and the job runs again."""
    from distsched.testing.postgres_server import PostgresServer, postgres_bindir

    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    server = PostgresServer().start()
    dep = Deployment(tmp_path, server)
    try:
        jobs = dep.jobs_file('''
            [[jobs]]
            name = "beat"
            every = "0.5s"
            target = "quick"
        ''')
        s1 = dep.scheduler("s1", jobs)
        w1 = dep.worker("w1")

        def succeeded_after(t0):
            return [t for t in dep.job_tasks("beat") if t.state is TaskState.SUCCEEDED and t.slot > t0]

        dep.wait_for(lambda: len(succeeded_after(0)) >= 2, 20, "the job to run")
        server.kill()
        time.sleep(1.0)  # the outage (fault injection, not synchronisation)
        server.restart()
        back = time.time()
        first = dep.wait_for(lambda: succeeded_after(back), 30, "a run after PostgreSQL returned")
        recovery = min(t.finished_at for t in first) - back
        with capsys.disabled():
            print(f"\n[figure] PostgreSQL crash (pg_ctl stop -m immediate) and restart: first task finished "
                  f"{recovery:.2f}s after it returned; manual steps: 0")
        assert s1.poll() is None and w1.poll() is None, "both processes survived the outage"
        assert recovery < 15
    finally:
        dep.close()
        server.stop()


def _sleepy_spec(seconds: float):
    from distsched.model import TaskSpec

    return TaskSpec(target="sleepy", args=(seconds,), timeout=30, balancer="round-robin")
