"""Fixtures for the PostgreSQL plugin's tests: one throwaway database per session
(``postgres_database`` from ``distsched.testing.pytest_plugin``), one schema per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_url(postgres_database: Any, schema: str) -> str:
    return postgres_database.url_for(schema=schema)


@pytest.fixture
async def storage(pg_url: str) -> AsyncIterator[Any]:
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(pg_url)
    yield store
    await store.close()


@pytest.fixture
async def election(storage: Any) -> Any:
    from distsched_postgres.election import PostgresElection

    return PostgresElection(storage, ttl=10.0, renew_interval=3.0)


@pytest.fixture
async def fence(election: Any) -> Any:
    fence = await election.acquire("leader-1")
    assert fence is not None
    return fence


async def function_signature(storage: Any, function: str) -> str:
    """The one function of the test's schema that ``function`` names: a signature as
    ``regprocedure`` reads it (``"ds_lease_acquire(text, float8, float8)"``), or a bare name
    that only one function has (``"ds_pull"``). A bare name that several overloads share
    (``ds_lease_acquire`` since version 22) fails naming each of them: ``regproc`` took the
    name alone and so could not say which one was meant."""
    if "(" in function:
        return str(await storage.pool.fetchval("SELECT $1::regprocedure::text", function))
    found = await storage.pool.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p "
        "WHERE p.proname = $1 AND p.pronamespace = current_schema()::regnamespace ORDER BY 1", function)
    signatures = [row["signature"] for row in found]
    assert len(signatures) == 1, (f"{function!r} names {len(signatures)} functions of the schema "
                                  f"({', '.join(signatures) or 'none'}): give the signature of the one to change")
    return str(signatures[0])


@pytest.fixture
def rewrite_function(storage: Any) -> Callable[[str, str, str], Awaitable[None]]:
    """``await rewrite_function("ds_pull", old, new)``: the installed function of the test's
    schema with the text ``old`` (found exactly once) replaced by ``new`` - a pause put at a
    gap between two statements, say, to make a race deterministic. ``function`` is a
    signature (``"ds_lease_acquire(text, float8, float8)"``) or a name only one function has
    (:func:`function_signature`): never one overload picked for another."""
    async def rewrite(function: str, old: str, new: str) -> None:
        signature = await function_signature(storage, function)
        source = await storage.pool.fetchval("SELECT pg_get_functiondef($1::regprocedure)", signature)
        assert source.count(old) == 1, f"{signature}: {old!r} found {source.count(old)} times"
        await storage.pool.execute(source.replace(old, new))

    return rewrite


@pytest.fixture
def wait_paused(storage: Any) -> Callable[[str, asyncio.Task[Any]], Awaitable[None]]:
    """``await wait_paused("ds_pull", call)``: until a call of that function sleeps in the
    ``pg_sleep`` a test put in it (``pg_stat_activity``, this database only), while ``call``
    (the asyncio task making it) has not finished; 10 s at most."""
    async def wait(function: str, call: asyncio.Task[Any]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await storage.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep' AND query LIKE $1", f"%{function}%"):
            assert loop.time() < deadline and not call.done(), f"{function} never paused"
            await asyncio.sleep(0.01)

    return wait
