"""A pull whose reply was lost (issue 15.1): the store marked the tasks running on the worker,
the worker never saw them. The worker takes them back on its next pull that succeeds, so
they run at once instead of waiting for the leader's timeout check (timeout + grace).
Memory and a real Redis; the fault is injected around the real pull."""

from __future__ import annotations

import asyncio
import time

from distsched import DistributeSchedule
from distsched.app.scheduler import Scheduler
from distsched.model import TaskState


async def test_a_pull_whose_reply_was_lost_gets_its_tasks_back(distsched_app, store_url):
    ran: list[str] = []

    def work(n):
        ran.append(n)
        return n

    app = DistributeSchedule(store_url, heartbeat_interval=0.2, heartbeat_ttl=5.0)
    app.task(work, name="work")
    storage = await app.storage()  # opened here, used by the worker started below
    real_pull = storage.queues.pull
    lost: list[str] = []

    async def pull_losing_one_reply(worker_id, max_items, timeout):
        tasks = await real_pull(worker_id, max_items, timeout)
        if tasks and not lost:  # the store took them; the reply never arrives
            lost.extend(t.id for t in tasks)
            raise ConnectionError("reply lost (injected)")
        return tasks

    storage.queues.pull = pull_losing_one_reply
    await app.start()
    try:
        assert await app.storage() is storage
        task_id = await app.submit("work", 7, timeout=60)
        started = time.monotonic()
        done = await app.wait(task_id, timeout=10)  # far less than the leader's 60 + 5 s
        assert lost == [task_id], "the fault was not injected"
        assert done.state is TaskState.SUCCEEDED and done.result.value == 7
        assert ran == [7], "run exactly once"
        assert app.engine.worker.recovered == 1
        assert time.monotonic() - started < 5
    finally:
        await app.stop()


async def test_a_finished_task_awaiting_its_result_is_not_taken_back(distsched_app, store_url, monkeypatch):
    # A task this worker ran whose result the leader has not applied yet still reads
    # 'running' on it in the store: looking for a lost pull must not run it again. (The
    # report does not settle its own success here - as when results are signed - so the
    # task is still running when the worker looks.)
    ran: list[int] = []

    def work(n):
        ran.append(n)
        return n

    app = await distsched_app(store_url, functions={"work": work}, scheduler=False)
    worker = app.engine.worker
    storage = await app.storage()
    report = storage.queues.report

    async def unsettled(worker_id, results, *, settle=False):
        await report(worker_id, results)

    monkeypatch.setattr(storage.queues, "report", unsettled)
    election = await app.engine.open_election()
    fence = await election.acquire("test-leader")
    leader = Scheduler(storage=storage, election=election, balancers=app.engine.balancer, events=app.engine.events,
                       config=app.config)
    task_id = await app.submit("work", 1, timeout=60)
    assert await leader.dispatch_ready(fence, storage.clock()) == (1, False)
    deadline = time.monotonic() + 5
    while (not ran or worker._results) and time.monotonic() < deadline:  # ran and reported
        await asyncio.sleep(0.01)
    assert ran == [1] and not worker._results
    stored = await storage.tasks.get(task_id)
    assert stored.state is TaskState.RUNNING and stored.worker_id == worker.id  # no leader applied it
    worker._pull_failed = True
    assert await worker._lost_pulls([]) == []
    assert worker.recovered == 0
