"""PL/pgSQL functions that decide from one read and act in a later statement (PostgreSQL).

Under READ COMMITTED each statement sees the rows committed before it began, so a write
committed between a function's read and its action (or between a Python read and the call
that acts on it) can make the action wrong. Each test pauses the installed function at the
gap, in the test's own schema, commits the other write during the pause, and fails on the
function before the fix (ds_settle's case is test_settle_race.py).

* ds_pull: a pull whose reply never came may still commit; the worker's next pull names it
  and gets back the tasks it marked running. The look-up and the take of new ones were two
  statements: a lost pull committing between them (a slow commit), or after both (its
  request delivered late), left its tasks ``running`` on a worker that never got them. Here
  the lost pull is a direct call of ``ds_pull`` with op id ``lost``; the worker's store is
  told that its pull ``lost`` went unanswered, as ``_take`` records it after a failed call.
* ds_reap of a worker row already gone deleted a registration committed meanwhile.
* ds_put_aside moved a row rewritten (good again) after the read that could not decode it."""

import asyncio
import time

import pytest

from distsched.model import TaskState
from distsched.testing import make_task, make_worker

pytestmark = pytest.mark.postgres


async def _dispatched(storage, fence, ids: list[str]) -> None:
    await storage.workers.register(make_worker("w1", now=storage.clock()))
    await storage.tasks.submit([make_task(task_id, now=storage.clock()) for task_id in ids])
    tasks = await storage.tasks.get_many(ids)
    for task in tasks:
        task.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, tasks) == [True] * len(ids)


async def test_a_retry_waits_for_the_lost_pull_still_committing_and_gets_its_tasks(
        storage, fence, pg_url, rewrite_function, wait_paused) -> None:
    from distsched_postgres.storage import PostgresStorage

    # the lost pull pauses after its take, before it commits
    end = "    RETURNING t.*;\nEND"
    await rewrite_function("ds_pull", end, "    RETURNING t.*;\n    IF p_op = 'lost' THEN PERFORM pg_sleep(0.5); END IF;\nEND")
    await _dispatched(storage, fence, ["t"])
    worker_store = await PostgresStorage.open(pg_url)
    try:
        lost = asyncio.create_task(storage.pool.fetch("SELECT id FROM ds_pull('w1', 10, 'lost', NULL)"))
        await wait_paused("ds_pull", lost)
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


async def test_a_reap_of_a_worker_already_gone_keeps_a_registration_made_meanwhile(
        storage, fence, pg_url, rewrite_function, wait_paused) -> None:
    """ds_reap locks the worker's row, then decides in later statements whether to delete it.
    With the row already gone (moved aside by another node's read) nothing was locked, and a
    registration committed between the check and the delete was deleted."""
    from distsched_postgres.storage import PostgresStorage

    write = "written := ds_write(p_tasks, now, p_retention);"
    await rewrite_function("ds_reap", write, write + "\n    PERFORM pg_sleep(0.5);")
    worker_store = await PostgresStorage.open(pg_url)
    try:
        reap = asyncio.create_task(storage.workers.reap(fence, "w1", []))  # w1 is not there
        await wait_paused("ds_reap", reap)
        await worker_store.workers.register(make_worker("w1", now=storage.clock()))
        assert await asyncio.wait_for(reap, 10) == []
    finally:
        await worker_store.close()
    assert [w.id for w in await storage.workers.list_workers()] == ["w1"], "the new registration stays"


async def test_a_row_rewritten_after_a_read_failed_to_decode_it_is_not_put_aside(
        storage, pg_url, rewrite_function, wait_paused) -> None:
    """A read that cannot decode a row puts it aside in a later call: a worker registering
    again in between (its row good now) used to be moved into quarantine all the same."""
    from distsched_postgres.storage import PostgresStorage

    begin = "BEGIN\n    IF p_kind = 'task' THEN"
    await rewrite_function("ds_put_aside", begin, "BEGIN\n    PERFORM pg_sleep(0.5);\n    IF p_kind = 'task' THEN")
    await storage.pool.execute("INSERT INTO workers (id, data, heartbeat) VALUES ('w1', 'not json', ds_now())")
    other = await PostgresStorage.open(pg_url)
    try:
        read = asyncio.create_task(storage.workers.list_workers())
        await wait_paused("ds_put_aside", read)
        await other.workers.register(make_worker("w1", now=storage.clock()))  # good data now
        assert await asyncio.wait_for(read, 10) == [], "the read goes on without the row it could not decode"
    finally:
        await other.close()
    assert await storage.pool.fetchval("SELECT count(*) FROM quarantine") == 0, "nothing was put aside"
    assert [w.id for w in await storage.workers.list_workers()] == ["w1"], "the good registration stays"


async def test_put_aside_compares_the_columns_the_read_sent_and_only_those(storage) -> None:
    pool = storage.pool
    for worker_id in ("w1", "w2", "w3"):
        await pool.execute("INSERT INTO workers (id, data, heartbeat) VALUES ($1, 'not json', ds_now())", worker_id)
    assert await pool.fetchval("""SELECT ds_put_aside('worker', 'w1', 'r', '{"data": "other"}'::json)""") is False
    assert await pool.fetchval("""SELECT ds_put_aside('worker', 'w2', 'r', '{"data": "not json"}'::json)""") is True
    assert await pool.fetchval("""SELECT ds_put_aside('worker', 'w3', 'r', '{}'::json)""") is True, "nothing to compare"
    assert sorted(r["key"] for r in await pool.fetch("SELECT key FROM quarantine")) == ["w2", "w3"]
    assert [r["id"] for r in await pool.fetch("SELECT id FROM workers")] == ["w1"]
