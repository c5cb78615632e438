"""Poison isolation on PostgreSQL: a row whose JSON was written by something else than
distsched (a broken client, a bad migration, someone with credentials) is moved aside - out
of its table, its row kept in ``quarantine`` with the reason - while a healthy job keeps
firing under the same leader term (the Redis plugin's test_poison scenarios)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.model import Task, TaskSpec

pytestmark = pytest.mark.postgres

HEALTHY_EVERY = 0.3


def noop(*args: Any, **kwargs: Any) -> str:
    return "ok"


async def _start(distsched_app, pg_url):
    app = await distsched_app(pg_url, functions={"noop": noop}, worker=WorkerConfig(name="w", concurrency=4),
                              heartbeat_interval=0.2)
    await app.add_job("healthy", every=f"{HEALTHY_EVERY}s", target="noop")
    return app


async def _sql(app, sql: str, *args: Any) -> Any:
    storage = await app.storage()
    return await storage.pool.fetchval(sql, *args)


async def _succeeded(app) -> int:
    storage = await app.storage()
    return int(await storage.pool.fetchval("SELECT count(*) FROM tasks WHERE job = 'healthy' AND state = 'succeeded'"))


async def _healthy_keeps_firing(app, seconds: float = 2.0) -> None:
    election = await app.engine.open_election()
    deadline = time.monotonic() + 10
    while await election.current() is None:
        assert time.monotonic() < deadline, "no leader"
        await asyncio.sleep(0.05)
    before_term = (await election.current()).term
    before = await _succeeded(app)
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # a fixed observation window, not a synchronisation
        await asyncio.sleep(0.1)
    after = await _succeeded(app)
    assert after - before >= seconds / HEALTHY_EVERY * 0.6, f"healthy job ran {after - before} times in {seconds}s"
    assert (await election.current()).term == before_term, "the leader lost its lease (crash loop)"


async def _quarantined(app, kind: str, key: str, timeout: float = 10.0):
    storage = await app.storage()
    deadline = time.monotonic() + timeout
    while True:
        found = [q for q in await storage.quarantine.list_quarantined() if (q.kind, q.key) == (kind, key)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{kind} {key!r} was never quarantined"
        await asyncio.sleep(0.05)


async def _kept(app, kind: str, key: str) -> dict[str, Any]:
    return json.loads(await _sql(app, "SELECT data FROM quarantine WHERE kind = $1 AND key = $2", kind, key))


async def test_a_job_whose_config_is_not_json_is_quarantined(distsched_app, pg_url):
    app = await _start(distsched_app, pg_url)
    await _sql(app, "INSERT INTO jobs (name, config, version, enabled, next_fire_at) "
                    "VALUES ('poison', '{not json', 1, true, 1)")
    entry = await _quarantined(app, "job", "poison")
    assert entry.reason and await _sql(app, "SELECT count(*) FROM jobs WHERE name = 'poison'") == 0
    assert (await _kept(app, "job", "poison"))["config"] == "{not json", "the row is kept"
    await _healthy_keeps_firing(app)
    assert await (await app.storage()).quarantine.count() == 1


async def test_a_garbage_worker_row_is_quarantined(distsched_app, pg_url):
    app = await _start(distsched_app, pg_url)
    await _sql(app, "INSERT INTO workers (id, data, heartbeat) VALUES ('ghost', '[1, 2', ds_now())")
    await _quarantined(app, "worker", "ghost")
    await _healthy_keeps_firing(app)


async def test_a_ready_task_with_a_garbage_spec_is_quarantined(distsched_app, pg_url):
    app = await _start(distsched_app, pg_url)
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id="bad-task", spec=TaskSpec(target="noop"), created_at=now, not_before=now + 3600)])
    await _sql(app, "UPDATE tasks SET spec = '\"just a string\"', not_before = 1 WHERE id = 'bad-task'")
    await _quarantined(app, "task", "bad-task")
    assert await _sql(app, "SELECT count(*) FROM tasks WHERE id = 'bad-task'") == 0
    assert (await _kept(app, "task", "bad-task"))["spec"] == '"just a string"'
    await _healthy_keeps_firing(app)


async def test_a_broken_row_does_not_fail_a_read(postgres_database, schema):
    """Straight through the port: the read leaves the bad row out and goes on."""
    from distsched.testing import make_task
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(postgres_database.url_for(schema=schema))
    try:
        await store.tasks.submit([make_task("good"), make_task("bad")])
        await store.pool.execute("UPDATE tasks SET state = 'exploded' WHERE id = 'bad'")
        assert [t.id if t else None for t in await store.tasks.get_many(["good", "bad"])] == ["good", None]
        assert [(q.kind, q.key) for q in await store.quarantine.list_quarantined()] == [("task", "bad")]
        assert "KeyError" in (await store.quarantine.list_quarantined())[0].reason
    finally:
        await store.close()
