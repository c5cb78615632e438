"""``distsched quarantine list`` and ``drop`` through the real CLI, on a real Redis and a real
PostgreSQL: a job whose stored config is not JSON is moved aside when read, listed with its
reason, and dropped - its entry and its kept bytes - once; memory:// keeps no quarantine."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from distsched import DistributeSchedule


@pytest.fixture(params=["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(the store's URL, a function that corrupts job ``name``'s stored config - with ``bad``,
    default not JSON - and returns a function telling whether the store still keeps its
    quarantined bytes)."""
    if request.param == "postgres":
        database = request.getfixturevalue("postgres_database")
        schema = f"q{uuid.uuid4().hex[:10]}"

        async def sql(query: str, *args: Any) -> Any:
            import asyncpg

            conn = await asyncpg.connect(database.url)
            try:
                return await conn.fetchval(query.replace("S.", f'"{schema}".'), *args)
            finally:
                await conn.close()

        def corrupt_pg(name: str, bad: str = "{not json") -> Any:
            asyncio.run(sql("UPDATE S.jobs SET config = $2 WHERE name = $1", name, bad))
            return lambda: asyncio.run(sql("SELECT count(*) FROM S.quarantine WHERE kind = 'job' AND key = $1",
                                           name)) == 1

        return database.url_for(schema=schema), corrupt_pg
    server = request.getfixturevalue("redis_server")
    ns = f"q{uuid.uuid4().hex[:10]}"
    raw = server.client()
    request.addfinalizer(raw.close)

    def corrupt_redis(name: str, bad: str = "{not json") -> Any:
        raw.hset("{" + ns + "}:jobs", name, bad)
        return lambda: raw.exists("{" + ns + "}:qd:job:" + name) == 1

    return server.url_for(namespace=ns), corrupt_redis


def test_a_quarantined_job_is_listed_and_dropped_once(distsched_cli: Any, store: tuple[str, Any]) -> None:
    url, corrupt = store

    async def add() -> None:
        app = DistributeSchedule(url)
        try:
            for name in ("broken", "healthy"):
                await app.add_job(name, every="1h", target="noop")
        finally:
            await app.stop()

    asyncio.run(add())
    kept = corrupt("broken")
    cli = lambda *args: distsched_cli(*args, "--storage", url)  # noqa: E731
    assert json.loads(cli("quarantine", "list", "--json").output) == {"quarantined": []}
    assert cli("quarantine", "list").output == "nothing quarantined\n"

    jobs = cli("jobs", "list")  # the read that meets the record moves it aside
    assert jobs.exit_code == 0 and "healthy" in jobs.output and "broken" not in jobs.output
    assert kept()
    [entry] = json.loads(cli("quarantine", "list", "--json").output)["quarantined"]
    assert (entry["kind"], entry["key"]) == ("job", "broken") and entry["reason"] and entry["at"] > 0
    text = cli("quarantine", "list").output
    assert "job 'broken': " + entry["reason"] in text and "distsched quarantine drop KIND KEY" in text

    dropped = cli("quarantine", "drop", "job", "broken")
    assert dropped.exit_code == 0 and dropped.output == "dropped job 'broken': its entry and its kept bytes\n"
    assert not kept(), "the kept bytes went with the entry"
    assert json.loads(cli("quarantine", "list", "--json").output) == {"quarantined": []}
    again = cli("quarantine", "drop", "job", "broken")
    assert again.exit_code == 1 and "no job 'broken' is quarantined" in again.output
    assert "healthy" in cli("jobs", "list").output


def test_a_quarantine_reason_hides_the_passwords_of_urls(distsched_cli: Any, store: tuple[str, Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A bad value quoted in the reason is shown with its URL's password masked, in the
    store's ERROR log line, the stored reason and so `quarantine list`: it was written and
    logged as it was."""
    url, corrupt = store

    async def add() -> None:
        app = DistributeSchedule(url)
        try:
            await app.add_job("broken", every="1h", target="noop")
        finally:
            await app.stop()

    asyncio.run(add())
    corrupt("broken", json.dumps({"name": "broken", "spec": {
        "target": "noop", "timeout": "redis://admin:S3cretPW@db.internal:6379/0"}}))
    cli = lambda *args: distsched_cli(*args, "--storage", url)  # noqa: E731
    with caplog.at_level("ERROR"):
        assert cli("jobs", "list").exit_code == 0  # the read that meets the record moves it aside
    assert "quarantined job 'broken'" in caplog.text and "db.internal" in caplog.text
    listed = cli("quarantine", "list", "--json").output
    [entry] = json.loads(listed)["quarantined"]
    assert "redis://admin:***@db.internal:6379/0" in entry["reason"], entry
    assert "S3cretPW" not in caplog.text + listed + cli("quarantine", "list").output


def test_memory_keeps_no_quarantine(distsched_cli: Any) -> None:
    url = f"memory://q-{uuid.uuid4().hex}"
    listed = distsched_cli("quarantine", "list", "--storage", url)
    assert listed.stdout == "nothing quarantined\n"
    assert listed.stderr.startswith("note: memory:// storage lives only inside one process"), listed.stderr
    refused = distsched_cli("quarantine", "drop", "job", "x", "--storage", url)
    assert refused.exit_code == 1 and "this store keeps no quarantine that can be dropped from" in refused.output
