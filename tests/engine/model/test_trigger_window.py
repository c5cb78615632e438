"""A cron or every job's active window (``start_date`` / ``end_date``, both inclusive, as
APScheduler 3's triggers) and its ``jitter``: a delay of each slot's start that is a function
of the job's name and the slot alone, so every leader computes the same start and the slot
(the task's identity) stays where the schedule puts it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from distsched.model import TaskConfig, ValidationError, build_job
from distsched.model.build import first_fire, job_fields
from distsched.model.job import jitter_delay
from distsched.model.task import slot_task_id
from distsched.model.trigger import CronTrigger, EveryTrigger, trigger_from_dict
from distsched.model.words import schedule_words

UTC = timezone.utc
T0 = datetime(2030, 1, 1, tzinfo=UTC).timestamp()


def _slots(config: TaskConfig, after: float, count: int = 50) -> list[float]:
    return [s.at for s in config.upcoming(after, count)]


def test_cron_fires_no_slot_before_start_date_and_fires_on_it():
    job = build_job("c", cron="* * * * *", start_date="2030-01-01T00:02:00Z", target="t")
    assert _slots(job, T0 - 3600, 3) == [T0 + 120, T0 + 180, T0 + 240]  # start inclusive
    late = build_job("c", cron="* * * * *", start_date="2030-01-01T00:02:30+00:00", target="t")
    assert _slots(late, T0 - 3600, 2) == [T0 + 180, T0 + 240]
    assert job.plan(T0 - 60, T0 + 150).slots[0].at == T0 + 120


def test_cron_fires_no_slot_after_end_date_then_has_none():
    job = build_job("c", cron="* * * * *", start_date=datetime(2030, 1, 1, tzinfo=UTC),
                    end_date=datetime(2030, 1, 1, 0, 3, tzinfo=UTC), target="t")
    assert _slots(job, T0 - 60) == [T0, T0 + 60, T0 + 120, T0 + 180]  # end inclusive
    plan = job.plan(T0, T0 + 3600)
    assert [s.at for s in plan.slots] == [T0, T0 + 60, T0 + 120, T0 + 180] and plan.next_fire_at is None
    assert job.next_fire_after(T0 + 180) is None
    assert job.ended(None) and job.ended(T0 + 240) and not job.ended(T0 + 180)


def test_every_counts_from_start_date_as_apscheduler_does():
    """APScheduler's IntervalTrigger: start_date + k * interval, not multiples of the epoch."""
    job = build_job("e", every="10s", start_date="2030-01-01T00:00:03Z", end_date="2030-01-01T00:00:33Z",
                    target="t")
    assert _slots(job, 0) == [T0 + 3, T0 + 13, T0 + 23, T0 + 33]
    assert _slots(job, T0 + 14, 5) == [T0 + 23, T0 + 33]
    assert job.plan(T0 + 3, T0 + 100).next_fire_at is None
    plain = build_job("e", every="10s", target="t")
    assert _slots(plain, T0 + 1, 1) == [T0 + 10]  # no start_date: the epoch, as before


def test_a_start_date_with_microseconds_never_puts_a_slot_before_it():
    job = build_job("e", every="1s", start_date=datetime(2030, 1, 1, 0, 0, 0, 123456, tzinfo=UTC), target="t")
    first = _slots(job, 0, 1)[0]
    assert first >= T0 + 0.123456 and first == round(first, 3)


def test_end_date_must_be_after_start_date():
    with pytest.raises(ValidationError) as err:
        build_job("e", every="10s", start_date="2030-01-01T00:00:00Z", end_date="2030-01-01T00:00:00Z", target="t")
    assert err.value.field == "end_date" and "start_date" in err.value.reason


@pytest.mark.parametrize("field", ["start_date", "end_date"])
@pytest.mark.parametrize("value", ["2030-01-01T00:00:00", datetime(2030, 1, 1)])
def test_a_naive_time_is_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        build_job("e", cron="* * * * *", target="t", **{field: value})
    assert err.value.field == field and "no time zone" in err.value.reason


@pytest.mark.parametrize("field, value", [("start_date", "2030-01-01T00:00:00Z"), ("jitter", 5)])
def test_a_one_shot_takes_no_window_nor_jitter(field, value):
    with pytest.raises(ValidationError) as err:
        build_job("a", at="2030-01-01T00:00:00Z", target="t", **{field: value})
    assert err.value.field == field


@pytest.mark.parametrize("kind", [{"every": "10s"}, {"cron": "* * * * *"}])
def test_an_end_date_in_the_past_is_refused_or_stored_as_ended(kind):
    job = build_job("e", end_date="2030-01-01T00:00:00Z", target="t", **kind)
    with pytest.raises(ValidationError) as err:
        first_fire(job, T0 + 1)
    assert err.value.field == "end_date" and "in the past" in err.value.reason
    assert first_fire(job, T0 + 1, missed=True) is None  # a jobs file's job: stored as ended
    assert first_fire(job, T0 - 30) is not None


def test_jitter_is_bounded():
    for value in (3601, "2h", -1, float("nan"), True):
        with pytest.raises(ValidationError) as err:
            build_job("c", cron="* * * * *", jitter=value, target="t")
        assert err.value.field == "jitter"
    with pytest.raises(ValidationError) as err:
        build_job("e", every="10s", jitter="11s", target="t")
    assert err.value.field == "jitter" and "interval" in err.value.reason
    assert build_job("c", cron="* * * * *", jitter=timedelta(hours=1), target="t").trigger.jitter == 3600


def test_jitter_delay_is_deterministic_bounded_and_spread():
    delays = [jitter_delay("job", T0 + 60 * k, 30.0) for k in range(500)]
    assert delays == [jitter_delay("job", T0 + 60 * k, 30.0) for k in range(500)]
    assert all(0 <= d <= 30 and d == round(d, 3) for d in delays)
    assert len(set(delays)) > 400 and min(delays) < 3 and max(delays) > 27  # spread over [0, 30]
    assert jitter_delay("other", T0, 30.0) != jitter_delay("job", T0, 30.0)
    assert jitter_delay("job", T0, 0.0) == 0.0


def test_two_leaders_create_the_same_task_for_a_jittered_slot():
    """A leader after a failover reads the job back from the store (its JSON) and fires the
    same slot: the same id and the same start, the slot unchanged."""
    one = build_job("nightly", cron="30 2 * * *", timezone="Europe/Paris", jitter="10m", target="t")
    other = TaskConfig.from_dict(one.to_dict())
    slot = one.next_fire_after(T0)
    assert slot is not None
    a, b = one.create_task(slot, T0), other.create_task(slot, T0 + 5)
    assert a.id == b.id == slot_task_id("nightly", slot) and a.slot == b.slot == slot
    assert a.not_before == b.not_before == one.start_at(slot)
    assert slot < a.not_before <= slot + 600
    plain = build_job("nightly", cron="30 2 * * *", timezone="Europe/Paris", target="t")
    assert plain.create_task(slot, T0).not_before == slot and plain.next_fire_after(T0) == slot


def test_the_window_and_jitter_survive_the_store_and_older_records_still_read():
    job = build_job("e", every="10s", start_date="2030-01-01T00:00:00Z", end_date="2030-02-01T00:00:00+01:00",
                    jitter="2s", target="t")
    assert TaskConfig.from_dict(job.to_dict()) == job
    assert build_job("e", **job_fields(job)) == job
    # a record written before these fields existed has none of them
    old = {"kind": "cron", "expr": "* * * * *", "timezone": "UTC", "dst_gap": "shift", "dst_fold": "once"}
    assert trigger_from_dict(old) == CronTrigger("* * * * *")
    assert build_job("c", cron="* * * * *", target="t").trigger.to_dict() == old
    assert trigger_from_dict({"kind": "every", "interval": 5.0, "anchor": 0.0, "timezone": "UTC"}) == EveryTrigger(5.0)


@pytest.mark.parametrize("bad", [{"end": 1e13}, {"start": "x"}, {"jitter": 7200.0}, {"jitter": -1},
                                 {"start": T0, "end": T0 - 1}])
def test_a_stored_trigger_with_bad_window_fields_is_refused_for_quarantine(bad):
    """The store moves a record that fails to decode aside (ValidationError), never crashes."""
    data = {"kind": "cron", "expr": "* * * * *", "timezone": "UTC", **bad}
    with pytest.raises(ValidationError):
        trigger_from_dict(data)


def test_the_schedule_in_words_says_the_window_and_jitter():
    job = build_job("e", every="10s", start_date="2030-01-01T00:00:00Z", end_date="2030-01-02T00:00:00Z",
                    jitter=5, target="t")
    assert schedule_words(job.trigger) == ("every 10s, from 2030-01-01T00:00:00Z until 2030-01-02T00:00:00Z, "
                                           "jitter 5s")
