"""Jobs on Redis: CRUD, optimistic updates, the due index, and fenced, idempotent firing."""

import pytest

from distsched.model import (
    AlreadyExists,
    CronTrigger,
    EveryTrigger,
    FencedError,
    NotFound,
    TaskConfig,
    TaskSpec,
    TaskState,
    VersionConflict,
)
from distsched.ports import Firing
from distsched_redis import codec

pytestmark = pytest.mark.redis


def job(name: str = "j", **spec) -> TaskConfig:
    spec.setdefault("target", "f")
    return TaskConfig(name=name, trigger=EveryTrigger(10), spec=TaskSpec(**spec))


async def test_add_get_list_remove(storage) -> None:
    stored = await storage.jobs.add(job("b", kwargs={"x": [1, 2.5]}), next_fire_at=20.0)
    assert stored.version == 1
    await storage.jobs.add(job("a"), next_fire_at=10.0)
    with pytest.raises(AlreadyExists):
        await storage.jobs.add(job("a"), next_fire_at=99.0)
    got = await storage.jobs.get("b")
    assert got == stored, "a job reads back exactly as stored (spec, trigger, policies, version)"
    assert [j.name for j in await storage.jobs.list_jobs()] == ["a", "b"]
    state = await storage.jobs.state("a")
    assert (state.name, state.next_fire_at, state.last_slot, state.paused) == ("a", 10.0, None, False)
    assert await storage.jobs.remove("a") is True
    assert await storage.jobs.remove("a") is False
    for call in (storage.jobs.get("a"), storage.jobs.state("a"), storage.jobs.set_paused("a", True)):
        with pytest.raises(NotFound):
            await call
    assert await storage.jobs.due(1e12, 10) == [(got, await storage.jobs.state("b"))]


async def test_update_is_optimistic_and_keeps_the_high_water_mark(storage, fence) -> None:
    await storage.jobs.add(job("j", timeout=5.0), next_fire_at=10.0)
    await storage.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=20.0, last_slot=10.0, tasks=())])
    await storage.jobs.set_paused("j", True)
    change = job("j", timeout=6.0)
    change.version = 1
    v2 = await storage.jobs.update(change, next_fire_at=40.0)
    assert v2.version == 2 and change.version == 1, "update returns a new config, the argument is untouched"
    stale = job("j", timeout=7.0)
    stale.version = 1
    with pytest.raises(VersionConflict, match="stored version is 2"):
        await storage.jobs.update(stale, next_fire_at=50.0)
    after = await storage.jobs.get("j")
    assert (after.version, after.spec.timeout) == (2, 6.0), "a stale update is never applied"
    state = await storage.jobs.state("j")
    assert (state.next_fire_at, state.last_slot, state.paused) == (40.0, 10.0, True)
    missing = job("nope")
    missing.version = 1
    with pytest.raises(NotFound):
        await storage.jobs.update(missing, next_fire_at=1.0)


async def test_due_order_limit_pause_disable_and_next_due_at(storage) -> None:
    assert await storage.jobs.next_due_at() is None
    for name, at in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("tie", 20.0), ("later", 1000.0)):
        await storage.jobs.add(job(name), next_fire_at=at)
    off = job("off")
    off.enabled = False
    await storage.jobs.add(off, next_fire_at=5.0)
    await storage.jobs.add(job("never"), next_fire_at=None)
    assert [c.name for c, _ in await storage.jobs.due(100.0, 10)] == ["a", "b", "tie", "c"]
    assert [c.name for c, _ in await storage.jobs.due(100.0, 2)] == ["a", "b"]
    assert await storage.jobs.due(100.0, 0) == []
    assert await storage.jobs.next_due_at() == 10.0
    await storage.jobs.set_paused("a", True)
    assert [c.name for c, _ in await storage.jobs.due(100.0, 10)] == ["b", "tie", "c"]
    await storage.jobs.set_paused("a", False, next_fire_at=15.0)
    due = await storage.jobs.due(100.0, 10)
    assert [(c.name, s.next_fire_at) for c, s in due][:2] == [("a", 15.0), ("b", 20.0)]
    # enabling the disabled job through an update puts it in the due index
    enabled = job("off")
    enabled.version = 1
    await storage.jobs.update(enabled, next_fire_at=1.0)
    assert await storage.jobs.next_due_at() == 1.0


async def test_fire_is_idempotent_and_checks_expected_next(storage, fence) -> None:
    j = job("j")
    await storage.jobs.add(j, next_fire_at=10.0)
    first = Firing(job="j", expected_next=10.0, next_fire_at=20.0, last_slot=10.0, tasks=(j.create_task(10.0, 11.0),))
    report = await storage.jobs.fire(fence, [first])
    assert (report.created, report.existing, report.conflicts) == (1, 0, ())
    again = await storage.jobs.fire(fence, [first])
    assert (again.created, again.conflicts) == (0, ("j",)), "a second firing of the same slot conflicts"
    replay = Firing(job="j", expected_next=20.0, next_fire_at=30.0, last_slot=20.0,
                    tasks=(j.create_task(10.0, 21.0), j.create_task(20.0, 21.0)))
    report = await storage.jobs.fire(fence, [replay, Firing(job="ghost", expected_next=1.0, next_fire_at=2.0,
                                                            last_slot=1.0, tasks=(j.create_task(99.0, 0.0),))])
    assert (report.created, report.existing, report.conflicts) == (1, 1, ("ghost",))
    assert await storage.tasks.get(j.create_task(99.0, 0).id) is None, "a conflicting firing creates nothing"
    slot10 = await storage.tasks.get(j.create_task(10.0, 0).id)
    assert slot10.created_at == 11.0 and slot10.version == 1, "an existing slot task is left as it was"
    state = await storage.jobs.state("j")
    assert (state.next_fire_at, state.last_slot) == (30.0, 20.0)
    assert sorted(t.slot for t in await storage.tasks.live("j")) == [10.0, 20.0]
    # an exhausted trigger leaves the due index; last_slot may be None
    await storage.jobs.fire(fence, [Firing(job="j", expected_next=30.0, next_fire_at=None, last_slot=None, tasks=())])
    assert await storage.jobs.next_due_at() is None
    assert (await storage.jobs.state("j")).next_fire_at is None


async def test_fire_skipped_slots_are_terminal_records(storage, fence) -> None:
    j = job("j")
    await storage.jobs.add(j, next_fire_at=10.0)
    skipped = j.skipped_task(10.0, "misfire: skipped", 50.0)
    await storage.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=20.0, last_slot=10.0,
                                           tasks=(skipped,))])
    stored = await storage.tasks.get(skipped.id)
    assert stored.state is TaskState.SKIPPED and stored.reason == "misfire: skipped"
    assert await storage.tasks.live("j") == [] and await storage.tasks.ready(1e12, 10) == []
    assert await storage.client.ttl(storage.prefix + "t:" + skipped.id) > 0, "terminal records expire"


async def test_fire_is_fenced(storage, election, fence) -> None:
    j = job("j")
    await storage.jobs.add(j, next_fire_at=10.0)
    await election.release(fence)
    newer = await election.acquire("leader-2")
    firing = Firing(job="j", expected_next=10.0, next_fire_at=20.0, last_slot=10.0, tasks=(j.create_task(10.0, 1.0),))
    with pytest.raises(FencedError, match="leader-2"):
        await storage.jobs.fire(fence, [firing])
    assert (await storage.jobs.state("j")).next_fire_at == 10.0
    assert await storage.tasks.get(j.create_task(10.0, 0).id) is None
    assert (await storage.jobs.fire(newer, [firing])).created == 1


async def test_a_retried_add_or_update_is_not_refused(storage) -> None:
    """A client retry after a lost reply resends the same op id: it gets the first answer."""
    s = storage
    cfg = job("j")
    args = [s.prefix, "j", "{}", "10.0", "1", "op-1"]
    keys = [s.prefix + "lease"]
    assert await s.scripts.job_add(keys=keys, args=args) == "OK"
    assert await s.scripts.job_add(keys=keys, args=args) == "OK", "same op id: the retry succeeds"
    assert await s.scripts.job_add(keys=keys, args=[*args[:5], "op-2"]) == "EXISTS"
    await s.client.hset(s.prefix + "jobs", "j", codec.config_json(cfg))
    upd = [s.prefix, "j", "{}", "1", "20.0", "1", "op-3"]
    assert await s.scripts.job_update(keys=keys, args=upd) == ["OK", "2"]
    assert await s.scripts.job_update(keys=keys, args=upd) == ["OK", "2"]
    assert await s.scripts.job_update(keys=keys, args=[*upd[:6], "op-4"]) == ["CONFLICT", "2"]


async def test_a_defined_job_costs_less_than_1_kib(storage) -> None:
    client = storage.client
    n = 300
    for i in range(n):
        cfg = TaskConfig(name=f"reports.nightly-{i:05d}", trigger=CronTrigger("0 3 * * *", timezone="Europe/Paris"),
                         spec=TaskSpec(target="reports.build", kwargs={"region": "eu-west", "days": 7}, timeout=600.0))
        await storage.jobs.add(cfg, next_fire_at=2e9 + i)
    total = 0
    for key in ("jobs", "jst", "due"):
        total += await client.memory_usage(storage.prefix + key, samples=0)
    per_job = total / n
    assert per_job < 1024, f"{per_job:.0f} bytes of Redis memory per job"


async def test_count_is_one_cheap_read_and_builds_its_index_once_for_jobs_stored_before(
        private_server, open_storage, command_calls) -> None:
    """``jobs.count()`` (the status's job count, which read one page of 200 jobs and said
    only "more than 200" past it): HLEN of the jobs less the disabled ones, a set the job
    writes keep (``{ns}:joff``), so no job is read whatever their number. Jobs stored before
    the set existed are counted too: the first count builds it from the jobs' state (once,
    marked by ``{ns}:joffb``); a job moved aside (quarantined) leaves it."""
    storage = await open_storage(private_server.url_for(namespace="count"))
    p = storage.prefix
    jobs = [(job(f"j{i:04d}"), 10.0) for i in range(1000)]
    for config, _ in jobs[:30]:
        config.enabled = False
    await storage.jobs.add_many(jobs)
    await storage.client.delete(p + "joff", p + "joffb")  # as a node of an older version left them
    assert await storage.jobs.count() == (1000, 970)
    assert await storage.client.scard(p + "joff") == 30 and await storage.client.exists(p + "joffb")

    client = private_server.client()
    try:
        before = command_calls(client)
        assert await storage.jobs.count() == (1000, 970)
        spent = command_calls(client)
        spent.subtract(before)
    finally:
        client.close()
    # the script call and what it runs (its clock, the index's mark, two sizes): no job is read
    assert +spent == {"fcall": 1, "time": 1, "exists": 1, "hlen": 1, "scard": 1}, spent

    await storage.client.hset(p + "jobs", "j0000", "not json")  # a disabled job's config, broken
    assert await storage.jobs.page(None, 1) is not None  # the read that meets it moves it aside
    assert await storage.client.sismember(p + "joff", "j0000") == 0
    assert await storage.jobs.count() == (999, 970)
