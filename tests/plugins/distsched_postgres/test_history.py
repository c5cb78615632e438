"""The history queries on PostgreSQL: pages by cursor, attempts filed in the writing
transaction, per-minute throughput, the job's last outcome, lease info, schedulers."""

import json

import pytest

from distsched.model import RetryPolicy, TaskResult, TaskState, ValidationError
from distsched.ports import Firing, SchedulerNode
from distsched.testing import make_job, make_task, make_worker

pytestmark = pytest.mark.postgres


async def test_query_pages_newest_first_with_filters(storage) -> None:
    await storage.tasks.submit([make_task(f"t{i:02d}", now=float(i // 2)) for i in range(25)])
    seen, cursor = [], None
    while True:
        page = await storage.tasks.query(limit=10, cursor=cursor)
        seen += [t.id for t in page.tasks]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"t{i:02d}" for i in range(24, -1, -1)], "newest first, ties by id descending"
    since = await storage.tasks.query(since=10.0, limit=100)
    assert [t.id for t in since.tasks] == ["t24", "t23", "t22", "t21", "t20"] and since.next_cursor is None
    assert (await storage.tasks.query(state="running")).tasks == ()
    with pytest.raises(ValidationError, match="cursor"):
        await storage.tasks.query(cursor="garbage!")
    with pytest.raises(ValidationError, match="state"):
        await storage.tasks.query(state="nope")


async def test_attempts_throughput_and_last_outcome(storage, fence) -> None:
    job = make_job("j", retry=RetryPolicy(max_attempts=3, delay=1.0))
    await storage.jobs.add(job, next_fire_at=1.0)
    task = job.create_task(1.0, storage.clock())
    await storage.jobs.fire(fence, [Firing(job="j", expected_next=1.0, next_fire_at=2.0, last_slot=1.0, tasks=(task,))])
    await storage.workers.register(make_worker("w1", now=storage.clock()))
    await storage.workers.register(make_worker("w2", now=storage.clock()))
    # attempt 1 fails (retry), attempt 2 is lost with its worker, attempt 3 succeeds through settle
    t = await storage.tasks.get(task.id)
    t.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, [t]) == [True]
    [t] = await storage.queues.pull("w1", 1, 1.0)
    t.finish(TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="failed", started_at=1.0, finished_at=2.0,
                        worker_id="w1", error="boom"), storage.clock())
    assert t.state is TaskState.RETRYING and await storage.tasks.save(fence, [t]) == [True]
    t.dispatch("w2", storage.clock())
    assert await storage.tasks.dispatch(fence, [t]) == [True]
    t.requeue("worker lost", storage.clock())
    assert await storage.workers.reap(fence, "w2", [t]) == [True]
    t.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, [t]) == [True]
    [t] = await storage.queues.pull("w1", 1, 1.0)
    await storage.queues.report("w1", [TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="succeeded",
                                                  started_at=3.0, finished_at=4.0, worker_id="w1", value=42)])
    assert (await storage.results.settle(fence, 10)).settled == 1

    detail = await storage.tasks.detail(task.id)
    assert detail is not None and detail.task.state is TaskState.SUCCEEDED
    assert [(a.attempt_id, a.outcome, a.worker_id, a.number) for a in detail.attempts] == [
        (f"{task.id}#1", "failed", "w1", 1), (f"{task.id}#2", "lost", "w2", 2), (f"{task.id}#3", "succeeded", "w1", 2)]
    assert detail.attempts[0].error == "boom" and detail.attempts[0].retry_at is not None
    assert detail.attempts[2].value == 42
    assert await storage.tasks.detail("missing") is None
    on_w2 = await storage.tasks.query(worker="w2")
    assert [x.id for x in on_w2.tasks] == [task.id], "a task is found by every worker it ran on"

    state = await storage.jobs.state("j")
    assert (state.last_outcome, state.last_task) == ("succeeded", task.id) and state.last_outcome_at is not None
    buckets = await storage.tasks.throughput(5)
    assert len(buckets) == 5 and buckets[-1].counts == {"succeeded": 1}
    assert sum(sum(b.counts.values()) for b in buckets) == 1


async def test_lease_info_schedulers_queue_depths_and_pages(storage, election) -> None:
    assert await election.lease() is None
    fence = await election.acquire("node-a")
    info = await election.lease()
    assert (info.holder, info.term, info.expired) == ("node-a", fence.term, False)
    assert info.acquired_at <= info.renewed_at < info.expires_at
    await election.release(fence)
    after = await election.lease()
    assert after.holder == "node-a" and after.expired

    now = storage.clock()
    await storage.schedulers.register(SchedulerNode(id="s2", host="h", pid=2, started_at=now, last_heartbeat=0.0))
    await storage.schedulers.register(SchedulerNode(id="s1", host="h", pid=1, started_at=now, last_heartbeat=0.0))
    assert await storage.schedulers.heartbeat("s1", role="leader") is True
    assert await storage.schedulers.heartbeat("nobody", role="leader") is False
    nodes = await storage.schedulers.list_schedulers()
    assert [(n.id, n.role, n.pid) for n in nodes] == [("s1", "leader", 1), ("s2", "standby", 2)]
    assert all(abs(n.last_heartbeat - storage.clock()) < 5 for n in nodes)
    await storage.schedulers.deregister("s2")
    assert [n.id for n in await storage.schedulers.list_schedulers()] == ["s1"]

    fence = await election.acquire("node-b")
    await storage.workers.register(make_worker("w1", now=now))
    await storage.tasks.submit([make_task("a"), make_task("b")])
    tasks = await storage.tasks.get_many(["a", "b"])
    for t in tasks:
        t.dispatch("w1", storage.clock())
    await storage.tasks.dispatch(fence, tasks)
    await storage.queues.pull("w1", 1, 1.0)
    assert await storage.workers.queue_depths() == {"w1": 1}

    await storage.jobs.add_many([(make_job(name), 1.0) for name in ("b", "a", "Z", "9", "c")])
    first = await storage.jobs.page(limit=3)
    assert [c.name for c, _ in first.jobs] == ["9", "Z", "a"] and first.next_after == "a", "code point order"
    rest = await storage.jobs.page(after=first.next_after, limit=3)
    assert [c.name for c, _ in rest.jobs] == ["b", "c"] and rest.next_after is None


async def test_waits_do_not_poll(storage) -> None:
    """Without activity the leader's wait and a worker's pull last their whole timeout (a
    NOTIFY wakes them, nothing else)."""
    import time

    await storage.wait_for_activity(0.01)
    started = time.monotonic()
    await storage.wait_for_activity(0.4)
    assert time.monotonic() - started >= 0.38
    started = time.monotonic()
    assert await storage.queues.pull("idle", 5, 0.4) == []
    assert time.monotonic() - started >= 0.38


async def test_nul_characters(storage, fence) -> None:
    """PostgreSQL text cannot hold U+0000: JSON values (results) keep it, a free-text reason
    gets U+FFFD, an id is refused with the field named - nothing half-written."""
    await storage.workers.register(make_worker("w1", now=storage.clock()))
    await storage.tasks.submit([make_task("a"), make_task("b")])
    tasks = await storage.tasks.get_many(["a", "b"])
    for t in tasks:
        t.dispatch("w1", storage.clock())
    await storage.tasks.dispatch(fence, tasks)
    a, b = await storage.queues.pull("w1", 5, 1.0)
    await storage.queues.report("w1", [TaskResult(task_id="a", attempt_id=a.attempt_id, outcome="succeeded",
                                                  started_at=1.0, finished_at=2.0, worker_id="w1", value="x\x00y")])
    assert (await storage.results.settle(fence, 10)).settled == 1
    assert (await storage.tasks.get("a")).result.value == "x\x00y"
    b.cancel("by \x00 user", storage.clock())
    assert await storage.tasks.save(fence, [b]) == [True]
    assert (await storage.tasks.get("b")).reason == "by \ufffd user"
    with pytest.raises(ValidationError, match="id: must not contain a NUL"):
        await storage.tasks.submit([make_task("c\x00"), make_task("d")])
    assert await storage.tasks.get_many(["c\x00", "d"]) == [None, None], "nothing of the batch was stored"


async def test_finished_tasks_expire_after_the_retention(postgres_database) -> None:
    """retention=1s: a finished task is gone from reads and counts once its retention ended,
    its id is free again (submitted beside a new id), and the leader's housekeeping deletes
    the rows of the others (no write prunes); live tasks never expire."""
    import asyncio
    import time

    from distsched_postgres.election import PostgresElection
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(postgres_database.url_for(schema="retention_t", retention="1"))
    try:
        fence = await PostgresElection(store).acquire("n1")
        await store.tasks.submit([make_task("done"), make_task("gone"), make_task("live")])
        finished = await store.tasks.get_many(["done", "gone"])
        for task in finished:
            task.cancel("finished", store.clock())
        assert await store.tasks.save(fence, finished) == [True, True]
        assert (await store.tasks.counts()) == {"cancelled": 2, "pending": 1}
        deadline = time.monotonic() + 10
        while await store.tasks.get("done") is not None:
            assert time.monotonic() < deadline, "the finished task did not expire"
            await asyncio.sleep(0.1)
        assert (await store.tasks.counts()) == {"pending": 1}
        assert (await store.tasks.get("live")) is not None
        assert await store.tasks.submit([make_task("new"), make_task("done"), make_task("live")]) == [
            True, True, False], "an expired id is free again, a live one is not"
        assert (await store.tasks.get("done")).state == "pending"
        assert await store.pool.fetchval("SELECT count(*) FROM tasks WHERE id = 'gone'") == 1, "no write prunes"
        assert await store.housekeeping(100) == 1
        assert await store.pool.fetchval("SELECT count(*) FROM tasks WHERE id = 'gone'") == 0
        assert await store.housekeeping(100) == 0
    finally:
        await store.close()


async def test_heartbeat_blocked_slots_housekeeping_and_signed_schedulers(storage, postgres_database) -> None:
    await storage.workers.register(make_worker("w1", now=storage.clock(), concurrency=4))
    assert await storage.workers.heartbeat("w1", blocked=3) is True
    [w] = await storage.workers.list_workers()
    assert w.blocked == 3
    assert await storage.workers.heartbeat("w1") is True
    assert (await storage.workers.list_workers())[0].blocked == 0
    now = storage.clock()
    await storage.schedulers.register(SchedulerNode(id="s", started_at=now, last_heartbeat=now, signed=True))
    assert [n.signed for n in await storage.schedulers.list_schedulers()] == [True]
    assert await storage.housekeeping(100) == 0


def _plan_nodes(node: dict) -> list[dict]:
    return [node] + [n for child in node.get("Plans", []) for n in _plan_nodes(child)]


async def test_finished_reads_the_rare_finished_index_not_the_table(storage, monkeypatch) -> None:
    """tasks.finished (the dashboard's "failed in the last hour", each page load) on 20,000
    retained tasks, nearly all succeeded: the plan of the statement it runs - as bound (a
    custom plan) and as a prepared statement's generic plan - is an index scan of
    tasks_rare_finished bounded by finished_at (migration 0012), never a walk of the table or
    of every retained failure; its results are the newest finishes, whatever the states."""
    from distsched_postgres import codec

    spec = codec.spec_json(make_task("x").spec)
    # two days of tasks, one every ~8.6 s: 1 % failed or timed out, a few cancelled and
    # skipped, the newest 40 still live; a finished task's last write is its finish
    await storage.pool.execute("""
        INSERT INTO tasks (id, job, state, spec, timeout, created_at, updated_at, not_before, attempt, dispatches,
                           redeliveries, worker_id, finished_at, version, expires_at)
        SELECT 'j' || (i % 20) || '@' || i, 'j' || (i % 20), st, $1, 60, c, c + f, c, 1, 1, 0, 'w' || (i % 4),
               CASE WHEN st IN ('pending', 'running') THEN NULL ELSE c + f END, 4,
               CASE WHEN st IN ('pending', 'running') THEN NULL ELSE c + f + 7 * 86400 END
        FROM (SELECT i, ds_now() - 172800 * (1 - i / 20000.0) AS c, (i % 7) / 3.0 AS f,
                     CASE WHEN i > 19960 THEN 'running' WHEN i % 200 = 0 THEN 'failed'
                          WHEN i % 200 = 100 THEN 'timed_out' WHEN i % 1000 = 7 THEN 'cancelled'
                          WHEN i % 1000 = 9 THEN 'skipped' ELSE 'succeeded' END AS st
              FROM generate_series(1, 20000) i) g""", spec)
    await storage.pool.execute("ANALYZE tasks")
    since = storage.clock() - 3600

    ran: list[tuple[str, tuple]] = []
    call = storage.call

    async def spy(method, sql, *args):
        ran.append((sql, args))
        return await call(method, sql, *args)

    monkeypatch.setattr(storage, "call", spy)
    for states in (["failed", "timed_out"], ["failed"], ["cancelled", "skipped"]):
        ran.clear()
        assert (await storage.tasks.finished(states, since, 20)) is not None
        [(sql, args)] = ran
        async with storage.pool.acquire() as conn:
            [custom] = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
            await conn.execute(f"PREPARE finished_q (text[], float8, bigint) AS {sql}")
            try:
                await conn.execute("SET plan_cache_mode = force_generic_plan")
                execute = await conn.fetchval(  # EXECUTE takes no bound parameters: literals
                    "SELECT format('EXECUTE finished_q (%L::text[], %L::float8, %L::bigint)', "
                    "$1::text[], $2::float8, $3::bigint)", *args)
                [generic] = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + execute))
            finally:
                await conn.execute("RESET plan_cache_mode; DEALLOCATE finished_q")
        for name, plan in (("custom", custom), ("generic", generic)):
            nodes = _plan_nodes(plan["Plan"])
            scans = [(n["Node Type"], n.get("Index Name")) for n in nodes if "Scan" in n["Node Type"]]
            assert scans == [("Index Scan", "tasks_rare_finished")], (states, name, scans)
            [scan] = [n for n in nodes if n.get("Index Name") == "tasks_rare_finished"]
            assert "finished_at >=" in scan["Index Cond"], (states, name, scan["Index Cond"])
    monkeypatch.undo()

    rows = await storage.pool.fetch("SELECT id, state, finished_at FROM tasks WHERE finished_at IS NOT NULL")
    for states in (["failed", "timed_out"], ["failed"], ["cancelled", "skipped"], ["succeeded"],
                   ["succeeded", "failed", "timed_out", "cancelled", "skipped"]):
        for at, limit in ((since, 20), (since - 6 * 3600, 20), (since - 6 * 3600, 3)):
            want = sorted(((r["finished_at"], r["id"]) for r in rows if r["state"] in states and r["finished_at"] >= at),
                          reverse=True)[:limit]
            got = await storage.tasks.finished(states, at, limit)
            assert [t.id for t in got] == [i for _, i in want], (states, at, limit)
            assert got or states == ["cancelled", "skipped"], "the data has finishes of these states"
