"""Fixtures for the Redis plugin's tests: real ``redis-server`` processes, never 6379.

* ``redis_server`` (session, from ``distsched.testing.pytest_plugin``): one shared throwaway
  server; every test gets its own ``namespace`` on it, so tests are isolated without FLUSHALL.
* ``private_server``: a server of the test's own, for kill/restart and config tests.
* ``redis6_server`` (session, tests/conftest.py) and ``private_server6``: the same on Redis 6.2
  (``$DISTSCHED_TEST_REDIS6``, built by ``.ci/redis6``; skipped when unset, failing under CI=true).
* ``command_calls``: the calls per command a server counted (``INFO commandstats``).
* ``five_calls``: submit, ready, dispatch, get_many and save of a batch: one script call each.
* ``storage`` / ``election`` / ``fence``: an opened backend on the test's namespace, its
  election, and a fence acquired as ``leader-1``.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from distsched.testing.redis_server import RedisServer


def _need_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH (install it: apt-get install redis-server)")


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url(redis_server: RedisServer, namespace: str) -> str:
    return redis_server.url_for(namespace=namespace)


@pytest.fixture
def private_server() -> Iterator[RedisServer]:
    _need_redis()
    with RedisServer() as server:
        yield server


@pytest.fixture
def private_server6(redis6_binary: str) -> Iterator[RedisServer]:
    """A Redis 6.2 server of the test's own (``redis6_binary``: ``$DISTSCHED_TEST_REDIS6``)."""
    with RedisServer(binary=redis6_binary) as server:
        yield server


def _command_calls(client: Any) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
                    if name != "cmdstat_info"})


@pytest.fixture
def command_calls() -> Callable[[Any], Counter[str]]:
    """``command_calls(client)``: the calls per command (lower case) the client's server has
    counted so far (``INFO commandstats``, the INFO calls left out); 0 for a command never
    called. On a ``private_server`` nothing else talks to, the difference of two readings
    is what the code between them sent."""
    return _command_calls


async def _five_calls(storage: Any, fence: Any, tasks: list[Any]) -> None:
    assert await storage.tasks.submit(tasks) == [True] * len(tasks)
    ready = await storage.tasks.ready(1e12, len(tasks))
    for t in ready:
        t.dispatch("w1", storage.clock())
    assert all(await storage.tasks.dispatch(fence, ready))
    again = await storage.tasks.get_many([t.id for t in ready])
    for t in again:
        t.cancel("done", storage.clock())
    assert all(await storage.tasks.save(fence, again, ack_results=0))


@pytest.fixture
def five_calls() -> Callable[[Any, Any, list[Any]], Awaitable[None]]:
    """``await five_calls(storage, fence, tasks)``: submits ``tasks`` (all new), reads them
    ready, dispatches them to worker ``w1`` (registered by the caller), reads them back and
    saves them cancelled - five store calls, one script call each however many the tasks (bracket it
    with ``command_calls`` to count them)."""
    return _five_calls


@pytest.fixture
def make_server() -> Iterator[Callable[..., RedisServer]]:
    """Start servers with a given configuration: ``make_server(config={...}, tls=True)``."""
    _need_redis()
    started: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
async def open_storage() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await open_storage(url, **options)``; every store opened is closed after the test."""
    from distsched_redis.storage import RedisStorage

    opened: list[Any] = []

    async def open_(url: str, **options: Any) -> Any:
        store = await RedisStorage.open(url, options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def storage(open_storage: Callable[..., Awaitable[Any]], redis_url: str) -> Any:
    return await open_storage(redis_url)


@pytest.fixture
def election(storage: Any) -> Any:
    from distsched_redis.election import RedisElection

    return RedisElection(storage)


@pytest.fixture
async def fence(election: Any) -> Any:
    fence = await election.acquire("leader-1")
    assert fence is not None
    return fence


async def _poll(predicate: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Await ``predicate`` until it returns something truthy or ``timeout`` passes; errors
    (e.g. Redis still restarting) count as not yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = await predicate()
        except Exception as exc:  # e.g. Redis still restarting
            value, last = None, exc
        else:
            last = None
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s (last error: {last!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def poll() -> Callable[..., Awaitable[Any]]:
    """``await poll(predicate, timeout)``: a poll with a deadline instead of a sleep."""
    return _poll
