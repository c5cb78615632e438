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


def test_db_status_exits_1_on_a_schema_newer_than_this_distsched(distsched_cli, pg_url) -> None:
    """The nodes refuse such a schema; `db status` said so and exited 0, which a script
    checking its exit status missed."""
    assert distsched_cli("db", "upgrade", "--storage", pg_url).exit_code == 0
    newer = migrate.latest() + 1

    async def add_a_version() -> None:
        settings = parse(pg_url)
        conn = await asyncpg.connect(settings.dsn())
        try:
            await conn.execute(f"INSERT INTO {settings.quoted_schema}.schema_migrations (version, name, checksum) "
                               "VALUES ($1, 'from_the_future', 'x')", newer)
        finally:
            await conn.close()

    asyncio.run(add_a_version())
    text = distsched_cli("db", "status", "--storage", pg_url)
    assert text.exit_code == 1 and f"version {newer} is newer than this distsched knows" in text.output, text.output
    as_json = distsched_cli("db", "status", "--storage", pg_url, "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.output)["current"] == newer


def test_db_commands_fail_clearly(distsched_cli, postgres_database) -> None:
    bad = distsched_cli("db", "status", "--storage", "postgresql://postgres:pw@127.0.0.1/no_such_db_here")
    assert bad.exit_code != 0 and "does not exist" in bad.output and "pw@" not in bad.output
    missing = distsched_cli("db", "status", env={"DISTSCHED_STORAGE": ""})
    assert missing.exit_code != 0 and "--storage" in missing.output


async def test_an_old_schema_with_data_is_upgraded_in_place(pg_url, monkeypatch) -> None:
    """A deployment created by a distsched that knew only migration 0001 keeps its data when a
    newer node opens it: the later migrations are applied over it and everything works."""
    from distsched.model import TaskResult
    from distsched.testing import make_job, make_task, make_worker
    from distsched_postgres import codec
    from distsched_postgres.election import PostgresElection

    everything = migrate.migrations()
    monkeypatch.setattr(migrate, "migrations", lambda: everything[:1])
    old = await PostgresStorage.open(pg_url)
    try:
        await old.pool.execute("INSERT INTO jobs (name, config, version, enabled, next_fire_at) "
                               "VALUES ('j', $1, 1, true, 5.0)", codec.config_json(make_job("j")))
        # the task as 0001's task_in knows it (no 'ended' attribute yet: json_populate ignores it)
        await old.pool.execute("SELECT ds_submit($1::json, 60)", codec.tasks_param([make_task("a")]))
    finally:
        await old.close()
    assert await _versions(pg_url) == [1]
    monkeypatch.setattr(migrate, "migrations", lambda: everything)

    store = await PostgresStorage.open(pg_url)
    try:
        assert await _versions(pg_url) == [m.version for m in everything]
        assert (await store.jobs.state("j")).next_fire_at == 5.0
        fence = await PostgresElection(store).acquire("n1")
        await store.workers.register(make_worker("w1", now=store.clock()))
        [a] = await store.tasks.get_many(["a"])
        assert a is not None and a.version == 1
        a.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, [a]) == [True]
        [a] = await store.queues.pull("w1", 1, 1.0)
        await store.queues.report("w1", [TaskResult(task_id="a", attempt_id=a.attempt_id, outcome="succeeded",
                                                    started_at=1.0, finished_at=2.0, worker_id="w1")])
        assert (await store.results.settle(fence, 10)).settled == 1
        assert [t.id for t in (await store.tasks.query(state="succeeded")).tasks] == ["a"]
    finally:
        await store.close()


async def _schemas(url: str) -> int:
    settings = parse(url)
    conn = await asyncpg.connect(settings.dsn())
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", settings.schema))
    finally:
        await conn.close()


READ_ONLY_COMMANDS = [("status",), ("tasks", "list"), ("tasks", "show", "no-such-task"), ("jobs", "list"),
                      ("quarantine", "list")]


def test_read_only_commands_create_no_schema_and_apply_no_migration(distsched_cli, pg_url, tmp_path) -> None:
    """`status` with a typo in the schema name created a whole new deployment; after a newer
    CLI's `status` the schema was migrated under the running older nodes."""
    jobs_file = tmp_path / "jobs.toml"
    jobs_file.write_text('[[jobs]]\nname = "j"\nevery = "1m"\ntarget = "x"\n')
    commands = READ_ONLY_COMMANDS + [("jobs", "sync", str(jobs_file), "--dry-run")]
    for command in commands:
        result = distsched_cli(*command, "--storage", pg_url)
        assert result.exit_code == 1, (command, result.output)
        assert "holds no distsched deployment - is the schema name right?" in result.output, (command, result.output)
        assert "Traceback" not in result.output
    assert asyncio.run(_schemas(pg_url)) == 0

    assert distsched_cli("db", "upgrade", "--storage", pg_url).exit_code == 0
    latest = migrate.latest()

    async def forget_the_last_migration() -> None:
        settings = parse(pg_url)
        conn = await asyncpg.connect(settings.dsn())
        try:
            await conn.execute(f"DELETE FROM {settings.quoted_schema}.schema_migrations WHERE version = $1", latest)
        finally:
            await conn.close()

    asyncio.run(forget_the_last_migration())
    for command in commands:
        result = distsched_cli(*command, "--storage", pg_url)
        assert result.exit_code == 1, (command, result.output)
        assert (f"is at version {latest - 1}, this distsched needs {latest} (this command only reads, and applies "
                "no migration: run 'distsched db upgrade --storage URL')") in result.output, (command, result.output)
    assert asyncio.run(_versions(pg_url))[-1] == latest - 1


def test_read_only_commands_read_an_up_to_date_schema(distsched_cli, pg_url) -> None:
    assert distsched_cli("db", "upgrade", "--storage", pg_url).exit_code == 0
    for command in READ_ONLY_COMMANDS[:-1]:
        result = distsched_cli(*command, "--storage", pg_url)
        expected = 1 if command[:2] == ("tasks", "show") else 0
        assert result.exit_code == expected, (command, result.output)
    shown = distsched_cli("tasks", "show", "no-such-task", "--storage", pg_url)
    assert "deployment" not in shown.output and "no-such-task" in shown.output
