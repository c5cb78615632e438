"""Migrations: applied once at open under the advisory lock (concurrent nodes do not race), a
schema newer than the code is refused, migrate=false refuses an outdated one, and the
``distsched db`` commands show and apply them."""

import asyncio
import json

import asyncpg
import pytest

from distsched_postgres import migrate
from distsched_postgres.storage import PostgresStorage
from distsched_postgres.url import parse

pytestmark = pytest.mark.postgres


async def _versions(url: str) -> list[int]:
    settings = parse(url)
    conn = await asyncpg.connect(settings.dsn())
    try:
        return [r["version"] for r in await conn.fetch(
            f"SELECT version FROM {settings.quoted_schema}.schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_nodes_opening_a_fresh_schema_together_apply_each_migration_once(pg_url) -> None:
    stores = await asyncio.gather(*(PostgresStorage.open(pg_url) for _ in range(4)))
    try:
        assert await _versions(pg_url) == [m.version for m in migrate.migrations()]
        assert [await s.tasks.counts() for s in stores] == [{}] * 4
    finally:
        for store in stores:
            await store.close()


async def test_a_schema_newer_than_the_code_is_refused(pg_url, storage) -> None:
    settings = parse(pg_url)
    async with storage.pool.acquire() as conn:
        await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', '')")
    with pytest.raises(migrate.SchemaTooNew, match=r"version 999, newer than this distsched knows") as info:
        await PostgresStorage.open(pg_url)
    assert settings.schema in str(info.value)
    with pytest.raises(migrate.SchemaTooNew):
        await PostgresStorage.open(pg_url + "&migrate=false")


async def test_migrate_false_refuses_an_outdated_schema_and_creates_nothing(pg_url) -> None:
    with pytest.raises(migrate.SchemaOutdated, match="distsched db upgrade"):
        await PostgresStorage.open(pg_url + "&migrate=false")
    settings = parse(pg_url)
    conn = await asyncpg.connect(settings.dsn())
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", settings.schema) == 0
    finally:
        await conn.close()


def test_db_status_and_upgrade_commands(distsched_cli, pg_url) -> None:
    before = distsched_cli("db", "status", "--storage", pg_url, "--json")
    assert before.exit_code == 0, before.output
    state = json.loads(before.output)
    assert state["current"] == 0 and state["pending"] == [m.version for m in migrate.migrations()]
    up = distsched_cli("db", "upgrade", "--storage", pg_url)
    assert up.exit_code == 0 and f"now at version {migrate.latest()}" in up.output, up.output
    again = distsched_cli("db", "upgrade", "--storage", pg_url)
    assert "up to date" in again.output
    after = distsched_cli("db", "status", "--storage", pg_url)
    assert after.exit_code == 0 and "up to date" in after.output and "0001 initial" in after.output
    assert asyncio.run(_versions(pg_url)) == [m.version for m in migrate.migrations()]


def test_db_commands_fail_clearly(distsched_cli, postgres_database) -> None:
    bad = distsched_cli("db", "status", "--storage", "postgresql://postgres:pw@127.0.0.1/no_such_db_here")
    assert bad.exit_code != 0 and "does not exist" in bad.output and "pw@" not in bad.output
    missing = distsched_cli("db", "status", env={"DISTSCHED_STORAGE": ""})
    assert missing.exit_code != 0 and "--storage" in missing.output
