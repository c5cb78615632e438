"""A result's captured log is signed with it: a log written into the store by anyone else is
refused in a signed deployment; a result without a log signs as it did before logs existed."""

from __future__ import annotations

import json

from distsched.model import TaskResult
from distsched.signing import Signer, result_payload

KEY = "log-key-0123456789abcdef"


def test_the_log_is_part_of_a_results_signature():
    signer = Signer([KEY])
    result = TaskResult(task_id="t1", attempt_id="t1#1", outcome="succeeded", started_at=1.0, finished_at=2.0,
                        worker_id="w1", value=1).with_log("12:00:00 INFO app: ok")
    signed = result.with_log(result.log)
    signed = TaskResult.from_dict({**signed.to_dict(), "signature": signer.sign_result(result)})
    assert signer.check_result(signed) is None
    forged = signed.with_log("12:00:00 INFO app: ok, and a line nobody logged")
    assert signer.check_result(forged) == "its signature does not match its content"
    assert signer.check_result(signed.with_log(None)) is not None


def test_a_result_without_a_log_signs_as_before():
    result = TaskResult(task_id="t1", attempt_id="t1#1", outcome="failed", started_at=1.0, finished_at=2.0,
                        error="E: x", error_type="E")
    before = ["result", "t1", "t1#1", "", "failed", None, "E: x", "E", True, None]
    assert result_payload(result) == json.dumps(before, sort_keys=True, separators=(",", ":")).encode()
