"""Signed tasks on PostgreSQL (docs/security.md): the leader's signature of each dispatch is
stored with the task (``tasks.signature``, migration 27) and reaches the worker. It was not
stored - the codec and ``ds_dispatch_slim`` had no place for it - so with a signing key every
task of a PostgreSQL deployment failed ``BadSignature: refused to run: it carries no
signature``, and nothing ran. Also: a task rewritten in the table after its signed dispatch,
or forged there, is refused; a signed result keeps its captured log."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.model import Task, TaskSpec
from distsched.testing.processes import wait_until_async

pytestmark = pytest.mark.postgres

KEY = "test-signing-key-0123456789"


def _functions(canary: Path) -> dict[str, Any]:
    def canary_fn(path: str) -> str:
        Path(path).write_text("executed")
        return "executed"

    def echo(x: Any) -> Any:
        logging.getLogger("signed.echo").warning("echoing %r", x)
        return x

    return {"canary": canary_fn, "echo": echo}


async def _sql(app: Any, sql: str, *args: Any) -> Any:
    return await (await app.storage()).pool.fetchval(sql, *args)


async def test_a_signed_deployment_runs_its_tasks_and_keeps_their_log(distsched_app, pg_url, tmp_path):
    app = await distsched_app(pg_url, functions=_functions(tmp_path / "canary"), signing_keys=(KEY,))
    task_id = await app.submit("echo", {"signed": True})
    task = await app.wait(task_id, timeout=10)
    assert task.state.value == "succeeded", task.result
    assert task.result.value == {"signed": True} and task.result.signature.startswith("v1:")
    assert task.result.log and task.result.log.endswith("WARNING signed.echo: echoing {'signed': True}")
    assert task.signature and task.signature.startswith("v1:"), "the dispatch's signature is stored"
    assert (await app.status()).signing == "signed"
    assert app.engine.scheduler.stats["forged_results"] == 0


async def test_a_task_rewritten_or_forged_in_the_table_is_refused(distsched_app, pg_url, tmp_path):
    """A task whose spec is rewritten between its signed dispatch and its pull (it waits in
    the queue of a busy worker), and a task written straight into the table as dispatched
    to the worker with a made-up signature: neither runs, both fail BadSignature."""
    canary = tmp_path / "canary"
    release = asyncio.Event()

    async def hold() -> str:
        await release.wait()
        return "held"

    app = await distsched_app(pg_url, functions={**_functions(canary), "hold": hold}, signing_keys=(KEY,),
                              worker=WorkerConfig(name="w", concurrency=1))
    storage = await app.storage()

    def in_state(task_id: str, state: str) -> Any:
        async def check() -> bool:
            task = await storage.tasks.get(task_id)
            return task is not None and task.state.value == state
        return check

    held = await app.submit("hold")
    try:
        await wait_until_async(in_state(held, "running"), 10, what="the held task running")
        genuine = await app.submit("echo", "hello")
        await wait_until_async(in_state(genuine, "dispatched"), 10, what="the echo task dispatched behind the held one")
        await _rewrite_and_forge(app, genuine, canary)
    finally:
        release.set()
    for task_id in (genuine, "forged"):
        task = await app.wait(task_id, timeout=15)
        assert task.state.value == "failed" and task.result.error_type == "BadSignature", (task_id, task.result)
    assert not canary.exists(), "a rewritten or forged task ran"
    assert (await app.wait(held, timeout=10)).state.value == "succeeded"


async def _rewrite_and_forge(app: Any, genuine: str, canary: Path) -> None:
    spec = json.dumps({"executor": "local", "target": "canary", "args": [str(canary)], "kwargs": {}, "options": {},
                       "timeout": 60, "retry": {}, "balancer": "least-tasks", "balance_key": None})
    await _sql(app, "UPDATE tasks SET spec = $2 WHERE id = $1", genuine, spec)
    # forged: written as the store writes a task, then set dispatched to the live worker by hand
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id="forged", spec=TaskSpec(target="canary", args=[str(canary)]),
                                     created_at=now, not_before=now + 3600)])
    await _sql(app, "UPDATE tasks SET state = 'dispatched', worker_id = $1, dispatches = 1, dispatched_at = $2, "
                    "signature = $3 WHERE id = 'forged'", app.engine.worker.id, now, "v1:00000000:" + "0" * 64)
