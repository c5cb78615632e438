"""A worker remembers the results of the attempts it ran (the last 10,000, to report one
again rather than run it twice), but never their captured logs: up to 256 KiB each, they
would make that memory unbounded in practice (2.5 GB at the largest ``log_capture``)."""

from __future__ import annotations

from distsched.app.worker import _kept
from distsched.model import TaskResult


def test_a_kept_result_has_no_log():
    result = TaskResult(task_id="t", attempt_id="t#1", outcome="succeeded", started_at=1.0, finished_at=2.0,
                        worker_id="w", value=7).with_log("x" * 100_000)
    kept = _kept(result)
    assert kept.log is None and kept.value == 7 and kept.attempt_id == "t#1"
    big = TaskResult(task_id="t", attempt_id="t#1", outcome="succeeded", started_at=1.0, finished_at=2.0,
                     value="v" * 1000).with_log("line")
    assert _kept(big).log is None and _kept(big).meta == {"value_not_kept": True}
