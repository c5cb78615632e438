"""The postgres codec keeps a result's captured log in the result's JSON (no new column or key)
and reads a result written before logs were kept (no ``log``) with none."""

from __future__ import annotations

import json

from distsched.model import TaskResult
from distsched_postgres import codec

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
