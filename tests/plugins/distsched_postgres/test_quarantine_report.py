"""The quarantine's sequence number on PostgreSQL (migration 23): a schema upgraded with rows
already put aside keeps them (listed, with no number: not reported again), and a record put
aside again after the upgrade takes a number and is reported."""

from __future__ import annotations

import pytest

from distsched.app.events import EventBus
from distsched.app.scheduler import Scheduler
from distsched.config import EngineConfig
from distsched.testing import make_job
from distsched_postgres import migrate
from distsched_postgres.election import PostgresElection
from distsched_postgres.storage import PostgresStorage

pytestmark = pytest.mark.postgres


async def _spoil_job(store: PostgresStorage, name: str) -> None:
    await store.jobs.add(make_job(name), next_fire_at=store.clock() + 3600)
    await store.pool.execute("UPDATE jobs SET config = '{not json' WHERE name = $1", name)
    assert name not in [j.name for j in await store.jobs.list_jobs()]


async def test_rows_put_aside_before_the_upgrade_are_kept_and_a_new_one_is_numbered(pg_url, monkeypatch) -> None:
    everything = migrate.migrations()
    before = [m for m in everything if m.version < 23]
    assert before[-1].version == 22
    monkeypatch.setattr(migrate, "migrations", lambda: before)
    old = await PostgresStorage.open(pg_url)
    try:
        await _spoil_job(old, "tick")
        await _spoil_job(old, "tock")
    finally:
        await old.close()
    monkeypatch.setattr(migrate, "migrations", lambda: everything)

    store = await PostgresStorage.open(pg_url)
    try:
        assert sorted(q.key for q in await store.quarantine.list_quarantined()) == ["tick", "tock"]
        assert await store.quarantine.quarantined_since(0, 10) == (0, []), "rows from before have no number"
        seen: list = []
        events = EventBus(listeners=[seen.append])
        leader = Scheduler(storage=store, election=PostgresElection(store), balancers=None,  # type: ignore[arg-type]
                           events=events, config=EngineConfig(storage=pg_url))
        await leader.report_quarantine(store.clock())  # the baseline
        await _spoil_job(store, "tick")
        number, fresh = await store.quarantine.quarantined_since(0, 10)
        assert (number, [q.key for q in fresh]) == (1, ["tick"])
        assert [q.key for q in await store.quarantine.list_quarantined()] == ["tick", "tock"], "newest first"
        await leader.report_quarantine(store.clock())
        events.flush()
        assert [(e.record, e.key) for e in seen] == [("job", "tick")]
    finally:
        await store.close()
