"""Real `distsched scheduler` and `distsched worker` processes on a throwaway redis-server.

Each test prints its measured figure (failover seconds, re-dispatch seconds, slots fired
twice, tasks lost), so the CI log shows them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from distsched.model import TaskState
from distsched.testing import all_tasks
from distsched.testing.processes import Deployment, NodeProcess
from distsched.testing.redis_server import RedisServer, redis_server_binary

pytestmark = [pytest.mark.redis, pytest.mark.slow,
              pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")]

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


class MultiProcess(Deployment[RedisServer]):
    """The shared Deployment with the scheduler and worker options of these tests."""

    def __init__(self, tmp_path: Path, **redis_options) -> None:
        super().__init__(RedisServer(**redis_options), directory=tmp_path, url_options={"namespace": "mp"})
        self.start()
        self.write("mp_tasks.py", TASKS)

    def jobs_file(self, body: str) -> Path:
        return self.write("jobs.toml", '[worker]\nimports = ["mp_tasks"]\nconcurrency = 2\n\n' + textwrap.dedent(body))

    def scheduler(self, name: str, jobs: Path | None = None) -> NodeProcess:
        args = ["scheduler", "--storage", self.url, "--node-id", name, "--lease-ttl", str(LEASE_TTL),
                "--renew-interval", str(RENEW), "--heartbeat-ttl", str(HEARTBEAT_TTL)]
        return self.spawn(name, "-v", *args, *(["--jobs", str(jobs)] if jobs else []))

    def worker(self, name: str, concurrency: int = 2) -> NodeProcess:
        return self.spawn(name, "-v", "worker", "--storage", self.url, "--name", name, "--import", "mp_tasks",
                          "--concurrency", str(concurrency), "--heartbeat-interval", "0.3")

    def job_tasks(self, job: str):
        async def tasks(app, storage):
            return sorted(await all_tasks(storage, job=job), key=lambda t: t.slot)

        return self.call(tasks)


@pytest.fixture
def deployment(tmp_path):
    dep = MultiProcess(tmp_path)
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
    paused.pause()
    stopped_at = time.monotonic()
    other = deployment.wait_for(lambda: (lambda n: n if n and n != first else None)(deployment.leader()),
                                LEASE_TTL + RENEW + 5, "the other scheduler to lead")
    takeover = time.monotonic() - stopped_at
    paused.resume()
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


def test_redis_restart_mid_run(tmp_path, capsys):
    dep = MultiProcess(tmp_path, appendonly=True, appendfsync="always")
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
        dep.store.kill()
        time.sleep(1.0)  # the outage (fault injection, not synchronisation)
        dep.store.restart()
        back = time.time()
        first = dep.wait_for(lambda: succeeded_after(back), 30, "a run after Redis returned")
        recovery = min(t.finished_at for t in first) - back
        with capsys.disabled():
            print(f"\n[figure] Redis kill -9 and restart: first task finished {recovery:.2f}s after Redis returned; "
                  "manual steps: 0")
        assert s1.poll() is None and w1.poll() is None, "both processes survived the outage"
        assert recovery < 15
    finally:
        dep.close()


def _sleepy_spec(seconds: float):
    from distsched.model import TaskSpec

    return TaskSpec(target="sleepy", args=(seconds,), timeout=30, balancer="round-robin")


def test_a_worker_killed_with_kill9_under_default_settings(deployment, capsys):
    """README defaults (heartbeat every 2 s, TTL 10 s, timeout grace 5 s; issue 15.1): after a
    worker's kill -9 no balancer chooses it once its heartbeat is two intervals old, and the
    attempt it held, overdue at timeout + grace before the TTL reaps it, runs elsewhere as a
    crash re-delivery instead of ending timed_out."""
    url = deployment.url
    deployment.spawn("s1", "-v", "scheduler", "--storage", url, "--node-id", "s1")
    victim = deployment.spawn("w1", "-v", "worker", "--storage", url, "--name", "w1", "--import", "mp_tasks")
    deployment.wait_for(deployment.leader, 20, "a leader")

    def workers():
        return deployment.call(lambda app, storage: storage.workers.list_workers())

    deployment.wait_for(lambda: len(workers()) == 1, 20, "w1 to register")
    # 3.5 s of work under a 4 s timeout: overdue at timeout + grace = 9 s, before the 10 s TTL
    # reaps w1; w2 is started as soon as the task is w1's, so it has the 3.5 s to register
    # (under load a worker can take more than a second to start).
    held = deployment.call(lambda app, storage: app.submit("sleepy", 3.5, timeout=4))

    def held_state():
        return deployment.call(lambda app, storage: storage.tasks.get(held))

    deployment.wait_for(lambda: (held_state().worker_id or "").startswith("w1-"), 20, "the task to go to w1")
    deployment.spawn("w2", "-v", "worker", "--storage", url, "--name", "w2", "--import", "mp_tasks")
    deployment.wait_for(lambda: held_state().state is TaskState.RUNNING, 20, "w1 to run the task")
    deployment.wait_for(lambda: len(workers()) == 2, 20, "w2 to register")
    assert held_state().state is TaskState.RUNNING, "w2 registered too late: w1 already finished the task"
    victim.kill()  # kill -9, reaped
    killed_at = time.time()  # (the store's clock is this machine's: Redis on loopback)
    # a stream of round-robin tasks for the 9 s after the kill (the TTL is 10 s)
    stream = []
    while time.time() < killed_at + 9:
        stream.append(deployment.call(lambda app, storage: app.submit("quick", balancer="round-robin")))
        time.sleep(0.25)

    def all_done():
        tasks = deployment.call(lambda app, storage: storage.tasks.get_many([held, *stream]))
        return tasks if all(t.terminal for t in tasks) else None

    final = deployment.wait_for(all_done, 30, "every task to finish")
    first = final[0]

    async def attempts(app, storage):
        return [await app.task_detail(t) for t in stream]

    late = [a for d in deployment.call(attempts) for a in d.attempts
            if a.worker_id and a.worker_id.startswith("w1-") and a.dispatched_at and a.dispatched_at > killed_at + 5.0]
    to_victim = [a for d in deployment.call(attempts) for a in d.attempts
                 if a.worker_id and a.worker_id.startswith("w1-")]
    with capsys.disabled():
        print(f"\n[figure] worker kill -9 (defaults): tasks dispatched to the dead worker after the kill: {len(to_victim)} "
              f"(more than 5 s after it: {len(late)}); its held task ended {first.state.value} on "
              f"{(first.worker_id or '-').split('-')[0]} after {first.finished_at - killed_at:.1f}s "
              f"(redeliveries {first.redeliveries})")
    assert late == [], "a worker silent for two heartbeat intervals was still chosen"
    assert first.state is TaskState.SUCCEEDED and first.redeliveries == 1 and first.worker_id.startswith("w2-")
    assert all(t.state is TaskState.SUCCEEDED for t in final)
