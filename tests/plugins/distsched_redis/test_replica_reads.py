"""Every reading command works against a Redis that refuses writes: a read-only replica
(``REPLICAOF``) and a primary at its ``maxmemory`` under ``noeviction``.

Some reads tidied the store as they went: the job list's name index (``{ns}:jn``) built
on a namespace written before it, the index entries of expired tasks dropped by the task
list (``tc``, ``ts:<state>``, ``tw:<worker>``, ``jt:<job>``) and by the task counts of
``status``, a worker's assigned entry whose task is gone dropped by the dashboard's worker
page. On a replica each of those writes failed the read (``ReadOnlyError``), as the job
count of ``status`` did before, and every open warned that the function library was not
loaded. A reader (the CLI's reading commands) now writes nothing; a writer (the dashboard)
tidies where the server lets it, and reads without tidying where it refuses. Each read
gives the same answer on the replica as on the primary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.model import CronTrigger, Task, TaskConfig, TaskSpec, Worker
from distsched.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis

#: the jobs of the namespace (pages of 50: three), in ``{ns}:jn``'s order (by bytes: a
#: reader that pages without it sorts them so, not by the server's locale)
NAMES = ["Zulu", "alpha", *(f"job{i:03d}" for i in range(130))]
JOBS = len(NAMES)
GONE = ("gone-0", "gone-1", "gone-2")  #: tasks finished under a retention of 1 s, expired since


def _ok() -> str:
    return "fine"


def _bad() -> None:
    raise ValueError("boom")


async def _populate(url: str, short_url: str) -> dict[str, Any]:
    """A namespace as a deployment leaves it, written through the public API: jobs (every
    tenth disabled), tasks run by a worker to success and failure (three of them fired by
    jobs), pending tasks, a record moved aside; then tasks finished under a retention of
    1 s, which expire with their index entries left for the leader's housekeeping (none
    runs). The job indexes are deleted, as a namespace written before them (distsched 0.1)
    has none."""
    app = DistributeSchedule(url, heartbeat_interval=0.2)
    app.task(_ok, name="ok")
    app.task(_bad, name="bad")
    await app.start()
    try:
        await app.put_jobs([TaskConfig(name=name, trigger=CronTrigger("0 0 1 1 *"), spec=TaskSpec(target="ok"),
                                       enabled=i % 10 != 0) for i, name in enumerate(reversed(NAMES))])
        ids = [await app.trigger_job(f"job{i:03d}") for i in (1, 2, 3)]
        ids += await app.submit_many([TaskSpec(target="ok")] * 4 + [TaskSpec(target="bad")] * 3)
        for task_id in ids:
            await app.wait(task_id, timeout=30)
        worker = (await (await app.storage()).workers.list_workers())[0].id
    finally:
        await app.stop()

    from distsched_redis.election import RedisElection
    from distsched_redis.storage import RedisStorage

    store = await RedisStorage.open(url)
    short = await RedisStorage.open(short_url)
    try:
        await store.tasks.submit([Task(id=f"later-{i}", spec=TaskSpec(target="ok"), job="job004",
                                       created_at=store.clock()) for i in range(2)])
        fence = await RedisElection(short).acquire("old-leader")
        assert fence is not None
        await short.workers.register(Worker(id="w-old", started_at=short.clock(), concurrency=2))
        await short.tasks.submit([Task(id=i, spec=TaskSpec(target="ok"), job="job001", created_at=short.clock())
                                  for i in GONE])
        gone = [t for t in await short.tasks.get_many(GONE) if t is not None]
        for t in gone:
            t.dispatch("w-old", short.clock())
        assert all(await short.tasks.dispatch(fence, gone))
        gone = [t for t in await short.tasks.get_many(GONE) if t is not None]
        for t in gone:
            t.cancel("an old one", short.clock())
        assert all(await short.tasks.save(fence, gone))
        await RedisElection(short).release(fence)
        p = store.prefix
        await store.client.hset(p + "jobs", "zz-broken", "not json")
        await store.client.hset(p + "jst", "zz-broken", "1|||0|1|")
        assert "zz-broken" not in [c.name for c in await store.jobs.list_jobs()]  # moved aside
        await store.client.delete(p + "jn", p + "joff", p + "joffb")
        # a worker's assigned set naming a task that is gone (a write by something else): the
        # leader's read of it drops the entry, a read of the dashboard's worker page skips it
        await store.client.sadd(p + "wa:w-old", GONE[0])
        deadline = time.monotonic() + 10
        while await store.client.exists(*(p + "t:" + i for i in GONE)):  # EXISTS expires them at once
            assert time.monotonic() < deadline, "the tasks kept 1 s did not expire"
            await asyncio.sleep(0.05)
        for index in ("tc", "ts:cancelled", "tw:w-old", "jt:job001", "x:cancelled"):
            assert await store.client.zscore(p + index, "gone-0" if index != "x:cancelled" else "6:job001gone-0") \
                is not None, f"{index}: the expired task's entry is left for the housekeeping"
    finally:
        await short.close()
        await store.close()
    return {"worker": worker, "task": ids[0], "failed": ids[-1]}


def _wait_for_replication(primary: Any, replica: Any) -> None:
    """The replica in sync with the primary and every write so far acknowledged (WAIT)."""
    deadline = time.monotonic() + 20
    while True:
        info = replica.info("replication")
        if info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
            if primary.execute_command("WAIT", 1, 1000) >= 1:
                return
        assert time.monotonic() < deadline, f"the replica did not catch up: {info}"
        time.sleep(0.05)


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.output)


def _status(data: dict[str, Any]) -> dict[str, Any]:
    """What a status says of the namespace (not of the moment: ages, the lease)."""
    return {"jobs": data["jobs"], "counts": data["counts"], "quarantined": data["quarantined"],
            "quarantine": data["quarantine"], "workers": sorted((w["id"], w["state"]) for w in data["workers"])}


def _reads(cli: Any, url: str, ns: dict[str, Any]) -> dict[str, Any]:
    """Every reading command of the CLI, against ``url``."""
    out: dict[str, Any] = {"status": _status(_json(cli("status", "--storage", url, "--json"))),
                           "jobs": _json(cli("jobs", "list", "--storage", url, "--json")),
                           "quarantine": cli("quarantine", "list", "--storage", url).output,
                           "sync": _json(cli("jobs", "sync", str(ns["file"]), "--prune", "--dry-run", "--json",
                                             "--storage", url))}
    for name, args in (("tasks", ()), ("succeeded", ("--state", "succeeded")), ("cancelled", ("--state", "cancelled")),
                       ("worker", ("--worker", ns["worker"])), ("old worker", ("--worker", "w-old")),
                       ("job", ("--job", "job001")), ("small pages", ("-n", "2"))):
        out[name] = _json(cli("tasks", "list", "--storage", url, "--json", *args))
    cursor = out["small pages"]["next_cursor"]
    out["next page"] = _json(cli("tasks", "list", "--storage", url, "--json", "-n", "2", "--cursor", cursor))
    for task_id in (ns["task"], ns["failed"]):
        out[task_id] = _json(cli("tasks", "show", task_id, "--storage", url, "--json"))
    return out


async def _app_reads(url: str, ns: dict[str, Any], *, reader: bool) -> dict[str, Any]:
    """The facade's reads the dashboard makes (``reader=False``: it is opened as a writer)
    and the same as a reader: every page of jobs, the overview, the task lists."""
    from distsched_web.data import WebData

    app = DistributeSchedule(url, reader=reader)
    try:
        web = WebData(app)
        pages, after = [], None
        while True:
            page = await app.jobs_page(after=after, limit=50)
            pages.append([c.name for c, _ in page.jobs])
            if page.next_after is None:
                break
            after = page.next_after
        overview = await web.overview()
        workers = await web.workers()
        return {
            "pages": pages,
            "jobs": await web.jobs(after="job120", limit=5),
            "first": await web.jobs(limit=3),
            "overview": {"tasks": overview["tasks"], "jobs": overview["jobs"], "quarantined": overview["quarantined"],
                         "failures": [f["id"] for f in overview["failures"]]},
            "workers": {w["id"]: ([t["id"] for t in w["live"]], [t["id"] for t in w["recent"]]) for w in workers},
            "history": [t["id"] for t in (await web.job_history("job001"))["items"]],
            "tasks": [t["id"] for t in (await web.tasks(state="cancelled"))["items"]],
            "task": await web.task(ns["failed"]),
        }
    finally:
        await app.stop()


@pytest.fixture(params=["redis", "redis6"])
def populated(request: Any, tmp_path: Any) -> Iterator[tuple[RedisServer, RedisServer, str, dict[str, Any]]]:
    """A primary holding a populated namespace (:func:`_populate`), its replica in sync,
    and the namespace's name and facts (with a jobs file to sync: one job changed, one new).
    On the Redis on PATH and on Redis 6.2 (``redis6_binary``), whose scripts refuse a write
    on a replica in another error (and which has no function library)."""
    binary = request.getfixturevalue("redis6_binary") if request.param == "redis6" else None
    with RedisServer(binary=binary) as primary, RedisServer(binary=binary) as replica:
        name = f"r{uuid.uuid4().hex[:10]}"
        facts = asyncio.run(_populate(primary.url_for(namespace=name), primary.url_for(namespace=name, retention=1)))
        facts["file"] = tmp_path / "jobs.toml"
        facts["file"].write_text('[[jobs]]\nname = "job001"\nevery = "1h"\ntarget = "ok"\n\n'
                                 '[[jobs]]\nname = "new-one"\nevery = "1h"\ntarget = "ok"\n')
        source, follower = primary.client(), replica.client()
        try:
            follower.execute_command("REPLICAOF", primary.host, str(primary.port))
            _wait_for_replication(source, follower)
        finally:
            source.close()
            follower.close()
        yield primary, replica, name, facts


def _keys(server: RedisServer, name: str) -> dict[str, Any]:
    """Every key of the namespace and what it holds: what a read must leave as it is."""
    client = server.client()
    read = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
            "set": lambda k: sorted(client.smembers(k)), "zset": lambda k: client.zrange(k, 0, -1, withscores=True)}
    try:
        return {key: read[client.type(key)](key) for key in client.keys("{" + name + "}:*")}
    finally:
        client.close()


def _no_warnings(caplog: Any) -> None:
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not said, said


def test_every_read_works_on_a_replica_and_says_what_the_primary_says(populated, distsched_cli, caplog) -> None:
    """The CLI's reading commands and the dashboard's reads, on a replica whose primary
    never built the job name index and holds the entries of expired tasks: each succeeds,
    says no warning (the function library a replica cannot load: the scripts serve), and
    gives the primary's answer; neither server's data changes. A writer on the primary then
    tidies: the index is built, the expired tasks' entries are gone, the answers the same."""
    primary, replica, name, ns = populated
    url, replica_url = primary.url_for(namespace=name), replica.url_for(namespace=name)
    keys = _keys(primary, name)
    assert _keys(replica, name) == keys
    caplog.clear()
    on_replica = _reads(distsched_cli, replica_url, ns)
    _no_warnings(caplog)
    on_primary = _reads(distsched_cli, url, ns)
    assert on_replica == on_primary
    assert _keys(primary, name) == keys, "a reading command wrote nothing"
    seen = on_primary
    assert seen["status"]["jobs"] == {"total": JOBS, "enabled": JOBS - (JOBS + 9) // 10, "more": False}
    assert [j["name"] for j in seen["jobs"]] == sorted(NAMES)
    assert not any(t["id"] in GONE for rows in seen.values() if isinstance(rows, dict) and "tasks" in rows
                   for t in rows["tasks"])
    assert len(seen["tasks"]["tasks"]) == 12 and len(seen["job"]["tasks"]) == 1 and seen["cancelled"]["tasks"] == []
    assert seen["old worker"]["tasks"] == [] and len(seen["worker"]["tasks"]) == 10
    assert len(seen["small pages"]["tasks"]) == len(seen["next page"]["tasks"]) == 2
    assert "zz-broken" in seen["quarantine"]
    assert seen["sync"]["added"] == ["new-one"] and len(seen["sync"]["removed"]) == JOBS - 1, seen["sync"]

    for reader in (True, False):  # the dashboard opens the store as a writer
        caplog.clear()
        shown = asyncio.run(_app_reads(replica_url, ns, reader=reader))
        _no_warnings(caplog)
        assert shown == asyncio.run(_app_reads(url, ns, reader=True)), reader
        assert shown["pages"] == [NAMES[k:k + 50] for k in range(0, JOBS, 50)]
        assert _keys(primary, name) == keys
    # a writer on the primary tidies: the name index is built, the expired tasks' entries go
    assert asyncio.run(_app_reads(url, ns, reader=False)) == shown
    client = primary.client()
    try:
        p = "{" + name + "}:"
        assert client.zcard(p + "jn") == JOBS
        assert not any(client.zscore(p + index, "gone-0") for index in ("tc", "ts:cancelled", "tw:w-old", "jt:job001"))
        assert not client.sismember(p + "wa:w-old", "gone-0")
    finally:
        client.close()


def test_every_read_works_on_a_primary_at_its_maxmemory(populated, distsched_cli) -> None:
    """The same reads on the primary at its ``maxmemory`` under ``noeviction`` (it refuses
    the writes that need memory, ``OutOfMemoryError``): the same answers as on the replica,
    and a reader still writes nothing."""
    primary, replica, name, ns = populated
    url, replica_url = primary.url_for(namespace=name), replica.url_for(namespace=name)
    keys = _keys(primary, name)
    client = primary.client()
    try:
        client.config_set("maxmemory", 1)
        on_primary = _reads(distsched_cli, url, ns)
        assert _keys(primary, name) == keys, "a reading command wrote nothing"
        shown = asyncio.run(_app_reads(url, ns, reader=True))
        assert _keys(primary, name) == keys
        assert asyncio.run(_app_reads(url, ns, reader=False)) == shown  # the dashboard
        client.config_set("maxmemory", 0)
    finally:
        client.close()
    assert _reads(distsched_cli, replica_url, ns) == on_primary
    assert asyncio.run(_app_reads(replica_url, ns, reader=True)) == shown
