"""Fixtures for the PostgreSQL plugin's tests: one throwaway database per session
(``postgres_database`` from ``distsched.testing.pytest_plugin``), one schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
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
