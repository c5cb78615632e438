"""Deterministic reproductions of problems the chaos harness found (tests/chaos/harness.py).

Each reproduces a problem the engine had (the first two were marked ``xfail(strict=True)``
until they were fixed); all are fixed now and the tests guard against their return. They
need a redis-server and take a few seconds each.
"""

from __future__ import annotations

import uuid

import pytest

from distsched.model import Task, TaskResult, TaskSpec, TaskState, Worker
from distsched.testing.redis_server import redis_server_binary

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")]


@pytest.fixture
async def store(redis_server):
    from distsched_redis.storage import RedisStorage

    s = await RedisStorage.open(redis_server.url_for(namespace=f"chaos{uuid.uuid4().hex[:10]}"), {})
    yield s
    await s.close()


async def _dispatch(store, fence, task_id: str, worker_id: str) -> Task:
    [t] = await store.tasks.get_many([task_id])
    t.dispatch(worker_id, store.clock())
    assert await store.tasks.dispatch(fence, [t]) == [True]
    return t


async def test_a_replayed_pull_never_hands_out_another_workers_attempt(store) -> None:
    from distsched_redis import codec
    from distsched_redis.election import RedisElection

    fence = await RedisElection(store).acquire("leader")
    now = store.clock()
    for w in ("w1", "w2"):
        await store.workers.register(Worker(id=w, concurrency=1, started_at=now))
    await store.tasks.submit([Task(id="t", spec=TaskSpec(target="f"), created_at=now)])
    await _dispatch(store, fence, "t", "w1")
    # w1 pulls; the reply never reaches it (paused / partitioned past the socket timeout).
    op = [store.prefix + "op:" + uuid.uuid4().hex]
    first = [codec.decode_task(r) for r in await store.scripts.pull(keys=op, args=[store.prefix, "w1", "1"])]
    assert [x.attempt_id for x in first] == ["t#1"]
    # Meanwhile the leader declares w1 dead and re-dispatches t to w2 (attempt 2).
    [t] = await store.tasks.get_many(["t"])
    t.requeue("w1 lost", store.clock())
    assert await store.workers.reap(fence, "w1", [t]) == [True]
    current = await _dispatch(store, fence, "t", "w2")
    assert current.attempt_id == "t#2"
    # w1's client retries the pull with the same op id (what redis-py does after a timeout).
    replay = [codec.decode_task(r) for r in await store.scripts.pull(keys=op, args=[store.prefix, "w1", "1"])]
    handed = [x.attempt_id for x in replay]
    if handed and handed != ["t#1"]:
        # w1 runs what it was handed and reports it; the leader applies results exactly so
        # (Scheduler._finish: Task.finish, then a fenced save): it takes w1's result for the
        # attempt that runs on w2.
        late = TaskResult(task_id="t", attempt_id=replay[0].attempt_id, outcome="succeeded",
                          started_at=store.clock(), finished_at=store.clock(), worker_id="w1")
        [stored] = await store.tasks.get_many(["t"])
        stored.finish(late, store.clock())
        assert await store.tasks.save(fence, [stored]) == [True]
        [final] = await store.tasks.get_many(["t"])
        assert final.state is TaskState.SUCCEEDED and final.result.worker_id == "w1"
        pytest.fail(f"w1, declared dead, was handed {handed} (dispatched to w2) and its result was accepted")
    assert handed in ([], ["t#1"])


async def test_workers_are_not_declared_dead_for_a_redis_outage(tmp_path) -> None:
    import asyncio

    from distsched import DistributeSchedule
    from distsched.model.events import WorkerLost
    from distsched.testing.redis_server import RedisServer

    server = RedisServer(appendonly=True, appendfsync="always").start()
    app = DistributeSchedule(server.url_for(namespace="outage"), lease_ttl=2.0, renew_interval=0.5,
                             heartbeat_ttl=2.0, heartbeat_interval=0.3)
    lost: list[str] = []
    app.listeners.append(lambda e: lost.append(e.worker_id) if isinstance(e, WorkerLost) else None)
    try:
        store = await app.storage()
        await store.workers.register(Worker(id="w1", concurrency=1, started_at=store.clock()))
        server.kill()               # Redis is down for 2.5 s (> heartbeat_ttl): nobody can heartbeat
        await asyncio.sleep(2.5)
        server.restart()            # AOF always: the worker record is still there
        await app.start(worker=False)   # a leader takes over at once
        await asyncio.sleep(0.5)
        alive = await store.workers.heartbeat("w1")   # the worker's next heartbeat, 0.5 s later
        await asyncio.sleep(1.0)
        assert alive and "w1" not in lost, "a live worker was declared dead because Redis was down"
    finally:
        await app.stop()
        server.stop()


async def test_a_leader_rides_out_redis_loading_its_aof_after_a_restart(caplog) -> None:
    """Soak: a leader that met Redis still loading its AOF (BusyLoadingError) stopped its term
    with an ERROR log and a traceback. Calls now wait for the load (the leader keeps its term
    if its lease outlives the load, else steps down on it with a warning) and the job runs
    again once Redis has loaded, with no error logged."""
    import asyncio
    import logging
    import time

    from distsched import DistributeSchedule
    from distsched.testing.redis_server import RedisServer

    server = RedisServer(appendonly=True, appendfsync="always").start()
    # The default lease (10 s, renewed every 3 s): the leader's passes (every 0.2 s) meet the
    # load before its next renewal does.
    app = DistributeSchedule(server.url_for(namespace="loading"), lease_ttl=10.0, renew_interval=3.0)
    app.task(lambda: None, name="noop")
    try:
        with caplog.at_level(logging.INFO, logger="distsched"):
            await app.add_job("tick", every="0.2s", target="noop")
            await app.start()
            scheduler = app.engine.scheduler
            await asyncio.wait_for(scheduler.is_leader.wait(), 5.0)
            await asyncio.sleep(1.0)  # a pass or two under way
            server.prepare_slow_load()
            server.kill()
            server.restart(loaded=False)
            assert server.loading
            t0 = time.monotonic()
            while server.loading:
                await asyncio.sleep(0.05)
            loaded = time.monotonic() - t0
            assert loaded > 2.0, f"the load took {loaded:.1f}s: too short to show anything"
            await asyncio.wait_for(scheduler.is_leader.wait(), 5.0)
            ran = scheduler.stats["succeeded"]
            # The worker's heartbeats failed during the load: until its next one lands (every
            # 2 s; a worker silent for two intervals is given no task) the job may wait. Poll up
            # to the heartbeat TTL (10 s) and a margin; 1.5 s once failed on a loaded machine.
            deadline = time.monotonic() + 15.0
            while scheduler.stats["succeeded"] <= ran:
                assert time.monotonic() < deadline, "the job does not run again after the load"
                await asyncio.sleep(0.05)
    finally:
        await app.stop()
        server.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
    stopped = [r.getMessage() for r in caplog.records if "stopped leading" in r.getMessage()]
    assert not any("error" in m for m in stopped), stopped


class _ReplyDroppingProxy:
    """A TCP proxy to a RedisServer that can swallow every reply (``drop = True``): the
    commands reach Redis and run, their replies never reach the client. New connections are
    closed at once while Redis is down."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.drop = False
        self.port = 0
        self._server = None
        self._writers: list = []

    async def start(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]

        async def pump(src, dst, replies: bool) -> None:
            try:
                while data := await src.read(65536):
                    if not (replies and self.drop):
                        dst.write(data)
                        await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    async def close(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_pull_that_ran_but_whose_reply_was_lost_in_a_redis_crash_is_not_lost() -> None:
    """Soak seed 11: task c11-010586 was dispatched 19 ms before Redis was killed (AOF
    always), never started, and was timed out by the leader 35 s later. The worker's pull
    script had run - the task was marked running on the worker - and
    was on disk, but Redis died before the reply left (while it fsynced the AOF). redis-py's
    retries (same op id, so the script's reply cache would have answered) ran out while
    Redis was down; the worker's next pull used a new op id and found nothing. The task
    stayed running on a live worker that never got it, and no reap could free it."""
    import asyncio

    from redis.exceptions import RedisError

    from distsched.testing.redis_server import RedisServer
    from distsched_redis.election import RedisElection
    from distsched_redis.storage import RedisStorage

    server = RedisServer(appendonly=True, appendfsync="always").start()
    proxy = _ReplyDroppingProxy(server.port)
    await proxy.start()
    store = await RedisStorage.open(f"redis://127.0.0.1:{proxy.port}/0?namespace=lostpull",
                                    {"socket_timeout": 1.0, "connect_timeout": 0.5})
    raw = server.client()
    try:
        fence = await RedisElection(store, ttl=60.0, renew_interval=1.0).acquire("leader")
        await store.workers.register(Worker(id="w1", concurrency=1, started_at=store.clock()))
        await store.tasks.submit([Task(id="t", spec=TaskSpec(target="f"), created_at=store.clock())])
        await _dispatch(store, fence, "t", "w1")
        # The worker pulls; the script runs, Redis is killed before the reply leaves.
        proxy.drop = True
        pull = asyncio.create_task(store.queues.pull("w1", 1, 0.5))
        for _ in range(200):
            if raw.hget(store.prefix + "t:t", "s") == "running":
                break
            await asyncio.sleep(0.01)
        assert raw.hget(store.prefix + "t:t", "s") == "running"
        raw.close()
        server.kill()
        proxy.drop = False
        with pytest.raises(RedisError):  # redis-py's retries run out while Redis is down
            await asyncio.wait_for(pull, 30.0)
        server.restart()  # AOF always: the task is running on w1, the reply cache is there
        # The worker's pull loop pulls again (after its backoff).
        got = await store.queues.pull("w1", 1, 0.5)
        [t] = await store.tasks.get_many(["t"])
        assert t.state is TaskState.RUNNING and t.worker_id == "w1"
        assert [x.attempt_id for x in got] == ["t#1"], (
            "the task is running on w1, which never got it: only the leader's timeout ends it")
    finally:
        await store.close()
        await proxy.close()
        server.stop()
