"""Poison tests for a store plugin: a record written by something other than distsched (a
broken client, a bad migration, someone with credentials) must be moved aside - out of the
store's live records, kept in its quarantine with the reason - while a healthy job keeps
firing under the same leader term. Both built-in stores' ``test_poison.py`` use these; the
breakage itself (which bytes to write where) is the store's own.

The app is a started :class:`~distsched.facade.DistributeSchedule` (the ``distsched_app``
fixture) with a scheduler and a worker, and a job (``healthy`` by default) firing every
``every`` seconds whose target succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from distsched.ports import Quarantined

__all__ = ["WORKER_CASES", "failed_twice", "ghost_workers_are_quarantined", "keeps_firing", "next_job_version",
           "quarantined", "succeeded"]

#: Worker records holding a field of another type or range than a worker writes, by worker
#: id: (field, value). Each failed the leader's every pass while it heartbeated on some store
#: (capacity, functions, heartbeat interval: a crash loop, no task dispatched and no job
#: fired), misled the status (signed: a "no" counted as signing), or took down the
#: dashboard's overview and workers pages (a start time no date can show).
WORKER_CASES: dict[str, tuple[str, Any]] = {
    "ghost-start": ("started_at", 1e12), "ghost-cap-list": ("capacity", [1]), "ghost-cap-none": ("capacity", None),
    "ghost-functions": ("functions", 5), "ghost-executors": ("executors", 5), "ghost-interval": ("heartbeat_interval", "x"),
    "ghost-signed": ("signed", "no"), "ghost-host": ("host", 5), "ghost-pid": ("pid", []),
    # advertised names no registry accepts: 50,000 of them (1.7 MB the leader decoded every
    # pass, and scanned per function routed), one of 1 MB, terminal escapes, markup, a newline
    "ghost-many-functions": ("functions", [f"app.tasks.f{i:06d}" for i in range(50_000)]),
    "ghost-huge-name": ("functions", ["f" * 1_000_000]),
    "ghost-ansi": ("functions", ["\x1b[2J\x1b[31mreboot now"]),
    "ghost-html": ("executors", ["<script>alert(1)</script>"]),
    "ghost-newline": ("executors", ["local\nfake status line"]),
}


async def succeeded(app: Any, job: str = "healthy") -> int:
    """How many of ``job``'s tasks succeeded (every page of its history)."""
    storage = await app.storage()
    total, cursor = 0, None
    while True:
        page = await storage.tasks.query(job=job, state="succeeded", cursor=cursor, limit=200)
        total += len(page.tasks)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


async def keeps_firing(app: Any, *, every: float, job: str = "healthy", seconds: float = 2.0) -> None:
    """Assert that ``job`` (firing every ``every`` seconds) succeeds at least 0.6 times as
    often as its pace over ``seconds``, and that the leader's term does not change meanwhile
    (a leader that fails its passes loses its lease: a crash loop). Waits up to 10 s for a
    leader first."""
    election = await app.engine.open_election()
    deadline = time.monotonic() + 10
    while await election.current() is None:
        assert time.monotonic() < deadline, "no leader"
        await asyncio.sleep(0.05)
    before_term = (await election.current()).term
    before = await succeeded(app, job)
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # a fixed observation window, not a synchronisation
        await asyncio.sleep(0.1)
    after = await succeeded(app, job)
    assert after - before >= seconds / every * 0.6, f"{job} ran {after - before} times in {seconds}s"
    assert (await election.current()).term == before_term, "the leader lost its lease (crash loop)"


async def quarantined(app: Any, kind: str, key: str, timeout: float = 10.0) -> Quarantined:
    """The store's quarantine entry for ``kind`` ``key``, waited for up to ``timeout`` seconds."""
    storage = await app.storage()
    deadline = time.monotonic() + timeout
    while True:
        found = [q for q in await storage.quarantine.list_quarantined() if (q.kind, q.key) == (kind, key)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{kind} {key!r} was never quarantined"
        await asyncio.sleep(0.05)


async def failed_twice(app: Any, function: str = "fails") -> str:
    """The id of a task of ``function`` (which must raise) that failed twice: one attempt
    recorded in its history, one in its record - a record with a result to break."""
    task_id: str = await app.submit(function, retry={"max_attempts": 2, "delay": "0.1s"})
    assert (await app.wait(task_id, timeout=10)).state.value == "failed"
    assert len((await app.task_detail(task_id)).attempts) == 2
    return task_id


def next_job_version(stored: int) -> int:
    """A job's version after an update of ``stored``, by the rule both built-in stores follow:
    one more, or 1 from 2^31 - 1 on and below 1 (versions are compared for equality only)."""
    return stored + 1 if 1 <= stored < 2**31 - 1 else 1


async def ghost_workers_are_quarantined(app: Any, beat: Callable[[], Awaitable[None]], *, every: float) -> None:
    """The scenario for :data:`WORKER_CASES`, once the store holds one worker record per case
    beside the app's live worker (the live record copied, with its id and the one field
    changed): ``beat()`` makes every ghost look alive and fresh once (it is called every
    0.1 s, as a worker heartbeats). With tasks to dispatch, the leader lists only the live
    worker, every ghost is moved aside with its field named, and the healthy job (firing
    every ``every`` seconds) keeps firing."""

    async def beating() -> None:
        while True:
            await beat()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(beating())
    try:
        for _ in range(10):
            await app.submit("noop")  # tasks to dispatch: the leader reads the workers
        storage = await app.storage()
        assert [w.id for w in await storage.workers.list_workers()] == [app.engine.worker.id]
        for ghost, (field, _) in WORKER_CASES.items():
            entry = await quarantined(app, "worker", ghost)
            assert f"ValidationError: {field}: must " in entry.reason and len(entry.reason) <= 500, entry.reason
        await keeps_firing(app, every=every)
    finally:
        task.cancel()
