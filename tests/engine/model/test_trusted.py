"""distsched.model.trusted.stored_task: a task read back from a store is refused (ValueError,
naming the field) when a time is not a finite number or a counter is out of range - the
store then moves the record aside instead of a leader failing on it at every pass."""

import attrs
import pytest

from distsched.model.times import TIME_MAX, TIME_MIN
from distsched.model.trusted import COUNTER_MAX, stored_task
from distsched.testing import make_task


def _values(**changes):
    return {**attrs.asdict(make_task("t", now=10.0), recurse=False), **changes}


def test_a_task_as_stored_is_taken():
    task = stored_task(_values(version=3, attempt=2, dispatches=4, redeliveries=1))
    assert (task.version, task.attempt, task.dispatches, task.redeliveries) == (3, 2, 4, 1)
    assert stored_task(_values(version=COUNTER_MAX - 1)).version == COUNTER_MAX - 1


@pytest.mark.parametrize(("name", "value"), [
    ("version", COUNTER_MAX), ("version", -1), ("version", 1.0), ("version", True), ("version", "3"),
    ("attempt", 0), ("attempt", COUNTER_MAX), ("dispatches", COUNTER_MAX), ("dispatches", -2),
    ("redeliveries", COUNTER_MAX), ("redeliveries", None),
])
def test_a_counter_out_of_range_or_not_an_integer_is_refused(name, value):
    with pytest.raises(ValueError, match=f"its {name} is not an integer from"):
        stored_task(_values(**{name: value}))


@pytest.mark.parametrize(("name", "value"), [
    ("created_at", float("nan")), ("not_before", float("inf")), ("updated_at", None), ("slot", "soon"),
])
def test_a_time_that_is_not_a_finite_number_is_refused(name, value):
    with pytest.raises(ValueError, match=f"its {name} is not a finite number"):
        stored_task(_values(**{name: value}))


@pytest.mark.parametrize(("name", "value"), [
    ("created_at", TIME_MAX + 1), ("not_before", 1e12), ("finished_at", TIME_MIN - 1), ("slot", -1e300),
])
def test_a_time_no_date_can_show_is_refused(name, value):
    with pytest.raises(ValueError, match=f"its {name} is not a time from year 1 to 9999"):
        stored_task(_values(**{name: value}))


def test_the_first_and_last_second_of_the_dates_are_taken():
    assert stored_task(_values(not_before=TIME_MAX, slot=TIME_MIN)).not_before == TIME_MAX


@pytest.mark.parametrize(("name", "value", "says"), [
    ("job", True, "its job is not text"), ("job", 5, "its job is not text"), ("job", [1], "its job is not text"),
    ("reason", {"a": 1}, "its reason is not text"),
    ("serial_limit", "x", "its serial_limit is not an integer >= 1"),
    ("serial_limit", 0, "its serial_limit is not an integer >= 1"),
    ("serial_limit", 1.5, "its serial_limit is not an integer >= 1"),
    ("serial_limit", True, "its serial_limit is not an integer >= 1"),
])
def test_a_field_the_leader_reads_of_another_type_is_refused(name, value, says):
    with pytest.raises(ValueError, match=says):
        stored_task(_values(**{name: value}))


def test_a_job_reason_and_serial_limit_as_the_engine_writes_them_are_taken():
    task = stored_task(_values(job="nightly", reason="skipped: misfire", serial_limit=3))
    assert (task.job, task.reason, task.serial_limit) == ("nightly", "skipped: misfire", 3)
