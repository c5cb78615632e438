"""Retention (issue 16.6): once finished tasks expire, the leader's housekeeping prunes their
index entries, and counts report only the tasks still retained (the report: 96k stale index
entries and an over-count after `retention=20`)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from distsched.model import TaskSpec

pytestmark = pytest.mark.redis


async def _finished_with_retention_1s(distsched_app, redis_server, n: int):
    """A deployment in a namespace of its own, finished tasks kept 1 s, that ran ``n`` no-op
    tasks to success; returns the app and the namespace's key prefix."""
    ns = f"r{uuid.uuid4().hex[:10]}"
    app = await distsched_app(redis_server.url_for(namespace=ns, retention=1), functions={"noop": lambda: None},
                              heartbeat_interval=0.2)
    await app.submit_many([TaskSpec(target="noop") for _ in range(n)])
    stats = app.engine.scheduler.stats
    deadline = time.monotonic() + 30
    while stats["succeeded"] < n:
        assert time.monotonic() < deadline, f"only {stats['succeeded']} of {n} succeeded"
        await asyncio.sleep(0.05)
    return app, "{" + ns + "}:"


async def test_expired_tasks_leave_the_counts_and_their_index_entries_are_pruned(distsched_app, redis_server, raw_client):
    app, p = await _finished_with_retention_1s(distsched_app, redis_server, 3000)
    storage = await app.storage()
    deadline = time.monotonic() + 30
    pruned = app.engine.scheduler.stats
    while True:  # every hash expires 1 s after its task finished; the leader prunes then
        counts = await storage.tasks.counts()
        stale = raw_client.zcard(p + "x:succeeded") + raw_client.zcard(p + "tc")
        # the leader's count is read in the loop: it is added once the scheduler's coroutine
        # resumes after the script's reply, and counts() prunes what it finds expired too
        if counts.get("succeeded", 0) == 0 and stale == 0 and pruned["pruned"] > 0:
            break
        assert time.monotonic() < deadline, (f"still counted {counts}, {stale} stale index entries, "
                                             f"{pruned['pruned']} pruned by the leader's housekeeping")
        await asyncio.sleep(0.1)


@pytest.fixture
def raw_client(redis_server):
    client = redis_server.client()
    yield client
    client.close()


async def test_a_live_workers_history_index_is_pruned_too(distsched_app, redis_server, raw_client):
    """Issue 15.3 (endurance: Redis memory grew past the retention plateau): `tw:<worker>` of a
    worker that keeps getting tasks never expires, and the x: pruning cannot reach it, so it
    kept an entry for every task ever dispatched to the worker. The leader's housekeeping
    sweeps it: while tasks keep flowing, the entries of expired tasks leave it."""
    app, p = await _finished_with_retention_1s(distsched_app, redis_server, 2000)

    def stale_history() -> tuple[int, int]:
        """(entries of tw:* keys whose task record is gone, entries in all)"""
        stale = total = 0
        for key in raw_client.scan_iter(match=p + "tw:*"):
            ids = raw_client.zrange(key, 0, -1)
            pipe = raw_client.pipeline(transaction=False)
            for i in ids:
                pipe.exists(p + "t:" + i)
            stale += sum(1 for e in pipe.execute() if not e)
            total += len(ids)
        return stale, total

    # a trickle of tasks keeps the worker's tw key alive (each dispatch renews its expiry);
    # the 2,000 first tasks expire 1 s after they finished, and their entries must go
    deadline = time.monotonic() + 30
    while True:
        await app.submit_many([TaskSpec(target="noop") for _ in range(5)])
        stale, total = stale_history()
        if 0 < total < 1000 and stale < 200:  # (without the sweep: all 2,000 + the trickle, forever)
            break
        assert time.monotonic() < deadline, f"{stale} of {total} tw:* entries name expired tasks"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("cursor", [b"nan", b"soon"])
async def test_a_sweep_cursor_that_is_not_a_number_starts_the_sweep_over(distsched_app, redis_server, raw_client,
                                                                          cursor):
    """The sweep's resume point (``twp``) holding something that is not a number failed the
    housekeeping call at every pass (``ZRANGEBYSCORE`` refuses it), so no worker's history
    index was ever swept again. The sweep now starts over from the oldest entry."""
    app, p = await _finished_with_retention_1s(distsched_app, redis_server, 20)
    worker_id = app.engine.worker.id
    raw_client.hset(p + "twp", worker_id, cursor)
    ghost = "gone-task"  # an entry whose record is gone, created long before the horizon
    raw_client.zadd(p + "tw:" + worker_id, {ghost: 1.0})
    storage = await app.storage()
    await storage.housekeeping(1000)
    assert raw_client.zscore(p + "tw:" + worker_id, ghost) is None, "the sweep did not reach the entry"
