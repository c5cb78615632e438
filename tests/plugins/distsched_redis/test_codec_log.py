"""The redis codec keeps a result's captured log in the result's JSON (no new column or key)
and reads a result written before logs were kept (no ``log``) with none."""

from __future__ import annotations

import json

import pytest

from distsched.model import Task, TaskResult, TaskSpec
from distsched_redis import codec

OLD = {"task_id": "t", "attempt_id": "t#1", "outcome": "succeeded", "started_at": 1.0, "finished_at": 2.0,
       "worker_id": "w", "value": 3, "error": None, "error_type": None, "retryable": True, "retry_after": None,
       "meta": {}, "signature": None}


def test_a_results_log_goes_and_comes_back_in_its_json():
    result = TaskResult.from_dict(dict(OLD)).with_log("2026-12-08T00:00:00.000Z INFO app: hello")
    text = codec.result_json(result)
    assert json.loads(text)["log"] == result.log
    assert codec.decode_result(text) == result


def test_a_result_written_before_logs_were_kept_reads_with_none():
    assert codec.decode_result(json.dumps(OLD)).log is None


@pytest.mark.redis
@pytest.mark.parametrize("in_report", [False, True])
async def test_a_success_with_a_log_settles_in_the_stores_fast_path(storage, fence, in_report) -> None:
    """settle.lua (and report.lua's settling) finish a success in Redis itself only when they
    know each of its fields: one with a log, or with none (``"log": null``), is settled there,
    its log kept - not left to the leader's slower path."""
    await storage.tasks.submit([Task(id="t", spec=TaskSpec(target="f"), created_at=storage.clock())])
    task = await storage.tasks.get("t")
    task.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, [task]) == [True]
    [task] = await storage.queues.pull("w1", 1, 1.0)
    now = storage.clock()
    results = [TaskResult(task_id="t", attempt_id=task.attempt_id, outcome="succeeded", started_at=now,
                          finished_at=now, worker_id="w1", value=1).with_log("12:00:00.000Z INFO app: hi")]
    await storage.queues.report("w1", results, settle=in_report)
    settled = await storage.results.settle(fence, 10)
    assert (settled.settled, settled.left) == (1, 0)
    assert (await storage.tasks.get("t")).result.log == "12:00:00.000Z INFO app: hi"
