"""StorageContract: what every storage backend must guarantee.

Subclass it and provide ``storage_url`` (a fixture returning a URL whose store is empty and
private to the test, e.g. a unique namespace); optionally ``storage_options``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import pytest

from ...model import (
    AlreadyExists,
    EveryTrigger,
    FencedError,
    NotFound,
    RetryPolicy,
    Task,
    TaskConfig,
    TaskResult,
    TaskSpec,
    TaskState,
    ValidationError,
    VersionConflict,
)
from ...model.job import OverlapPolicy
from ...ports import ATTEMPT_TEXT_CAP, Fence, Firing, SchedulerNode, StorageBackend
from .. import all_tasks, make_job, make_task, make_worker
from ._harness import Harness, plugin_manager_for, poll


def _result(task: Task, outcome: str = "succeeded", worker: str = "w1", now: float = 0.0, **kw: Any) -> TaskResult:
    return TaskResult(task_id=task.id, attempt_id=task.attempt_id, outcome=outcome, started_at=now,
                      finished_at=now, worker_id=worker, **kw)


def _optional(s: Any, name: str, without: str) -> Any:
    """The store's optional method ``name`` ("queues.report_and_pull"); a store without it
    skips the test, saying what the engine does instead (``without``)."""
    part, method = name.split(".")
    found = getattr(getattr(s, part), method, None)
    if found is None:
        pytest.skip(f"this store has no {name} ({without})")
    return found


async def _get(s: StorageBackend, task_id: str) -> Task:
    """``s.tasks.get(task_id)``, which must find the task."""
    task = await s.tasks.get(task_id)
    assert task is not None, f"task {task_id!r} is not in the store"
    return task


async def _get_many(s: StorageBackend, task_ids: Sequence[str]) -> list[Task]:
    """``s.tasks.get_many(task_ids)``, which must find every one of them."""
    tasks = await s.tasks.get_many(task_ids)
    found = [task for task in tasks if task is not None]
    assert len(found) == len(tasks), f"not in the store: {[i for i, t in zip(task_ids, tasks) if t is None]}"
    return found


async def _dispatched(s: StorageBackend, fence: Fence, ids: list[str], worker: str = "w1") -> list[Task]:
    """Register ``worker``, submit tasks ``ids`` and dispatch them all to it."""
    await s.workers.register(make_worker(worker, now=s.clock()))
    await s.tasks.submit([make_task(i) for i in ids])
    tasks = await _get_many(s, ids)
    for task in tasks:
        task.dispatch(worker, s.clock())
    assert await s.tasks.dispatch(fence, tasks) == [True] * len(ids)
    return tasks


class _CountOnly:
    """A quarantine as a store without ``quarantined_since`` offers it (an older or a
    third-party store): the real one's ``count`` and ``list_quarantined``, nothing else."""

    def __init__(self, real: Any) -> None:
        self.count = real.count
        self.list_quarantined = real.list_quarantined


async def _quarantine_leader(h: Harness, spoil_job: Callable[[StorageBackend, str], Awaitable[None]] | None,
                             *, count_only: bool = False) -> Any:
    """A store with a quarantine, ``put_aside(name)`` (store job ``name`` - again -, spoil it,
    read it: moved aside) and ``reported()`` (one :meth:`Scheduler.report_quarantine` look:
    the ``(record, key, action)`` of the events it emitted). Skips a store that has nothing
    to spoil (``spoil_job`` None). ``count_only``: the leader sees the store's quarantine
    without its optional ``quarantined_since``."""
    if spoil_job is None:
        pytest.skip("this store holds no bytes that can fail to decode: nothing is quarantined")
    from ...app.events import EventBus
    from ...app.scheduler import Scheduler
    from ...config import EngineConfig

    s = await h.storage()
    quarantine = s.quarantine  # type: ignore[attr-defined]
    seen: list[Any] = []
    events = EventBus(listeners=[seen.append])

    async def no_balancer(name: str) -> Any:
        raise LookupError(name)

    leader = Scheduler(storage=s, election=await h.election(s), balancers=no_balancer, events=events,
                       config=EngineConfig(storage=h.url, storage_options=dict(h.options)))
    if count_only:
        s.quarantine = _CountOnly(quarantine)  # type: ignore[attr-defined]

    async def put_aside(name: str) -> None:
        await s.jobs.add(make_job(name), next_fire_at=s.clock() + 3600)  # (again) as from a jobs file
        await spoil_job(s, name)
        assert name not in [j.name for j in await s.jobs.list_jobs()], "the read moves it aside"
        assert any((q.kind, q.key) == ("job", name) for q in await quarantine.list_quarantined())

    async def reported() -> list[tuple[str, str, str]]:
        await leader.report_quarantine(s.clock())
        events.flush()
        out = [(e.record, e.key, e.action) for e in seen]
        seen.clear()
        return out

    return s, put_aside, reported


class StorageContract:
    @pytest.fixture
    def storage_url(self) -> str:  # pragma: no cover - must be overridden
        raise NotImplementedError("a StorageContract subclass must provide the storage_url fixture")

    @pytest.fixture
    def storage_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def spoil_job(self) -> Callable[[StorageBackend, str], Awaitable[None]] | None:
        """``async spoil_job(storage, name)``: overwrite the stored job ``name`` with bytes the
        engine cannot decode (a config that is not JSON), as a client other than distsched
        could; its next read moves it aside. None (the default): the store holds no bytes that
        can fail to decode (the memory store), and the quarantine tests are skipped."""
        return None

    @pytest.fixture
    def harness(self, request: pytest.FixtureRequest, storage_url: str,
                  storage_options: dict[str, Any]) -> Harness:
        return Harness(plugin_manager_for(request), storage_url, storage_options)

    # -- jobs ---------------------------------------------------------------------------
    def test_job_add_get_list_remove(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            stored = await s.jobs.add(make_job("a"), next_fire_at=100.0)
            assert stored.version == 1
            assert (await s.jobs.get("a")).name == "a"
            with pytest.raises(AlreadyExists):
                await s.jobs.add(make_job("a"), next_fire_at=100.0)
            await s.jobs.add(make_job("b"), next_fire_at=50.0)
            assert [j.name for j in await s.jobs.list_jobs()] == ["a", "b"]
            assert (await s.jobs.state("a")).next_fire_at == 100.0
            assert await s.jobs.remove("a") is True
            assert await s.jobs.remove("a") is False
            with pytest.raises(NotFound):
                await s.jobs.get("a")
            with pytest.raises(NotFound):
                await s.jobs.state("a")

        harness.run(body)

    def test_a_jobs_window_and_jitter_survive_the_store(self, harness: Harness) -> None:
        """start_date, end_date and jitter are part of the stored job (its JSON): read back
        the same, and a job with no slot left (ended: next_fire_at none) stays stored."""
        async def body(h: Harness) -> None:
            from ...model import build_job

            s = await h.storage()
            window = build_job("w", every="10s", target="noop", start_date="2030-01-01T00:00:00Z",
                               end_date="2030-01-02T00:00:00+01:00", jitter="5s")
            cron = build_job("c", cron="*/5 * * * *", target="noop", end_date="2020-01-01T00:00:00Z", jitter=30)
            await s.jobs.add(window, next_fire_at=window.next_fire_after(0.0))
            await s.jobs.add_many([(cron, None)])
            got = await s.jobs.get("w")
            assert got.trigger == window.trigger and got.start_at(1893456000.0) == window.start_at(1893456000.0)
            assert (await s.jobs.get("c")).trigger == cron.trigger
            page = {job.name: (job, state) for job, state in (await s.jobs.page(None, 10)).jobs}
            assert page["c"][1].next_fire_at is None and page["c"][0].ended(None)
            assert page["w"][1].next_fire_at == 1893456000.0 and not page["w"][0].ended(1893456000.0)

        harness.run(body)

    def test_job_add_many_all_or_nothing(self, harness: Harness) -> None:
        """``all_or_nothing=True``: one existing name (here after more than one batch of new
        ones) stores nothing, and the error lists every existing name in the order given."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            await s.jobs.add(make_job("b"), next_fire_at=7.0)
            await s.jobs.add(make_job("z"), next_fire_at=8.0)
            many = [(make_job(f"m{i:03d}"), 100.0 + i) for i in range(600)]
            with pytest.raises(AlreadyExists) as err:
                await s.jobs.add_many([(make_job("z", every=3.0), 1.0), *many, (make_job("b", every=3.0), 1.0)],
                                      all_or_nothing=True)
            assert err.value.names == ("z", "b")
            assert sorted(c.name for c in await s.jobs.list_jobs()) == ["b", "z"], "nothing stored"
            assert (await s.jobs.get("b")).trigger == make_job("b").trigger, "left unchanged"
            stored = await s.jobs.add_many(many, all_or_nothing=True)
            assert [c.name if c else None for c in stored] == [c.name for c, _ in many]
            assert len(await s.jobs.list_jobs()) == 602
            assert await s.jobs.add_many([], all_or_nothing=True) == []

        harness.run(body)

    def test_job_add_many_stores_new_names_and_leaves_existing_ones(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            await s.jobs.add(make_job("b", every=5.0), next_fire_at=7.0)
            paused = TaskConfig(name="p", trigger=EveryTrigger(10.0), spec=TaskSpec(target="noop"), enabled=False)
            many = [(make_job(f"m{i:03d}"), 100.0 + i) for i in range(600)]  # more than one batch
            stored = await s.jobs.add_many([(make_job("a"), 50.0), (make_job("b", every=99.0), 1.0),
                                            (paused, 60.0), *many])
            assert [c.name if c else None for c in stored[:3]] == ["a", None, "p"]
            assert all(c is not None and c.version == 1 for c in stored[3:])
            assert (await s.jobs.get("b")).trigger == EveryTrigger(5.0), "an existing job is left unchanged"
            assert (await s.jobs.state("b")).next_fire_at == 7.0
            assert len(await s.jobs.list_jobs()) == 603
            assert (await s.jobs.state("m599")).next_fire_at == 699.0
            assert await s.jobs.next_due_at() == 7.0
            due = [c.name for c, _ in await s.jobs.due(60.0, 10)]
            assert due == ["b", "a"], "the disabled job is not due"
            assert await s.jobs.add_many([]) == []

        harness.run(body)

    def test_job_update_is_optimistic(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            v1 = await s.jobs.add(make_job("a", timeout=5.0), next_fire_at=10.0)
            assert v1.version == 1
            change = make_job("a", timeout=6.0)
            change.version = 1
            v2 = await s.jobs.update(change, next_fire_at=20.0)
            assert v2.version == 2 and v2.spec.timeout == 6.0
            stale = make_job("a", timeout=7.0)
            stale.version = 1
            with pytest.raises(VersionConflict):
                await s.jobs.update(stale, next_fire_at=30.0)
            after = await s.jobs.get("a")
            assert after.version == 2 and after.spec.timeout == 6.0, "a stale update must change nothing"
            assert (await s.jobs.state("a")).next_fire_at == 20.0
            missing = make_job("zzz")
            missing.version = 1
            with pytest.raises(NotFound):
                await s.jobs.update(missing, next_fire_at=1.0)

        harness.run(body)

    def test_count_is_every_job_and_the_enabled_ones(self, harness: Harness) -> None:
        """The optional ``jobs.count()``: ``(total, enabled)`` of every job stored (a paused
        job counts as enabled), after adds (in bulk too), updates that disable or enable a job,
        and removals. A store without it gets one page of jobs counted by the status."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            count = _optional(s, "jobs.count", "the status counts one page of jobs")
            assert await count() == (0, 0)
            off = make_job("off")
            off.enabled = False
            await s.jobs.add(off, next_fire_at=5.0)
            await s.jobs.add(make_job("a"), next_fire_at=1.0)
            bulk_off = make_job("m-off")
            bulk_off.enabled = False
            await s.jobs.add_many([*((make_job(f"m{i:03d}"), 1.0) for i in range(600)), (bulk_off, None)])
            assert await count() == (603, 601)
            await s.jobs.set_paused("a", True)
            assert await count() == (603, 601), "a paused job is still enabled"
            disabled = make_job("a")
            disabled.enabled, disabled.version = False, 1
            await s.jobs.update(disabled, next_fire_at=1.0)
            enabled = make_job("off")
            enabled.version = 1
            await s.jobs.update(enabled, next_fire_at=5.0)
            assert await count() == (603, 601)
            assert await s.jobs.remove("m-off") and await s.jobs.remove("a") and await s.jobs.remove("m000")
            assert await count() == (600, 600)
            assert await count() == (len(await s.jobs.list_jobs()),
                                     sum(1 for c in await s.jobs.list_jobs() if c.enabled))

        harness.run(body)

    def test_due_is_ordered_limited_and_skips_paused_and_disabled(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            for name, at in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("later", 1000.0)):
                await s.jobs.add(make_job(name), next_fire_at=at)
            off = make_job("off")
            off.enabled = False
            await s.jobs.add(off, next_fire_at=5.0)
            assert [c.name for c, _ in await s.jobs.due(100.0, 10)] == ["a", "b", "c"]
            assert [c.name for c, _ in await s.jobs.due(100.0, 2)] == ["a", "b"]
            await s.jobs.set_paused("a", True)
            assert [c.name for c, _ in await s.jobs.due(100.0, 10)] == ["b", "c"]
            assert await s.jobs.next_due_at() == 20.0
            await s.jobs.set_paused("a", False, next_fire_at=15.0)
            due = await s.jobs.due(100.0, 10)
            assert [c.name for c, _ in due] == ["a", "b", "c"]
            assert due[0][1].next_fire_at == 15.0
            assert await s.jobs.next_due_at() == 15.0

        harness.run(body)

    def test_fire_creates_slot_tasks_once_and_advances_the_schedule(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            job = make_job("j")
            await s.jobs.add(job, next_fire_at=10.0)
            firing = Firing(job="j", expected_next=10.0, next_fire_at=20.0, last_slot=10.0,
                            tasks=(job.create_task(10.0, 11.0),))
            report = await s.jobs.fire(fence, [firing])
            assert report.created == 1 and not report.conflicts
            state = await s.jobs.state("j")
            assert (state.next_fire_at, state.last_slot) == (20.0, 10.0)
            # The same slot again (a second leader, a retry): refused by expected_next...
            again = await s.jobs.fire(fence, [firing])
            assert again.created == 0 and again.conflicts == ("j",)
            # ...and even with the right expected_next the slot's task is not created twice.
            replay = Firing(job="j", expected_next=20.0, next_fire_at=30.0, last_slot=20.0,
                            tasks=(job.create_task(10.0, 21.0), job.create_task(20.0, 21.0)))
            report = await s.jobs.fire(fence, [replay])
            assert (report.created, report.existing) == (1, 1)
            tasks = await all_tasks(s, job="j")
            assert all(t.slot is not None for t in tasks), "a slot task records its slot"
            assert sorted(t.slot for t in tasks if t.slot is not None) == [10.0, 20.0]
            assert all(t.state is TaskState.PENDING for t in tasks)
            assert [t.id for t in await s.tasks.ready(100.0, 10)] == [job.create_task(10.0, 0).id, job.create_task(20.0, 0).id]

        harness.run(body)

    def test_fire_names_the_tasks_it_found_stored_already(self, harness: Harness) -> None:
        """``FireReport.existing_ids``: the tasks of an applied firing whose ids were stored
        already (left as they were), in firing order, beside the slots the store skipped for
        ``max_backlog`` - the leader announces no ``task.skipped`` for those (optional for a
        third-party store: None there)."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            job = make_job("j")
            await s.jobs.add(job, next_fire_at=10.0)
            first = (job.skipped_task(10.0, "missed", 11.0), job.create_task(20.0, 11.0))
            report = await s.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=30.0,
                                                      last_slot=20.0, tasks=first)])
            assert (report.created, report.existing) == (2, 0)
            assert report.existing_ids in ((), None)
            # the job set back (a re-timed or resumed job): its slots 10 and 20 fire again
            await s.jobs.set_paused("j", True)
            await s.jobs.set_paused("j", False, next_fire_at=10.0)
            again = (job.skipped_task(10.0, "missed", 31.0), job.skipped_task(20.0, "overlap: discarded", 31.0),
                     job.create_task(30.0, 31.0))
            report = await s.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=40.0,
                                                      last_slot=30.0, tasks=again)])
            assert (report.created, report.existing) == (1, 2)
            assert report.existing_ids == (again[0].id, again[1].id)
            got = await _get_many(s, [t.id for t in again])
            assert [t.state for t in got] == [TaskState.SKIPPED, TaskState.PENDING, TaskState.PENDING]
            # beside the slots a serial job's max_backlog skips, and with a conflict
            serial = make_job("sb")
            serial.overlap = OverlapPolicy(mode="serial", max_instances=1, max_backlog=0)
            await s.jobs.add(serial, next_fire_at=10.0)
            s1 = serial.create_task(10.0, 11.0)
            await s.jobs.fire(fence, [Firing(job="sb", expected_next=10.0, next_fire_at=20.0, last_slot=10.0,
                                             tasks=(s1,), max_backlog=0)])
            await s.jobs.set_paused("sb", True)
            await s.jobs.set_paused("sb", False, next_fire_at=10.0)
            s2 = serial.create_task(20.0, 21.0)
            report = await s.jobs.fire(fence, [
                Firing(job="gone", expected_next=1.0, next_fire_at=2.0, last_slot=1.0,
                       tasks=(make_job("gone").create_task(1.0, 1.0),)),
                Firing(job="sb", expected_next=10.0, next_fire_at=30.0, last_slot=20.0, tasks=(s1, s2),
                       max_backlog=0)])
            assert report.conflicts == ("gone",)
            assert (report.created, report.existing) == (1, 1)
            assert report.skipped == ((s2.id, "overlap: backlog full (max_backlog = 0)"),)
            assert report.existing_ids == (s1.id,)

        harness.run(body)

    def test_fire_refuses_a_job_paused_or_disabled_after_it_was_read_due(self, harness: Harness) -> None:
        """The leader reads the due jobs, then fires them: a pause (or a disable) committed in
        between must win - the firing is a conflict, no task is created, the schedule stays."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            for name in ("paused", "disabled", "kept"):
                await s.jobs.add(make_job(name), next_fire_at=10.0)
            due = await s.jobs.due(100.0, 10)
            assert sorted(c.name for c, _ in due) == ["disabled", "kept", "paused"]
            paused = next(c for c, _ in due if c.name == "paused")
            await s.jobs.set_paused("paused", True)
            off = await s.jobs.get("disabled")
            off.enabled = False
            await s.jobs.update(off, next_fire_at=10.0)
            report = await s.jobs.fire(fence, [
                Firing(job=c.name, expected_next=10.0, next_fire_at=20.0, last_slot=10.0,
                       tasks=(c.create_task(10.0, 11.0),)) for c, _ in due])
            assert sorted(report.conflicts) == ["disabled", "paused"] and report.created == 1
            assert [t.job for t in await all_tasks(s)] == ["kept"]
            for name in ("paused", "disabled"):
                assert (await s.jobs.state(name)).next_fire_at == 10.0, name
            # resumed, it fires from where its schedule is
            await s.jobs.set_paused("paused", False)
            report = await s.jobs.fire(fence, [Firing(job="paused", expected_next=10.0, next_fire_at=20.0,
                                                      last_slot=10.0, tasks=(paused.create_task(10.0, 12.0),))])
            assert report.created == 1 and not report.conflicts

        harness.run(body)

    def test_held_slots_counts_a_serial_jobs_waiting_slots(self, harness: Harness) -> None:
        """``tasks.held_slots`` (optional): per serial job, how many of its slots wait held
        (fired while the job had ``max_instances`` live) and the earliest of them; a job
        without any is left out; a held slot cancelled leaves the count."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            held_slots = _optional(s, "tasks.held_slots", "status, jobs list and the dashboard show no backlog")
            _, fence = await h.leader(s)
            job = make_job("hs")
            job.overlap = OverlapPolicy(mode="serial", max_instances=1, max_backlog=10)
            await s.jobs.add(job, next_fire_at=10.0)
            tasks = tuple(job.create_task(10.0 * i, 11.0) for i in range(1, 5))
            await s.jobs.fire(fence, [Firing(job="hs", expected_next=10.0, next_fire_at=50.0, last_slot=40.0,
                                             tasks=tasks, max_backlog=10)])
            other = make_job("par")
            await s.jobs.add(other, next_fire_at=10.0)
            await s.jobs.fire(fence, [Firing(job="par", expected_next=10.0, next_fire_at=30.0, last_slot=20.0,
                                             tasks=(other.create_task(10.0, 11.0), other.create_task(20.0, 11.0)))])
            # the first slot is admitted (the job has room), the three after it wait
            assert await held_slots() == {"hs": (3, 20.0)}
            assert await held_slots(["hs", "par", "nope"]) == {"hs": (3, 20.0)}
            assert await held_slots([]) == {}
            second = (await _get_many(s, [tasks[1].id]))[0]
            second.cancel("by hand", 12.0)
            assert await s.tasks.cancel(second)
            assert await held_slots(["hs"]) == {"hs": (2, 30.0)}

        harness.run(body)

    def test_park_keeps_tasks_out_of_the_ready_queue_until_unparked(self, harness: Harness) -> None:
        """``tasks.park`` / ``unpark`` / ``parked`` (optional, all three): a parked task leaves
        the ready reads (and ``next_ready_at``) and is never dispatched; only a task still
        ready at its version is parked; ``unpark`` moves back those of the keys given, then
        those whose wait ran out, at most ``limit``; a parked task cancelled leaves the set;
        both writes are fenced."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            park = _optional(s, "tasks.park", "tasks no live worker may run wait in the ready queue")
            unpark, parked = s.tasks.unpark, s.tasks.parked  # type: ignore[attr-defined]
            _, fence = await h.leader(s)
            other = Fence("another-node", fence.term + 1)  # not the lease's: refused
            await s.tasks.submit([make_task(i, now=float(n)) for n, i in enumerate(["p1", "p2", "p3", "p4", "ok"], 1)])
            p1, p2, p3, p4 = await _get_many(s, ["p1", "p2", "p3", "p4"])
            stale = attrs.evolve(p4, version=p4.version - 1)
            assert await park(fence, [(p1, "local:f", 110.0), (p2, "local:f", 100.0), (p3, "cmd", 120.0),
                                      (stale, "cmd", 90.0)]) == [True, True, True, False]
            assert await park(fence, [(p1, "local:f", 50.0)]) == [False]  # parked already
            assert await parked() == {"local:f": (2, 100.0), "cmd": (1, 120.0)}
            assert await parked(["cmd", "nope"]) == {"cmd": (1, 120.0)}
            assert [t.id for t in await s.tasks.ready(1000.0, 10)] == ["p4", "ok"]
            assert await s.tasks.next_ready_at() == 4.0
            assert all(t.state is TaskState.PENDING for t in await _get_many(s, ["p1", "p2", "p3"]))
            p1.dispatch("w1", 5.0)
            assert await s.tasks.dispatch(fence, [p1]) == [False], "a parked task is never dispatched"
            with pytest.raises(FencedError):
                await park(other, [(p4, "cmd", 1.0)])
            with pytest.raises(FencedError):
                await unpark(other, ["local:f"], 1000.0, 10)
            # by key (a worker offering it is live), oldest until first, at most limit
            assert await unpark(fence, ["local:f"], 0.0, 1) == 1
            assert [t.id for t in await s.tasks.ready(1000.0, 10)] == ["p2", "p4", "ok"]
            assert await parked() == {"local:f": (1, 110.0), "cmd": (1, 120.0)}
            # by time: the waits that ran out by then, whatever their key
            assert await unpark(fence, [], 115.0, 10) == 1
            assert await parked() == {"cmd": (1, 120.0)}
            assert [t.id for t in await s.tasks.ready(1000.0, 10)] == ["p1", "p2", "p4", "ok"]
            # a parked task written (cancelled) leaves the set; nothing is left to move
            (p3,) = await _get_many(s, ["p3"])
            p3.cancel("by hand", 6.0)
            assert await s.tasks.cancel(p3)
            assert await parked() == {}
            assert await unpark(fence, ["cmd"], 1000.0, 10) == 0
            # a parked task the leader saves still pending goes back to the ready queue
            (p4,) = await _get_many(s, ["p4"])
            assert await park(fence, [(p4, "cmd", 130.0)]) == [True]
            p4.reason = "noted"
            assert await s.tasks.save(fence, [p4]) == [True]
            assert await parked() == {}
            assert [t.id for t in await s.tasks.ready(1000.0, 10)] == ["p1", "p2", "p4", "ok"]

        harness.run(body)

    def test_fire_records_a_serial_slot_beyond_max_backlog_skipped(self, harness: Harness) -> None:
        """``Firing.max_backlog``: a serial job's pending slot fired while the job already has
        ``max_instances + max_backlog`` live tasks (this firing's counted) is stored
        ``skipped`` with the reason ``overlap: backlog full (max_backlog = N)``, in the same
        step; a task that ends makes room for the next firing's slot."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            job = make_job("sb")
            job.overlap = OverlapPolicy(mode="serial", max_instances=1, max_backlog=2)
            await s.jobs.add(job, next_fire_at=10.0)
            tasks = tuple(job.create_task(10.0 * i, 11.0) for i in range(1, 6))
            report = await s.jobs.fire(fence, [Firing(job="sb", expected_next=10.0, next_fire_at=60.0, last_slot=50.0,
                                                      tasks=tasks, max_backlog=job.overlap.serial_backlog)])
            assert (report.created, report.existing) == (5, 0)
            got = await _get_many(s, [t.id for t in tasks])
            assert [t.state for t in got] == [TaskState.PENDING] * 3 + [TaskState.SKIPPED] * 2
            full = "overlap: backlog full (max_backlog = 2)"
            assert {t.reason for t in got[3:]} == {full}
            # the report names the slots the store skipped, and why (the leader announces them)
            assert report.skipped == ((tasks[3].id, full), (tasks[4].id, full))
            assert len(await s.tasks.live("sb")) == 3
            # still full: the next slot is skipped too; once one ends, the one after it waits
            nxt = job.create_task(60.0, 61.0)
            report = await s.jobs.fire(fence, [Firing(job="sb", expected_next=60.0, next_fire_at=70.0,
                                                      last_slot=60.0, tasks=(nxt,), max_backlog=2)])
            assert [t.state for t in await _get_many(s, [nxt.id])] == [TaskState.SKIPPED]
            assert report.skipped == ((nxt.id, full),)
            # a slot that exists already is left as it is, and not reported skipped again
            report = await s.jobs.fire(fence, [Firing(job="sb", expected_next=70.0, next_fire_at=70.0,
                                                      last_slot=60.0, tasks=(nxt,), max_backlog=2)])
            assert (report.created, report.existing, report.skipped) == (0, 1, ())
            first = got[0]
            first.cancel("done", 62.0)
            assert await s.tasks.save(fence, [first]) == [True]
            after = job.create_task(70.0, 71.0)
            report = await s.jobs.fire(fence, [Firing(job="sb", expected_next=70.0, next_fire_at=80.0,
                                                      last_slot=70.0, tasks=(after,), max_backlog=2)])
            assert [t.state for t in await _get_many(s, [after.id])] == [TaskState.PENDING]
            assert report.skipped == ()
            # without max_backlog (any other overlap mode) nothing is skipped; the leader's own
            # skipped records (discard, misfire) are its own: not in the report
            other = make_job("par")
            await s.jobs.add(other, next_fire_at=10.0)
            many = tuple(other.create_task(10.0 * i, 11.0) for i in range(1, 6))
            mine = other.skipped_task(60.0, "overlap: discarded (1 instance(s) still live)", 61.0)
            report = await s.jobs.fire(fence, [Firing(job="par", expected_next=10.0, next_fire_at=70.0,
                                                      last_slot=60.0, tasks=(*many, mine))])
            assert len(await s.tasks.live("par")) == 5
            assert (report.created, report.skipped) == (6, ())

        harness.run(body)

    def test_fire_records_skipped_slots_as_terminal(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            job = make_job("j")
            await s.jobs.add(job, next_fire_at=10.0)
            skipped = job.skipped_task(10.0, "misfire: skipped", 50.0)
            await s.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=60.0, last_slot=10.0,
                                             tasks=(skipped,))])
            stored = await s.tasks.get(skipped.id)
            assert stored is not None and stored.state is TaskState.SKIPPED and stored.reason == "misfire: skipped"
            assert await s.tasks.ready(100.0, 10) == []
            assert (await s.tasks.counts()).get("skipped") == 1

        harness.run(body)

    # -- fencing ------------------------------------------------------------------------
    def test_a_stale_leader_cannot_write(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            election, old = await h.leader(s, "old")
            job = make_job("j")
            await s.jobs.add(job, next_fire_at=10.0)
            task = make_task("t")
            await s.tasks.submit([task])
            await s.workers.register(make_worker("w1", now=s.clock()))
            await election.release(old)
            new = await election.acquire("new")
            assert new is not None and new.term > old.term
            firing = Firing(job="j", expected_next=10.0, next_fire_at=20.0, last_slot=10.0,
                            tasks=(job.create_task(10.0, 11.0),))
            with pytest.raises(FencedError):
                await s.jobs.fire(old, [firing])
            t = await _get(s, "t")
            t.dispatch("w1", s.clock())
            with pytest.raises(FencedError):
                await s.tasks.dispatch(old, [t])
            t2 = await _get(s, "t")
            t2.cancel("x", s.clock())
            with pytest.raises(FencedError):
                await s.tasks.save(old, [t2])
            with pytest.raises(FencedError):
                await s.workers.reap(old, "w1", [])
            # Nothing of it landed.
            assert (await s.jobs.state("j")).next_fire_at == 10.0
            assert (await _get(s, "t")).state is TaskState.PENDING
            assert await s.tasks.get(job.create_task(10.0, 0).id) is None
            assert [w.id for w in await s.workers.list_workers()] == ["w1"]
            assert await s.queues.pull("w1", 10, 0.05) == []
            # The new leader can.
            assert (await s.jobs.fire(new, [firing])).created == 1

        harness.run(body)

    # -- tasks --------------------------------------------------------------------------
    def test_submit_is_idempotent_and_tasks_are_readable(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            assert await s.tasks.submit([make_task("a", now=1.0), make_task("b", now=2.0)]) == [True, True]
            assert await s.tasks.submit([make_task("a", now=3.0, target="other")]) == [False]
            a = await s.tasks.get("a")
            assert a is not None and a.spec.target == "noop" and a.created_at == 1.0 and a.version >= 1
            assert await s.tasks.get("missing") is None
            got = await s.tasks.get_many(["b", "missing", "a"])
            assert [t.id if t else None for t in got] == ["b", None, "a"]
            assert (await s.tasks.counts()).get("pending") == 2
            assert {t.id for t in await all_tasks(s, state="pending")} == {"a", "b"}

        harness.run(body)

    def test_ready_respects_not_before_and_order(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            retry = RetryPolicy(max_attempts=3, delay=50.0)
            await s.tasks.submit([make_task("late", now=30.0), make_task("early", now=10.0, retry=retry),
                                  make_task("mid", now=20.0)])
            assert [t.id for t in await s.tasks.ready(25.0, 10)] == ["early", "mid"]
            assert [t.id for t in await s.tasks.ready(100.0, 2)] == ["early", "mid"]
            assert await s.tasks.next_ready_at() == 10.0
            # A failed attempt with retries left waits for its retry time.
            await s.workers.register(make_worker("w1", now=s.clock()))
            t = (await _get_many(s, ["early"]))[0]
            t.dispatch("w1", 40.0)
            assert await s.tasks.dispatch(fence, [t]) == [True]
            t.finish(_result(t, "failed", now=41.0), 41.0)
            assert t.state is TaskState.RETRYING and t.not_before == 91.0
            assert await s.tasks.save(fence, [t]) == [True]
            assert [x.id for x in await s.tasks.ready(90.0, 10)] == ["mid", "late"]
            assert [x.id for x in await s.tasks.ready(91.0, 10)] == ["mid", "late", "early"]

        harness.run(body)

    def test_next_times_are_next_due_at_and_next_ready_at(self, harness: Harness) -> None:
        """The optional ``StorageBackend.next_times()``: the leader's two reads at the end of
        a pass, ``(jobs.next_due_at(), tasks.next_ready_at())``, in one call."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            both = getattr(s, "next_times", None)
            if both is None:
                pytest.skip("this store has no next_times (the leader reads the two one after the other)")
            assert await both() == (None, None)
            await s.tasks.submit([make_task("later", now=123.5), make_task("soon", now=99.5)])
            await s.jobs.add(make_job("j"), next_fire_at=77.25)
            await s.jobs.add(make_job("paused"), next_fire_at=1.0)
            await s.jobs.set_paused("paused", True)
            assert await both() == (77.25, 99.5)
            assert await both() == (await s.jobs.next_due_at(), await s.tasks.next_ready_at())

        harness.run(body)

    def test_save_is_optimistic(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.tasks.submit([make_task("t")])
            first = await _get(s, "t")
            second = await _get(s, "t")
            first.cancel("by first", 1.0)
            second.cancel("by second", 2.0)
            assert await s.tasks.save(fence, [first]) == [True]
            assert await s.tasks.save(fence, [second]) == [False]
            stored = await _get(s, "t")
            assert stored.reason == "by first" and stored.version == first.version

        harness.run(body)

    def test_two_writers_one_winner(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            a, b = await h.storage(), await h.storage()
            _, fence = await h.leader(a)
            await a.tasks.submit([make_task(f"t{i}") for i in range(20)])
            ta = await _get_many(a, [f"t{i}" for i in range(20)])
            tb = await _get_many(b, [f"t{i}" for i in range(20)])
            for x in ta:
                x.cancel("a", 1.0)
            for x in tb:
                x.cancel("b", 1.0)
            ra, rb = await asyncio.gather(a.tasks.save(fence, ta), b.tasks.save(fence, tb))
            assert all(x != y for x, y in zip(ra, rb)), "exactly one writer wins each task"
            stored = await _get_many(a, [f"t{i}" for i in range(20)])
            for i, task in enumerate(stored):
                assert task.reason == ("a" if ra[i] else "b")

        harness.run(body)

    # -- queues, workers, results ------------------------------------------------------
    def test_dispatch_pull_report_ack(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            now = s.clock()
            await s.workers.register(make_worker("w1", now=now))
            await s.workers.register(make_worker("w2", now=now))
            await s.tasks.submit([make_task("a"), make_task("b")])
            a, b = await _get_many(s, ["a", "b"])
            a.dispatch("w1", now)
            b.dispatch("w2", now)
            assert await s.tasks.dispatch(fence, [a, b]) == [True, True]
            loads = {w.id: w.load for w in await s.workers.list_workers()}
            assert loads == {"w1": 1, "w2": 1}
            assert {t.id for t in await s.tasks.assigned("w1")} == {"a"}
            pulled = await s.queues.pull("w1", 10, 1.0)
            assert [t.id for t in pulled] == ["a"], "a worker only ever gets its own queue"
            assert pulled[0].state is TaskState.RUNNING and pulled[0].attempt_id == a.attempt_id
            assert (await _get(s, "a")).state is TaskState.RUNNING
            assert await s.queues.pull("w1", 10, 0.05) == []
            await s.queues.report("w1", [_result(pulled[0], value={"x": 1})])
            results = await s.results.peek(10)
            assert [(r.task_id, r.value) for r in results] == [("a", {"x": 1})]
            task = await _get(s, "a")
            task.finish(results[0], s.clock())
            assert await s.tasks.save(fence, [task], ack_results=1) == [True]
            assert await s.results.peek(10) == []
            assert (await _get(s, "a")).state is TaskState.SUCCEEDED
            assert {w.id: w.load for w in await s.workers.list_workers()} == {"w1": 0, "w2": 1}

        harness.run(body)

    def test_pull_drops_stale_queue_entries(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            a, b = await _dispatched(s, fence, ["a", "b"])
            a.cancel("changed my mind", s.clock())
            assert await s.tasks.save(fence, [a]) == [True]
            pulled = await s.queues.pull("w1", 10, 1.0)
            assert [t.id for t in pulled] == ["b"]
            assert (await _get(s, "a")).state is TaskState.CANCELLED

        harness.run(body)

    def test_pull_waits_for_work_and_wakes_on_dispatch(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.workers.register(make_worker("w1", now=s.clock()))
            await s.tasks.submit([make_task("a")])
            waiter = asyncio.create_task(s.queues.pull("w1", 1, 5.0))
            await asyncio.sleep(0.05)
            assert not waiter.done()
            a = await _get(s, "a")
            a.dispatch("w1", s.clock())
            await s.tasks.dispatch(fence, [a])
            pulled = await asyncio.wait_for(waiter, 3.0)
            assert [t.id for t in pulled] == ["a"]

        harness.run(body)

    def test_wait_for_activity_wakes_on_results_and_submissions(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            loop = asyncio.get_running_loop()
            await s.wait_for_activity(0.01)  # drain any earlier signal
            t0 = loop.time()
            waiter = asyncio.create_task(s.wait_for_activity(5.0))
            await asyncio.sleep(0.05)
            await s.tasks.submit([make_task("a")])
            await asyncio.wait_for(waiter, 3.0)
            assert loop.time() - t0 < 3.0

        harness.run(body)

    def test_reap_requeues_a_dead_workers_tasks(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b"])
            await s.queues.pull("w1", 1, 1.0)  # one running, one still queued
            held = await s.tasks.assigned("w1")
            assert {t.id for t in held} == {"a", "b"}
            for t in held:
                t.requeue("worker lost", s.clock())
            assert await s.workers.reap(fence, "w1", held) == [True, True]
            assert await s.workers.list_workers() == []
            assert await s.workers.heartbeat("w1") is False, "a reaped worker learns it was declared dead"
            again = await _get_many(s, ["a", "b"])
            assert all(t.state is TaskState.PENDING and t.redeliveries == 1 and t.attempt == 1 for t in again)
            assert {t.id for t in await s.tasks.ready(s.clock() + 1, 10)} == {"a", "b"}
            assert await s.tasks.assigned("w1") == []

        harness.run(body)

    def test_a_reap_that_loses_a_task_to_a_late_pull_keeps_the_worker_for_the_next_pass(
            self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b"])
            held = await s.tasks.assigned("w1")  # the leader: w1's heartbeat is too old
            assert {t.id for t in held} == {"a", "b"}
            # w1 is only slow: it takes a task after the leader read what it held
            assert [t.id for t in await s.queues.pull("w1", 1, 1.0)] == ["a"]
            held.sort(key=lambda t: t.id)
            for t in held:
                t.requeue("worker lost", s.clock())
            assert await s.workers.reap(fence, "w1", held) == [False, True]
            # b is requeued; a runs on w1, which is kept but dead: its heartbeat is refused
            # (so it drops what it runs) and it is never alive again
            assert (await _get(s, "b")).state is TaskState.PENDING
            [a] = await s.tasks.assigned("w1")
            assert a.id == "a" and a.state is TaskState.RUNNING and a.worker_id == "w1"
            assert await s.workers.heartbeat("w1") is False
            [w] = await s.workers.list_workers()
            assert w.id == "w1" and w.load == 1 and w.last_heartbeat == 0 and not w.is_alive(s.clock(), 1e6)
            assert await s.queues.pull("w1", 10, 0.05) == []
            # the leader's next pass requeues what it still holds and removes it
            again = await s.tasks.assigned("w1")
            for t in again:
                t.requeue("worker lost", s.clock())
            assert await s.workers.reap(fence, "w1", again) == [True]
            assert await s.workers.list_workers() == []
            assert await s.tasks.assigned("w1") == []
            assert await s.workers.heartbeat("w1") is False
            tasks = await _get_many(s, ["a", "b"])
            assert all(t.state is TaskState.PENDING and t.redeliveries == 1 for t in tasks)
            assert {t.id for t in await s.tasks.ready(s.clock() + 1, 10)} == {"a", "b"}

        harness.run(body)

    def test_worker_heartbeat_and_deregister(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            start = s.clock()
            await s.workers.register(make_worker("w1", now=start, concurrency=3, capacity=12, functions=["f", "g"],
                                                 executors=["local", "cmd"]))
            [w] = await s.workers.list_workers()
            assert (w.concurrency, w.capacity, w.load) == (3, 12, 0)
            # what the leader routes by: the functions and executors it registered with
            assert (w.functions, w.executors) == (("f", "g"), ("local", "cmd"))
            assert w.is_alive(s.clock(), 5.0)
            assert await s.workers.heartbeat("w1", draining=True) is True
            [w] = await s.workers.list_workers()
            assert w.draining and not w.can_accept(s.clock(), 5.0)
            await s.workers.deregister("w1")
            assert all(not w.is_alive(s.clock(), 5.0) for w in await s.workers.list_workers())
            assert await s.workers.heartbeat("nobody") is False

        harness.run(body)

    def test_overdue_live_and_assigned(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.workers.register(make_worker("w1", now=s.clock()))
            job = make_job("j", timeout=0.05)
            await s.jobs.add(job, next_fire_at=1.0)
            t = job.create_task(1.0, s.clock())
            await s.jobs.fire(fence, [Firing(job="j", expected_next=1.0, next_fire_at=2.0, last_slot=1.0, tasks=(t,))])
            assert [x.id for x in await s.tasks.live("j")] == [t.id]
            t = await _get(s, t.id)
            t.dispatch("w1", s.clock())
            await s.tasks.dispatch(fence, [t])
            assert await s.tasks.overdue(s.clock() - 10, 10) == []

            async def late() -> bool:
                return [x.id for x in await s.tasks.overdue(s.clock(), 10)] == [t.id]

            assert await poll(late, 3.0)
            t = await _get(s, t.id)
            t.cancel("done", s.clock())
            await s.tasks.save(fence, [t])
            assert await s.tasks.live("j") == []
            assert await s.tasks.overdue(s.clock() + 100, 10) == []

        harness.run(body)

    def test_a_task_taken_ahead_of_its_time_is_overdue_only_after_it(self, harness: Harness) -> None:
        """A slot is dispatched ahead of its time (``fire_ahead``) and its worker takes it at
        once, then holds it until then: its deadline counts from its ``not_before``, not from
        the dispatch or the take (a ``fire_ahead`` longer than the grace had every slot timed
        out by the leader before it ran)."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.workers.register(make_worker("w1", now=s.clock()))
            due = s.clock() + 30
            ahead = make_task("ahead", now=s.clock(), timeout=0.5)
            ahead.not_before = due
            await s.tasks.submit([ahead])
            ahead = await _get(s, "ahead")
            ahead.dispatch("w1", s.clock())
            assert await s.tasks.dispatch(fence, [ahead]) == [True]
            assert await s.tasks.overdue(s.clock() + 5, 10) == [], "dispatched ahead: not overdue before its time"
            assert [t.id for t in await s.queues.pull("w1", 10, 1.0)] == ["ahead"]
            assert (await _get(s, "ahead")).state is TaskState.RUNNING
            assert await s.tasks.overdue(due, 10) == [], "taken ahead: not overdue before its time + timeout"
            assert [t.id for t in await s.tasks.overdue(due + 0.6, 10)] == ["ahead"]

        harness.run(body)

    def test_results_keep_order_and_json_values(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, [f"t{i}" for i in range(5)])
            pulled = await s.queues.pull("w1", 10, 1.0)
            value = {"nested": [1, 2.5, "three", None, True], "unicode": "h\u00e9llo \u2603"}
            await s.queues.report("w1", [_result(t, value=value, meta={"status": 200}) for t in pulled])
            results = await s.results.peek(3)
            assert [r.task_id for r in results] == [t.id for t in pulled][:3]
            assert results[0].value == value and results[0].meta == {"status": 200}
            assert await s.tasks.save(fence, [], ack_results=3) == []
            assert [r.task_id for r in await s.results.peek(10)] == [t.id for t in pulled][3:]

        harness.run(body)

    def test_settle_finishes_current_successes_and_stops_at_a_failure(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b", "c", "d"])
            a, b, c, d = await s.queues.pull("w1", 10, 1.0)
            stale = _result(a, value=1)
            stale = TaskResult(**{**stale.to_dict(), "attempt_id": "a#7"})  # not the current attempt
            intruder = _result(b, worker="w9")  # another worker's claim on b's attempt
            timed = TaskResult(**{**_result(a, value={"x": 1}).to_dict(), "started_at": 0.5, "finished_at": 1.5})
            await s.queues.report("w1", [stale, intruder, timed,
                                         _result(c, "failed", error="boom"), _result(d)])
            done = await s.results.settle(fence, 10, want_tasks=True)
            assert (done.settled, done.stale, done.left) == (1, 2, 2), done
            assert [(t.task_id, t.attempt, t.started_at, t.finished_at) for t in done.tasks] == [("a", 1, 0.5, 1.5)]
            stored = await _get(s, "a")
            assert stored.state is TaskState.SUCCEEDED and stored.result is not None
            assert (stored.result.attempt_id, stored.result.value) == (a.attempt_id, {"x": 1})
            assert stored.finished_at is not None and stored.started_at == a.started_at
            assert stored.version == a.version + 1 and stored.finished_at == done.tasks[0].at
            assert (await _get(s, "b")).state is TaskState.RUNNING, "a result from another worker is refused"
            assert [(r.task_id, r.outcome) for r in await s.results.peek(10)] == [("c", "failed"), ("d", "succeeded")]
            again = await s.results.settle(fence, 10)
            assert (again.settled, again.stale, again.left) == (0, 0, 2), "it stops at the failure"
            assert {w.id: w.load for w in await s.workers.list_workers()} == {"w1": 3}
            counts = await s.tasks.counts()
            assert (counts.get("succeeded"), counts.get("running")) == (1, 3), counts

        harness.run(body)

    def test_a_settling_report_still_gives_the_leader_every_outcome(self, harness: Harness) -> None:
        """``report(settle=True)``: a store may finish the worker's current successes in the
        report itself; either way the next ``settle`` counts them and returns their rows, and
        what needs the leader (a failure, a stale success) is left as without it."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b", "c"])
            a, b, c = await s.queues.pull("w1", 10, 1.0)
            stale = TaskResult(**{**_result(c).to_dict(), "attempt_id": "c#7"})
            await s.queues.report("w1", [_result(a, value={"x": 1}, now=2.0), _result(b, "failed", error="boom"),
                                         stale], settle=True)
            done = await s.results.settle(fence, 10, want_tasks=True)
            assert (done.settled, done.stale, done.left) == (1, 0, 2), done
            assert [(t.task_id, t.attempt, t.started_at) for t in done.tasks] == [("a", 1, 2.0)]
            stored = await _get(s, "a")
            assert stored.state is TaskState.SUCCEEDED and stored.result is not None
            assert (stored.result.attempt_id, stored.result.value) == (a.attempt_id, {"x": 1})
            assert stored.finished_at == done.tasks[0].at
            assert [(r.task_id, r.attempt_id) for r in await s.results.peek(10)] == [("b", b.attempt_id),
                                                                                    ("c", "c#7")]
            assert (await s.results.settle(fence, 10)).settled == 0, "each success is settled once"
            counts = await s.tasks.counts()
            assert (counts.get("succeeded"), counts.get("running")) == (1, 2), counts

        harness.run(body)

    def test_report_and_pull_reports_then_takes_what_is_queued(self, harness: Harness) -> None:
        """The optional ``queues.report_and_pull``: ``report`` (with its ``settle``) and then
        a ``pull`` that never waits, in one step; a store without it is not asked."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            carry = _optional(s, "queues.report_and_pull", "the worker reports, then pulls")
            _, fence = await h.leader(s)
            _, b0, c0 = await _dispatched(s, fence, ["a", "b", "c"])
            [a] = await s.queues.pull("w1", 1, 1.0)
            got = await carry("w1", [_result(a, value={"x": 1}, now=2.0)], 1, settle=True)
            assert [(t.id, t.state, t.attempt_id) for t in got] == [("b", TaskState.RUNNING, b0.attempt_id)]
            assert (await _get(s, "b")).state is TaskState.RUNNING
            stale = TaskResult(**{**_result(c0).to_dict(), "attempt_id": "c#7"})
            got = await carry("w1", [_result(got[0], "failed", error="boom"), stale], 10)
            assert [(t.id, t.state) for t in got] == [("c", TaskState.RUNNING)], "only what is queued"
            assert await carry("w1", [], 10) == [], "an empty queue: nothing, at once"
            done = await s.results.settle(fence, 10, want_tasks=True)
            assert (done.settled, done.stale, done.left) == (1, 0, 2), done
            assert [(t.task_id, t.started_at) for t in done.tasks] == [("a", 2.0)]
            stored = await _get(s, "a")
            assert stored.state is TaskState.SUCCEEDED and stored.result is not None
            assert stored.result.value == {"x": 1}
            assert [(r.task_id, r.outcome, r.attempt_id) for r in await s.results.peek(10)] == [
                ("b", "failed", b0.attempt_id), ("c", "succeeded", "c#7")]
            counts = await s.tasks.counts()
            assert (counts.get("succeeded"), counts.get("running"), counts.get("dispatched")) == (1, 2, None), counts
            assert await s.queues.pull("w1", 10, 0.05) == [], "each task is taken once"

        harness.run(body)

    def test_settle_is_fenced_and_limited(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            election, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b", "c"])
            pulled = await s.queues.pull("w1", 10, 1.0)
            await s.queues.report("w1", [_result(t) for t in pulled])
            first = await s.results.settle(fence, 2)
            assert (first.settled, first.stale, first.left, first.tasks) == (2, 0, 1, ())
            await election.release(fence)
            assert await election.acquire("other") is not None
            with pytest.raises(FencedError):
                await s.results.settle(fence, 10)
            assert (await _get(s, "c")).state is TaskState.RUNNING, "a fenced settle changes nothing"
            assert [r.task_id for r in await s.results.peek(10)] == ["c"]

        harness.run(body)

    # -- history queries (issue 11.6) -------------------------------------------------------
    def test_query_pages_newest_first_with_filters_and_cursor(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            # 7 one-off tasks created at t = 100..106, 3 of them dispatched to w1, 1 to w2
            tasks = [make_task(f"t{i}", now=100.0 + i) for i in range(7)]
            await s.tasks.submit(tasks)
            await s.workers.register(make_worker("w1", now=s.clock()))
            await s.workers.register(make_worker("w2", now=s.clock()))
            stored = await _get_many(s, ["t1", "t3", "t5", "t6"])
            for task, worker in zip(stored, ["w1", "w1", "w1", "w2"]):
                task.dispatch(worker, s.clock())
            assert await s.tasks.dispatch(fence, stored) == [True] * 4
            # same created_at for 3 tasks: ties go by id, descending
            await s.tasks.submit([make_task(f"same-{c}", now=200.0) for c in "abc"])

            page = await s.tasks.query(limit=4)
            assert [t.id for t in page.tasks] == ["same-c", "same-b", "same-a", "t6"]
            assert page.next_cursor is not None
            rest = await s.tasks.query(limit=100, cursor=page.next_cursor)
            assert [t.id for t in rest.tasks] == ["t5", "t4", "t3", "t2", "t1", "t0"]
            assert rest.next_cursor is None
            two = await s.tasks.query(limit=2, cursor=(await s.tasks.query(limit=2)).next_cursor)
            assert [t.id for t in two.tasks] == ["same-a", "t6"], "a cursor inside a tie group"

            by_state = await s.tasks.query(state="dispatched")
            assert [t.id for t in by_state.tasks] == ["t6", "t5", "t3", "t1"]
            assert [t.id for t in (await s.tasks.query(state="pending", limit=3)).tasks] == \
                ["same-c", "same-b", "same-a"]
            assert (await s.tasks.query(state="running")).tasks == ()
            assert [t.id for t in (await s.tasks.query(worker="w1")).tasks] == ["t5", "t3", "t1"]
            assert [t.id for t in (await s.tasks.query(worker="w1", state="dispatched", limit=1)).tasks] == ["t5"]
            assert [t.id for t in (await s.tasks.query(since=104.0, state="pending")).tasks] == \
                ["same-c", "same-b", "same-a", "t4"]
            since = await s.tasks.query(since=105.0, limit=4)
            assert [t.id for t in since.tasks] == ["same-c", "same-b", "same-a", "t6"]
            more = await s.tasks.query(since=105.0, limit=4, cursor=since.next_cursor)
            assert [t.id for t in more.tasks] == ["t5"] and more.next_cursor is None
            # the cursor's own task leaves the index between two pages: the walk goes on after it
            page1 = await s.tasks.query(state="pending", limit=1)
            assert [t.id for t in page1.tasks] == ["same-c"]
            moved = await _get(s, "same-c")
            moved.dispatch("w2", s.clock())
            assert await s.tasks.dispatch(fence, [moved]) == [True]
            page2 = await s.tasks.query(state="pending", limit=2, cursor=page1.next_cursor)
            assert [t.id for t in page2.tasks] == ["same-b", "same-a"]
            assert (await s.tasks.query(worker="nobody")).tasks == ()
            assert (await s.tasks.query(job="nojob")).tasks == ()

            with pytest.raises(ValidationError) as err:
                await s.tasks.query(cursor="not a cursor!")
            assert err.value.field == "cursor"
            with pytest.raises(ValidationError) as err:
                await s.tasks.query(state="sleeping")
            assert err.value.field == "state"
            with pytest.raises(ValidationError) as err:
                await s.tasks.query(limit=0)
            assert err.value.field == "limit"

        harness.run(body)

    def test_query_by_job_follows_the_tasks_through_their_states(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            cfg = make_job("j", every=10.0)
            await s.jobs.add(cfg, next_fire_at=10.0)
            slots = tuple(cfg.create_task(10.0 * i, 50.0 + i) for i in (1, 2, 3))
            skipped = cfg.skipped_task(40.0, "misfire: skipped", 60.0)
            await s.jobs.fire(fence, [Firing(job="j", expected_next=10.0, next_fire_at=50.0, last_slot=40.0,
                                             tasks=(*slots, skipped))])
            await _dispatched(s, fence, [], worker="w1")
            first = await _get(s, slots[0].id)
            first.dispatch("w1", s.clock())
            await s.tasks.dispatch(fence, [first])
            [running] = await s.queues.pull("w1", 1, 1.0)
            running.finish(_result(running, "failed", error="boom", retryable=False), s.clock())
            assert await s.tasks.save(fence, [running]) == [True]

            page = await s.tasks.query(job="j")
            assert [t.id for t in page.tasks] == [skipped.id, slots[2].id, slots[1].id, slots[0].id]
            assert [t.id for t in (await s.tasks.query(job="j", state="failed")).tasks] == [slots[0].id]
            assert [t.id for t in (await s.tasks.query(state="failed")).tasks] == [slots[0].id]
            assert [t.id for t in (await s.tasks.query(state="skipped")).tasks] == [skipped.id]
            assert [t.id for t in (await s.tasks.query(worker="w1")).tasks] == [slots[0].id], \
                "a task stays on its worker's history after it finished"
            st = await s.jobs.state("j")
            assert (st.last_outcome, st.last_task) == ("failed", slots[0].id)
            assert st.last_outcome_at is not None and abs(st.last_outcome_at - s.clock()) < 60

        harness.run(body)

    def test_finished_lists_by_finish_time_whenever_the_tasks_were_created(self, harness: Harness) -> None:
        """The optional ``tasks.finished``: "what failed since T", newest finish first - a
        task created long before T that failed after it is there."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            finished = _optional(s, "tasks.finished", "the facade asks by creation")
            _, fence = await h.leader(s)
            created = {"early": 50.0, "old": 100.0, "mid": 4000.0, "gone": 4100.0, "new": 4900.0}
            await s.tasks.submit([make_task(i, now=at) for i, at in created.items()])
            # saved one by one in the order they finish (a store may index by its own clock)
            for task_id, at, end in (("early", 200.0, "fail"), ("mid", 4500.0, "fail"), ("gone", 4800.0, "cancel"),
                                     ("old", 5000.0, "fail")):
                task = await _get(s, task_id)
                if end == "fail":
                    task.undispatchable("no balancer", at)
                else:
                    task.cancel("by user", at)
                assert await s.tasks.save(fence, [task]) == [True]
            assert [t.id for t in await finished(["failed", "timed_out"], 4400.0, 10)] == ["old", "mid"]
            assert [t.id for t in await finished(["failed"], 4400.0, 1)] == ["old"]
            assert [t.id for t in await finished(["failed"], 4600.0, 10)] == ["old"]
            assert [t.id for t in await finished(["failed"], 0.0, 10)] == ["old", "mid", "early"]
            assert [t.id for t in await finished(["cancelled"], 0.0, 10)] == ["gone"]
            assert await finished(["timed_out"], 0.0, 10) == []
            for states, since, field in ((["pending"], 0.0, "states"), ("failed", 0.0, "states"), ([], 0.0, "states"),
                                         (["failed"], None, "since"), (["failed"], "soon", "since")):
                with pytest.raises(ValidationError) as err:
                    await finished(states, since, 10)
                assert err.value.field == field, (states, since)

        harness.run(body)

    def test_detail_records_every_attempt(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.workers.register(make_worker("w2", now=s.clock()))
            retry = RetryPolicy(max_attempts=3, backoff="fixed", delay=0.0, jitter=0.0)
            [task] = await _dispatched(s, fence, ["x"])
            assert await s.tasks.detail("nope") is None
            detail = await s.tasks.detail("x")
            assert detail is not None and [a.outcome for a in detail.attempts] == ["dispatched"]
            # attempt 1 on w1 fails (long error: capped) and is retried
            [t] = await s.queues.pull("w1", 1, 1.0)
            t.spec = attrs.evolve(t.spec, retry=retry)  # the policy is the leader's, in Python
            t.finish(_result(t, "failed", error="E" * 5000, now=s.clock()), s.clock())
            assert t.state is TaskState.RETRYING
            assert await s.tasks.save(fence, [t]) == [True]
            # attempt 2 goes to w2, whose worker is lost: requeued (same attempt number)
            t = await _get(s, "x")
            t.dispatch("w2", s.clock())
            assert await s.tasks.dispatch(fence, [t]) == [True]
            t = await _get(s, "x")
            t.requeue("worker w2 lost", s.clock())
            assert await s.workers.reap(fence, "w2", [t]) == [True]
            # attempt 3 on w1 succeeds through the store's fast path
            t = await _get(s, "x")
            t.dispatch("w1", s.clock())
            assert await s.tasks.dispatch(fence, [t]) == [True]
            [t] = await s.queues.pull("w1", 1, 1.0)
            await s.queues.report("w1", [_result(t, value={"big": "v" * 5000}, now=s.clock())])
            done = await s.results.settle(fence, 10)
            assert done.settled == 1
            detail = await s.tasks.detail("x")
            assert detail is not None and detail.task.state is TaskState.SUCCEEDED
            got = [(a.number, a.attempt_id, a.worker_id, a.outcome) for a in detail.attempts]
            assert got == [(1, "x#1", "w1", "failed"), (2, "x#2", "w2", "lost"), (2, "x#3", "w1", "succeeded")]
            failed, lost, ok = detail.attempts
            assert failed.error is not None and len(failed.error) == ATTEMPT_TEXT_CAP and failed.truncated
            assert failed.retry_at is not None and failed.finished_at is not None
            assert lost.error == "worker w2 lost" and lost.retry_at is None
            assert ok.truncated and isinstance(ok.value, str) and len(ok.value) == ATTEMPT_TEXT_CAP
            assert ok.dispatched_at is not None and ok.started_at is not None and ok.finished_at is not None

        harness.run(body)

    def test_a_finished_attempt_clears_the_reason_of_a_requeue(self, harness: Harness) -> None:
        """A task requeued because its worker was lost (the leader's reap) and then finished
        on another worker no longer carries the requeue's reason (``tasks show`` read
        ``succeeded (worker w1 lost ...)``): neither after the store's own settling of a
        success (``results.settle``, and a worker's ``report(settle=True)``) nor after the
        leader's write of a failure. The lost attempt's record in the history keeps it, and
        the task's other fields are as they were."""
        # quotes, a backslash and non-ASCII: a store that edits its JSON record in place must
        # find where the reason ends
        reason = 'worker "w1\\" lost (declared dead) \u2603 {"reason":"x"},'

        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.workers.register(make_worker("w2", now=s.clock()))
            await s.workers.register(make_worker("w1", now=s.clock()))
            await s.tasks.submit([attrs.evolve(make_task(i, now=s.clock()), job="nightly", slot=1234.5, serial_limit=2)
                                  for i in ("a", "b", "c")])
            for t in await _get_many(s, ["a", "b", "c"]):
                t.dispatch("w1", s.clock())
                assert await s.tasks.dispatch(fence, [t]) == [True]
            held = await s.queues.pull("w1", 10, 1.0)
            for t in held:
                t.requeue(reason, s.clock())  # w1 was lost: the leader's reap
            assert await s.workers.reap(fence, "w1", held) == [True, True, True]
            for t in await _get_many(s, ["a", "b", "c"]):
                assert t.reason == reason, "a requeued task says why while it waits"
                t.dispatch("w2", s.clock())
                assert await s.tasks.dispatch(fence, [t]) == [True]
            a, b, c = sorted(await s.queues.pull("w2", 10, 1.0), key=lambda t: t.id)
            # a: the leader's settle; b: the worker's settling report; c fails (the leader's write)
            await s.queues.report("w2", [_result(a, worker="w2", value=1, now=s.clock())])
            assert (await s.results.settle(fence, 10)).settled == 1
            await s.queues.report("w2", [_result(b, worker="w2", value=2, now=s.clock())], settle=True)
            assert (await s.results.settle(fence, 10)).settled == 1
            await s.queues.report("w2", [_result(c, "failed", worker="w2", error="boom", now=s.clock())])
            [failure] = await s.results.peek(10)
            c.finish(failure, s.clock())
            assert await s.tasks.save(fence, [c], ack_results=1) == [True]
            for task_id, state in (("a", TaskState.SUCCEEDED), ("b", TaskState.SUCCEEDED), ("c", TaskState.FAILED)):
                detail = await s.tasks.detail(task_id)
                assert detail is not None
                t = detail.task
                assert t.state is state and t.reason is None, (task_id, t.state, t.reason)
                assert (t.job, t.slot, t.serial_limit, t.attempt, t.redeliveries) == ("nightly", 1234.5, 2, 1, 1), t
                assert [(x.attempt_id, x.worker_id, x.outcome, x.error) for x in detail.attempts][:1] == [
                    (f"{task_id}#1", "w1", "lost", reason)], "the history keeps why the first attempt ended"

        harness.run(body)

    def test_throughput_counts_finished_tasks_per_minute(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b", "c"])
            a, b, c = await s.queues.pull("w1", 10, 1.0)
            await s.queues.report("w1", [_result(a), _result(b)])
            assert (await s.results.settle(fence, 10)).settled == 2
            c.finish(_result(c, "failed", error="x", retryable=False), s.clock())
            assert await s.tasks.save(fence, [c]) == [True]
            buckets = await s.tasks.throughput(5)
            assert len(buckets) == 5
            assert [b.minute for b in buckets] == sorted(b.minute for b in buckets)
            assert buckets[-1].minute <= s.clock() < buckets[-1].minute + 60 or \
                buckets[-2].counts, "the current minute comes last"
            total: dict[str, int] = {}
            for bucket in buckets:
                for state, n in bucket.counts.items():
                    total[state] = total.get(state, 0) + n
            assert total == {"succeeded": 2, "failed": 1}
            with pytest.raises(ValidationError):
                await s.tasks.throughput(0)

        harness.run(body)

    def test_jobs_page_by_name(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            await s.jobs.add_many([(make_job(f"j{i:02d}"), 100.0 + i) for i in range(25)])
            await s.jobs.add(make_job("a-first"), next_fire_at=1.0)
            first = await s.jobs.page(None, 10)
            assert [c.name for c, _ in first.jobs] == ["a-first", *[f"j{i:02d}" for i in range(9)]]
            assert first.next_after == "j08"
            assert first.jobs[1][1].next_fire_at == 100.0 and first.jobs[1][1].last_outcome is None
            second = await s.jobs.page(first.next_after, 10)
            assert [c.name for c, _ in second.jobs] == [f"j{i:02d}" for i in range(9, 19)]
            await s.jobs.remove("j20")
            last = await s.jobs.page(second.next_after, 10)
            assert [c.name for c, _ in last.jobs] == ["j19", "j21", "j22", "j23", "j24"]
            assert last.next_after is None
            assert (await s.jobs.page("zzz", 10)).jobs == ()

        harness.run(body)

    def test_queue_depths_and_scheduler_registry(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await _dispatched(s, fence, ["a", "b", "c"])
            await s.workers.register(make_worker("w2", now=s.clock()))
            assert await s.workers.queue_depths() == {"w1": 3, "w2": 0}
            await s.queues.pull("w1", 2, 1.0)
            assert await s.workers.queue_depths() == {"w1": 1, "w2": 0}

            now = s.clock()
            await s.schedulers.register(SchedulerNode(id="s1", host="h", pid=1, started_at=now,
                                                      last_heartbeat=0.0, role="standby"))
            await s.schedulers.register(SchedulerNode(id="s0", host="h", pid=2, started_at=now,
                                                      last_heartbeat=0.0, role="leader"))
            nodes = await s.schedulers.list_schedulers()
            assert [(n.id, n.role, n.pid) for n in nodes] == [("s0", "leader", 2), ("s1", "standby", 1)]
            assert all(abs(n.last_heartbeat - s.clock()) < 5 for n in nodes), "heartbeat in store time"
            assert await s.schedulers.heartbeat("s1", role="leader") is True
            assert await s.schedulers.heartbeat("ghost", role="standby") is False
            await s.schedulers.deregister("s0")
            assert [(n.id, n.role) for n in await s.schedulers.list_schedulers()] == [("s1", "leader")]

        harness.run(body)

    def test_cancel_is_optimistic_unfenced_and_refuses_final_tasks(self, harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            await s.tasks.submit([make_task("p")])
            await _dispatched(s, fence, ["r"])
            [running] = await s.queues.pull("w1", 1, 1.0)
            pending = await _get(s, "p")
            stale = await _get(s, "p")
            pending.cancel("by user", s.clock())
            assert await s.tasks.cancel(pending) is True
            stale.cancel("twice", s.clock())
            assert await s.tasks.cancel(stale) is False, "optimistic: a stale version is refused"
            got = await s.tasks.get("p")
            assert got is not None and got.state is TaskState.CANCELLED and got.reason == "by user"
            assert await s.tasks.ready(s.clock() + 100, 10) == []
            running.cancel("stop it", s.clock())
            assert await s.tasks.cancel(running) is True
            assert {w.id: w.load for w in await s.workers.list_workers()} == {"w1": 0}, "its load is freed"
            detail = await s.tasks.detail("r")
            assert detail is not None and [(a.outcome, a.worker_id, a.error) for a in detail.attempts] == \
                [("cancelled", "w1", "stop it")]
            await s.queues.report("w1", [_result(running)])
            assert (await s.results.settle(fence, 10)).stale == 1, "the late result is dropped"
            assert [t.id for t in (await s.tasks.query(state="cancelled")).tasks] == ["r", "p"]
            counts = await s.tasks.counts()
            assert counts.get("cancelled") == 2 and not counts.get("pending") and not counts.get("running")
            final = await _get(s, "r")
            final.state = TaskState.CANCELLED
            assert await s.tasks.cancel(final) is False, "a final task is not written again"

        harness.run(body)

    # -- quarantine ---------------------------------------------------------------------
    def test_the_leader_reports_a_record_quarantined_again_under_the_same_key(
            self, harness: Harness, spoil_job: Callable[[StorageBackend, str], Awaitable[None]] | None) -> None:
        """A job put aside, stored again (``scheduler --jobs`` syncs its file again on the
        event) and put aside again is reported again. The second entry replaces the first:
        the count of entries does not change, and a leader that compared counts saw nothing
        (no event: no second sync, the job stayed gone)."""
        async def body(h: Harness) -> None:
            s, put_aside, reported = await _quarantine_leader(h, spoil_job)
            assert await reported() == [], "the first look is the baseline"
            await put_aside("tick")
            assert await reported() == [("job", "tick", "quarantined")]
            assert await reported() == [], "reported once"
            await put_aside("tick")
            assert await s.quarantine.count() == 1, "one entry per record: the second replaced the first"
            assert await reported() == [("job", "tick", "quarantined")], "put aside again: reported again"
            await put_aside("tick")
            await put_aside("tock")
            await put_aside("tick")
            assert sorted(await reported()) == [("job", "tick", "quarantined"), ("job", "tock", "quarantined")]
            assert await reported() == []

        harness.run(body)

    def test_the_leader_reports_a_record_quarantined_after_a_drop(
            self, harness: Harness, spoil_job: Callable[[StorageBackend, str], Awaitable[None]] | None) -> None:
        """``distsched quarantine drop`` then a new record put aside, between two looks of the
        leader: the count of entries is the same, and the new one must still be reported."""
        async def body(h: Harness) -> None:
            s, put_aside, reported = await _quarantine_leader(h, spoil_job)
            await reported()
            await put_aside("tick")
            assert await reported() == [("job", "tick", "quarantined")]
            assert await s.quarantine.drop("job", "tick") is True  # type: ignore[attr-defined]
            await put_aside("tock")
            assert await s.quarantine.count() == 1
            assert await reported() == [("job", "tock", "quarantined")], "put aside after a drop: reported"
            assert await s.quarantine.drop("job", "tock") is True  # type: ignore[attr-defined]
            assert await reported() == [], "a drop is no new record"

        harness.run(body)

    def test_the_leader_still_reports_a_new_record_of_a_store_without_the_sequence(
            self, harness: Harness, spoil_job: Callable[[StorageBackend, str], Awaitable[None]] | None) -> None:
        """A store whose quarantine lacks the optional ``quarantined_since`` (an older or a
        third-party store): the leader compares ``count()`` with the last count, as before,
        and reports a record newly put aside."""
        async def body(h: Harness) -> None:
            _, put_aside, reported = await _quarantine_leader(h, spoil_job, count_only=True)
            assert await reported() == []
            await put_aside("tick")
            await put_aside("tock")
            assert sorted(await reported()) == [("job", "tick", "quarantined"), ("job", "tock", "quarantined")]
            assert await reported() == []

        harness.run(body)

    # -- records a newer distsched node wrote (rolling upgrades) -------------------------
    @pytest.fixture
    def write_newer_fields(self) -> Callable[[StorageBackend, str, str, str, dict[str, Any]], Awaitable[bool]] | None:
        """``async write_newer_fields(storage, kind, key, where, fields) -> bool``: add
        ``fields`` to a stored record, straight in the store, as a node of a newer distsched
        would write them - ``kind`` ``job`` (``key`` its name), ``task`` (its id), ``worker``
        (its id) or ``result`` (every reported result waiting for the leader; ``key`` is
        ignored); ``where`` a dotted path inside the record's JSON ("" the record itself,
        ``trigger``, ``spec``, ``spec.retry``, a task's ``result``). False: this store keeps
        no such JSON (a column instead). None (the default): no other node shares the store
        (the memory store), and the tests of records a newer node wrote are skipped."""
        return None

    def _newer(self, write: Any) -> Any:
        if write is None:
            pytest.skip("no other node shares this store: nothing in it was written by a newer distsched")
        return write

    def test_a_newer_nodes_fields_in_informational_records_are_read_without_them(
            self, harness: Harness, write_newer_fields: Any) -> None:
        """A newer worker's registration and the result it reports, with fields this version
        does not know: the worker is listed, dispatched to, its result read and settled, the
        task's stored result read back - each as without the fields (distsched.model.newer:
        a WARNING once per field, no crash)."""
        write = self._newer(write_newer_fields)

        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            registered = make_worker("w1", now=s.clock())
            await s.workers.register(registered)
            assert await write(s, "worker", "w1", "", {"zone": "eu-west-1", "gpus": [0, 1]})
            [listed] = await s.workers.list_workers()
            assert (listed.id, listed.capacity, listed.functions) == ("w1", registered.capacity, registered.functions)
            await s.tasks.submit([make_task("a"), make_task("b")])
            tasks = await _get_many(s, ["a", "b"])
            for task in tasks:
                task.dispatch("w1", s.clock())
            assert await s.tasks.dispatch(fence, tasks) == [True, True]
            a, b = sorted(await s.queues.pull("w1", 10, 1.0), key=lambda t: t.id)
            # a failure, read by the leader (peek) and settled by its own write
            sent = _result(a, "failed", error="E: boom", error_type="E", now=s.clock())
            await s.queues.report("w1", [sent])
            assert await write(s, "result", "", "", {"cpu_seconds": 0.4, "peak_rss": 1 << 20})
            assert await s.results.peek(10) == [sent]
            task = await _get(s, "a")
            task.finish(sent, s.clock())
            assert await s.tasks.save(fence, [task], ack_results=1) == [True]
            stored = await _get(s, "a")
            assert stored.state is TaskState.FAILED and stored.result == sent
            # a success: settled by the store itself (the result's JSON kept in the task), or
            # left to the leader's own path when the store cannot judge it (Redis's script
            # takes only the fields it knows), as the leader does
            ok = _result(b, value={"rows": 3}, now=s.clock())
            await s.queues.report("w1", [ok])
            assert await write(s, "result", "", "", {"cpu_seconds": 0.1})
            await s.results.settle(fence, 10)
            left = await s.results.peek(10)
            assert left in ([], [ok])
            if left:
                task = await _get(s, "b")
                task.finish(ok, s.clock())
                assert await s.tasks.save(fence, [task], ack_results=1) == [True]
            assert await s.results.peek(10) == []
            done = await _get(s, "b")
            assert done.state is TaskState.SUCCEEDED and done.result is not None
            assert (done.result.attempt_id, done.result.value, done.result.outcome) == (b.attempt_id, {"rows": 3},
                                                                                        "succeeded")
            if await write(s, "task", "b", "result", {"cpu_seconds": 0.4}):
                assert (await _get(s, "b")).result == done.result

        harness.run(body)

    def test_a_newer_nodes_field_this_version_cannot_honour_puts_the_record_aside_naming_it(
            self, harness: Harness, write_newer_fields: Any) -> None:
        """A job whose trigger, or retry policy, has an option this version does not know,
        and a task whose spec has one: ignored, the job would fire (the task run, retry) on
        other terms than the node that wrote it promised. Each is left out of every read
        and put aside, the quarantine naming the field; the other jobs and tasks go on."""
        write = self._newer(write_newer_fields)

        async def body(h: Harness) -> None:
            s = await h.storage()
            _, fence = await h.leader(s)
            past = s.clock() - 5
            for name in ("cal", "retry", "plain"):
                await s.jobs.add(make_job(name), next_fire_at=past)
            assert await write(s, "job", "cal", "trigger", {"calendar": "business-days"})
            assert await write(s, "job", "retry", "spec.retry", {"on_timeout": False})
            assert [j.name for j in await s.jobs.list_jobs()] == ["plain"]
            assert [c.name for c, _ in await s.jobs.due(s.clock(), 10)] == ["plain"]
            await s.tasks.submit([make_task("t"), make_task("u")])
            assert await write(s, "task", "t", "spec", {"priority": 9})
            assert await s.tasks.get("t") is None
            assert [t.id for t in await s.tasks.ready(s.clock(), 10)] == ["u"]
            reasons = {(q.kind, q.key): q.reason for q in await s.quarantine.list_quarantined()}  # type: ignore[attr-defined]
            assert set(reasons) == {("job", "cal"), ("job", "retry"), ("task", "t")}
            assert "trigger.calendar: unknown to this version" in reasons[("job", "cal")]
            assert "spec.retry.on_timeout: unknown to this version" in reasons[("job", "retry")]
            assert "spec.priority: unknown to this version" in reasons[("task", "t")]
            assert "a newer distsched node wrote" in reasons[("task", "t")]

        harness.run(body)
