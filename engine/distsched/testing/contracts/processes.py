"""ProcessContract: real ``python -m distsched scheduler`` and ``worker`` processes over a
store - a leader killed (kill -9) is replaced within its lease and no slot fires twice or
goes missing; a paused leader is fenced when it wakes; a killed worker's tasks are
re-dispatched without using their retry budget; SIGTERM drains a worker; and, when the store
can be crashed, both processes ride out its restart.

Each test prints its measured figure (``[figure] ...``), so a CI log shows them. These tests
start processes and wait for leases to lapse: mark the subclass slow if your suite has such a
mark.
"""

from __future__ import annotations

import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ...model import TaskSpec, TaskState
from .. import all_tasks
from ..processes import Deployment, NodeProcess, StoreServer

#: The scheduler's lease and the workers' heartbeat TTL in these tests (seconds): short, so
#: that a failover is seen within seconds.
LEASE_TTL, RENEW, HEARTBEAT_TTL = 2.0, 0.5, 2.0
#: The tasks module the processes import.
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
#: A job firing every half second, every missed slot fired (so a gap shows as one).
BEAT = '''
    [[jobs]]
    name = "beat"
    every = "0.5s"
    target = "quick"
    misfire = "fire-all"
'''


class Nodes(Deployment[Any]):
    """The testing kit's :class:`~distsched.testing.processes.Deployment` with the scheduler
    and worker options of these tests; the fixtures end it with ``kill_all``, leaving the
    store to the fixture that made it."""

    def __init__(self, store: StoreServer, directory: Path, url_options: dict[str, Any]) -> None:
        super().__init__(store, directory=directory, url_options=url_options)
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

    def job_tasks(self, job: str) -> list[Any]:
        async def tasks(app: Any, storage: Any) -> list[Any]:
            return sorted(await all_tasks(storage, job=job), key=lambda t: t.slot)

        return self.call(tasks)

    def other_leader(self, than: str) -> str | None:
        node = self.leader()
        return node if node and node != than else None


def slot_figures(tasks: list[Any], interval: float) -> tuple[int, int]:
    """(slots fired twice - dispatched again other than by a crash re-delivery -, slots
    missing between the first and the last) of a job firing every ``interval`` seconds."""
    slots = [t.slot for t in tasks]
    twice = sum(1 for t in tasks if t.dispatches > 1 and t.redeliveries == 0)
    expected = round((slots[-1] - slots[0]) / interval) + 1 if slots else 0
    return twice, expected - len(set(slots))


def sleepy_spec(seconds: float) -> TaskSpec:
    return TaskSpec(target="sleepy", args=(seconds,), timeout=30, balancer="round-robin")


class ProcessContract:
    @pytest.fixture
    def process_store(self) -> StoreServer:  # pragma: no cover - must be overridden
        raise NotImplementedError("a ProcessContract subclass must provide the process_store fixture: a running "
                                  "StoreServer (distsched.testing.processes)")

    @pytest.fixture
    def process_url_options(self) -> dict[str, Any]:
        """URL options that make the deployment private to the test on a shared store (a
        namespace, a schema)."""
        return {}

    @pytest.fixture
    def restartable_store(self) -> StoreServer:
        """A store server of the test's own that it may crash (``kill``) and ``restart``;
        without it the restart test is skipped."""
        pytest.skip("no restartable_store fixture: the store's crash and restart are not tested")

    @pytest.fixture
    def deployment(self, process_store: StoreServer, process_url_options: dict[str, Any],
                   tmp_path: Path) -> Iterator[Nodes]:
        nodes = Nodes(process_store, tmp_path, process_url_options)
        yield nodes
        nodes.kill_all()

    def test_one_leader_then_failover_after_kill9(self, deployment: Nodes, capsys: pytest.CaptureFixture[str]) -> None:
        import json
        import subprocess
        import sys

        jobs = deployment.jobs_file(BEAT)
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
        other = deployment.wait_for(lambda: deployment.other_leader(first), LEASE_TTL + RENEW + 5,
                                    "the other scheduler to lead")
        takeover = time.monotonic() - killed_at
        time.sleep(2.0)  # let the new leader fire a few slots after the takeover
        tasks = deployment.job_tasks("beat")
        twice, missing = slot_figures(tasks, 0.5)
        with capsys.disabled():
            print(f"\n[figure] leader kill -9: {other} led after {takeover:.2f}s (bound {LEASE_TTL + RENEW + 1:.1f}s); "
                  f"slots {len(tasks)}, fired twice: {twice}, missing: {missing}")
        assert takeover <= LEASE_TTL + RENEW + 1.0
        assert twice == 0 and missing == 0

    def test_a_paused_leader_is_fenced(self, deployment: Nodes, capsys: pytest.CaptureFixture[str]) -> None:
        jobs = deployment.jobs_file(BEAT)
        procs = {"s1": deployment.scheduler("s1", jobs), "s2": deployment.scheduler("s2", jobs)}
        deployment.worker("w1")
        first = deployment.wait_for(deployment.leader, 15, "a leader")
        paused = procs[first]
        paused.pause()
        stopped_at = time.monotonic()
        other = deployment.wait_for(lambda: deployment.other_leader(first), LEASE_TTL + RENEW + 5,
                                    "the other scheduler to lead")
        takeover = time.monotonic() - stopped_at
        paused.resume()
        deployment.wait_for(lambda: "stopped leading term" in deployment.log(first), 10, "the old leader to step down")
        time.sleep(1.5)  # the resumed process runs its stale loop, if it had one
        log = deployment.log(first)
        reason = log.split("stopped leading term", 1)[1].split("\n", 1)[0]
        tasks = deployment.job_tasks("beat")
        twice, missing = slot_figures(tasks, 0.5)
        with capsys.disabled():
            print(f"\n[figure] leader SIGSTOP past its TTL: {other} led after {takeover:.2f}s; the resumed leader "
                  f"stepped down{reason.split(')')[0].split(' ', 2)[-1]}); slots {len(tasks)}, fired twice: {twice}, "
                  f"missing: {missing}")
        assert "(fenced)" in reason or "(lease lost)" in reason
        assert deployment.leader() == other
        assert twice == 0 and missing == 0

    def test_a_killed_workers_tasks_are_redispatched(self, deployment: Nodes,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
        deployment.scheduler("s1")
        w1 = deployment.worker("w1", concurrency=4)
        deployment.worker("w2", concurrency=4)

        async def both_registered(app: Any, storage: Any) -> bool:
            return len([w for w in await storage.workers.list_workers() if w.is_alive(storage.clock(), 5)]) == 2

        deployment.wait_for(lambda: deployment.call(both_registered), 15, "two workers")

        async def submit(app: Any, storage: Any) -> list[str]:
            return await app.submit_many([sleepy_spec(1.5) for _ in range(8)])

        ids = deployment.call(submit)

        async def running_on_w1(app: Any, storage: Any) -> list[Any]:
            return [t for t in await storage.tasks.get_many(ids)
                    if t.state is TaskState.RUNNING and t.worker_id.startswith("w1-")]

        held = deployment.wait_for(lambda: deployment.call(running_on_w1), 15, "w1 to run tasks")
        killed_at = time.time()
        w1.kill()

        async def all_done(app: Any, storage: Any) -> list[Any] | None:
            tasks = await storage.tasks.get_many(ids)
            return tasks if all(t.terminal for t in tasks) else None

        tasks = deployment.wait_for(lambda: deployment.call(all_done), HEARTBEAT_TTL + 20, "every task to finish")
        moved = [t for t in tasks if t.redeliveries]
        delays = [t.dispatched_at - killed_at for t in moved]
        lost = sum(1 for t in tasks if t.state is not TaskState.SUCCEEDED)
        with capsys.disabled():
            print(f"\n[figure] worker kill -9 holding {len(held)} running task(s): {len(moved)} re-dispatched after "
                  f"{max(delays):.2f}s (bound {HEARTBEAT_TTL + 1:.1f}s + a leader pass); tasks lost: {lost} of "
                  f"{len(ids)}")
        assert lost == 0
        assert {t.id for t in held} <= {t.id for t in moved}
        assert all(t.worker_id.startswith("w2-") for t in moved)
        assert max(delays) <= HEARTBEAT_TTL + 2.0
        assert all(t.attempt == 1 for t in moved), "a crash re-delivery does not use the retry budget"

    def test_sigterm_drains_a_worker(self, deployment: Nodes) -> None:
        deployment.scheduler("s1")
        w1 = deployment.worker("w1")

        async def registered(app: Any, storage: Any) -> bool:
            return bool(await storage.workers.list_workers())

        deployment.wait_for(lambda: deployment.call(registered), 15, "the worker")
        [task_id] = deployment.call(lambda app, storage: app.submit_many([sleepy_spec(1.0)]))

        async def running(app: Any, storage: Any) -> bool:
            return bool((await storage.tasks.get(task_id)).state is TaskState.RUNNING)

        deployment.wait_for(lambda: deployment.call(running), 15, "the task to run")
        w1.send_signal(signal.SIGTERM)
        assert w1.wait(timeout=20) == 0
        task = deployment.call(lambda app, storage: app.wait(task_id, timeout=10))
        assert task.state is TaskState.SUCCEEDED and task.worker_id is not None and task.worker_id.startswith("w1-") \
            and task.redeliveries == 0

        async def gone(app: Any, storage: Any) -> bool:
            return not [w for w in await storage.workers.list_workers() if w.is_alive(storage.clock(), 10)]

        deployment.wait_for(lambda: deployment.call(gone), 10, "the worker to deregister")

    def test_the_processes_ride_out_a_store_crash(self, restartable_store: StoreServer, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        """The store crashed (``kill``), one second down, then started again: the scheduler and
        the worker keep running and the job runs again, with no step by hand."""
        dep = Nodes(restartable_store, tmp_path, {})
        try:
            s1 = dep.scheduler("s1", dep.jobs_file(BEAT))
            w1 = dep.worker("w1")

            def succeeded_after(t0: float) -> list[Any]:
                return [t for t in dep.job_tasks("beat") if t.state is TaskState.SUCCEEDED and t.slot > t0]

            dep.wait_for(lambda: len(succeeded_after(0)) >= 2, 20, "the job to run")
            restartable_store.kill()
            time.sleep(1.0)  # the outage (fault injection, not synchronisation)
            restartable_store.restart()
            back = time.time()
            first = dep.wait_for(lambda: succeeded_after(back), 30, "a run after the store returned")
            recovery = min(t.finished_at for t in first) - back
            with capsys.disabled():
                print(f"\n[figure] store crash ({type(restartable_store).__name__}) and restart: first task "
                      f"finished {recovery:.2f}s after it returned; manual steps: 0")
            assert s1.poll() is None and w1.poll() is None, "both processes survived the outage"
            assert recovery < 15
        finally:
            dep.kill_all()
