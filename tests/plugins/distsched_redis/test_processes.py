"""Real `distsched scheduler` and `distsched worker` processes on a throwaway redis-server
(one per test): the process contract (``distsched.testing.contracts.ProcessContract``: leader
kill -9, a paused leader fenced, worker kill -9, graceful drain, the server's crash and
restart, the same scenarios as on PostgreSQL), and a worker's kill -9 under the default
settings.

Each test prints its measured figure (failover seconds, re-dispatch seconds, slots fired
twice, tasks lost), so the CI log shows them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from distsched.model import TaskState
from distsched.testing.contracts import ProcessContract
from distsched.testing.redis_server import RedisServer, redis_server_binary

pytestmark = [pytest.mark.redis, pytest.mark.slow,
              pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")]


class TestRedisProcesses(ProcessContract):
    @pytest.fixture
    def process_store(self) -> Iterator[RedisServer]:
        with RedisServer() as server:
            yield server

    @pytest.fixture
    def process_url_options(self) -> dict[str, str]:
        return {"namespace": "mp"}

    @pytest.fixture
    def restartable_store(self) -> Iterator[RedisServer]:
        with RedisServer(appendonly=True, appendfsync="always") as server:
            yield server

    def test_a_worker_killed_with_kill9_under_default_settings(self, deployment, capsys):
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
