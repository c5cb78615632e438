"""A worker's pull carries its finished results (issue 13: ``queues.report_and_pull``, one
store call for a report and the next take). Memory and a real Redis; the store's calls are
counted (and a lost reply injected) around the real ones."""

from __future__ import annotations

import pytest

from distsched import DistributeSchedule
from distsched.config import WorkerConfig
from distsched.model import TaskState


@pytest.mark.parametrize("lose_a_reply", [False, True])
async def test_a_busy_worker_reports_on_its_pulls_and_every_task_runs_once(store_url, lose_a_reply):
    """One slot, a queue of tasks: each finished task frees the slot and the pull that takes
    the next carries its result. A carried call whose reply is lost (the store did both) loses
    nothing: the results are reported again (stale the second time) and the tasks it took are
    taken back, each run exactly once."""
    ran: list[int] = []

    def work(n):
        ran.append(n)
        return n

    app = DistributeSchedule(store_url, heartbeat_interval=0.2, heartbeat_ttl=5.0,
                             worker=WorkerConfig(concurrency=1))
    app.task(work, name="work")
    storage = await app.storage()
    real = storage.queues.report_and_pull
    carried: list[int] = []
    lost: list[str] = []

    async def counted(worker_id, results, max_items, *, settle=False):
        tasks = await real(worker_id, results, max_items, settle=settle)
        carried.append(len(results))
        if lose_a_reply and results and tasks and not lost:
            lost.extend(t.id for t in tasks)
            raise ConnectionError("reply lost (injected)")
        return tasks

    storage.queues.report_and_pull = counted
    n = 12
    ids = [await app.submit("work", i, timeout=60) for i in range(n)]
    await app.start()
    try:
        done = [await app.wait(task_id, timeout=20) for task_id in ids]
        assert [t.state for t in done] == [TaskState.SUCCEEDED] * n
        assert sorted(ran) == list(range(n)), "each task ran exactly once"
        assert sum(carried) > 0, f"no pull carried a result: {carried}"
        if lose_a_reply:
            assert lost, "the fault was not injected"
            assert app.engine.worker.recovered == len(lost)
    finally:
        await app.stop()
