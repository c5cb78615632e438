"""A store on a cluster of the test's own: PostgreSQL crashes (``pg_ctl stop -m immediate``)
and comes back; the store's calls fail with transient errors meanwhile, then work again, and
the LISTEN connection is re-opened so wake-ups come by NOTIFY again (not by polling)."""

import asyncio
import logging
import time

import pytest

from distsched.testing import make_task, make_worker
from distsched.testing.postgres_server import PostgresServer, postgres_bindir

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL server binaries are not installed")]


@pytest.fixture
def server():
    server = PostgresServer().start()
    yield server
    server.stop()


async def test_calls_fail_transiently_then_work_and_notify_again(server) -> None:
    from distsched_postgres.election import PostgresElection
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(server.url_for(schema="r"))
    try:
        election = PostgresElection(store, ttl=5.0, renew_interval=1.0)
        assert await store.queues.pull("w1", 1, 0.05) == []  # LISTENing on w1's channel
        first_listener = store._listen_conn
        assert first_listener is not None and not first_listener.is_closed()
        await asyncio.to_thread(server.kill)
        with pytest.raises(store.transient_errors + (OSError,)):
            await store.tasks.counts()
        await asyncio.to_thread(server.restart)

        async def usable() -> bool:
            try:
                await store.tasks.counts()
                return True
            except (*store.transient_errors, OSError):
                return False

        deadline = time.monotonic() + 20
        while not await usable():
            assert time.monotonic() < deadline, "the store did not recover"
            await asyncio.sleep(0.1)
        fence = await election.acquire("n1")
        assert fence is not None
        await store.workers.register(make_worker("w1", now=store.clock()))
        await store.tasks.submit([make_task("a")])
        waiter = asyncio.create_task(store.queues.pull("w1", 1, 10.0))

        def listening_again() -> bool:
            conn = store._listen_conn
            return conn is not None and conn is not first_listener and not conn.is_closed()

        deadline = time.monotonic() + 5
        while not listening_again():  # the waiting pull re-opens the LISTEN connection
            assert time.monotonic() < deadline, "the LISTEN connection was not re-opened"
            await asyncio.sleep(0.02)
        assert first_listener.is_closed() and not waiter.done()
        [task] = await store.tasks.get_many(["a"])
        task.dispatch("w1", store.clock())
        sent = time.monotonic()
        assert await store.tasks.dispatch(fence, [task]) == [True]
        pulled = await asyncio.wait_for(waiter, 5.0)
        woke = time.monotonic() - sent
        assert [t.id for t in pulled] == ["a"]
        assert woke < 0.5, f"woken {woke:.2f}s after the dispatch: by polling, not by NOTIFY"
    finally:
        await store.close()


async def test_a_lost_listen_connection_is_said_once_and_its_return_too(server, caplog) -> None:
    """While the LISTEN connection cannot be opened (the server down, or max_connections
    full) the node polls the store instead of being woken: said once as a WARNING, and once
    when it is back. It was a DEBUG line twice a second, and nothing at the default level."""
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(server.url_for(schema="l"))
    try:
        assert await store._listener()
        await asyncio.to_thread(server.kill)
        with caplog.at_level(logging.WARNING, logger="distsched.postgres"):
            for _ in range(4):
                assert not await store._listener()
            lost = [r for r in caplog.records if "cannot open the LISTEN connection" in r.getMessage()]
            assert len(lost) == 1 and lost[0].levelno == logging.WARNING, caplog.text
            assert "polls the store instead" in lost[0].getMessage()
            await asyncio.to_thread(server.restart)
            deadline = time.monotonic() + 20
            while not await store._listener():
                assert time.monotonic() < deadline, "the LISTEN connection was not re-opened"
                await asyncio.sleep(0.1)
            assert sum("LISTEN connection is open again" in r.getMessage() for r in caplog.records) == 1
    finally:
        await store.close()


async def test_the_pool_floor_is_retried_in_one_line_while_the_server_is_down(server, caplog) -> None:
    """asyncpg logs each failed try to reconnect the pool's minimum connections with a whole
    traceback (three to six per process in a chaos run's server kills); the store's filter
    puts the reason on the warning's one line instead."""
    from distsched_postgres.storage import PostgresStorage

    caplog.set_level(logging.WARNING, logger="asyncpg.pool")
    store = await PostgresStorage.open(server.url_for(schema="f"))
    try:
        await asyncio.to_thread(server.kill)
        with pytest.raises(store.transient_errors + (OSError,)):
            await store.tasks.counts()  # the pool's connection is lost: it reconnects its floor

        def floor_records() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "asyncpg.pool" and "pool connection floor" in r.getMessage()]

        deadline = time.monotonic() + 10
        while not floor_records():
            assert time.monotonic() < deadline, f"asyncpg logged no floor warning: {caplog.text}"
            await asyncio.sleep(0.05)
        record = floor_records()[0]
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert record.getMessage().startswith("Failed to restore the pool connection floor; retrying (")
        assert "Error" in record.getMessage()  # the reason, by its class name
        assert "Traceback" not in caplog.text
    finally:
        await store.close()
