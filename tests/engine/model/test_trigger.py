"""Triggers: cron (5/6 fields, time zones, DST gap and fold), every, at; parse_duration."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import (
    AtTrigger,
    CronTrigger,
    EveryTrigger,
    Slot,
    ValidationError,
    parse_duration,
)
from distsched.model.times import TIME_MAX, TIME_MIN
from distsched.model.trigger import MAX_INTERVAL, MIN_INTERVAL, is_wildcard, trigger_from_dict

UTC = timezone.utc


def utc(text: str) -> float:
    """'2026-03-08T07:30' -> UNIX seconds (the text is UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def local(text: str, zone: str, fold: int = 0) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def walk(trigger, start: float, end: float, limit: int = 10_000) -> list[Slot]:
    """Every slot in (start, end], by repeated next_after."""
    out: list[Slot] = []
    t = start
    while len(out) < limit:
        slot = trigger.next_after(t)
        if slot is None or slot.at > end:
            break
        assert slot.at > t, "next_after must be strictly after t"
        out.append(slot)
        t = slot.at
    return out


def ats(slots: list[Slot]) -> list[float]:
    return [s.at for s in slots]


# -- parse_duration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        (" 2H ", 7200.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("42", 42.0),
        ("0.01", 0.01),
        (2.5, 2.5),
        (60, 60.0),
        (MIN_INTERVAL, MIN_INTERVAL),
        (MAX_INTERVAL, MAX_INTERVAL),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "abc", "10x", "5m10", "10s!", "m5", "-5s", "1h-30m", "nan", "inf", "0s", "5ms",
     "367d", "53w", 0, -1, 0.001, math.nan, math.inf, -math.inf, MAX_INTERVAL * 2, True, False,
     None, [10], {"s": 1}],
)
def test_parse_duration_refuses_bad_values_naming_the_field(bad):
    with pytest.raises(ValidationError) as exc:
        parse_duration(bad)
    assert exc.value.field == "every"
    with pytest.raises(ValidationError) as exc:
        parse_duration(bad, "timeout")
    assert exc.value.field == "timeout"


@given(parts=st.lists(st.tuples(st.integers(min_value=1, max_value=50),
                                st.sampled_from(["ms", "s", "m", "h"])), min_size=1, max_size=4))
@settings(max_examples=60)
def test_parse_duration_sums_its_parts(parts):
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = "".join(f"{n}{u}" for n, u in parts)
    total = sum(n * units[u] for n, u in parts)
    if MIN_INTERVAL <= total <= MAX_INTERVAL:
        assert parse_duration(text) == pytest.approx(total)
    else:
        with pytest.raises(ValidationError):
            parse_duration(text)


# -- cron: basics --------------------------------------------------------------------------


def test_five_field_cron_in_utc():
    trigger = CronTrigger("*/15 * * * *")
    slots = walk(trigger, utc("2026-01-01T00:00"), utc("2026-01-01T01:00"))
    assert ats(slots) == [utc(f"2026-01-01T00:{m:02d}") for m in (15, 30, 45)] + [utc("2026-01-01T01:00")]
    assert all(s.skip is None for s in slots)


def test_six_field_cron_has_seconds_first():
    trigger = CronTrigger("*/20 * * * * *")
    start = utc("2026-01-01T12:00:00") - 1
    slots = walk(trigger, start, utc("2026-01-01T12:01:00"))
    assert ats(slots) == [utc("2026-01-01T12:00:00"), utc("2026-01-01T12:00:20"),
                          utc("2026-01-01T12:00:40"), utc("2026-01-01T12:01:00")]


def test_next_after_is_strictly_after():
    trigger = CronTrigger("0 * * * *")
    at = utc("2026-01-01T05:00")
    assert trigger.next_after(at - 0.001).at == at
    assert trigger.next_after(at).at == utc("2026-01-01T06:00")
    assert trigger.next_after(at + 0.5).at == utc("2026-01-01T06:00")


def test_aliases_are_accepted():
    trigger = CronTrigger("@daily")
    assert trigger.next_after(utc("2026-01-01T05:00")).at == utc("2026-01-02T00:00")


def test_cron_that_never_fires_is_refused():
    with pytest.raises(ValidationError, match="never fires") as err:
        CronTrigger("0 0 31 2 *")
    assert err.value.field == "cron"


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_a_leap_day_cron_finds_its_next_date_across_the_year_2100(zone):
    """Was: ``0 0 29 2 *`` ended after 2096-02-29 (croniter searched 5 years for the next
    match; 2100 is not a leap year, so the next is 8 years on). ``explain`` and a job's fire
    times stopped there."""
    trigger = CronTrigger("0 0 29 2 *", zone)
    slots = walk(trigger, local("2095-01-01T00:00", zone), local("2112-12-31T00:00", zone))
    assert ats(slots) == [local(f"{year}-02-29T00:00", zone) for year in (2096, 2104, 2108, 2112)]


def test_a_rare_cron_date_is_found_however_far_it_is():
    """Feb 29 on a Sunday (both day fields must match: ``*/7`` starts with ``*``): 28 or 40
    years apart. Every one in 1,200 years, as the calendar has them."""
    expected = [utc(f"{year}-02-29T00:00") for year in range(2001, 3201)
                if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
                and datetime(year, 2, 29).weekday() == 6]
    assert max(b - a for a, b in pairwise(expected)) > 39 * 365 * 86400  # the 40-year gaps are in it
    assert ats(walk(CronTrigger("0 0 29 2 */7"), utc("2001-01-01T00:00"), utc("3201-01-01T00:00"))) == expected


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4 *", "0 0 30 2 */7", "*/1 * * 31 11 *"])
def test_a_cron_no_date_matches_is_refused_at_once(expr):
    """The search that finds a rare date (the calendar's 400-year cycle) refuses one that no
    date matches when the trigger is built, in milliseconds: no fire ever searches for it."""
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="never fires: no date matches its day and month fields") as err:
        CronTrigger(expr)
    assert err.value.field == "cron"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "expr",
    ["", "   ", "* * * *", "* * * * * * *", "61 * * * *", "* 25 * * *", "* * 32 * *",
     "* * * 13 *", "60 * * * * *", "*/0 * * * *", "garbage", "a b c d e", "@fortnightly",
     None, 5, ["*"] * 5],
)
def test_invalid_cron_names_the_cron_field(expr):
    with pytest.raises(ValidationError) as exc:
        CronTrigger(expr)
    assert exc.value.field == "cron"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"dst_gap": "jump"}, "dst_gap"),
        ({"dst_fold": "thrice"}, "dst_fold"),
    ],
)
def test_invalid_cron_options_name_their_field(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        CronTrigger("* * * * *", **kwargs)
    assert exc.value.field == field


# -- cron: time zones and DST --------------------------------------------------------------


def test_cron_is_read_in_its_time_zone():
    trigger = CronTrigger("0 9 * * *", timezone="Asia/Tokyo")
    slots = walk(trigger, utc("2026-01-01T00:00"), utc("2026-01-03T23:00"))
    assert ats(slots) == [utc("2026-01-02T00:00"), utc("2026-01-03T00:00")]


NY = "America/New_York"
PARIS = "Europe/Paris"


def test_new_york_spring_forward_shift():
    trigger = CronTrigger("30 2 * * *", timezone=NY, dst_gap="shift")
    slots = walk(trigger, utc("2026-03-06T12:00"), utc("2026-03-09T12:00"))
    assert slots == [
        Slot(utc("2026-03-07T07:30")),  # 02:30 EST
        Slot(utc("2026-03-08T07:30")),  # 02:30 does not exist: 03:30 EDT
        Slot(utc("2026-03-09T06:30")),  # 02:30 EDT
    ]


def test_new_york_spring_forward_skip_records_the_slot():
    trigger = CronTrigger("30 2 * * *", timezone=NY, dst_gap="skip")
    slots = walk(trigger, utc("2026-03-06T12:00"), utc("2026-03-09T12:00"))
    assert slots == [
        Slot(utc("2026-03-07T07:30")),
        Slot(utc("2026-03-08T07:30"), "dst-gap"),
        Slot(utc("2026-03-09T06:30")),
    ]


def test_new_york_fall_back_once_and_twice():
    once = CronTrigger("30 1 * * *", timezone=NY, dst_fold="once")
    twice = CronTrigger("30 1 * * *", timezone=NY, dst_fold="twice")
    start, end = utc("2026-10-31T12:00"), utc("2026-11-02T12:00")
    assert ats(walk(once, start, end)) == [utc("2026-11-01T05:30"), utc("2026-11-02T06:30")]
    assert ats(walk(twice, start, end)) == [utc("2026-11-01T05:30"), utc("2026-11-01T06:30"),
                                            utc("2026-11-02T06:30")]


def test_fold_once_from_inside_the_repeated_hour():
    once = CronTrigger("30 1 * * *", timezone=NY, dst_fold="once")
    twice = CronTrigger("30 1 * * *", timezone=NY, dst_fold="twice")
    t = utc("2026-11-01T06:00")  # 01:00 EST, between the two 01:30s
    assert once.next_after(t).at == utc("2026-11-02T06:30")
    assert twice.next_after(t).at == utc("2026-11-01T06:30")


def test_paris_spring_forward_and_fall_back():
    shift = CronTrigger("30 2 * * *", timezone=PARIS, dst_gap="shift")
    skip = CronTrigger("30 2 * * *", timezone=PARIS, dst_gap="skip")
    start, end = utc("2026-03-28T12:00"), utc("2026-03-30T12:00")
    assert walk(shift, start, end) == [Slot(utc("2026-03-29T01:30")), Slot(utc("2026-03-30T00:30"))]
    assert walk(skip, start, end) == [Slot(utc("2026-03-29T01:30"), "dst-gap"),
                                      Slot(utc("2026-03-30T00:30"))]
    once = CronTrigger("30 2 * * *", timezone=PARIS, dst_fold="once")
    twice = CronTrigger("30 2 * * *", timezone=PARIS, dst_fold="twice")
    start, end = utc("2026-10-24T12:00"), utc("2026-10-26T12:00")
    assert ats(walk(once, start, end)) == [utc("2026-10-25T00:30"), utc("2026-10-26T01:30")]
    assert ats(walk(twice, start, end)) == [utc("2026-10-25T00:30"), utc("2026-10-25T01:30"),
                                            utc("2026-10-26T01:30")]


def test_every_minute_across_fall_back_is_strictly_increasing_without_duplicates():
    # 2026-11-01 06:00 UTC: 02:00 EDT becomes 01:00 EST.
    start, end = utc("2026-11-01T05:55"), utc("2026-11-01T06:05")
    twice = walk(CronTrigger("* * * * *", timezone=NY, dst_fold="twice"), start, end)
    instants = ats(twice)
    assert all(b > a for a, b in pairwise(instants))
    assert len(set(instants)) == len(instants)
    # Every real minute fires exactly once.
    assert instants == [start + 60 * i for i in range(1, 11)]
    # A wildcard job runs by real time, as cron runs it: 'once' does not skip the repeated
    # hour (01:00-01:59 EST, 06:00-07:00 UTC) of an every-minute job (issue 15.1).
    once = ats(walk(CronTrigger("* * * * *", timezone=NY, dst_fold="once"), start, utc("2026-11-01T07:03")))
    assert once == [start + 60 * i for i in range(1, 69)]


def test_fold_once_keeps_the_first_occurrence_for_fixed_times_only():
    # 2026-11-01: 01:00-01:59 happens twice in New York (EDT, then EST from 06:00 UTC).
    start, end = utc("2026-11-01T04:00"), utc("2026-11-01T08:00")
    wild = ats(walk(CronTrigger("*/30 1 * * *", timezone=NY, dst_fold="once"), start, end))
    assert wild == [utc("2026-11-01T05:00"), utc("2026-11-01T05:30"), utc("2026-11-01T06:00"), utc("2026-11-01T06:30")]
    hourly = ats(walk(CronTrigger("@hourly", timezone=NY, dst_fold="once"), start, end))
    assert hourly == [utc("2026-11-01T05:00"), utc("2026-11-01T06:00"), utc("2026-11-01T07:00"), utc("2026-11-01T08:00")]
    fixed = ats(walk(CronTrigger("0,30 1 * * *", timezone=NY, dst_fold="once"), start, end))
    assert fixed == [utc("2026-11-01T05:00"), utc("2026-11-01T05:30")]
    assert CronTrigger("* 1 * * *", timezone=NY).wildcard and not CronTrigger("0,30 1 * * *", timezone=NY).wildcard


def test_explain_says_what_the_dst_policies_do():
    assert "repeated wall time runs both occurrences (wildcard minute/hour: real time, as cron)" in \
        CronTrigger("* * * * *", timezone=NY).dst_summary()
    assert "repeated wall time runs the first occurrence" in CronTrigger("30 1 * * *", timezone=NY).dst_summary()
    assert "gap is run at the transition" in CronTrigger("30 2 * * *", timezone=NY, dst_gap="transition").dst_summary()


def test_dst_gap_transition_runs_a_fixed_time_job_at_the_transition_instant():
    # Debian cron: a job whose time falls in the skipped hour runs when the hour is skipped.
    trigger = CronTrigger("30 2 * * *", timezone=NY, dst_gap="transition")
    slots = walk(trigger, utc("2026-03-06T12:00"), utc("2026-03-09T12:00"))
    assert slots == [Slot(utc("2026-03-07T07:30")), Slot(utc("2026-03-08T07:00")), Slot(utc("2026-03-09T06:30"))]
    # several wall times in the gap: one run at the transition
    both = walk(CronTrigger("0,30 2 * * *", timezone=NY, dst_gap="transition"), utc("2026-03-08T06:00"),
                utc("2026-03-08T12:00"))
    assert both == [Slot(utc("2026-03-08T07:00"))]
    # Lord Howe's 30-minute gap (02:00 -> 02:30 on 2026-10-04)
    howe = CronTrigger("15 2 * * *", timezone="Australia/Lord_Howe", dst_gap="transition")
    assert howe.next_after(utc("2026-10-03T12:00")) == Slot(local("2026-10-04T02:30", "Australia/Lord_Howe"))
    # a wildcard job's non-existent times are recorded as skipped (cron runs it by real time)
    wild = walk(CronTrigger("*/20 2 * * *", timezone=NY, dst_gap="transition"), utc("2026-03-08T06:00"),
                utc("2026-03-08T08:00"))
    assert [s.skip for s in wild] == ["dst-gap"] * 3


@pytest.mark.parametrize(("expr", "start", "days"), [
    # both day fields restricted: either matches (the 1st or the 15th, or a Monday)
    ("0 0 1,15 * 1", "2026-06-01", [1, 8, 15, 22, 29]),
    # a field that starts with '*' counts as unrestricted: both must match
    # (days 1, 11, 21, 31 that are a Sunday, Wednesday or Saturday)
    ("26 1 */10 * */3", "2026-01-01", [(1, 11), (1, 21), (1, 31), (2, 1)]),
    ("0 0 */10 * 1-5", "2026-06-01", [1, 11]),
])
def test_day_fields_follow_vixie_cron(expr, start, days):
    trigger = CronTrigger(expr)
    t = utc(f"{start}T00:00") - 1
    got = []
    for _ in range(len(days)):
        slot = trigger.next_after(t)
        when = datetime.fromtimestamp(slot.at, UTC)
        got.append(when.day if isinstance(days[0], int) else (when.month, when.day))
        t = slot.at
    assert got == days


def test_every_minute_across_spring_forward_loses_no_real_minute():
    # 2026-03-08 07:00 UTC: 02:00 EST becomes 03:00 EDT. The non-existent 02:xx wall times
    # land on the real 03:xx instants; with dst_gap="skip" the real slots must still run.
    start, end = utc("2026-03-08T06:56"), utc("2026-03-08T07:04")
    for gap in ("shift", "skip"):
        slots = walk(CronTrigger("* * * * *", timezone=NY, dst_gap=gap), start, end)
        assert ats(slots) == [start + 60 * i for i in range(1, 9)], gap
        assert all(s.skip is None for s in slots), gap


@pytest.mark.parametrize(
    ("zone", "day"),
    [("Australia/Sydney", "2026-04-05"), ("Pacific/Auckland", "2026-04-05"),
     ("Australia/Lord_Howe", "2026-04-05"), (NY, "2026-11-01"), (PARIS, "2026-10-25")],
)
def test_fold_twice_in_zones_east_and_west_of_utc(zone, day):
    trigger = CronTrigger("*/15 * * * *", timezone=zone, dst_fold="twice")
    start = local(f"{day}T00:50", zone)
    instants = ats(walk(trigger, start, start + 5 * 3600))
    # Every real quarter hour, whatever the offset, fires once; no slot skipped.
    first = math.ceil(start / 900) * 900
    assert instants == [first + 900 * i for i in range(len(instants))]
    assert len(instants) == 20


# A brute-force oracle for minute-resolution crons: the instants whose local wall time matches
# (the second occurrence of a repeated wall time only with dst_fold="twice").
ZONES = [NY, PARIS, "Australia/Sydney", "Pacific/Auckland", "Australia/Lord_Howe", "Asia/Tokyo"]
TRANSITIONS_2026 = [
    (NY, "2026-03-08T07:00"), (NY, "2026-11-01T06:00"),
    (PARIS, "2026-03-29T01:00"), (PARIS, "2026-10-25T01:00"),
    ("Australia/Sydney", "2026-04-04T16:00"), ("Australia/Sydney", "2026-10-03T16:00"),
    ("Pacific/Auckland", "2026-04-04T14:00"), ("Pacific/Auckland", "2026-09-26T14:00"),
    ("Australia/Lord_Howe", "2026-04-04T15:00"), ("Australia/Lord_Howe", "2026-10-03T15:30"),
    ("Asia/Tokyo", "2026-06-01T00:00"),
]


def oracle_matches(expr: str, zone: str, instant: float, fold: str) -> bool:
    wall = datetime.fromtimestamp(instant, ZoneInfo(zone))
    if fold == "once" and wall.fold == 1 and not is_wildcard(expr):
        return False
    return croniter.match(expr, wall.replace(tzinfo=None))


@given(
    where=st.sampled_from(TRANSITIONS_2026),
    offset_min=st.integers(min_value=-240, max_value=240),
    second=st.integers(min_value=0, max_value=59),
    expr=st.sampled_from(["*/15 * * * *", "0,45 * * * *", "*/7 * * * *", "5 */2 * * *"]),
    fold=st.sampled_from(["once", "twice"]),
    gap=st.sampled_from(["shift", "skip"]),
)
@settings(max_examples=40, deadline=None)
def test_no_matching_instant_is_skipped_near_transitions(where, offset_min, second, expr, fold, gap):
    zone, transition = where
    t = utc(transition) + offset_min * 60 + second
    slot = CronTrigger(expr, timezone=zone, dst_gap=gap, dst_fold=fold).next_after(t)
    assert slot is not None and slot.at > t
    # No instant strictly between t and the slot matches the expression.
    minute = math.floor(t / 60) * 60 + 60
    while minute < slot.at:
        assert not oracle_matches(expr, zone, minute, fold), (
            datetime.fromtimestamp(minute, ZoneInfo(zone)).isoformat()
        )
        minute += 60
    # The slot itself is a match, or a shifted non-existent wall time (DST gap).
    if not oracle_matches(expr, zone, slot.at, fold):
        wall = datetime.fromtimestamp(slot.at, ZoneInfo(zone)).replace(tzinfo=None)
        offsets = {datetime.fromtimestamp(slot.at + d, ZoneInfo(zone)).utcoffset()
                   for d in (-3 * 3600, 3 * 3600)}
        assert len(offsets) == 2, "an unmatched slot must come from a DST gap"
        gap_size = max(offsets) - min(offsets)
        assert croniter.match(expr, wall - gap_size)
        assert slot.skip == ("dst-gap" if gap == "skip" else None)
    else:
        assert slot.skip is None


def test_utc_fast_path_matches_the_zone_path():
    plain = CronTrigger("*/10 * * * *")
    zoned = CronTrigger("*/10 * * * *", timezone="Etc/UTC")
    t = utc("2026-05-05T05:05:05")
    for _ in range(10):
        a, b = plain.next_after(t), zoned.next_after(t)
        assert a == b
        t = a.at


# -- every ---------------------------------------------------------------------------------


def test_every_is_aligned_to_the_epoch():
    trigger = EveryTrigger(10.0)
    assert trigger.next_after(utc("2026-01-01T00:00:03")).at == utc("2026-01-01T00:00:10")
    assert trigger.next_after(utc("2026-01-01T00:00:10")).at == utc("2026-01-01T00:00:20")
    hourly = EveryTrigger(3600.0)
    assert hourly.next_after(utc("2026-01-01T10:59:59")).at == utc("2026-01-01T11:00")


def test_every_with_an_anchor():
    trigger = EveryTrigger(60.0, anchor=1000.0)
    assert trigger.next_after(0.0) == Slot(1000.0)
    assert trigger.next_after(999.999) == Slot(1000.0)
    assert trigger.next_after(1000.0) == Slot(1060.0)
    assert trigger.next_after(1061.0) == Slot(1120.0)


def test_every_with_a_fractional_interval_advances():
    # Regression: 1.1 * k is not exact in binary; the millisecond-rounded slot used to come
    # back equal to t, so the schedule stuck on one instant.
    trigger = EveryTrigger(1.1)
    t = utc("2026-01-01T00:00")
    seen = []
    for _ in range(500):
        t = trigger.next_after(t).at
        seen.append(t)
    assert all(b > a for a, b in pairwise(seen))
    assert all(abs((b - a) - 1.1) < 1e-3 for a, b in pairwise(seen))


intervals = st.one_of(
    st.integers(min_value=1, max_value=86_400).map(float),
    st.integers(min_value=10, max_value=100_000).map(lambda ms: ms / 1000),
    st.floats(min_value=MIN_INTERVAL, max_value=MAX_INTERVAL, allow_nan=False),
)
instants = st.floats(min_value=0.0, max_value=4_102_444_800.0, allow_nan=False)


@given(interval=intervals, t=instants,
       anchor=st.one_of(st.just(0.0), st.integers(min_value=0, max_value=2_000_000_000).map(float)))
@settings(max_examples=100)
def test_every_next_is_after_t_within_one_interval_and_on_the_grid(interval, t, anchor):
    trigger = EveryTrigger(interval, anchor=anchor)
    slot = trigger.next_after(t)
    assert slot.skip is None
    assert slot.at > t
    if t < anchor:
        assert slot.at == anchor
        return
    # Slots are rounded to the millisecond: exact for a whole number of milliseconds, else
    # each slot may move by half a millisecond.
    slack = 1e-6 if round(interval, 3) == interval else 1e-3 + 1e-6
    assert slot.at - t <= interval + slack
    k = round((slot.at - anchor) / interval)
    assert abs(anchor + k * interval - slot.at) <= 5e-4 + 1e-9 * abs(slot.at)
    assert slot.at == round(slot.at, 3)
    # No grid slot lies between t and the returned one.
    if k > 0:
        assert round(anchor + (k - 1) * interval, 3) <= t


@given(interval=intervals, t=instants)
@settings(max_examples=50)
def test_every_walk_is_strictly_increasing(interval, t):
    trigger = EveryTrigger(interval)
    a = trigger.next_after(t)
    b = trigger.next_after(a.at)
    c = trigger.next_after(b.at)
    assert t < a.at < b.at < c.at


@pytest.mark.parametrize("bad", [0, 0.001, -10, MAX_INTERVAL + 1, math.nan, math.inf, True, "10s", None])
def test_every_refuses_bad_intervals(bad):
    with pytest.raises(ValidationError) as exc:
        EveryTrigger(bad)
    assert exc.value.field == "every"


# -- at ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2030-01-01T09:00:00+01:00", "UTC", "2030-01-01T08:00"),
        ("2030-01-01T08:00:00Z", "UTC", "2030-01-01T08:00"),
        ("2030-01-01T08:00:00Z", "Asia/Tokyo", "2030-01-01T08:00"),  # explicit offset wins
        ("2030-01-01T09:00:00", "Europe/Paris", "2030-01-01T08:00"),  # naive: the job's zone
        ("2030-07-01T09:00:00", "Europe/Paris", "2030-07-01T07:00"),
        ("2030-01-01T09:00:00", "UTC", "2030-01-01T09:00"),
        (" 2030-01-01 09:00 ", "UTC", "2030-01-01T09:00"),
        (datetime(2030, 1, 1, 9, 0), "Asia/Tokyo", "2030-01-01T00:00"),
        (datetime(2030, 1, 1, 9, 0, tzinfo=UTC), "Asia/Tokyo", "2030-01-01T09:00"),
    ],
)
def test_at_parse(value, zone, expected):
    trigger = AtTrigger.parse(value, zone)
    assert trigger.at == utc(expected)
    assert trigger.timezone == zone


@pytest.mark.parametrize("bad", ["tomorrow", "2030-13-01T00:00", "", 1893456000, None])
def test_at_parse_refuses_bad_values(bad):
    with pytest.raises(ValidationError) as exc:
        AtTrigger.parse(bad)
    assert exc.value.field == "at"


def test_at_parse_refuses_an_unknown_zone():
    with pytest.raises(ValidationError) as exc:
        AtTrigger.parse("2030-01-01T00:00", "Nowhere/Special")
    assert exc.value.field == "timezone"


def test_at_fires_once():
    trigger = AtTrigger.parse("2030-01-01T00:00:00Z")
    assert trigger.next_after(trigger.at - 1) == Slot(trigger.at)
    assert trigger.next_after(trigger.at) is None
    assert trigger.next_after(trigger.at + 1) is None


# -- serialisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        CronTrigger("*/5 * * * *"),
        CronTrigger("0 */20 * * * *", timezone=PARIS, dst_gap="skip", dst_fold="twice"),
        EveryTrigger(2.5),
        EveryTrigger(60.0, anchor=30.0, timezone=NY),
        AtTrigger.parse("2030-01-01T09:00:00", "Asia/Tokyo"),
    ],
)
def test_trigger_round_trip(trigger):
    data = json.loads(json.dumps(trigger.to_dict()))
    again = trigger_from_dict(data)
    assert again == trigger
    assert type(again) is type(trigger)
    t = utc("2026-06-01T00:00")
    assert again.next_after(t) == trigger.next_after(t)


def test_trigger_from_dict_refuses_an_unknown_kind():
    with pytest.raises(ValidationError) as exc:
        trigger_from_dict({"kind": "sometimes"})
    assert exc.value.field == "trigger"


def test_timedelta_helper_sanity():
    # Guards the helpers above: local() honours fold.
    first = local("2026-11-01T01:30", NY, fold=0)
    second = local("2026-11-01T01:30", NY, fold=1)
    assert second - first == timedelta(hours=1).total_seconds()


@pytest.mark.parametrize("gap", ["shift", "skip"])
def test_every_non_existent_wall_time_of_a_gap_is_planned(gap):
    # Was: after the first shifted slot (03:00 EDT) the fast path jumped to the next day,
    # losing 02:20 and 02:40 (-> 03:20, 03:40) on spring-forward day.
    slots = walk(CronTrigger("*/20 2 * * *", timezone=NY, dst_gap=gap), utc("2026-03-08T06:00"),
                 utc("2026-03-08T08:00"))
    assert ats(slots) == [utc("2026-03-08T07:00"), utc("2026-03-08T07:20"), utc("2026-03-08T07:40")]
    assert {s.skip for s in slots} == ({None} if gap == "shift" else {"dst-gap"})


# -- the ends of the calendar: years 1 and 9999 ------------------------------------------------
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/New_York", "Asia/Tokyo"])
def test_cron_near_year_1_gives_a_slot_a_date_can_show(zone):
    """``* * * * *`` from 0001-01-01T00:30Z: a slot within the hour, never "year 0 is out of
    range" (Kiritimati's wall time of that instant is in year 0: its LMT is UTC-10:29)."""
    start = TIME_MIN + 1800
    slot = CronTrigger("* * * * *", zone).next_after(start)
    assert slot is not None and start < slot.at <= start + 12 * 3600
    assert datetime.fromtimestamp(slot.at, ZoneInfo(zone)).second == 0  # a whole minute of its wall clock


@pytest.mark.parametrize(("expr", "first"), [
    ("0 0 1 1 *", "0001-01-01T00:00:00"), ("@yearly", "0001-01-01T00:00:00"),
    ("0 0 * * mon", "0001-01-01T00:00:00"),  # 0001-01-01 is a Monday
    ("0 0 * * tue", "0001-01-02T00:00:00"), ("0 0 2 1 *", "0001-01-02T00:00:00"),
    ("0 0 0 1 1 *", "0001-01-01T00:00:00"), ("30 0 0 1 1 *", "0001-01-01T00:00:30"),
])
@pytest.mark.parametrize(("zone", "start"), [
    ("UTC", TIME_MIN - 1),  # before year 1: from the calendar's first wall time
    ("America/New_York", TIME_MIN),  # 0001-01-01 00:00 there (LMT, UTC-4:56:02) is 04:56:02Z
])
def test_a_walk_from_the_calendars_start_keeps_its_first_wall_time(expr, first, zone, start):
    """Was: a walk from the first wall time of the calendar (0001-01-01 00:00, ``datetime.min``)
    began after it, so a slot right there was missed, though after ``start`` (``next_after``
    is strictly after ``start``): ``0 0 1 1 *`` gave 0002-01-01. In UTC, from before year 1, it
    gave none at all."""
    assert datetime(1, 1, 1).weekday() == datetime(401, 1, 1).weekday() == 0  # the 400-year cycle
    slot = CronTrigger(expr, zone).next_after(start)
    assert slot is not None and slot.at == local(first, zone) and slot.at > start


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/New_York", "Asia/Tokyo"])
@pytest.mark.parametrize("expr", ["* * * * *", "0 0 1 1 *"])
def test_cron_near_year_9999_ends_instead_of_raising(zone, expr):
    trigger = CronTrigger(expr, zone)
    t = TIME_MAX - 2 * 86400
    for _ in range(4000):  # every minute of the last two days, then the end
        slot = trigger.next_after(t)
        if slot is None:
            break
        assert t < slot.at <= TIME_MAX
        t = slot.at
    else:
        pytest.fail("no end of the slots before year 10000")


def test_every_ends_at_year_9999():
    trigger = EveryTrigger(86400.0)
    last = trigger.next_after(TIME_MAX - 86400 * 1.5)
    assert last is not None and last.at <= TIME_MAX
    assert trigger.next_after(last.at) is None  # the next would be in year 10000
