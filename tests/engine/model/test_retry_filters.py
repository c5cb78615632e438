"""RetryPolicy's retry_on / dont_retry_on (Celery's autoretry_for), intervals (RQ's
Retry(interval=[...])) and distsched.Retry (a retry the task asks for): validation, delays,
matching, the JSON round trip, and what Task.finish records."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

import distsched
from distsched.model import RetryPolicy, Task, TaskResult, TaskSpec, TaskState, ValidationError
from distsched.model.build import build_retry
from distsched.model.retry import RETRY_REQUESTED, Retry
from distsched.model.trusted import stored_spec


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"retry_on": "ConnectionError"}, "retry.retry_on", "must be a list of exception class names"),
    ({"retry_on": ["requests.exceptions.ConnectionError"]}, "retry.retry_on", "write ConnectionError"),
    ({"retry_on": ["Connection Error"]}, "retry.retry_on", "is not an exception class's bare name"),
    ({"retry_on": ["ValueError\n"]}, "retry.retry_on", "is not an exception class's bare name"),
    ({"retry_on": [3]}, "retry.retry_on", "is not an exception class's bare name"),
    ({"retry_on": ["E" * 129]}, "retry.retry_on", "1-128 characters"),
    ({"retry_on": [f"E{i}" for i in range(65)]}, "retry.retry_on", "at most 64 names"),
    ({"retry_on": ["Exception"]}, "retry.retry_on", "to retry every exception, leave retry_on out"),
    ({"dont_retry_on": ["BaseException"]}, "retry.dont_retry_on", "matches no failure"),
    ({"retry_on": ["KeyError"], "dont_retry_on": ["KeyError"]}, "retry.dont_retry_on", "KeyError is in retry_on too"),
    ({"dont_retry_on": ["distsched.Retry"]}, "retry.dont_retry_on", "distsched.Retry cannot be refused"),
    ({"max_attempts": 3, "intervals": [1], "delay": "2s"}, "retry.intervals",
     "cannot be combined with retry.delay"),
    ({"max_attempts": 3, "intervals": [1], "backoff": "fixed", "delay": 1}, "retry.intervals",
     "cannot be combined with retry.backoff and retry.delay"),
    ({"intervals": [1, 2]}, "retry.intervals", "max_attempts = 4"),
    ({"max_attempts": 3, "intervals": "10s"}, "retry.intervals", "must be a list of delays"),
    ({"max_attempts": 3, "intervals": [math.inf]}, "retry.intervals", "not inf"),
    ({"max_attempts": 3, "intervals": [-1]}, "retry.intervals", "from 0 to"),
    ({"max_attempts": 3, "intervals": [True]}, "retry.intervals", "not True"),
    ({"max_attempts": 3, "intervals": ["ten"]}, "retry.intervals", "ten"),
    ({"max_attempts": 3, "intervals": [1] * 101}, "retry.intervals", "at most 100 delays"),
    ({"max_attempts": 3, "intervals": ["10m"]}, "retry.intervals", "600 is more than max_delay (300)"),
    ({"max_attempts": 3, "retry_on": ["A"], "delays": [1]}, "retry.delays", "unknown field"),
])
def test_a_bad_policy_is_refused_naming_the_field(fields, field, words):
    with pytest.raises(ValidationError) as info:
        build_retry(fields)
    assert info.value.field == field
    assert words in info.value.reason


def test_the_model_refuses_intervals_beside_a_backoff_of_its_own():
    with pytest.raises(ValidationError, match="intervals: cannot be combined with backoff or delay"):
        RetryPolicy(max_attempts=3, intervals=(1.0,), backoff="fixed")
    with pytest.raises(ValidationError, match="intervals: cannot be combined"):
        RetryPolicy(max_attempts=3, intervals=(1.0,), delay=2.0)


def test_durations_in_intervals_and_a_max_delay_below_the_default_delay():
    policy = build_retry({"max_attempts": 4, "intervals": ["100ms", timedelta(seconds=0.3), 0.4], "max_delay": "0.5s"})
    assert policy.intervals == (0.1, 0.3, 0.4) and policy.max_delay == 0.5


# -- delays ----------------------------------------------------------------------------------
def test_intervals_give_each_delay_the_last_one_repeating():
    policy = RetryPolicy(max_attempts=6, intervals=[10, 30, 60])
    assert [policy.delay_after(n) for n in range(1, 7)] == [10, 30, 60, 60, 60, None]


def test_jitter_spreads_intervals_and_a_hint_or_a_requested_delay_is_capped_at_max_delay():
    policy = RetryPolicy(max_attempts=3, intervals=[10], jitter=0.5, max_delay=100)
    assert policy.delay_after(1, rand=0.0) == 5.0 and policy.delay_after(1, rand=0.99) == pytest.approx(14.9)
    assert policy.delay_after(1, retry_after=3) == 3.0
    assert policy.delay_after(1, retry_after=500) == 100.0


# -- matching --------------------------------------------------------------------------------
def test_retry_on_matches_the_bare_name_exactly():
    policy = RetryPolicy(max_attempts=3, retry_on=["ConnectionError", "Timeout"])
    assert policy.refusal("ConnectionError") is None and policy.refusal("Timeout") is None
    assert policy.refusal("ConnectionRefusedError") == ("not retried: ConnectionRefusedError is not in retry_on "
                                                        "(ConnectionError, Timeout)")  # a subclass: not matched
    assert policy.refusal("connectionerror") is not None
    assert policy.refusal(None) == "not retried: a failure without a type is not in retry_on (ConnectionError, Timeout)"
    assert policy.refusal(RETRY_REQUESTED) is None


def test_retry_on_distsched_retry_alone_retries_only_what_the_task_asks_for():
    policy = build_retry({"max_attempts": 3, "retry_on": ["distsched.Retry"]})
    assert policy.refusal(RETRY_REQUESTED) is None
    assert policy.refusal("ValueError") == "not retried: ValueError is not in retry_on (distsched.Retry)"


def test_dont_retry_on_refuses_its_names_only():
    policy = RetryPolicy(max_attempts=3, dont_retry_on=["ValueError"])
    assert policy.refusal("ValueError") == "not retried: ValueError is in dont_retry_on"
    assert policy.refusal("KeyError") is None and policy.refusal(None) is None
    assert RetryPolicy().refusal("ValueError") is None  # no filter: every failure, as before


# -- JSON ------------------------------------------------------------------------------------
def test_the_round_trip_and_a_policy_stored_before_reads_as_before():
    policy = RetryPolicy(max_attempts=4, intervals=[10, 30], retry_on=["OSError"], dont_retry_on=["KeyError"])
    data = policy.to_dict()
    assert data["intervals"] == [10, 30] and data["retry_on"] == ["OSError"] and data["dont_retry_on"] == ["KeyError"]
    assert RetryPolicy.from_dict(data) == policy
    old = {"max_attempts": 3, "backoff": "fixed", "delay": 2.0, "max_delay": 300.0, "jitter": 0.0}
    assert RetryPolicy.from_dict(dict(old)).to_dict() == old  # no new key written for a policy without them
    spec = TaskSpec(target="f", retry=policy)
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    assert stored_spec(spec.to_dict()).retry == policy  # the stores' trusted read: lists become tuples


@pytest.mark.parametrize(("key", "value"), [("intervals", ["1s"]), ("intervals", 5), ("retry_on", [1]),
                                            ("dont_retry_on", "KeyError")])
def test_a_stored_list_the_leader_would_fail_on_is_refused_naming_it(key, value):
    data = TaskSpec(target="f").to_dict()
    data["retry"][key] = value
    with pytest.raises(ValueError, match=f"retry.{key} is not a list"):
        stored_spec(data)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("max_attempts", "3", "not an integer"), ("max_attempts", True, "not an integer"),
    ("max_attempts", [1], "not an integer"), ("delay", "1s", "not a finite number"),
    ("max_delay", math.inf, "not a finite number"), ("jitter", {"a": 1}, "not a finite number"),
    ("backoff", 2, "not text"),
])
def test_a_stored_scalar_the_leader_would_fail_on_is_refused_naming_it(key, value, words):
    """Before, a stored ``max_attempts = "3"`` was kept, and the leader's comparison with it
    failed its pass at the task's timeout or requeue; a list or a table failed the cache's
    key with a TypeError, a retry that is not a table with an AttributeError."""
    data = TaskSpec(target="f").to_dict()
    data["retry"][key] = value
    with pytest.raises(ValueError, match=f"retry.{key} is {words}"):
        stored_spec(data)
    data = TaskSpec(target="f").to_dict()  # (stored_spec consumed it)
    data["retry"] = "x"
    with pytest.raises(ValueError, match="retry is not a table"):
        stored_spec(data)


# -- Retry -----------------------------------------------------------------------------------
def test_retry_is_exported_and_checks_its_delay():
    assert distsched.Retry is Retry
    assert Retry("busy", after=timedelta(seconds=30)).after == 30.0
    assert Retry().message() == "retry requested"
    assert Retry("busy", after=2.5).message() == "retry requested (after 2.5s): busy"
    for bad in (-1, math.nan, "30s", True, 10**9):
        with pytest.raises(ValidationError, match="after: must be a number of seconds"):
            Retry(after=bad)


# -- what the task records -------------------------------------------------------------------
def _run(policy: RetryPolicy, error_type: str, *, retry_after=None, attempts=1) -> Task:
    task = Task(id="t", spec=TaskSpec(target="f", retry=policy), created_at=0.0)
    for _ in range(attempts):
        attempt_id = task.dispatch("w", 1.0)
        task.finish(TaskResult(task_id="t", attempt_id=attempt_id, outcome="failed", started_at=1.0,
                               finished_at=2.0, worker_id="w", error="x", error_type=error_type,
                               retry_after=retry_after), 2.0)
        if task.state is not TaskState.RETRYING:
            break
    return task


def test_an_unlisted_failure_ends_the_task_with_the_reason():
    task = _run(RetryPolicy(max_attempts=3, retry_on=["OSError"]), "ValueError")
    assert task.state is TaskState.FAILED and task.attempt == 1
    assert task.reason == "not retried: ValueError is not in retry_on (OSError)"
    spent = _run(RetryPolicy(max_attempts=2, retry_on=["OSError"]), "OSError", attempts=5)
    assert spent.state is TaskState.FAILED and spent.attempt == 2 and spent.reason is None  # attempts spent
    last = _run(RetryPolicy(max_attempts=1, retry_on=["OSError"]), "ValueError")
    assert last.reason is None  # nothing to refuse: it had no attempt left anyway


def test_a_requested_retry_counts_as_an_attempt_and_says_when_none_is_left():
    policy = RetryPolicy(max_attempts=3, retry_on=["OSError"], max_delay=20)
    task = _run(policy, RETRY_REQUESTED, retry_after=60)
    assert task.state is TaskState.RETRYING and task.attempt == 2 and task.not_before == 2.0 + 20
    task = _run(policy, RETRY_REQUESTED, retry_after=1, attempts=5)
    assert task.state is TaskState.FAILED and task.attempt == 3
    assert task.reason == "retry requested, but no attempt left (3 of 3)"


def test_words():
    assert RetryPolicy().words() == "1 attempt (no retry)"
    assert RetryPolicy(max_attempts=4, intervals=[10, 30, 60], retry_on=["OSError"], dont_retry_on=["KeyError"]
                       ).words() == "4 attempts, waits 10s, 30s, 60s (the last repeats); retried only on OSError; never on KeyError"
    assert RetryPolicy(max_attempts=3, backoff="fixed", delay=2).words() == "3 attempts, fixed backoff from 2s, at most 300s"
