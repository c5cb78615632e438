"""Tasks on Redis: idempotent submission, reads and indexes, optimistic fenced writes,
dispatch onto the worker's queue, retention - each batch in one script call."""

import asyncio
import logging

import pytest

from distsched.model import (
    EveryTrigger,
    FencedError,
    RetryPolicy,
    Task,
    TaskConfig,
    TaskResult,
    TaskSpec,
    TaskState,
    Worker,
)
from distsched.testing import all_tasks

pytestmark = pytest.mark.redis


def task(task_id: str, now: float = 0.0, **spec) -> Task:
    spec.setdefault("target", "f")
    return Task(id=task_id, spec=TaskSpec(**spec), created_at=now)


def worker(worker_id: str, now: float) -> Worker:
    return Worker(id=worker_id, concurrency=2, started_at=now)


def result(t: Task, outcome: str = "succeeded", now: float = 0.0, **kw) -> TaskResult:
    return TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome=outcome, started_at=now,
                      finished_at=now, worker_id=t.worker_id, **kw)


async def test_submit_is_idempotent_by_id(storage) -> None:
    a, b = task("a", 1.0, args=[1, "x", 2.5, 2**70, {"k": -(2**65)}]), task("b", 2.0)
    assert await storage.tasks.submit([a, b]) == [True, True]
    assert (a.version, b.version) == (1, 1)
    dup = task("a", 3.0, target="other")
    assert await storage.tasks.submit([dup, task("c", 4.0)]) == [False, True]
    assert dup.version == 0, "a refused submission is not marked stored"
    got = await storage.tasks.get("a")
    assert got == a, "the stored task reads back equal (spec, args, times, version)"
    assert [t.id if t else None for t in await storage.tasks.get_many(["c", "zz", "a"])] == ["c", None, "a"]
    assert await storage.tasks.get("zz") is None
    assert await storage.tasks.counts() == {"pending": 3}


async def test_bulk_submission_of_thousands(storage) -> None:
    tasks = [task(f"bulk-{i}", float(i)) for i in range(1200)]
    assert all(await storage.tasks.submit(tasks))
    assert (await storage.tasks.counts())["pending"] == 1200
    ready = await storage.tasks.ready(1e12, 1200)
    assert [t.id for t in ready] == [t.id for t in tasks], "oldest first"
    assert await storage.tasks.next_ready_at() == 0.0


async def test_ready_respects_not_before_and_retry_time(storage, fence) -> None:
    assert await storage.tasks.next_ready_at() is None
    await storage.tasks.submit([task("late", 30.0), task("early", 10.0, retry=RetryPolicy(max_attempts=2, delay=50.0)),
                                task("mid", 20.0)])
    assert [t.id for t in await storage.tasks.ready(25.0, 10)] == ["early", "mid"]
    assert [t.id for t in await storage.tasks.ready(100.0, 1)] == ["early"]
    assert await storage.tasks.ready(100.0, 0) == []
    await storage.workers.register(worker("w1", storage.clock()))
    [t] = await storage.tasks.get_many(["early"])
    t.dispatch("w1", 40.0)
    assert await storage.tasks.dispatch(fence, [t]) == [True]
    assert "early" not in [x.id for x in await storage.tasks.ready(1e12, 10)]
    t.finish(result(t, "failed", 41.0), 41.0)
    assert await storage.tasks.save(fence, [t]) == [True]
    assert [x.id for x in await storage.tasks.ready(90.0, 10)] == ["mid", "late"]
    assert [x.id for x in await storage.tasks.ready(91.0, 10)] == ["mid", "late", "early"]
    assert await storage.tasks.next_ready_at() == 20.0


async def test_save_is_optimistic_and_bumps_versions(storage, fence) -> None:
    await storage.tasks.submit([task("t"), task("u")])
    first, second = await storage.tasks.get("t"), await storage.tasks.get("t")
    u = await storage.tasks.get("u")
    first.cancel("by first", 1.0)
    second.cancel("by second", 2.0)
    u.cancel("u too", 3.0)
    assert await storage.tasks.save(fence, [first, u]) == [True, True]
    assert (first.version, u.version) == (2, 2), "written tasks carry their new version"
    assert await storage.tasks.save(fence, [second]) == [False]
    assert second.version == 1
    stored = await storage.tasks.get("t")
    assert (stored.reason, stored.version, stored.state) == ("by first", 2, TaskState.CANCELLED)
    assert await storage.tasks.ready(1e12, 10) == []
    assert await storage.tasks.counts() == {"cancelled": 2}
    assert await storage.tasks.save(fence, [task("never-stored")]) == [False]


async def test_dispatch_pushes_the_attempt_onto_the_workers_queue(storage, fence) -> None:
    now = storage.clock()
    await storage.workers.register(worker("w1", now))
    await storage.tasks.submit([task("a"), task("b"), task("c")])
    a, b, c = await storage.tasks.get_many(["a", "b", "c"])
    for t in (a, b):
        t.dispatch("w1", now)
    stale = await storage.tasks.get("c")
    c.cancel("gone", now)
    await storage.tasks.save(fence, [c])
    stale.dispatch("w1", now)
    assert await storage.tasks.dispatch(fence, [a, b, stale]) == [True, True, False]
    queue = await storage.client.lrange(storage.prefix + "q:w1", 0, -1)
    assert queue == ["a#1", "b#1"], "only written tasks are queued, as '<task id>#<dispatches>'"
    assert [(w.id, w.load) for w in await storage.workers.list_workers()] == [("w1", 2)]
    assert {t.id for t in await storage.tasks.assigned("w1")} == {"a", "b"}
    assert await storage.tasks.counts() == {"dispatched": 2, "cancelled": 1}


async def test_overdue_live_and_list(storage, fence) -> None:
    now = storage.clock()
    await storage.workers.register(worker("w1", now))
    cfg = TaskConfig(name="j", trigger=EveryTrigger(10), spec=TaskSpec(target="f", timeout=5.0))
    await storage.jobs.add(cfg, next_fire_at=10.0)
    from distsched.ports import Firing

    slots = (cfg.create_task(10.0, now), cfg.create_task(20.0, now + 1))
    await storage.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=30.0, last_slot=20.0, tasks=slots)])
    assert [t.id for t in await storage.tasks.live("j")] == [s.id for s in slots]
    first = await storage.tasks.get(slots[0].id)
    first.dispatch("w1", now)
    await storage.tasks.dispatch(fence, [first])
    assert await storage.tasks.overdue(now + 4.9, 10) == []
    assert [t.id for t in await storage.tasks.overdue(now + 5.1, 10)] == [first.id]
    assert await storage.tasks.overdue(now + 5.1, 0) == []
    first.finish(result(first, now=now + 2), now + 2)
    await storage.tasks.save(fence, [first])
    assert await storage.tasks.overdue(now + 100, 10) == []
    assert [t.id for t in await storage.tasks.live("j")] == [slots[1].id]
    listed = await all_tasks(storage, job="j")
    assert [t.id for t in listed] == [slots[1].id, slots[0].id], "newest created first"
    assert [t.id for t in await all_tasks(storage, job="j", state="pending")] == [slots[1].id]
    assert [t.id for t in await all_tasks(storage, state="succeeded")] == [slots[0].id]
    assert [t.id for t in (await storage.tasks.query(limit=1)).tasks] == [slots[1].id]
    assert await all_tasks(storage, job="other") == []


async def test_leader_writes_are_fenced_and_change_nothing(storage, election, fence) -> None:
    await storage.workers.register(worker("w1", storage.clock()))
    await storage.tasks.submit([task("t")])
    await storage.queues.report("w1", [result(task("x"))])
    await election.release(fence)
    assert await election.acquire("leader-2") is not None
    t = await storage.tasks.get("t")
    t.dispatch("w1", storage.clock())
    with pytest.raises(FencedError):
        await storage.tasks.dispatch(fence, [t])
    with pytest.raises(FencedError):
        await storage.tasks.save(fence, [t], ack_results=1)
    with pytest.raises(FencedError):
        await storage.tasks.save(fence, [])
    with pytest.raises(FencedError):
        await storage.workers.reap(fence, "w1", [])
    assert (await storage.tasks.get("t")).state is TaskState.PENDING and t.version == 1
    assert await storage.client.llen(storage.prefix + "q:w1") == 0
    assert len(await storage.results.peek(10)) == 1, "a fenced save acknowledges nothing"
    assert [w.id for w in await storage.workers.list_workers()] == ["w1"]


@pytest.mark.parametrize("lean", ["true", "false"])
async def test_one_script_call_per_batch(open_storage, private_server, command_calls, five_calls, lean) -> None:
    """save/dispatch/submit/get_many of hundreds of tasks: a constant number of round trips,
    on the lean connection and on redis-py's client alike. Counted by the server itself
    (INFO commandstats) on a server nothing else talks to."""
    from distsched_redis.election import RedisElection

    storage = await open_storage(private_server.url_for(namespace="batch"), lean=lean)
    fence = await RedisElection(storage).acquire("leader-1")
    client = private_server.client()

    def calls() -> dict[str, int]:
        counted = command_calls(client)
        return {cmd: counted[cmd] for cmd in ("evalsha", "fcall")}

    try:
        await storage.workers.register(worker("w1", storage.clock()))
        tasks = [task(f"t{i}", float(i)) for i in range(400)]
        before = calls()
        await five_calls(storage, fence, tasks)
        after = calls()
        # the lean connection calls the scripts as functions of the library (Redis 7+)
        used = "fcall" if lean == "true" else "evalsha"
        assert {cmd: after[cmd] - before[cmd] for cmd in after} == {
            "evalsha": 0, "fcall": 0, used: 5}
        assert (storage.lean is not None) == (lean == "true")
    finally:
        client.close()


async def test_terminal_tasks_expire_after_the_retention(open_storage, redis_server, namespace) -> None:
    s = await open_storage(redis_server.url_for(namespace=namespace + "r", retention="1s"))
    from distsched_redis.election import RedisElection

    f = await RedisElection(s).acquire("n1")
    cfg = TaskConfig(name="j", trigger=EveryTrigger(10), spec=TaskSpec(target="f"))
    await s.jobs.add(cfg, next_fire_at=10.0)
    t = cfg.create_task(10.0, 1.0)
    await s.tasks.submit([t, task("keep")])
    t.cancel("x", 2.0)
    await s.tasks.save(f, [t])
    assert await s.client.pttl(s.prefix + "t:" + t.id) > 0
    assert await s.client.ttl(s.prefix + "t:keep") == -1, "live tasks never expire"

    async def gone() -> bool:
        return await s.tasks.counts() == {"pending": 1} and await s.tasks.get(t.id) is None

    deadline = asyncio.get_running_loop().time() + 5
    while not await gone():
        assert asyncio.get_running_loop().time() < deadline, await s.tasks.counts()
        await asyncio.sleep(0.1)
    assert await all_tasks(s, job="j") == [] and await all_tasks(s, state="cancelled") == []
    assert await s.client.zcard(s.prefix + "x:cancelled") == 0, "the index entries are pruned too"
    assert await s.client.exists(s.prefix + "jt:j") == 0


async def test_a_finished_task_costs_what_docs_redis_md_says(distsched_app, redis_server) -> None:
    """docs/redis.md's per-task memory figure is this measurement (issue 16.6): the Redis
    memory a finished, retained task takes with its index entries (used_memory before and
    after 5,000 tasks ran), and its hash alone (MEMORY USAGE)."""
    import asyncio
    import uuid

    from distsched.model import TaskSpec

    ns = f"mem{uuid.uuid4().hex[:8]}"
    client = redis_server.client()
    try:
        app = await distsched_app(redis_server.url_for(namespace=ns), functions={"noop": lambda: None})
        before = client.info("memory")["used_memory"]
        n = 5000
        await app.submit_many([TaskSpec(target="noop") for _ in range(n)])
        while app.engine.scheduler.stats["succeeded"] < n:
            await asyncio.sleep(0.05)
        per_task = (client.info("memory")["used_memory"] - before) / n
        keys = [k for _, k in zip(range(500), client.scan_iter("{" + ns + "}:t:*", count=1000))]
        per_hash = sum(client.memory_usage(k, samples=0) for k in keys) / len(keys)
    finally:
        client.close()
    print(f"\n[figure] a finished task: {per_task:.0f} B of Redis memory with its index entries, "
          f"its hash {per_hash:.0f} B")
    assert 1500 < per_task < 3500, per_task  # docs/redis.md: about 2.7 KiB
    assert 1200 < per_hash < 2600, per_hash  # docs/redis.md: about 2.1 KiB


async def test_submitting_one_task_is_a_handful_of_redis_commands(open_storage, private_server, command_calls) -> None:
    """Issue 13.3: a one-task submit stores the task and its indexes and wakes the leader -
    nothing else (retention pruning is the leader's housekeeping now; no reply cache: a
    submit is idempotent by id on its own). Counted by the
    server itself (INFO commandstats) on a server nothing else talks to."""
    s = await open_storage(private_server.url_for(namespace="lean"))
    client = private_server.client()
    try:
        await s.tasks.submit([task("warm", 1.0)])
        before = command_calls(client)
        n = 20
        for i in range(n):
            assert await s.tasks.submit([task(f"t{i}", 2.0)]) == [True]
        after = command_calls(client)
    finally:
        client.close()
    per_submit = {k: (v - before.get(k, 0)) / n for k, v in after.items() if v != before.get(k, 0)}
    # FCALL, EXISTS, HSET, ZADD x3 (tc, ts:pending, ready), HINCRBY, LPUSH and - only because
    # nobody takes the wake-up token here - LTRIM; no TIME (a new pending task needs none)
    assert sum(per_submit.values()) <= 9, per_submit
    assert per_submit == {**per_submit, "fcall": 1}, "one round trip per submit, a function of the library"
    assert "time" not in per_submit, f"a submit needs no server time: {per_submit}"
    assert "zrangebyscore" not in per_submit, f"a submit must not prune: {per_submit}"
    assert "set" not in per_submit and "get" not in per_submit, f"no reply cache: {per_submit}"
    assert await s.tasks.counts() == {"pending": n + 1}


@pytest.mark.parametrize("batch", [1, 40])
async def test_an_index_that_reaches_32_members_is_a_skiplist(open_storage, private_server, batch) -> None:
    """A sorted-set index written to 32 members or more is made a skiplist (a listpack's
    ZADD at the tail reads every score before it: docs/redis.md, "Small sorted sets"),
    whether it grows one task a call or takes 40 in one call, through a member that is in
    it only during the call, which no reader ever sees; a smaller index stays a listpack."""
    s = await open_storage(private_server.url_for(namespace=f"enc{batch}"))
    client = private_server.client()
    try:
        ids = [f"t{i:02d}" for i in range(40)]
        for first in range(0, len(ids), batch):
            tasks = [task(task_id, float(first + i)) for i, task_id in enumerate(ids[first:first + batch])]
            assert await s.tasks.submit(tasks) == [True] * len(tasks)
        for index in ("ready", "ts:pending", "tc"):
            assert client.object("encoding", s.prefix + index) == "skiplist", index
            assert client.zrange(s.prefix + index, 0, -1) == ids, f"{index} holds the tasks and nothing else"
        assert [t.id for t in await s.tasks.ready(1e12, 100)] == ids
        small = await open_storage(private_server.url_for(namespace=f"enc{batch}small"))
        assert await small.tasks.submit([task(f"s{i}", float(i)) for i in range(10)]) == [True] * 10
        assert client.object("encoding", small.prefix + "ready") == "listpack"
    finally:
        client.close()


async def test_a_retried_submit_counts_its_own_tasks_as_created(storage) -> None:
    """A submit retried after a lost reply (the same call again: the same tasks, the same
    created_at) answers created, as the first try did; another submission of an existing id
    answers not created, and neither changes the stored task."""
    a = task("a", 1.5, args=[1])
    assert await storage.tasks.submit([a]) == [True]
    retry = task("a", 1.5, args=[1])  # what a client retry sends: the same string
    assert await storage.tasks.submit([retry]) == [True]
    assert await storage.tasks.submit([task("a", 2.5, args=[1])]) == [False]
    assert await storage.tasks.submit([task("a", 1.5, args=[2])]) == [False]
    stored = await storage.tasks.get("a")
    assert stored is not None and stored.spec.args == (1,) and stored.created_at == 1.5 and stored.version == 1
    assert await storage.tasks.counts() == {"pending": 1}


async def test_the_lean_connection_calls_the_function_library_and_reloads_it(open_storage, private_server) -> None:
    """The scripts as one function library (Redis 7+, FCALL on the lean connection): loaded
    when the store opens, and loaded again by the call that finds it missing (as after a
    restart of a Redis that keeps nothing on disk), which then runs once."""
    s = await open_storage(private_server.url_for(namespace="lib"))
    client = private_server.client()
    try:
        def libraries() -> list[str]:
            return [dict(zip(lib[::2], lib[1::2]))["library_name"] for lib in client.function_list()]

        assert libraries() == [s.scripts.library.split("\n", 1)[0].removeprefix("#!lua name=")]
        assert await s.tasks.submit([task("a", 1.0)]) == [True]
        client.function_flush()
        assert await s.tasks.submit([task("b", 1.0), task("a", 1.0)]) == [True, True]
        assert len(libraries()) == 1, "loaded again by the call that found it missing"
        assert await s.tasks.counts() == {"pending": 2}, "the second call counted only its new task"
        assert client.info("commandstats").get("cmdstat_evalsha") is None
    finally:
        client.close()


async def test_a_batch_that_fails_half_way_leaves_no_member_a_reader_returns(open_storage, private_server) -> None:
    """The member that makes an index a skiplist is removed after the batch's write; were that
    write to fail (here a task string whose not_before is not a number), the script stops with
    the member still in the index, scored +inf: no read of the tasks due by now returns it."""
    from redis.exceptions import ResponseError

    from distsched_redis.codec import task_args

    s = await open_storage(private_server.url_for(namespace="halfway"))
    client = private_server.client()
    try:
        strings = [task_args(task(f"t{i:02d}", float(i)), 0) for i in range(40)]
        fields = strings[-1].split("\x1f")
        fields[2] = "soon"  # not_before: the ready index's score
        strings[-1] = "\x1f".join(fields)
        with pytest.raises(ResponseError, match="not a valid float"):
            client.fcall(s.scripts.function(s.scripts.submit), 1, s.prefix + "op:x", s.prefix, "604800", *strings)
        # one ZADD of the 40 is refused whole: the member stayed, alone
        assert client.zcard(s.prefix + "ready") == 1 and client.object("encoding", s.prefix + "ready") == "skiplist"
        assert client.zrangebyscore(s.prefix + "ready", "-inf", 1e12) == []
        assert await s.tasks.ready(1e12, 100) == []
    finally:
        client.close()


async def test_a_user_that_may_not_load_functions_calls_the_scripts(open_storage, make_server, caplog) -> None:
    """An ACL user without FUNCTION (or a Redis before 7): the store calls its scripts with
    EVALSHA on the lean connection instead, and works the same, without a warning (the
    refusal is expected)."""
    server = make_server(config=[("user", "app", "on", ">pw", "~*", "resetchannels", "+@all", "-function")])
    with caplog.at_level(logging.WARNING, logger="distsched.redis"):
        s = await open_storage(server.url_for("app", "pw", namespace="nofn"))
    assert not [r for r in caplog.records if "function library" in r.getMessage()]
    client = server.client()
    try:
        assert s.lean is not None
        assert await s.tasks.submit([task("a", 1.0)]) == [True]
        assert [t.id for t in await s.tasks.ready(1e12, 10)] == ["a"]
        stats = client.info("commandstats")
        assert "cmdstat_fcall" not in stats and int(stats["cmdstat_evalsha"]["calls"]) >= 2
        assert client.function_list() == []
    finally:
        client.close()


async def test_a_library_the_server_cannot_load_is_said_and_the_scripts_are_called(open_storage, private_server,
                                                                                    caplog) -> None:
    """A function library Redis 7 refuses for another reason than a refusal of FUNCTION (here
    a compile error) leaves the store on EVALSHA, as a refusal does, and says so once: the
    fast path is not lost without a word."""
    s = await open_storage(private_server.url_for(namespace="badlib"))
    s.scripts.library = "#!lua name=distsched_broken\nthis is not Lua"
    with caplog.at_level(logging.WARNING, logger="distsched.redis"):
        assert await s.scripts.load_library(s.client) is False
    [record] = [r for r in caplog.records if "function library" in r.getMessage()]
    assert "EVALSHA" in record.getMessage() and "Error compiling function" in record.getMessage(), record.getMessage()
    assert s.scripts.function(s.scripts.submit) is None
    assert await s.tasks.submit([task("a", 1.0)]) == [True], "the scripts still work"


async def test_out_of_memory_a_store_call_keeps_the_rules_of_a_script(open_storage, private_server) -> None:
    """Redis refuses a function that may write, whole, while it is out of memory; a script
    only has its first write that needs memory refused. So a refused FCALL runs as the
    script: reads (counts, the dashboard's) and memory-freeing housekeeping go on, a submit
    is refused with Redis's OOM error, and nothing is half-written."""
    from redis.exceptions import OutOfMemoryError

    s = await open_storage(private_server.url_for(namespace="oom"))
    client = private_server.client()
    try:
        assert await s.tasks.submit([task("a", 1.0)]) == [True]
        client.config_set("maxmemory", "1")  # below what is used: out of memory at once
        try:
            stats0 = client.info("commandstats")
            assert await s.tasks.counts() == {"pending": 1}
            with pytest.raises(OutOfMemoryError) as refused:
                await s.tasks.submit([task("b", 1.0)])
            assert isinstance(refused.value, s.refusing_errors), "the leader steps down with a warning on it"
            assert await s.housekeeping(100) == 0
            stats = client.info("commandstats")
            # counts, submit, prune, the jobs' due check (no job lost its entry: it writes
            # nothing), its walk of the configs (which writes nothing) and the history backfill
            # (which only adds: refused at its first write, it is tried again at the next pass)
            assert stats["cmdstat_fcall"]["rejected_calls"] - stats0["cmdstat_fcall"]["rejected_calls"] == 6
            assert stats["cmdstat_evalsha"]["calls"] - stats0.get("cmdstat_evalsha", {}).get("calls", 0) == 6
        finally:
            client.config_set("maxmemory", "0")
        assert await s.tasks.get("b") is None, "the refused submit wrote nothing"
        assert await s.tasks.submit([task("b", 1.0)]) == [True]
        assert await s.tasks.counts() == {"pending": 2}
    finally:
        client.close()


def test_a_function_that_fails_half_way_leaves_nothing_to_the_next_call(private_server) -> None:
    """A library's locals live on between calls: begin_call, every script's first step, sets
    all per-call state afresh. A function that queued counts and index writes and changed the
    retention, then failed, leaves none of it to the next call of the library."""
    from redis.exceptions import ResponseError

    from distsched_redis import scripts
    from distsched_redis.codec import task_args

    text, _ = scripts.library()
    name = text.split("\n", 1)[0].removeprefix("#!lua name=")
    text = text.replace(name, "statecheck") + (
        "\nredis.register_function('statecheck_fail', function(KEYS, ARGV) begin_call(KEYS, ARGV, true)\n"
        "  count_delta('pending', 5); batch2('ZADD', P .. 'ready', 1, 'ghost'); configure_retention(1)\n"
        "  error('half-way') end)")
    client = private_server.client()
    try:
        client.function_load(text)
        with pytest.raises(ResponseError, match="half-way"):
            client.fcall("statecheck_fail", 1, "{st}:op:1", "{st}:")
        assert client.fcall("statecheck_submit", 1, "{st}:op:2", "{st}:", "604800", task_args(task("a", 1.0), 0)) \
            == ["OK", "1"]
        assert client.hgetall("{st}:cnt") == {"pending": "1"}, "no count of the failed call"
        assert client.zrange("{st}:ready", 0, -1) == ["a"], "no index write of the failed call"
    finally:
        client.function_delete("statecheck")
        client.close()
