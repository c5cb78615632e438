"""queues.pull against a pull whose reply was lost, and workers.reap against a registration (PostgreSQL).

A pull whose reply never came may still commit: the worker's next pull names it and gets back
the tasks it marked running (``ds_pull``'s ``p_prev``). The look-up of the lost pull's tasks
and the take of new ones were two statements: under READ COMMITTED a lost pull committing
between them (a slow commit), or after both (its request delivered late), left its tasks
``running`` on a worker that never got them, until their timeout spent an attempt on a task
that never ran. Here the lost pull is a direct call of ``ds_pull`` with op id ``lost`` whose
reply nobody reads as the worker's; the worker's store is told that its pull ``lost`` went
unanswered, as ``_take`` records it after a failed call."""

import asyncio
import time

import pytest

from distsched.model import TaskState
from distsched.testing import make_task, make_worker

pytestmark = pytest.mark.postgres

END = "    RETURNING t.*;\nEND"


async def _dispatched(storage, fence, ids: list[str]) -> None:
    await storage.workers.register(make_worker("w1", now=storage.clock()))
    await storage.tasks.submit([make_task(task_id, now=storage.clock()) for task_id in ids])
    tasks = await storage.tasks.get_many(ids)
    for task in tasks:
        task.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, tasks) == [True] * len(ids)


async def test_a_retry_waits_for_the_lost_pull_still_committing_and_gets_its_tasks(storage, fence, pg_url) -> None:
    from distsched_postgres.storage import PostgresStorage

    source = await storage.pool.fetchval("SELECT pg_get_functiondef('ds_pull'::regproc)")
    assert source.count(END) == 1, "the end of the take"
    # the lost pull pauses after its take, before it commits
    await storage.pool.execute(source.replace(END, "    RETURNING t.*;\n    IF p_op = 'lost' THEN PERFORM pg_sleep(0.5);"
                                                   " END IF;\nEND"))
    await _dispatched(storage, fence, ["t"])
    worker_store = await PostgresStorage.open(pg_url)
    try:
        lost = asyncio.create_task(storage.pool.fetch("SELECT id FROM ds_pull('w1', 10, 'lost', NULL)"))
        deadline = asyncio.get_running_loop().time() + 10
        while not await storage.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
                " AND query LIKE '%ds_pull%'"):
            assert asyncio.get_running_loop().time() < deadline and not lost.done(), "the lost pull never paused"
            await asyncio.sleep(0.01)
        worker_store.queues._unanswered["w1"] = ("lost", time.monotonic())
        got = await asyncio.wait_for(worker_store.queues.pull("w1", 10, 0), 10)
        assert [row["id"] for row in await lost] == ["t"]
    finally:
        await worker_store.close()
    assert [t.id for t in got] == ["t"], "the retry hands over what the lost pull took"
    assert (await storage.tasks.get("t")).state is TaskState.RUNNING


async def test_a_lost_pull_arriving_after_its_retry_takes_nothing(storage, fence, pg_url) -> None:
    from distsched_postgres.storage import PostgresStorage

    await _dispatched(storage, fence, ["t1", "t2"])
    worker_store = await PostgresStorage.open(pg_url)
    try:
        worker_store.queues._unanswered["w1"] = ("lost", time.monotonic())
        got = await worker_store.queues.pull("w1", 1, 0)  # the retry: nothing of "lost" yet, takes t1
        assert [t.id for t in got] == ["t1"]
        late = await storage.pool.fetch("SELECT id FROM ds_pull('w1', 10, 'lost', NULL)")  # the lost one, late
        assert late == [], "a pull its retry gave up on takes nothing"
        assert (await storage.tasks.get("t2")).state is TaskState.DISPATCHED
        assert [t.id for t in await worker_store.queues.pull("w1", 10, 0)] == ["t2"], "the worker's next pull gets it"
    finally:
        await worker_store.close()


async def test_a_reap_of_a_worker_already_gone_keeps_a_registration_made_meanwhile(storage, fence, pg_url) -> None:
    """ds_reap locks the worker's row, then decides in later statements whether to delete it.
    With the row already gone (moved aside by another node's read) nothing was locked, and a
    registration committed between the check and the delete was deleted."""
    from distsched_postgres.storage import PostgresStorage

    source = await storage.pool.fetchval("SELECT pg_get_functiondef('ds_reap'::regproc)")
    write = "written := ds_write(p_tasks, now, p_retention);"
    assert source.count(write) == 1
    await storage.pool.execute(source.replace(write, write + "\n    PERFORM pg_sleep(0.5);"))
    worker_store = await PostgresStorage.open(pg_url)
    try:
        reap = asyncio.create_task(storage.workers.reap(fence, "w1", []))  # w1 is not there
        deadline = asyncio.get_running_loop().time() + 10
        while not await storage.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
                " AND query LIKE '%ds_reap%'"):
            assert asyncio.get_running_loop().time() < deadline and not reap.done(), "the reap never paused"
            await asyncio.sleep(0.01)
        await worker_store.workers.register(make_worker("w1", now=storage.clock()))
        assert await asyncio.wait_for(reap, 10) == []
    finally:
        await worker_store.close()
    assert [w.id for w in await storage.workers.list_workers()] == ["w1"], "the new registration stays"
