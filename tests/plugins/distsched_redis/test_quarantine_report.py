"""The leader's quarantine report on Redis (``qseq`` / ``qs``, lua/quarantine_since.lua):
every way a record is moved aside takes a number - quarantine.lua, and a count that is not
an integer (common.lua's flush_counts) -, and a number or an index written by something else
than distsched fails neither a move aside nor the leader's look."""

from __future__ import annotations

import uuid

import pytest

from distsched import DistributeSchedule
from distsched.app.scheduler import Scheduler
from distsched.testing import make_job, make_task

pytestmark = pytest.mark.redis


@pytest.fixture
async def looks(redis_server):
    """(the store, ``reported()``: one look of a leader at the quarantine, the ``(record,
    key)`` of the events it emitted, sorted)."""
    app = DistributeSchedule(redis_server.url_for(namespace=f"q{uuid.uuid4().hex[:12]}"))
    storage = await app.engine.open()
    seen: list = []
    app.engine.events.listeners.append(seen.append)
    leader = Scheduler(storage=storage, election=await app.engine.open_election(), balancers=app.engine.balancer,
                       events=app.engine.events, config=app.config)

    async def reported() -> list[tuple[str, str]]:
        await leader.report_quarantine(storage.clock())
        app.engine.events.flush()
        out = sorted((e.record, e.key) for e in seen if e.kind == "record.quarantined")
        seen.clear()
        return out

    yield storage, reported
    await app.stop()


async def _spoil_job(storage, name: str) -> None:
    await storage.jobs.add(make_job(name), next_fire_at=storage.clock() + 3600)
    await storage.client.hset(storage.prefix + "jobs", name, "{not json")
    assert name not in [j.name for j in await storage.jobs.list_jobs()]


async def test_a_count_that_is_not_an_integer_is_reported_each_time_it_is_put_aside(looks):
    storage, reported = looks
    assert await reported() == []
    for i in range(2):
        await storage.client.hset(storage.prefix + "cnt", "pending", "lots")
        await storage.tasks.submit([make_task(f"t{i}")])  # its count update meets the garbage
        assert await reported() == [("count", "pending")], i
    assert await storage.quarantine.count() == 1


async def test_a_number_or_an_index_of_another_type_fails_neither_the_move_nor_the_look(looks):
    storage, reported = looks
    p = storage.prefix
    await storage.client.set(p + "qseq", "x")
    await storage.client.hset(p + "qs", "not", "a sorted set")
    assert await reported() == [], "read as nothing"
    await _spoil_job(storage, "tick")
    assert await reported() == [("job", "tick")]
    await storage.client.delete(p + "qs")
    await storage.client.set(p + "qs", "a string")
    await _spoil_job(storage, "tock")
    assert await reported() == [("job", "tock")]
    assert await storage.client.type(p + "qs") == "zset"


async def test_a_number_gone_back_reports_what_the_store_holds_now(looks):
    """Redis restarted empty (here: the namespace's quarantine keys deleted): the number starts
    again below the last one seen, and what is moved aside from then on is reported."""
    storage, reported = looks
    assert await reported() == []
    for name in ("a", "b", "c"):
        await _spoil_job(storage, name)
    assert await reported() == [("job", "a"), ("job", "b"), ("job", "c")]
    await storage.client.delete(*(storage.prefix + k for k in ("qseq", "qs", "qr")))
    await _spoil_job(storage, "d")
    assert await reported() == [("job", "d")]
    assert await reported() == []
