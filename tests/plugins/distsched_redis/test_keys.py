"""Key hygiene: every key of a namespace carries its hash tag (one cluster slot), and two
namespaces on one server never see each other."""

import pytest
from redis.crc import key_slot

from distsched.model import EveryTrigger, Task, TaskConfig, TaskResult, TaskSpec, Worker
from distsched.ports import Firing
from distsched.testing import all_tasks
from distsched_redis.election import RedisElection

pytestmark = pytest.mark.redis


async def workload(storage, snapshots=None) -> None:
    """Touch every kind of key: jobs, slot and one-off tasks, queues, results, workers, lease.
    ``snapshots`` (a list) receives the key names at two moments of the run."""

    async def snapshot() -> None:
        if snapshots is not None:
            snapshots.append([k async for k in storage.client.scan_iter(count=1000)])

    election = RedisElection(storage)
    fence = await election.acquire("leader")
    now = storage.clock()
    cfg = TaskConfig(name="job.a", trigger=EveryTrigger(10), spec=TaskSpec(target="f"))
    await storage.jobs.add(cfg, next_fire_at=10.0)
    await storage.jobs.fire(fence, [Firing(job="job.a", expected_next=10.0, next_fire_at=20.0, last_slot=10.0,
                                           tasks=(cfg.create_task(10.0, now), cfg.skipped_task(0.0, "x", now)))])
    await storage.tasks.submit([Task(id=f"one-off {i}", spec=TaskSpec(target="f"), created_at=now) for i in range(3)])
    for wid in ("w1", "w2"):
        await storage.workers.register(Worker(id=wid, concurrency=2, started_at=now))
    ready = await storage.tasks.ready(now + 1, 10)
    for i, t in enumerate(ready):
        t.dispatch("w1" if i % 2 else "w2", now)
    await storage.tasks.dispatch(fence, ready)
    pulled = await storage.queues.pull("w1", 1, 1.0)
    await storage.queues.report("w1", [
        TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="succeeded", started_at=now, finished_at=now)
        for t in pulled])
    second = await storage.queues.pull("w1", 1, 1.0)
    await storage.waiting_for_room(True)  # the leader's hint: {ns}:room
    await storage.queues.report("w1", [  # settled by the report itself: a row in {ns}:fin
        TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="succeeded", started_at=now, finished_at=now,
                   worker_id="w1")
        for t in second], settle=True)
    await snapshot()
    pulled += await storage.queues.pull("w1", 10, 1.0)
    await storage.queues.report("w1", [
        TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="succeeded", started_at=now, finished_at=now)
        for t in pulled[1:]])
    results = await storage.results.peek(10)
    done = await storage.tasks.get_many([r.task_id for r in results])
    for t, r in zip(done, results, strict=True):
        t.finish(r, now)
    await storage.tasks.save(fence, done, ack_results=len(results))
    held = await storage.tasks.assigned("w2")
    for t in held:
        t.requeue("lost", now)
    await storage.workers.reap(fence, "w2", held)
    await storage.wait_for_activity(0.01)
    await storage.tasks.counts()
    await storage.workers.heartbeat("w1")
    await storage.workers.deregister("w1")
    await snapshot()


async def test_every_key_carries_the_namespace_hash_tag(private_server, open_storage) -> None:
    storage = await open_storage(private_server.url_for(namespace="prod"))
    snapshots: list[list[str]] = []
    await workload(storage, snapshots)
    keys = {k for snap in snapshots for k in snap}
    assert len(keys) >= 20, keys
    assert sorted(k for k in keys if not k.startswith("{prod}:")) == []
    assert {key_slot(k.encode()) for k in keys} == {key_slot(b"{prod}")}, "one cluster slot"
    kinds = {k.split(":")[1] for k in keys}
    assert {"t", "ready", "dl", "cnt", "x", "q", "wa", "results", "jobs", "jst", "due", "workers",
            "hb", "drain", "lease", "term", "jl", "jt", "op", "fin", "room"} <= kinds, kinds


async def test_two_namespaces_do_not_see_each_other(redis_server, open_storage, namespace) -> None:
    a = await open_storage(redis_server.url_for(namespace=namespace + "-a"))
    b = await open_storage(redis_server.url_for(namespace=namespace + "-b"))
    await workload(a)
    assert await b.jobs.list_jobs() == [] and await b.jobs.next_due_at() is None
    assert await b.tasks.counts() == {} and await all_tasks(b) == []
    assert await b.tasks.get("one-off 0") is None
    assert await b.workers.list_workers() == [] and await b.results.peek(10) == []
    assert await b.queues.pull("w1", 10, 0.01) == []
    fence_b = await RedisElection(b).acquire("other")
    assert fence_b is not None, "each namespace has its own lease"
    assert await a.tasks.counts() != {}
