"""Workers, per-worker queues and the result channel on Redis."""

import asyncio
import time

import pytest

from distsched.model import FencedError, Task, TaskResult, TaskSpec, TaskState, Worker

pytestmark = pytest.mark.redis


def task(task_id: str, now: float = 0.0, **spec) -> Task:
    spec.setdefault("target", "f")
    return Task(id=task_id, spec=TaskSpec(**spec), created_at=now)


def worker(worker_id: str, now: float, **fields) -> Worker:
    fields.setdefault("concurrency", 2)
    return Worker(id=worker_id, started_at=now, **fields)


def result(t: Task, outcome: str = "succeeded", now: float = 0.0, **kw) -> TaskResult:
    return TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome=outcome, started_at=now,
                      finished_at=now, worker_id=t.worker_id, **kw)


async def dispatched(storage, fence, ids, worker_id="w1"):
    await storage.tasks.submit([task(i) for i in ids])
    tasks = await storage.tasks.get_many(ids)
    for t in tasks:
        t.dispatch(worker_id, storage.clock())
    assert all(await storage.tasks.dispatch(fence, tasks))
    return tasks


async def test_register_heartbeat_deregister(storage) -> None:
    start = storage.clock()
    await storage.workers.register(worker("w1", start, host="h1", pid=42, concurrency=3, capacity=12))
    [w] = await storage.workers.list_workers()
    assert (w.id, w.host, w.pid, w.concurrency, w.capacity, w.load, w.started_at, w.draining) == \
        ("w1", "h1", 42, 3, 12, 0, start, False)
    assert abs(w.last_heartbeat - storage.clock()) < 1.0, "heartbeats are stamped with server time"
    before = w.last_heartbeat
    assert await storage.workers.heartbeat("w1", draining=True) is True
    [w] = await storage.workers.list_workers()
    assert w.draining and w.last_heartbeat >= before
    assert await storage.workers.heartbeat("w1") is True
    assert not (await storage.workers.list_workers())[0].draining
    await storage.workers.deregister("w1")
    [w] = await storage.workers.list_workers()
    assert w.draining and w.last_heartbeat == 0.0, "a leaving worker is dead at once (the leader reaps it)"
    assert await storage.workers.heartbeat("nobody") is False
    await storage.workers.deregister("nobody")
    assert [x.id for x in await storage.workers.list_workers()] == ["w1"]


async def test_pull_marks_running_with_server_time_and_tracks_in_flight(storage, fence) -> None:
    await storage.workers.register(worker("w1", storage.clock()))
    a, b, c = await dispatched(storage, fence, ["a", "b", "c"])
    before = storage.clock()
    pulled = await storage.queues.pull("w1", 2, 1.0)
    assert [t.id for t in pulled] == ["a", "b"], "FIFO, at most max_items"
    for t in pulled:
        assert t.state is TaskState.RUNNING and t.attempt_id == a.attempt_id.replace("a", t.id)
        assert t.version == 3 and abs(t.started_at - before) < 1.0 and t.started_at == t.updated_at
    stored = await storage.tasks.get("a")
    assert stored == pulled[0]
    assert await storage.client.lrange(storage.prefix + "q:w1", 0, -1) == ["c#1"], "taken off the queue"
    assert await storage.tasks.overdue(pulled[0].started_at + 59.0, 10) == []
    assert {t.id for t in await storage.tasks.overdue(pulled[0].started_at + 61.0, 10)} >= {"a", "b"}
    assert (await storage.workers.list_workers())[0].load == 3
    # report: results appended; the leader peeks and acknowledges via save
    await storage.queues.report("w1", [result(pulled[0], value={"n": 1}), result(pulled[1], "failed", error="boom")])
    peeked = await storage.results.peek(10)
    assert [(r.task_id, r.outcome, r.value, r.error) for r in peeked] == \
        [("a", "succeeded", {"n": 1}, None), ("b", "failed", None, "boom")]
    assert [r.task_id for r in await storage.results.peek(1)] == ["a"]
    t = await storage.tasks.get("a")
    t.finish(peeked[0], storage.clock())
    assert await storage.tasks.save(fence, [t], ack_results=1) == [True]
    assert [r.task_id for r in await storage.results.peek(10)] == ["b"]
    assert (await storage.workers.list_workers())[0].load == 2


async def test_pull_drops_stale_entries_and_keeps_taking(storage, fence) -> None:
    await storage.workers.register(worker("w1", storage.clock()))
    await storage.workers.register(worker("w2", storage.clock()))
    a, b, c, d = await dispatched(storage, fence, ["a", "b", "c", "d"])
    a.cancel("cancelled", storage.clock())
    await storage.tasks.save(fence, [a])
    # b is re-dispatched to w2: w1's entry "b#1" is stale (wrong attempt and worker)
    b.requeue("moved", storage.clock())
    await storage.tasks.save(fence, [b])
    b.dispatch("w2", storage.clock())
    await storage.tasks.dispatch(fence, [b])
    await storage.client.rpush(storage.prefix + "q:w1", "nonsense", "ghost#1")
    pulled = await storage.queues.pull("w1", 2, 1.0)
    assert [t.id for t in pulled] == ["c", "d"], "stale entries are dropped, live ones behind them taken"
    assert (await storage.tasks.get("a")).state is TaskState.CANCELLED
    assert (await storage.tasks.get("b")).state is TaskState.DISPATCHED
    assert await storage.queues.pull("w1", 5, 0.05) == []
    assert [t.id for t in await storage.queues.pull("w2", 5, 1.0)] == ["b"]


async def test_pull_blocks_until_dispatch_and_times_out(storage, fence) -> None:
    await storage.workers.register(worker("w1", storage.clock()))
    t0 = time.monotonic()
    assert await storage.queues.pull("w1", 5, 0.3) == []
    waited = time.monotonic() - t0
    assert 0.25 <= waited < 1.5, waited
    waiter = asyncio.create_task(storage.queues.pull("w1", 5, 10.0))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    t0 = time.monotonic()
    await dispatched(storage, fence, ["a"])
    pulled = await asyncio.wait_for(waiter, 5.0)
    assert [t.id for t in pulled] == ["a"] and time.monotonic() - t0 < 2.0
    assert await storage.queues.pull("w1", 0, 1.0) == []


async def test_an_entry_left_in_the_claim_list_is_not_lost(storage, fence) -> None:
    """A BLMOVE whose reply was lost leaves the entry in the claim list; the next pull takes it."""
    await storage.workers.register(worker("w1", storage.clock()))
    await dispatched(storage, fence, ["a", "b"])
    await storage.client.lmove(storage.prefix + "q:w1", storage.prefix + "c:w1", "LEFT", "RIGHT")
    assert [t.id for t in await storage.queues.pull("w1", 5, 0.5)] == ["a", "b"]


async def test_a_retried_pull_returns_the_same_tasks(storage, fence) -> None:
    await storage.workers.register(worker("w1", storage.clock()))
    await dispatched(storage, fence, ["a", "b"])
    s = storage
    keys, args = [s.prefix + "op:retry-1"], [s.prefix, "w1", "1"]
    first = await s.scripts.pull(keys=keys, args=args)
    again = await s.scripts.pull(keys=keys, args=args)
    assert first == again and [r[-1] for r in first] == ["a"], "same op id: the same answer"
    assert (await s.tasks.get("b")).state is TaskState.DISPATCHED


async def test_reap_removes_the_worker_and_requeues_atomically(storage, election, fence) -> None:
    await storage.workers.register(worker("w1", storage.clock()))
    await storage.workers.register(worker("w2", storage.clock()))
    await dispatched(storage, fence, ["a", "b"])
    await dispatched(storage, fence, ["x"], "w2")
    await storage.queues.pull("w1", 1, 1.0)
    held = await storage.tasks.assigned("w1")
    assert {t.id: t.state for t in held} == {"a": TaskState.RUNNING, "b": TaskState.DISPATCHED}
    for t in held:
        t.requeue("worker lost", storage.clock())
    await election.release(fence)
    newer = await election.acquire("leader-2")
    with pytest.raises(FencedError):
        await storage.workers.reap(fence, "w1", held)
    assert {w.id for w in await storage.workers.list_workers()} == {"w1", "w2"}, "a fenced reap changes nothing"
    assert await storage.workers.reap(newer, "w1", held) == [True, True]
    assert {t.id: t.version for t in held} == {"a": 4, "b": 3}
    assert [w.id for w in await storage.workers.list_workers()] == ["w2"]
    assert await storage.workers.heartbeat("w1") is False, "a reaped worker learns it is dead"
    for key in ("q:w1", "c:w1", "wa:w1"):
        assert await storage.client.exists(storage.prefix + key) == 0, key
    again = await storage.tasks.get_many(["a", "b"])
    assert all(t.state is TaskState.PENDING and t.redeliveries == 1 and t.worker_id is None for t in again)
    assert {t.id for t in await storage.tasks.ready(storage.clock() + 1, 10)} == {"a", "b"}
    assert await storage.tasks.assigned("w1") == [] and await storage.tasks.overdue(1e12, 10) == [
        await storage.tasks.get("x")]


async def test_report_caps_the_result_list(open_storage, redis_server, namespace) -> None:
    s = await open_storage(redis_server.url_for(namespace=namespace, results_max=3))
    await s.queues.report("w1", [result(task(f"t{i}")) for i in range(5)])
    assert [r.task_id for r in await s.results.peek(10)] == ["t2", "t3", "t4"], "the oldest are dropped"


async def test_an_undecodable_result_is_dropped_not_blocking(storage) -> None:
    await storage.client.rpush(storage.prefix + "results", "{not json")
    await storage.queues.report("w1", [result(task("ok"))])
    assert [r.task_id for r in await storage.results.peek(10)] == ["ok"]


async def test_wait_for_activity(storage, fence) -> None:
    loop = asyncio.get_running_loop()
    await storage.wait_for_activity(0.01)  # consume an earlier token
    t0 = loop.time()
    await storage.wait_for_activity(0.3)
    assert 0.25 <= loop.time() - t0 < 1.5, "nothing happened: it waits the timeout"

    async def woken_by(action) -> float:
        await storage.wait_for_activity(0.01)
        waiter = asyncio.create_task(storage.wait_for_activity(10.0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        t0 = loop.time()
        await action()
        await asyncio.wait_for(waiter, 5.0)
        return loop.time() - t0

    from distsched.model import EveryTrigger, TaskConfig

    actions = [
        lambda: storage.tasks.submit([task("s")]),
        lambda: storage.queues.report("w1", [result(task("s"))]),
        lambda: storage.jobs.add(TaskConfig(name="j", trigger=EveryTrigger(5), spec=TaskSpec(target="f")),
                                 next_fire_at=1.0),
        lambda: storage.jobs.set_paused("j", True),
        lambda: storage.workers.register(worker("w9", storage.clock())),
        lambda: storage.workers.deregister("w9"),
    ]
    for action in actions:
        assert await woken_by(action) < 2.0
    assert await storage.client.llen(storage.prefix + "notify") <= 1, "the token list stays capped"


@pytest.mark.parametrize("lean", ["true", "false"])
async def test_the_wakeup_listener_blocks_once_per_wait_not_once_per_token(open_storage, private_server, poll,
                                                                           command_calls, lean) -> None:
    """A leader busy in a pass while tasks are submitted one by one: the listener took the
    first token and waits to be asked again, the others stay on the list (capped at one);
    the next wait takes it at once. Counted by the server (INFO commandstats) on a server
    nothing else talks to: it used to make one BLPOP per token."""
    storage = await open_storage(private_server.url_for(namespace="wake"), lean=lean)
    client = private_server.client()

    def blpops() -> int:
        return command_calls(client)["blpop"]

    def blpops_reach(n: int):
        async def reached() -> bool:
            return blpops() == n
        return reached

    async def token_taken() -> bool:
        return storage._activity.is_set()

    try:
        await storage.wait_for_activity(0.01)  # the listener starts, blocked on the list
        await poll(blpops_reach(1), 10)
        for i in range(20):  # the leader is "in a pass": nobody waits
            await storage.tasks.submit([task(f"s{i}")])
        assert await poll(token_taken, 10)  # the first token was taken
        assert client.llen(storage.prefix + "notify") == 1, "the others wait on the list, capped at one"
        assert blpops() == 1
        await asyncio.wait_for(storage.wait_for_activity(10.0), 5.0)  # the token already taken
        assert blpops() == 1
        await asyncio.wait_for(storage.wait_for_activity(10.0), 5.0)  # the one on the list
        assert blpops() == 2 and client.llen(storage.prefix + "notify") == 0
        # nothing more: the next wait blocks until a token comes
        waiter = asyncio.create_task(storage.wait_for_activity(10.0))
        await poll(blpops_reach(3), 10)
        assert not waiter.done()
        await storage.tasks.submit([task("last")])
        await asyncio.wait_for(waiter, 5.0)
    finally:
        client.close()


async def test_a_replayed_settle_returns_the_settled_tasks_again(storage, fence) -> None:
    """A settle whose reply was lost is retried with the same op id: the cached reply carries
    the settled tasks too, so the leader still emits their TaskFinished events (issue 15.1)."""
    from distsched_redis import codec
    from distsched_redis.storage import _token

    tasks = await dispatched(storage, fence, ["a", "b"])
    await storage.queues.report("w1", [result(t, now=storage.clock()) for t in tasks])
    op = [storage.prefix + "op:settle-replay"]
    args = [storage.prefix, _token(fence), storage.retention, "10", "1"]
    first = await storage.scripts.settle(keys=op, args=args)
    again = await storage.scripts.settle(keys=op, args=args)  # the client's retry
    assert [int(x) for x in first[1:4]] == [2, 0, 0]
    assert [int(x) for x in again[1:4]] == [2, 0, 0]
    assert [codec.decode_settled(r).task_id for r in again[4:]] == ["a", "b"]
    assert again[4:] == first[4:]


async def test_a_reap_drops_index_entries_of_tasks_that_are_gone(storage, fence) -> None:
    """An assigned-index entry whose task record expired or was moved aside must not keep a
    dead worker forever (the leader reported it lost on every pass)."""
    await storage.workers.register(worker("w1", storage.clock()))
    await storage.client.sadd(storage.prefix + "wa:w1", "ghost")
    assert await storage.workers.reap(fence, "w1", []) == []
    assert [w.id for w in await storage.workers.list_workers()] == []


async def test_a_settling_report_finishes_unsigned_current_successes_at_once(storage, fence) -> None:
    """report(settle=True) finishes this worker's current, unsigned successes in the report's
    own script (the task is succeeded before any settle), leaves a summary row for the
    leader's next settle, and hands everything else to the leader as before: a failure, a
    stale success, a success of a signed dispatch, another worker's claim."""
    a, b, c, d, e = await dispatched(storage, fence, ["a", "b", "c", "d", "e"])
    await storage.client.hset(storage.prefix + "t:d", "g", "signed-by-the-leader")
    assert len(await storage.queues.pull("w1", 10, 1.0)) == 5
    stale = TaskResult(**{**result(c).to_dict(), "attempt_id": "c#7"})
    foreign = TaskResult(**{**result(e).to_dict(), "worker_id": "w9"})
    await storage.client.delete(storage.prefix + "notify")
    await storage.queues.report("w1", [result(a, value=1), result(b, "failed", error="boom"), stale,
                                       result(d), foreign], settle=True)
    assert (await storage.tasks.get("a")).state is TaskState.SUCCEEDED, "settled by the report itself"
    assert [(await storage.tasks.get(i)).state for i in "bcde"] == [TaskState.RUNNING] * 4
    assert [r.task_id for r in await storage.results.peek(10)] == ["b", "c", "d", "e"]
    assert await storage.client.llen(storage.prefix + "notify") == 1, "results for the leader: it is woken"
    done = await storage.results.settle(fence, 10, want_tasks=True)
    assert (done.settled, [t.task_id for t in done.tasks], done.left) == (1, ["a"], 4), done
    counts = await storage.tasks.counts()
    assert (counts.get("succeeded"), counts.get("running")) == (1, 4), counts


async def test_a_report_that_only_settled_wakes_the_leader_only_when_it_waits_for_room(storage, fence) -> None:
    first, second = await dispatched(storage, fence, ["a", "b"])
    await storage.queues.pull("w1", 10, 1.0)
    notify = storage.prefix + "notify"
    await storage.tasks.submit([task("waiting")])  # ready, but the leader did not say it lacks room
    await storage.client.delete(notify)
    await storage.queues.report("w1", [result(first)], settle=True)
    assert await storage.client.llen(notify) == 0, "the leader waits for no room: nobody is woken"
    await storage.waiting_for_room(True)
    assert 0 < await storage.client.pttl(storage.prefix + "room") <= 5000, "the hint lasts a few seconds"
    await storage.queues.report("w1", [result(second)], settle=True)
    assert await storage.client.llen(notify) == 1, "a freed slot may take a ready task"
    await storage.waiting_for_room(False)
    assert await storage.client.exists(storage.prefix + "room") == 0
    done = await storage.results.settle(fence, 10, want_tasks=True)
    assert (done.settled, [t.task_id for t in done.tasks]) == (2, ["a", "b"])
    await storage.queues.report("w1", [], settle=True)
    assert await storage.client.llen(notify) == 1, "an empty report still wakes the leader"


async def test_settled_rows_are_capped_and_taken_up_to_the_batch(open_storage, redis_server, namespace, fence) -> None:
    s = await open_storage(redis_server.url_for(namespace=namespace, results_max=3))
    from distsched.testing.contracts.storage import _dispatched  # a Harness-free helper

    await _dispatched(s, fence, [f"t{i}" for i in range(5)])
    pulled = await s.queues.pull("w1", 10, 1.0)
    await s.queues.report("w1", [result(t) for t in pulled], settle=True)
    assert await s.client.llen(s.prefix + "fin") == 3, "no leader for that long: the oldest rows go"
    first = await s.results.settle(fence, 2, want_tasks=True)
    assert (first.settled, [t.task_id for t in first.tasks]) == (2, ["t2", "t3"])
    second = await s.results.settle(fence, 2, want_tasks=True)
    assert (second.settled, [t.task_id for t in second.tasks]) == (1, ["t4"])
    assert (await s.tasks.counts()).get("succeeded") == 5


async def test_a_blocking_pull_after_an_emptying_take_does_not_take_first(open_storage, private_server,
                                                                          command_calls) -> None:
    """Under a trickle a worker's pull empties its queue, then blocks for the next task: it
    goes straight to BLMOVE (which returns at once when something was queued since) instead
    of running the pull script once more to find nothing - one script call per task, not two.
    Counted by a server nothing else talks to."""
    from distsched_redis.election import RedisElection

    s = await open_storage(private_server.url_for(namespace="trickle"))
    fence = await RedisElection(s).acquire("leader-1")
    client = private_server.client()

    def script_calls() -> int:  # as functions of the library on the lean connection
        counted = command_calls(client)
        return counted["evalsha"] + counted["fcall"]

    try:
        await dispatched(s, fence, ["a"])
        assert [t.id for t in await s.queues.pull("w1", 10, 1.0)] == ["a"]  # empties the queue
        before = script_calls()
        waiting = asyncio.create_task(s.queues.pull("w1", 10, 5.0))
        await asyncio.sleep(0.1)  # let it block (the test only gets slower if it has not yet)
        await dispatched(s, fence, ["b"])  # submit, read, dispatch: 3 script calls
        assert [t.id for t in await asyncio.wait_for(waiting, 5.0)] == ["b"]
        assert script_calls() - before == 3 + 1, "the pull ran its script once: after the BLMOVE"
        await dispatched(s, fence, ["c"])  # queued while nobody pulls: taken at once
        assert [t.id for t in await s.queues.pull("w1", 10, 1.0)] == ["c"]
        assert [t.id for t in await s.queues.pull("w1", 10, 0.01)] == [], "a short pull still takes"
    finally:
        client.close()


async def test_report_and_pull_is_one_script_call_and_a_replay_reports_nothing_again(
        open_storage, private_server, command_calls) -> None:
    """queues.report_and_pull: the report and the take in one script call (one round trip,
    counted by a server nothing else talks to). Its reply cache is the take's: a call retried
    with the same op key (a lost reply) reports nothing twice and returns the tasks still
    running here; the next blocking pull after a take that emptied the queue goes straight
    to BLMOVE."""
    from distsched_redis.election import RedisElection

    s = await open_storage(private_server.url_for(namespace="carry"))
    fence = await RedisElection(s).acquire("leader-1")
    client = private_server.client()

    def calls() -> dict[str, int]:
        return command_calls(client)

    try:
        await dispatched(s, fence, ["a", "b", "c"])
        [a] = await s.queues.pull("w1", 1, 1.0)
        before = calls()
        got = await s.queues.report_and_pull("w1", [result(a, value=1)], 1, settle=True)
        used = {k: v - before.get(k, 0) for k, v in calls().items() if v != before.get(k, 0)}
        assert [t.id for t in got] == ["b"] and used["fcall"] == 1 and "evalsha" not in used, used
        assert (await s.tasks.get("a")).state is TaskState.SUCCEEDED, "settled by the same script"
        [b] = got
        keys = [s.prefix + "op:carry-1"]
        args = [s.prefix, "w1", "5", "100", "", codec_json(result(b, "failed", error="boom"))]
        first = await s.scripts.report_pull(keys=keys, args=args)
        again = await s.scripts.report_pull(keys=keys, args=args)
        assert first == again and [r[-1] for r in first] == ["c"], "same op id: the same answer"
        assert [r.task_id for r in await s.results.peek(10)] == ["b"], "reported once"
        assert await s.scripts.pull(keys=keys, args=[s.prefix, "w1", "5"]) == first, "a pull replays it too"
        assert await s.queues.report_and_pull("w1", [], 5) == []
        before = calls()
        waiting = asyncio.create_task(s.queues.pull("w1", 5, 5.0))
        await asyncio.sleep(0.1)  # let it block (the test only gets slower if it has not yet)
        await dispatched(s, fence, ["d"])  # submit, read, dispatch: 3 script calls
        assert [t.id for t in await asyncio.wait_for(waiting, 5.0)] == ["d"]
        assert calls()["fcall"] - before.get("fcall", 0) == 3 + 1, "the emptying carry let the pull block at once"
    finally:
        client.close()


def codec_json(r: TaskResult) -> str:
    from distsched_redis import codec

    return codec.result_json(r)
