"""Outcome and TaskResult: constructors, derived values, validation, serialisation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import Outcome, TaskResult, ValidationError
from distsched.model.result import error_text


def test_success_outcome():
    outcome = Outcome.success({"rows": 3}, status=200)
    assert outcome.ok and outcome.value == {"rows": 3} and outcome.meta == {"status": 200}
    assert outcome.error is None


def test_failure_outcome():
    outcome = Outcome.failure("not found", error_type="HTTP404", retryable=False, status=404)
    assert not outcome.ok and not outcome.retryable
    assert outcome.error == "not found" and outcome.error_type == "HTTP404"
    assert outcome.meta == {"status": 404} and outcome.retry_after is None
    assert Outcome.failure("busy", retry_after=30.0).retry_after == 30.0
    assert Outcome.failure("boom").retryable


def test_from_outcome_success_and_failure():
    ok = TaskResult.from_outcome(Outcome.success(5, status=200), task_id="t", attempt_id="t#1",
                                 started_at=10.0, finished_at=12.5, worker_id="w1")
    assert ok.outcome == "succeeded" and ok.ok and ok.value == 5 and ok.duration == 2.5
    assert ok.worker_id == "w1" and ok.meta == {"status": 200}
    failed = TaskResult.from_outcome(
        Outcome.failure("busy", error_type="HTTP503", retry_after=7.0, status=503),
        task_id="t", attempt_id="t#2", started_at=1.0, finished_at=2.0,
    )
    assert failed.outcome == "failed" and not failed.ok
    assert failed.retryable and failed.retry_after == 7.0 and failed.error_type == "HTTP503"


def test_from_outcome_copies_meta():
    outcome = Outcome.success(None, a=1)
    result = TaskResult.from_outcome(outcome, task_id="t", attempt_id="t#1", started_at=0.0, finished_at=0.0)
    result.meta["b"] = 2
    assert outcome.meta == {"a": 1}


def test_timed_out():
    result = TaskResult.timed_out(task_id="t", attempt_id="t#1", started_at=0.0, finished_at=30.0,
                                  timeout=30.0, worker_id="w")
    assert result.outcome == "timed_out" and not result.ok
    assert result.error == f"timed out after 30s (attempt took {result.duration:.1f}s)" and result.error_type == "Timeout"
    assert result.retryable


def test_duration_is_never_negative():
    result = TaskResult(task_id="t", attempt_id="t#1", outcome="succeeded", started_at=10.0, finished_at=9.0)
    assert result.duration == 0.0


@pytest.mark.parametrize("bad", ["ok", "SUCCEEDED", "", None, "cancelled"])
def test_unknown_outcome_is_refused(bad):
    with pytest.raises(ValidationError) as exc:
        TaskResult(task_id="t", attempt_id="t#1", outcome=bad, started_at=0.0, finished_at=1.0)
    assert exc.value.field == "outcome"


json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=8)


@given(
    outcome=st.sampled_from(["succeeded", "failed", "timed_out"]),
    started=st.floats(min_value=0, max_value=4e9),
    took=st.floats(min_value=0, max_value=1e5),
    value=st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                       max_leaves=8),
    retryable=st.booleans(),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
    meta=st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
@settings(max_examples=50)
def test_round_trip_through_json(outcome, started, took, value, retryable, retry_after, meta):
    result = TaskResult(task_id="t", attempt_id="t#3", outcome=outcome, started_at=started,
                        finished_at=started + took, worker_id="w", value=value,
                        error=None if outcome == "succeeded" else "err", retryable=retryable,
                        retry_after=retry_after, meta=meta)
    again = TaskResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert again.ok == (outcome == "succeeded")


def test_an_exception_without_a_message_is_recorded_as_its_kind_alone():
    """``raise ValueError()`` was recorded ``ValueError: `` (probe finding): the worker words
    a task's exception ``Kind: message``, and so do the executors; with no message it is
    ``Kind``. A message is kept as it is."""
    assert Outcome.failure("ValueError: ", error_type="ValueError").error == "ValueError"
    assert Outcome.failure("ValueError: bad", error_type="ValueError").error == "ValueError: bad"
    assert Outcome.failure("KeyError: ", error_type="Other").error == "KeyError: "  # not its kind: as given
    assert error_text(ValueError()) == "ValueError" and error_text(ValueError("x")) == "ValueError: x"


def test_an_errors_control_characters_are_kept_as_text_newline_and_tab_stay():
    """An exception message with an ANSI escape sequence or a carriage return reached every
    terminal that showed it (``tasks show``, ``run``'s lines) as it was."""
    from distsched.model.result import Outcome, clean_error

    hostile = "bad \x1b[2J\x1b[H\rall good\x07\x9b\nnext\tline"
    escaped = "bad \\x1b[2J\\x1b[H\\x0dall good\\x07\\x9b\nnext\tline"
    assert clean_error(hostile) == escaped
    assert clean_error(escaped) == escaped  # a second pass (a record read back) changes nothing
    outcome = Outcome.failure(hostile, error_type="Value\x1bError")
    assert (outcome.error, outcome.error_type) == (escaped, "Value\\x1bError")
    result = TaskResult.from_outcome(outcome, task_id="t", attempt_id="t#1", started_at=1.0, finished_at=2.0)
    assert (result.error, result.error_type) == (escaped, "Value\\x1bError")
    assert TaskResult.from_dict(result.to_dict()) == result
