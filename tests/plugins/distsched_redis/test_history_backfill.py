"""Tasks stored before the history indexes existed (distsched 0.1) are listed: the leader's
housekeeping adds their entries in tc / ts:<group> / tw:<worker> once (an upgrade probe found
none of a 0.1 deployment's tasks in `distsched tasks list` or the dashboard, while
`tasks show` read each of them)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from distsched.config import WorkerConfig

pytestmark = pytest.mark.redis


def _fails() -> None:
    raise ValueError("no")


@pytest.fixture
def raw(redis_server: Any) -> Any:
    client = redis_server.client()
    yield client
    client.close()


def _as_before_the_indexes(raw: Any, p: str) -> None:
    """Leave the namespace as distsched 0.1 wrote it: no history index, no c field."""
    for pattern in ("tc", "ts:*", "tw:*", "hix"):
        for key in raw.scan_iter(match=p + pattern):
            raw.delete(key)
    for key in raw.scan_iter(match=p + "t:*"):
        raw.hdel(key, "c")


async def _old_deployment(distsched_app: Any, url: str) -> dict[str, Any]:
    """Four successes and a failure on worker w-old, then two tasks left pending."""
    app = await distsched_app(url, functions={"ok": lambda: 1, "bad": _fails},
                              worker=WorkerConfig(name="w-old"), heartbeat_interval=0.2)
    ran = [await app.submit("ok") for _ in range(4)] + [await app.submit("bad", retry={"max_attempts": 1})]
    for task_id in ran:
        await app.wait(task_id, timeout=30)
    await app.stop()
    idle = await distsched_app(url, scheduler=False, worker=False)
    pending = [await idle.submit("ok") for _ in range(2)]
    return {"ran": ran, "pending": pending}


@pytest.mark.parametrize("server", ["redis_server", "redis6_server"])
async def test_tasks_stored_before_the_history_indexes_are_listed_after_housekeeping(
        request: Any, server: str, distsched_app: Any, open_storage: Any) -> None:
    """On Redis 7 (the function library) and 6.2 (scripts)."""
    redis_server = request.getfixturevalue(server)
    raw = redis_server.client()
    request.addfinalizer(raw.close)
    ns = f"h{uuid.uuid4().hex[:10]}"
    url, p = redis_server.url_for(namespace=ns), "{" + ns + "}:"
    ids = await _old_deployment(distsched_app, url)
    _as_before_the_indexes(raw, p)
    store = await open_storage(url)
    assert (await store.tasks.query(limit=100)).tasks == (), "the indexes are gone, as before 0.1's upgrade"
    everything = await store.tasks.get_many(ids["ran"] + ids["pending"])
    worker = everything[0].worker_id

    await store.housekeeping(2000)

    listed = (await store.tasks.query(limit=100)).tasks
    newest_first = sorted(everything, key=lambda t: (t.created_at, t.id), reverse=True)
    assert [t.id for t in listed] == [t.id for t in newest_first]
    assert {t.id for t in (await store.tasks.query(state="succeeded", limit=100)).tasks} == set(ids["ran"][:4])
    assert [t.id for t in (await store.tasks.query(state="failed", limit=100)).tasks] == [ids["ran"][4]]
    assert {t.id for t in (await store.tasks.query(state="pending", limit=100)).tasks} == set(ids["pending"])
    assert {t.id for t in (await store.tasks.query(worker=worker, limit=100)).tasks} == set(ids["ran"])
    assert raw.get(p + "hix") == "done"
    for task in everything:
        assert float(raw.hget(p + "t:" + task.id, "c")) == task.created_at  # dispatch scores by it
        assert raw.zscore(p + "tc", task.id) == task.created_at
    assert raw.ttl(p + "tw:" + worker) > 0, "a worker's history index it created expires as dispatch's do"


async def test_a_deployment_that_never_ran_0_1_is_walked_once(
        distsched_app: Any, redis_server: Any, open_storage: Any, raw: Any) -> None:
    ns = f"h{uuid.uuid4().hex[:10]}"
    url, p = redis_server.url_for(namespace=ns), "{" + ns + "}:"
    await _old_deployment(distsched_app, url)
    raw.delete(p + "hix")  # as a leader of this code finds it at its first pass
    before = {key: raw.zrange(key, 0, -1, withscores=True) for key in raw.scan_iter(match=p + "t[csw]*")
              if raw.type(key) == "zset"}
    store = await open_storage(url)
    await store.housekeeping(2000)
    assert raw.get(p + "hix") == "done", "a round that added nothing ends the walk"
    assert {key: raw.zrange(key, 0, -1, withscores=True) for key in before} == before
    raw.set(p + "hix", "done")
    raw.delete(p + "tc")
    await store.housekeeping(2000)  # done: the store does not walk again
    assert raw.exists(p + "tc") == 0


async def test_a_task_that_moved_past_the_walk_is_found_by_the_next_round(
        distsched_app: Any, redis_server: Any, open_storage: Any, raw: Any) -> None:
    """The walk spans calls (a budget each); a task may move between them from a source not
    walked yet to one walked already - a pending task that finishes -: the round that missed
    it added entries, so another round runs, and finds it."""
    ns = f"h{uuid.uuid4().hex[:10]}"
    url, p = redis_server.url_for(namespace=ns), "{" + ns + "}:"
    ids = await _old_deployment(distsched_app, url)
    _as_before_the_indexes(raw, p)
    store = await open_storage(url)
    await store.housekeeping(1)  # a budget of 1: the call ends after the first source, x:succeeded
    moving = ids["pending"][0]
    assert raw.get(p + "hix") != "done" and raw.zscore(p + "tc", moving) is None
    raw.zrem(p + "ready", moving)  # it finished meanwhile: it is in x:succeeded now
    raw.zadd(p + "x:succeeded", {"0:" + moving: 1e12})
    for _ in range(50):
        await store.housekeeping(1)
        if raw.get(p + "hix") == "done":
            break
    assert raw.get(p + "hix") == "done"
    assert raw.zscore(p + "tc", moving) is not None


async def test_broken_records_do_not_stop_the_walk(
        distsched_app: Any, redis_server: Any, open_storage: Any, raw: Any) -> None:
    ns = f"h{uuid.uuid4().hex[:10]}"
    url, p = redis_server.url_for(namespace=ns), "{" + ns + "}:"
    ids = await _old_deployment(distsched_app, url)
    _as_before_the_indexes(raw, p)
    raw.zadd(p + "ready", {"gone": 1.0, "a-string": 2.0})
    raw.set(p + "t:a-string", "not a hash")
    raw.hset(p + "t:" + ids["pending"][1], "d", "{not json")
    raw.zadd(p + "x:succeeded", {"not an entry": 1e12})
    raw.set(p + "hix", "7|x|garbage")
    store = await open_storage(url)
    await store.housekeeping(2000)
    listed = {t.id for t in (await store.tasks.query(limit=100)).tasks}
    assert set(ids["ran"]) | {ids["pending"][0]} <= listed  # the broken one is quarantined when read
    assert "gone" not in listed and "a-string" not in listed
