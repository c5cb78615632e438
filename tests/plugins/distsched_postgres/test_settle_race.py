"""results.settle against a failure reported while it runs (PostgreSQL).

ds_settle walks the oldest results up to the first failure and finishes the successes among
them. It used to find that first failure in one statement and collect the walk in the next:
under READ COMMITTED each statement sees the rows committed before it began, so a failure
reported between the two was walked as if it were a success, and its task was finished
``succeeded`` with the failure as its result (seen twice in CI: a task whose function always
raises listed ``succeeded``). The window is microseconds wide; the test widens it, in the
test's own schema, by rewriting the installed function with a pause right before the
statement that collects the walk, and reports the failure during that pause."""

import asyncio

import pytest

from distsched.model import TaskResult, TaskState
from distsched.testing import make_task, make_worker

pytestmark = pytest.mark.postgres

WALK = "SELECT array_agg(seq ORDER BY seq) INTO walked"


async def test_a_failure_reported_during_a_settle_never_finishes_its_task_succeeded(
        storage, fence, pg_url, rewrite_function, wait_paused) -> None:
    from distsched_postgres.storage import PostgresStorage

    await rewrite_function("ds_settle", WALK, "PERFORM pg_sleep(0.5);\n    " + WALK)  # the statement of the walk

    await storage.workers.register(make_worker("w1", now=storage.clock()))
    await storage.tasks.submit([make_task("t", now=storage.clock())])
    [task] = await storage.tasks.get_many(["t"])
    task.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, [task]) == [True]
    worker_store = await PostgresStorage.open(pg_url)  # the worker's own store, as in its own process
    try:
        settle = asyncio.create_task(storage.results.settle(fence, 100))
        await wait_paused("ds_settle", settle)  # inside the function, before its walk
        now = storage.clock()
        await worker_store.queues.report("w1", [TaskResult(
            task_id=task.id, attempt_id=task.attempt_id, outcome="failed", started_at=now, finished_at=now,
            worker_id="w1", error="boom", error_type="ValueError")])
        settled = await asyncio.wait_for(settle, 10)
    finally:
        await worker_store.close()
    assert settled.settled == 0, "a failure is never settled as a success"
    assert (await storage.tasks.get("t")).state is TaskState.DISPATCHED, "left for the leader's retry policy"
    assert [r.outcome for r in await storage.results.peek(10)] == ["failed"], "still on the channel"
