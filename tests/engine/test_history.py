"""distsched.history: an attempt record read back from a store (``stored_attempt``) is the one
written, and a field of another type or range than distsched writes is refused, naming it
(the stores then leave the record out of the task's history with a warning)."""

from __future__ import annotations

from typing import Any

import pytest

from distsched.history import stored_attempt
from distsched.model import TaskState
from distsched.model.task import DEFAULT_MAX_REDELIVERIES
from distsched.ports import Attempt

T0 = 1_800_000_000.0
WRITTEN = Attempt(number=2, attempt_id="t#3", worker_id="w1", dispatched_at=T0, started_at=T0 + 1,
                  finished_at=T0 + 2, outcome="failed", value=None, error="boom", error_type="ValueError",
                  retry_at=T0 + 10, truncated=False)


def test_an_attempt_is_read_back_as_written() -> None:
    assert stored_attempt(WRITTEN.to_dict()) == WRITTEN
    assert stored_attempt({**WRITTEN.to_dict(), "from_a_newer_version": 1}) == WRITTEN, "unknown fields left out"
    first = {"number": 1, "attempt_id": "t#1", "outcome": "succeeded", "value": {"rows": 3}}
    assert stored_attempt(first) == Attempt(number=1, attempt_id="t#1", outcome="succeeded", value={"rows": 3})


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("number", 0, "its number is not an attempt number from 1 (0)"),  # attempts count from 1
    ("number", -1, "its number is not an attempt number from 1 (-1)"),
    ("number", True, "its number is not an attempt number from 1 (True)"),
    ("number", "2", "its number is not an attempt number from 1 ('2')"),
    ("number", None, "its number is not an attempt number from 1 (None)"),
    ("attempt_id", 5, "its attempt_id is not text (5)"),
    ("outcome", None, "its outcome is not text (None)"),
    ("worker_id", [], "its worker_id is not text ([])"),
    ("error", 7, "its error is not text (7)"),
    ("started_at", {"a": 1}, "its started_at is not a time from year 1 to 9999"),
    ("finished_at", 1e12, "its finished_at is not a time from year 1 to 9999"),
    ("retry_at", float("nan"), "its retry_at is not a time from year 1 to 9999"),
    ("truncated", "no", "its truncated is not true or false ('no')"),
])
def test_a_field_distsched_does_not_write_is_refused_naming_it(field: str, value: Any, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        stored_attempt({**WRITTEN.to_dict(), field: value})
    assert str(info.value).startswith(reason)


def test_an_attempt_held_for_its_slot_has_no_start_until_its_slot() -> None:
    """A slot dispatched ahead is taken by its worker at once (the record's ``started_at``)
    and held until its time: the attempt in flight, and one cancelled or lost before its
    slot, has not started - the history showed the take as its start."""
    from distsched.history import current_attempt, ended_attempt
    from distsched.testing import make_task

    task = make_task("s", now=T0)
    task.not_before = T0 + 30
    task.start(task.dispatch("w1", T0 + 1), T0 + 1.5)
    running = current_attempt(task)
    assert running is not None and (running.outcome, running.started_at) == ("running", None)
    cancelled = make_task("s", now=T0)
    cancelled.not_before = T0 + 30
    cancelled.start(cancelled.dispatch("w1", T0 + 1), T0 + 1.5)
    cancelled.cancel("cancelled by user", T0 + 5)
    record = ended_attempt(cancelled, "w1")
    assert record is not None and (record.outcome, record.started_at, record.finished_at) == ("cancelled", None, T0 + 5)
    task.requeue("worker w1 lost", T0 + 6)
    lost = ended_attempt(task, "w1")
    assert lost is not None and (lost.outcome, lost.started_at) == ("lost", None)


def test_an_attempt_lost_when_its_task_gives_up_is_recorded_lost() -> None:
    """The attempt whose worker was lost once too often (the requeue fails the task instead)
    was recorded ``failed`` with the take-to-reap time as its duration, as if it had run and
    reported a failure: it is ``lost`` like every other lost attempt (the display shows no
    duration for it), with the reason the task ended."""
    from distsched.history import ended_attempt
    from distsched.testing import make_task

    for consume in (False, True):
        task = make_task("g", now=T0)
        for i in range(DEFAULT_MAX_REDELIVERIES):
            task.dispatch("w1", T0 + i)
            task.requeue("worker w1 lost", T0 + i, consume_attempt=False)
        task.start(task.dispatch("w2", T0 + 20), T0 + 20)
        task.requeue("worker w2 lost (declared dead)", T0 + 50, consume_attempt=consume)
        assert task.state is TaskState.FAILED
        record = ended_attempt(task, "w2")
        assert record is not None
        assert (record.outcome, record.worker_id, record.finished_at) == ("lost", "w2", T0 + 50)
        assert record.error == task.reason and record.error.startswith("worker w2 lost (declared dead); ")


def test_a_task_row_after_a_retried_failure_shows_why_it_ended() -> None:
    """A task whose first attempt failed (retried), then whose next attempt's worker was lost
    once too often, showed that first attempt's error ("boom") in ``tasks list`` and the
    dashboard's rows; one whose retry the leader could not dispatch showed the failed
    attempt's start. Each shows why it ended, and no start that is not its own."""
    from distsched.history import task_error, task_times
    from distsched.model import RetryPolicy, TaskResult
    from distsched.testing import make_task

    def failed_once(task_id: str) -> Any:
        task = make_task(task_id, now=T0, retry=RetryPolicy(max_attempts=3))
        task.start(task.dispatch("w1", T0 + 1), T0 + 1)
        task.finish(TaskResult(task_id=task_id, attempt_id=task.attempt_id, outcome="failed", started_at=T0 + 1,
                               finished_at=T0 + 2, worker_id="w1", error="boom", error_type="ValueError",
                               retryable=True), T0 + 2)
        assert task.state is TaskState.RETRYING and task_error(task) == "boom"
        return task

    gave_up = failed_once("g")
    gave_up.start(gave_up.dispatch("w2", T0 + 5), T0 + 5)
    gave_up.requeue("worker w2 lost (declared dead)", T0 + 9, max_redeliveries=0)
    assert gave_up.state is TaskState.FAILED
    assert task_error(gave_up) == "worker w2 lost (declared dead); gave up after 0 re-deliveries"
    assert task_times(gave_up, T0 + 10) == (T0 + 5, T0 + 9, None)

    stuck = failed_once("u")
    stuck.undispatchable("cannot dispatch: balancer 'fastest' is not registered", T0 + 6)
    assert task_error(stuck) == "cannot dispatch: balancer 'fastest' is not registered"
    assert task_times(stuck, T0 + 10) == (None, T0 + 6, None)


def test_a_lost_attempt_of_a_slot_taken_ahead_never_starts_before_its_slot() -> None:
    """A slot taken ahead by its worker (held until its time) whose worker was declared lost
    after the slot: the requeue moves ``not_before`` to its own time, and the lost attempt's
    record showed the take - before the slot - as its start. It began at its slot now (the
    rule of a held attempt that reached its time); lost before its slot, it never started."""
    from distsched.history import ended_attempt, shown_start
    from distsched.model import Task, TaskSpec

    def slot_task() -> Task:
        task = Task(id="job@1", spec=TaskSpec(target="noop"), job="job", slot=T0 + 30, created_at=T0,
                    not_before=T0 + 30)
        task.start(task.dispatch("w1", T0 + 29.8), T0 + 29.85)  # fire_ahead: taken 0.15 s before its slot
        return task

    after = slot_task()
    after.requeue("worker w1 lost (no heartbeat for 10.1s)", T0 + 42)
    lost = ended_attempt(after, "w1")
    assert lost is not None and (lost.outcome, lost.started_at, lost.finished_at) == ("lost", T0 + 30, T0 + 42)
    before = slot_task()
    before.requeue("worker w1 lost (declared dead)", T0 + 29.9)
    lost = ended_attempt(before, "w1")
    assert lost is not None and (lost.outcome, lost.started_at) == ("lost", None)
    # the display rule, for records written before it
    assert shown_start(T0 + 29.85, T0 + 42, T0 + 30) == T0 + 30
    assert shown_start(T0 + 29.85, None, T0 + 30) is None
    assert shown_start(T0 + 31, T0 + 42, T0 + 30) == T0 + 31 and shown_start(T0 + 29, T0 + 42, None) == T0 + 29


def test_the_display_rules_the_cli_and_the_dashboard_share() -> None:
    """``distsched tasks show`` and the dashboard's task page read one copy of each rule: an
    error that begins with a type's name gets no second one; a dispatch after the first of an
    attempt number is a crash re-delivery; a lost attempt has no duration."""
    from distsched.history import attempt_duration, redelivered, shown_error

    assert shown_error("ConnectionError", "ConnectError: All connection attempts failed") == \
        "ConnectError: All connection attempts failed"
    assert shown_error("ValueError", "boom") == "ValueError: boom"
    assert shown_error("ValueError", "ValueError: boom") == "ValueError: boom"
    assert shown_error(None, "worker w1 lost (declared dead)") == "worker w1 lost (declared dead)"
    lost = Attempt(number=1, attempt_id="t#1", started_at=T0, finished_at=T0 + 9, outcome="lost")
    again = Attempt(number=1, attempt_id="t#2", started_at=T0 + 10, finished_at=T0 + 12, outcome="failed")
    retry = Attempt(number=2, attempt_id="t#3", started_at=T0 + 20, outcome="running")
    assert redelivered([lost, again, retry]) == [False, True, False]
    assert redelivered(iter([lost, again])) == [False, True] and redelivered([]) == []
    assert [attempt_duration(a) for a in (lost, again, retry)] == [None, 2.0, None]


def test_a_task_rows_times_and_error() -> None:
    """``tasks list`` and the dashboard's task rows: a running task has run for now minus its
    start, one held for its slot has not started; a task that failed with no result shows
    why (the leader could not dispatch it, or its worker was lost once too often)."""
    from distsched.history import task_error, task_times
    from distsched.testing import make_task

    running = make_task("r", now=T0)
    running.start(running.dispatch("w1", T0 + 1), T0 + 2)
    assert task_times(running, T0 + 5) == (T0 + 2, None, 3.0)
    assert task_times(running, None) == (T0 + 2, None, None), "no clock: no duration for what has not ended"
    held = make_task("h", now=T0)
    held.not_before = T0 + 30
    held.start(held.dispatch("w1", T0 + 1), T0 + 1.5)
    assert task_times(held, T0 + 5) == (None, None, None)
    assert task_error(running) is None
    undispatchable = make_task("u", now=T0)
    undispatchable.undispatchable("cannot dispatch: balancer 'fastest' is not registered", T0 + 1)
    assert task_error(undispatchable) == "cannot dispatch: balancer 'fastest' is not registered"
    gave_up = make_task("g", now=T0)
    gave_up.start(gave_up.dispatch("w1", T0 + 1), T0 + 2)
    gave_up.requeue("worker w1 lost (declared dead)", T0 + 3, max_redeliveries=0)
    assert gave_up.state is TaskState.FAILED
    assert task_times(gave_up, T0 + 9) == (T0 + 2, T0 + 3, None), "take to reap is no duration"
    assert task_error(gave_up) == "worker w1 lost (declared dead); gave up after 0 re-deliveries"
