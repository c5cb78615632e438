"""``TaskResult.log``: what an attempt's code logged - optional (a result of an earlier
version, or of an executor that captures nothing, reads with none), cleaned like an error
(valid UTF-8, capped) with its control characters escaped, and checked when read back."""

from __future__ import annotations

import pytest

from distsched.model import TaskResult, clean_log
from distsched.model.result import MAX_ERROR_CHARS, MAX_LOG_CHARS
from distsched.model.trusted import stored_result

OLD_RECORD = {"task_id": "t", "attempt_id": "t#1", "outcome": "failed", "started_at": 1.0, "finished_at": 2.0,
              "worker_id": "w", "value": None, "error": "ValueError: x", "error_type": "ValueError",
              "retryable": True, "retry_after": None, "meta": {}, "signature": None}


def test_a_result_written_before_logs_were_kept_reads_with_none():
    assert TaskResult.from_dict(dict(OLD_RECORD)).log is None
    assert stored_result(dict(OLD_RECORD)).log is None
    assert TaskResult.from_dict({**OLD_RECORD, "log": "a\nb"}).to_dict()["log"] == "a\nb"


def test_a_stored_log_that_is_not_text_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"its result's log is not text \(5\)"):
        stored_result({**OLD_RECORD, "log": 5})


def test_control_characters_are_escaped_newlines_and_tabs_kept():
    assert clean_log("a\tb\nc\x1b[2Jd\re\x00\x7f\x9b") == "a\tb\nc\\x1b[2Jd\\x0de\\x00\\x7f\\x9b"
    assert clean_log(None) is None
    assert clean_log("lone \udcff surrogate") == "lone \\udcff surrogate"
    cut = clean_log("x" * (MAX_LOG_CHARS + 10))
    assert cut.endswith("... [10 more characters]") and len(cut) == MAX_LOG_CHARS + len("... [10 more characters]")
    assert TaskResult(**{**OLD_RECORD, "log": "\x1b[31m"}).log == "\\x1b[31m"


def test_with_log_changes_the_log_only():
    long_error = TaskResult(**{**OLD_RECORD, "error": "e" * (MAX_ERROR_CHARS + 5)})
    assert long_error.error.endswith("... [5 more characters]")
    logged = long_error.with_log("line\x07")
    assert logged.log == "line\\x07" and logged.error == long_error.error  # not cut a second time
    assert logged.with_log(None).log is None and logged.with_log(None) == long_error
