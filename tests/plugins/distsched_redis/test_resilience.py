"""Redis restarts: the backend reconnects (pool, scripts reloaded) and works again."""

import asyncio
import time

import pytest
from redis.exceptions import RedisError

from distsched.model import Task, TaskSpec, TaskState, Worker
from distsched_redis.election import RedisElection

pytestmark = pytest.mark.redis


def task(task_id: str) -> Task:
    return Task(id=task_id, spec=TaskSpec(target="f"), created_at=1.0)


async def test_operations_succeed_again_after_a_redis_restart(private_server, open_storage, poll) -> None:
    s = await open_storage(private_server.url, socket_timeout=1.0, connect_timeout=0.5)
    assert await s.tasks.submit([task("before")]) == [True]
    private_server.kill()  # kill -9 mid-use
    with pytest.raises(RedisError):
        await s.tasks.get("before")
    t0 = time.monotonic()
    await s.wait_for_activity(0.2)  # a leader sleeping through the outage does not crash
    assert time.monotonic() - t0 < 2.0
    private_server.restart()  # same port, empty (no persistence): scripts must be reloaded
    assert await poll(lambda: s.tasks.submit([task("after")]), timeout=10.0) == [True]
    fence = await RedisElection(s).acquire("leader")
    await s.workers.register(Worker(id="w1", concurrency=1, started_at=s.clock()))
    [t] = await s.tasks.get_many(["after"])
    t.dispatch("w1", s.clock())
    assert await s.tasks.dispatch(fence, [t]) == [True]
    [pulled] = await s.queues.pull("w1", 1, 1.0)
    assert pulled.state is TaskState.RUNNING


async def test_a_blocked_pull_survives_a_restart(private_server, open_storage, poll) -> None:
    s = await open_storage(private_server.url, socket_timeout=1.0, connect_timeout=0.5)
    await s.workers.register(Worker(id="w1", concurrency=1, started_at=s.clock()))

    async def pull_forever():
        while True:
            try:
                got = await s.queues.pull("w1", 1, 0.5)
            except RedisError:
                await asyncio.sleep(0.05)
                continue
            if got:
                return got

    puller = asyncio.create_task(pull_forever())
    await asyncio.sleep(0.2)
    private_server.kill()
    await asyncio.sleep(0.3)
    private_server.restart()
    fence = await poll(lambda: RedisElection(s).acquire("leader"), timeout=10.0)
    await poll(lambda: s.tasks.submit([task("t")]), timeout=10.0)
    await s.workers.register(Worker(id="w1", concurrency=1, started_at=s.clock()))
    [t] = await s.tasks.get_many(["t"])
    t.dispatch("w1", s.clock())
    await s.tasks.dispatch(fence, [t])
    got = await asyncio.wait_for(puller, 10.0)
    assert [x.id for x in got] == ["t"]


async def test_clock_is_the_servers(storage) -> None:
    sec, usec = await storage.client.time()
    assert abs(storage.clock() - (sec + usec / 1e6)) < 0.25
    t1 = storage.clock()
    assert storage.clock() >= t1


async def test_calls_wait_while_redis_loads_its_data_set_after_a_restart(make_server, open_storage) -> None:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import BusyLoadingError

    server = make_server(appendonly=True, appendfsync="always")
    s = await open_storage(server.url_for(namespace="loading"), socket_timeout=1.0)
    await s.workers.register(Worker(id="w1", concurrency=1, started_at=s.clock()))
    # 60,000 keys at >= 100 us each: a load of at least 6 s, longer than the at most ~2.6 s
    # redis-py's 6 jittered retries below can wait (20,000 keys, >= 2 s, once did not outlast them)
    server.prepare_slow_load(keys=60_000)
    server.kill()
    server.restart(loaded=False)
    assert server.loading
    # redis-py's own Retry (the budget the store used to have) gives up while Redis loads:
    plain = Redis(host=server.host, port=server.port, retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 6))
    try:
        with pytest.raises(BusyLoadingError):
            await plain.get("x")
    finally:
        await plain.aclose()
    assert server.loading, "the load was too short to show anything: more keys for prepare_slow_load"
    # the store's calls wait for the load instead
    t0 = time.monotonic()
    assert await s.workers.heartbeat("w1") is True
    assert not server.loading and time.monotonic() - t0 > 0.2
    fence = await RedisElection(s).acquire("leader")
    assert fence is not None and await s.tasks.submit([task("after")]) == [True]
    # and a store opened while Redis loads waits for it too
    server.kill()
    server.restart(loaded=False)
    assert server.loading
    late = await open_storage(server.url_for(namespace="loading"), socket_timeout=1.0)
    assert not server.loading
    assert (await late.tasks.get("after")).id == "after"
