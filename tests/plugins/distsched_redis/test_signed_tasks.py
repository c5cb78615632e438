"""Signed tasks on real Redis (issue 16.1): a task written straight into Redis (a task hash and
a queue entry for a live worker, as anyone with the store's credentials could) runs today
without a key, and is refused with one; a forged result is refused too; signed work runs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.model import Task, TaskSpec

pytestmark = pytest.mark.redis

KEY = "test-signing-key-0123456789"


@pytest.fixture
def ns() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(redis_server):
    client = redis_server.client(decode_responses=False)
    yield client
    client.close()


def _functions(canary: Path) -> dict[str, Any]:
    def canary_fn(path: str) -> str:
        Path(path).write_text("executed")
        return "executed"

    def echo(x: Any) -> Any:
        return x

    return {"canary": canary_fn, "echo": echo}


async def _forge(app, raw, ns: str, canary: Path) -> str:
    """What an attacker with Redis access writes: a task record dispatched to the live worker
    and its queue entry, never seen by the leader."""
    storage = await app.storage()
    p = "{" + ns + "}:"
    now = storage.clock()
    task_id = f"forged-{uuid.uuid4().hex[:6]}"
    # the record written the way the store writes one (a raw HSET of the same fields is equivalent)
    await storage.tasks.submit([Task(id=task_id, spec=TaskSpec(target="canary", args=[str(canary)]),
                                     created_at=now, not_before=now + 3600)])
    worker_id = app.engine.worker.id
    d = json.loads(raw.hget(p + "t:" + task_id, "d"))
    d["not_before"] = now  # due now (it was stored far ahead so that no leader dispatched it)
    raw.hset(p + "t:" + task_id, mapping={"s": "dispatched", "w": worker_id, "n": "1", "da": repr(now),
                                           "d": json.dumps(d), "g": "v1:00000000:" + "0" * 64})
    raw.zrem(p + "ready", task_id)
    raw.rpush(p + "q:" + worker_id, f"{task_id}#1")
    return task_id


async def _wait_terminal(app, task_id: str, timeout: float = 15.0):
    return await app.wait(task_id, timeout=timeout)


async def test_without_a_key_a_forged_task_runs(distsched_app, redis_server, ns, raw, tmp_path):
    """The threat, as it stands without a key (and why docs/security.md says to set one)."""
    canary = tmp_path / "canary"
    app = await distsched_app(redis_server.url_for(namespace=ns), functions=_functions(canary),
                              signing_keys=())
    await _forge(app, raw, ns, canary)
    deadline = time.monotonic() + 10
    while not canary.exists():
        assert time.monotonic() < deadline, "the forged task did not run (the unsigned threat changed?)"
        await asyncio.sleep(0.05)
    assert (await app.status()).signing == "unsigned"


async def test_with_a_key_a_forged_task_is_refused_and_reported(distsched_app, redis_server, ns, raw, tmp_path):
    canary = tmp_path / "canary"
    app = await distsched_app(redis_server.url_for(namespace=ns), functions=_functions(canary),
                              signing_keys=(KEY,), heartbeat_interval=0.2)
    ok = await app.result(await app.submit("echo", {"signed": True}), timeout=10)
    assert ok.value == {"signed": True} and ok.signature and ok.signature.startswith("v1:")
    task_id = await _forge(app, raw, ns, canary)
    task = await _wait_terminal(app, task_id)
    assert task.state.value == "failed"
    assert task.result.error_type == "BadSignature"
    assert "signature" in task.result.error
    assert not canary.exists(), "a forged task ran"
    status = await app.status()
    assert status.signing == "signed"
    assert all(w.signed for w in status.workers)


async def test_a_tampered_target_of_a_signed_task_is_refused(distsched_app, redis_server, ns, raw, tmp_path):
    """The record of a legitimately dispatched task is rewritten while its entry waits in the
    queue of a busy worker."""
    canary = tmp_path / "canary"
    release = asyncio.Event()

    async def hold() -> str:
        await release.wait()
        return "held"

    functions = {**_functions(canary), "hold": hold}
    app = await distsched_app(redis_server.url_for(namespace=ns), functions=functions,
                              signing_keys=(KEY,), worker=WorkerConfig(name="w", concurrency=1))
    p = "{" + ns + "}:"
    held = await app.submit("hold")
    genuine = await app.submit("echo", "hello")
    deadline = time.monotonic() + 10
    while raw.hget(p + "t:" + genuine, "s") != b"dispatched" or raw.hget(p + "t:" + held, "s") != b"running":
        assert time.monotonic() < deadline, ("never dispatched behind the held task", raw.hgetall(p + "t:" + genuine), raw.hget(p + "t:" + held, "s"))
        await asyncio.sleep(0.01)
    raw.hset(p + "t:" + genuine, "sp", json.dumps({
        "executor": "local", "target": "canary", "args": [str(canary)], "kwargs": {}, "options": {},
        "timeout": 60, "retry": {}, "balancer": "least-tasks", "balance_key": None}))
    release.set()
    task = await _wait_terminal(app, genuine)
    assert task.result.error_type == "BadSignature", task.result
    assert not canary.exists()
    assert (await app.wait(held, timeout=10)).state.value == "succeeded"


async def test_a_forged_result_is_refused_by_the_leader(distsched_app, redis_server, ns, raw, tmp_path):
    canary = tmp_path / "canary"
    app = await distsched_app(redis_server.url_for(namespace=ns), functions=_functions(canary),
                              signing_keys=(KEY,), timeout_grace=0.5)
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id="slow", spec=TaskSpec(target="echo", args=[1], timeout=1.0), created_at=now,
                                     not_before=now + 3600)])
    p = "{" + ns + "}:"
    # a success for an attempt the leader never dispatched, and one for a running task
    raw.rpush(p + "results", json.dumps({"task_id": "slow", "attempt_id": "slow#0", "outcome": "succeeded",
                                         "started_at": now, "finished_at": now, "value": "forged"}))
    ok = await app.result(await app.submit("echo", 7), timeout=10)
    assert ok.value == 7
    assert app.engine.scheduler.stats["forged_results"] >= 1
    task = await storage.tasks.get("slow")
    assert task.state.value == "pending", "a forged result moved a task"


async def test_a_stored_spec_that_is_not_valid_is_refused_by_the_worker(distsched_app, redis_server, ns, raw,
                                                                         tmp_path):
    """Without any key too: a timeout of 1e308 or kwargs that are a list written into the
    store. (Args that are not a list are refused when the task is read: test_poison.py.)"""
    canary = tmp_path / "canary"
    app = await distsched_app(redis_server.url_for(namespace=ns), functions=_functions(canary), signing_keys=())
    storage = await app.storage()
    p = "{" + ns + "}:"
    for task_id, spec in (("huge-timeout", {"timeout": 1e308}), ("list-kwargs", {"kwargs": [1]})):
        now = storage.clock()
        await storage.tasks.submit([Task(id=task_id, spec=TaskSpec(target="echo", args=[1]), created_at=now,
                                         not_before=now + 3600)])
        base = {"executor": "local", "target": "echo", "args": [1], "kwargs": {}, "options": {}, "timeout": 5,
                "retry": {}, "balancer": "least-tasks", "balance_key": None}
        d = json.loads(raw.hget(p + "t:" + task_id, "d"))
        d["not_before"] = now
        raw.hset(p + "t:" + task_id, mapping={"sp": json.dumps({**base, **spec}), "d": json.dumps(d)})
        raw.zadd(p + "ready", {task_id: now})
        task = await _wait_terminal(app, task_id)
        assert task.state.value == "failed", task_id
        assert task.result.error_type == "InvalidTask"
        assert next(iter(spec)) in task.result.error


@pytest.mark.parametrize("key", [KEY, None])
async def test_an_attempt_queued_again_does_not_run_twice(distsched_app, redis_server, ns, raw, key, caplog):
    """An attempt this worker already ran, queued for it again (its record set back to
    dispatched and its id pushed onto the worker's queue by hand - what a store that lost its
    last writes also does; a signed attempt still matches its signature): it is not run a
    second time, its result is reported again. The worker remembered the attempts it ran (the
    last 10,000) but looked only after a failed pull: it ran it again (an HTTP POST repeated)."""
    calls = []

    def count(x):
        calls.append(x)
        return x

    app = await distsched_app(redis_server.url_for(namespace=ns), functions={"count": count},
                              signing_keys=(key,) if key else ())
    task_id = await app.submit("count", 1)
    assert (await app.result(task_id, timeout=10)).value == 1 and calls == [1]
    p = "{" + ns + "}:"
    worker_id = app.engine.worker.id
    raw.hset(p + "t:" + task_id, mapping={"s": "dispatched", "w": worker_id})
    raw.rpush(p + "q:" + worker_id, f"{task_id}#1")

    from distsched.testing.processes import wait_until_async

    async def finished_again():
        task = await app.get_task(task_id)
        return task if task.state.value == "succeeded" and "queued again" in caplog.text else None

    with caplog.at_level("WARNING"):
        task = await wait_until_async(finished_again, 10, what="the replayed attempt reported again")
    assert calls == [1], "the attempt ran twice"
    assert task.result.value == 1 and task.attempt == 1
