"""distsched.model.times: a time the engine keeps is one a date can show (years 1 to 9999,
UTC). A job, a trigger or a worker holding another is refused naming the field - read back
from a store, the record is then moved aside - and the display side shows the number where
no date can show it. (1e12, year 33658, took down ``jobs list`` and the dashboard's
overview, jobs and workers pages: "year 33658 is out of range".)"""

from datetime import timezone
from zoneinfo import ZoneInfo

import pytest

from distsched.cli.format import jobs_table, when
from distsched.model import AtTrigger, EveryTrigger, JobState, ValidationError, Worker, build_job
from distsched.model.times import TIME_MAX, TIME_MIN, check_time, is_time, to_datetime
from distsched.model.trigger import trigger_from_dict
from distsched.model.trusted import stored_worker
from distsched.model.words import schedule_words

FAR = 1e12  # year 33658
NOT_TIMES = [FAR, -FAR, TIME_MAX + 1, TIME_MIN - 1, float("nan"), float("inf"), float("-inf"), "1", None, True]


def test_the_range_is_what_a_date_can_show():
    assert to_datetime(TIME_MIN, timezone.utc).year == 1 and to_datetime(TIME_MAX, timezone.utc).year == 9999
    assert is_time(TIME_MIN) and is_time(TIME_MAX) and is_time(0) and is_time(1_796_550_000.25)


@pytest.mark.parametrize("value", NOT_TIMES)
def test_anything_else_is_refused_naming_the_field(value):
    assert not is_time(value)
    with pytest.raises(ValidationError, match=r"^next_fire_at: must be a time from year 1 to 9999"):
        check_time("next_fire_at", value)


@pytest.mark.parametrize("value", [FAR, float("nan"), -FAR])
def test_a_trigger_a_job_state_or_a_worker_holding_one_is_refused(value):
    with pytest.raises(ValidationError, match="^at:"):
        trigger_from_dict({"kind": "at", "at": value})
    with pytest.raises(ValidationError, match="^anchor:"):
        trigger_from_dict({"kind": "every", "interval": 10, "anchor": value})
    for field in ("next_fire_at", "last_slot", "last_outcome_at"):
        with pytest.raises(ValidationError, match=f"^{field}:"):
            JobState(name="j", **{"next_fire_at": 0.0, field: value})
    with pytest.raises(ValidationError, match="^started_at:"):
        Worker(id="w", started_at=value)
    with pytest.raises(ValidationError, match="^started_at: must be a time from year 1 to 9999"):
        stored_worker({"id": "w", "started_at": value, "last_heartbeat": 0.0})


def test_what_the_engine_writes_is_taken():
    assert AtTrigger(TIME_MAX).at == TIME_MAX and EveryTrigger(10.0).anchor == 0.0
    assert JobState(name="j", next_fire_at=None, last_slot=1.5).last_slot == 1.5
    worker = stored_worker({"id": "w", "capacity": 64, "started_at": 5.0, "last_heartbeat": FAR})
    assert (worker.started_at, worker.last_heartbeat) == (5.0, FAR)  # a dead worker, not a broken record


def test_an_at_past_year_9999_in_utc_is_refused_where_the_job_is_built():
    with pytest.raises(ValidationError, match=r"^at: must be a time from year 1 to 9999"):
        build_job("j", at="9999-12-31T23:00:00-05:00", target="noop")  # year 10000 in UTC
    assert schedule_words(build_job("j", at="9999-12-31T23:00:00+05:00", target="noop").trigger) \
        == "once at 9999-12-31T18:00:00Z"


@pytest.mark.parametrize("value", [FAR, float("nan"), float("inf")])
def test_the_display_shows_the_number_where_no_date_can(value):
    assert to_datetime(value, timezone.utc) is None
    assert when(value) == f"{value!r} (no date)"
    assert f"{value!r} (no date)" in jobs_table([{"name": "j", "schedule": "every 1s", "executor": "local",
                                                 "target": "noop", "next_fire_at": value, "paused": False,
                                                 "enabled": True}])[1]


def test_a_zone_that_pushes_the_last_day_past_year_9999_shows_no_date():
    assert to_datetime(TIME_MAX, ZoneInfo("Asia/Tokyo")) is None
    assert to_datetime(TIME_MIN, ZoneInfo("America/New_York")) is None
    assert when(TIME_MAX) == "9999-12-31 23:59:59"
