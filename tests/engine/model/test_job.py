"""TaskConfig: misfire planning, DST-gap records, slot tasks, overlap decisions, serialisation."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import (
    AtTrigger,
    CronTrigger,
    EveryTrigger,
    MisfirePolicy,
    OverlapPolicy,
    PlannedSlot,
    RetryPolicy,
    TaskConfig,
    TaskSpec,
    TaskState,
    ValidationError,
    build_job,
    slot_task_id,
)
from distsched.model.job import MAX_SLOTS_PER_PASS

T0 = 1_800_000_000.0  # a multiple of 10 s


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def every10(mode: str = "fire-once", grace: float = 15.0, **kwargs) -> TaskConfig:
    return TaskConfig(name="job", trigger=EveryTrigger(10.0), spec=TaskSpec(target="f"),
                      misfire=MisfirePolicy(mode=mode, grace=grace), **kwargs)


def fired(plan) -> list[float]:
    return [s.at for s in plan.slots if s.fire]


def reasons(plan) -> dict[float, str | None]:
    return {s.at: s.reason for s in plan.slots if not s.fire}


# -- misfire modes -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["skip", "fire-once", "fire-all"])
def test_all_slots_on_time_all_fire(mode):
    plan = every10(mode, grace=60.0).plan(T0, T0 + 30)
    assert plan.slots == tuple(PlannedSlot(T0 + d, True) for d in (0, 10, 20, 30))
    assert plan.next_fire_at == T0 + 40


def test_fire_all_fires_every_missed_slot():
    plan = every10("fire-all", grace=15.0).plan(T0, T0 + 50)
    assert fired(plan) == [T0 + d for d in (0, 10, 20, 30, 40, 50)]
    assert plan.next_fire_at == T0 + 60


def test_fire_once_with_an_on_time_slot_fires_only_that_and_coalesces_the_missed():
    plan = every10("fire-once", grace=15.0).plan(T0, T0 + 50)
    # Missed: 0..30 (more than 15 s late); on time: 40, 50.
    assert fired(plan) == [T0 + 40, T0 + 50]
    assert reasons(plan) == {T0 + d: "misfire: coalesced" for d in (0, 10, 20, 30)}


def test_fire_once_with_only_missed_slots_fires_the_latest():
    plan = every10("fire-once", grace=1.0).plan(T0, T0 + 45)
    assert fired(plan) == [T0 + 40]
    assert reasons(plan) == {T0 + d: "misfire: coalesced" for d in (0, 10, 20, 30)}
    assert plan.next_fire_at == T0 + 50


def test_skip_records_missed_slots():
    plan = every10("skip", grace=15.0).plan(T0, T0 + 50)
    assert fired(plan) == [T0 + 40, T0 + 50]
    assert reasons(plan) == {T0 + d: "misfire: skipped" for d in (0, 10, 20, 30)}


def test_grace_boundary_is_on_time():
    plan = every10("skip", grace=10.0).plan(T0, T0 + 10)
    assert fired(plan) == [T0, T0 + 10]


@pytest.mark.parametrize("mode", ["skip", "fire-once"])
def test_a_slot_planned_ahead_of_its_time_is_on_time_whatever_the_grace(mode):
    """The leader plans up to ``fire_ahead`` ahead of ``now``: lateness is measured at
    ``now``, not at the end of the planned range. Measured at the range's end, a grace under
    ``fire_ahead`` (0 s: a slot is on time only when fired at its instant) skipped every slot
    of a healthy leader, 0.2 s before its time."""
    plan = every10(mode, grace=0.0).plan(T0, T0 + 0.2, now=T0 - 0.2)
    assert fired(plan) == [T0] and reasons(plan) == {}
    late = every10(mode, grace=0.0).plan(T0, T0 + 10.2, now=T0 + 10 - 0.2)  # T0 missed by 9.8 s
    assert T0 not in fired(late) and fired(late) == [T0 + 10]


def test_nothing_due_plans_nothing():
    plan = every10().plan(T0, T0 - 5)
    assert plan.slots == () and plan.next_fire_at == T0


def test_limit_caps_the_plan_and_points_at_the_first_unplanned_slot():
    config = every10("fire-all", grace=1e6)
    plan = config.plan(T0, T0 + 1000, limit=7)
    assert [s.at for s in plan.slots] == [T0 + 10 * i for i in range(7)]
    assert plan.next_fire_at == T0 + 70
    rest = config.plan(plan.next_fire_at, T0 + 1000, limit=1000)
    assert rest.slots[0].at == T0 + 70 and rest.slots[-1].at == T0 + 1000
    assert len(plan.slots) + len(rest.slots) == 101


def test_default_limit():
    config = every10("skip", grace=0.0)
    plan = config.plan(T0, T0 + 10 * (MAX_SLOTS_PER_PASS + 500))
    assert len(plan.slots) == MAX_SLOTS_PER_PASS
    assert plan.next_fire_at == T0 + 10 * MAX_SLOTS_PER_PASS


def test_fire_once_across_passes_fires_once():
    # Regression: with more missed slots than the limit, each pass used to fire the latest
    # slot of its own part, so fire-once ran once per pass.
    config = every10("fire-once", grace=1.0)
    now = T0 + 995
    start, total_fired, seen = T0, [], []
    while start is not None and start <= now:
        plan = config.plan(start, now, limit=30)
        total_fired += fired(plan)
        seen += [s.at for s in plan.slots]
        start = plan.next_fire_at
    assert total_fired == [T0 + 990]
    assert seen == [T0 + 10 * i for i in range(100)]


def test_dst_gap_slot_comes_back_skipped_with_its_reason():
    config = TaskConfig(
        name="nightly", spec=TaskSpec(target="f"),
        trigger=CronTrigger("30 2 * * *", timezone="America/New_York", dst_gap="skip"),
        misfire=MisfirePolicy(mode="fire-all", grace=60.0),
    )
    plan = config.plan(utc("2026-03-07T00:00"), utc("2026-03-09T12:00"))
    assert plan.slots == (
        PlannedSlot(utc("2026-03-07T07:30"), True),
        PlannedSlot(utc("2026-03-08T07:30"), False, "dst-gap"),
        PlannedSlot(utc("2026-03-09T06:30"), True),
    )
    assert plan.next_fire_at == utc("2026-03-10T06:30")


@pytest.mark.parametrize("year", [2026, 2300, 2515, 2600, 5000, 9997])
@pytest.mark.parametrize("trigger", [CronTrigger("0 0 1 1 *"), CronTrigger("0 0 1 1 *", "Europe/Paris"),
                                     CronTrigger("*/5 0 0 1 1 *"), EveryTrigger(3600.0), EveryTrigger(0.25)],
                         ids=["cron", "cron-paris", "cron-seconds", "every-1h", "every-250ms"])
def test_plan_from_a_slot_plans_that_slot_in_any_year(trigger, year):
    """Was: ``plan`` started at ``next_after(next_fire_at - 1e-6)``; after year 2514 (2**34 s)
    a float no longer holds 1e-6, so the slot at ``next_fire_at`` was skipped - a yearly job
    from a 2600-01-01 slot planned nothing and moved to 2601 (probe finding)."""
    config = TaskConfig(name="job", trigger=trigger, spec=TaskSpec(target="f"))
    first = trigger.next_after(utc(f"{year}-01-01T00:00") - 1.0).at
    second = trigger.next_after(first).at
    plan = config.plan(first, first)
    assert [s.at for s in plan.slots] == [first] and plan.slots[0].fire
    assert plan.next_fire_at == second
    assert [s.at for s in config.plan(first, second).slots] == [first, second]
    assert [s.at for s in config.plan(second, second).slots] == [second]


def test_plan_without_trigger_and_exhausted_trigger():
    bare = TaskConfig(name="manual", spec=TaskSpec(target="f"))
    assert bare.plan(T0, T0 + 100).slots == () and bare.plan(T0, T0 + 100).next_fire_at is None
    once = TaskConfig(name="once", spec=TaskSpec(target="f"), trigger=AtTrigger(T0 + 5))
    plan = once.plan(T0, T0 + 100)
    assert plan.slots == (PlannedSlot(T0 + 5, True),) and plan.next_fire_at is None


@given(
    mode=st.sampled_from(["skip", "fire-once", "fire-all"]),
    grace=st.integers(min_value=0, max_value=120).map(float),
    start_k=st.integers(min_value=0, max_value=1000),
    offset=st.floats(min_value=0.0, max_value=9.999),
    span=st.floats(min_value=-20.0, max_value=400.0),
    limit=st.integers(min_value=1, max_value=60),
    gap=st.booleans(),
)
@settings(max_examples=100)
def test_plan_accounts_for_every_slot_exactly_once(mode, grace, start_k, offset, span, limit, gap):
    config = every10(mode, grace=grace)
    trigger = config.trigger
    # next_fire_at is a slot (as the leader stores it), or just after one when gap is set.
    next_fire_at = T0 + 10 * start_k + (offset if gap else 0.0)
    now = next_fire_at + span
    plan = config.plan(next_fire_at, now, limit=limit)

    expected: list[float] = []
    slot = trigger.next_after(next_fire_at - 1e-6)
    while slot.at <= now:
        expected.append(slot.at)
        slot = trigger.next_after(slot.at)
    planned = [s.at for s in plan.slots]
    assert planned == expected[:limit]
    assert len(set(planned)) == len(planned)
    # The plan's next slot is the first one not planned (due or not).
    assert plan.next_fire_at == (expected + [slot.at])[min(limit, len(expected))]
    assert plan.next_fire_at > (planned[-1] if planned else next_fire_at - 1e-6)

    on_time = [at for at in planned if now - at <= grace]
    missed = [at for at in planned if now - at > grace]
    more_due = len(expected) > limit
    for s in plan.slots:
        assert s.fire == (s.reason is None)
        if s.at in on_time:
            assert s.fire
    if mode == "fire-all":
        assert all(s.fire for s in plan.slots)
    elif mode == "skip":
        assert {s.at: s.reason for s in plan.slots if not s.fire} == {at: "misfire: skipped" for at in missed}
    else:
        if on_time or more_due:
            assert fired(plan) == on_time
            assert reasons(plan) == {at: "misfire: coalesced" for at in missed}
        else:
            assert fired(plan) == missed[-1:]
            assert reasons(plan) == {at: "misfire: coalesced" for at in missed[:-1]}


# -- slot tasks ----------------------------------------------------------------------------


def test_create_task_has_the_deterministic_slot_id():
    config = every10()
    a = config.create_task(T0 + 10, now=T0 + 11)
    b = config.create_task(T0 + 10, now=T0 + 99)
    c = config.create_task(T0 + 20, now=T0 + 11)
    assert a.id == b.id == slot_task_id("job", T0 + 10)
    assert c.id != a.id
    assert a.job == "job" and a.slot == T0 + 10 and a.created_at == T0 + 11
    assert a.state is TaskState.PENDING and a.spec == config.spec
    assert a.serial_limit is None


@pytest.mark.parametrize(("mode", "limit"), [("parallel", None), ("serial", 3), ("discard", None), ("replace", None)])
def test_create_task_sets_serial_limit_only_for_serial(mode, limit):
    config = every10(overlap=OverlapPolicy(mode=mode, max_instances=3))
    assert config.create_task(T0, T0).serial_limit == limit


def test_skipped_task_has_the_slot_id_and_reason():
    task = every10().skipped_task(T0, "misfire: skipped", now=T0 + 5)
    assert task.id == slot_task_id("job", T0)
    assert task.state is TaskState.SKIPPED and task.reason == "misfire: skipped"


def test_balance_key_defaults_to_the_job_name():
    assert every10().spec.balance_key == "job"
    config = TaskConfig(name="job", spec=TaskSpec(target="f", balance_key="tenant-7"))
    assert config.spec.balance_key == "tenant-7"


def test_upcoming_and_next_fire_after():
    config = every10()
    assert config.next_fire_after(T0) == T0 + 10
    assert [s.at for s in config.upcoming(T0, 3)] == [T0 + 10, T0 + 20, T0 + 30]
    bare = TaskConfig(name="manual", spec=TaskSpec(target="f"))
    assert bare.next_fire_after(T0) is None and bare.upcoming(T0, 3) == []


# -- overlap -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("parallel", "fire"), ("serial", "queue"), ("discard", "discard"), ("replace", "replace")],
)
def test_overlap_decide(mode, expected):
    policy = OverlapPolicy(mode=mode, max_instances=2)
    assert policy.decide(0) == "fire"
    assert policy.decide(1) == "fire"
    assert policy.decide(2) == expected
    assert policy.decide(50) == expected


@given(mode=st.sampled_from(["parallel", "serial", "discard", "replace"]),
       max_instances=st.integers(min_value=1, max_value=10_000),
       live=st.integers(min_value=0, max_value=20_000))
@settings(max_examples=50)
def test_overlap_decide_property(mode, max_instances, live):
    decision = OverlapPolicy(mode=mode, max_instances=max_instances).decide(live)
    if mode == "parallel" or live < max_instances:
        assert decision == "fire"
    else:
        assert decision == {"serial": "queue", "discard": "discard", "replace": "replace"}[mode]


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: MisfirePolicy(mode="later"), "misfire"),
        (lambda: MisfirePolicy(grace=-1.0), "misfire_grace"),
        (lambda: MisfirePolicy(grace=float("nan")), "misfire_grace"),
        (lambda: MisfirePolicy(grace=True), "misfire_grace"),
        (lambda: MisfirePolicy(grace=400 * 86400), "misfire_grace"),
        (lambda: OverlapPolicy(mode="sometimes"), "overlap"),
        (lambda: OverlapPolicy(max_instances=0), "max_instances"),
        (lambda: OverlapPolicy(max_instances=10_001), "max_instances"),
        (lambda: OverlapPolicy(max_instances=1.5), "max_instances"),
        (lambda: OverlapPolicy(max_instances=True), "max_instances"),
        (lambda: TaskConfig(name="", spec=TaskSpec(target="f")), "name"),
        (lambda: TaskConfig(name="has space", spec=TaskSpec(target="f")), "name"),
        (lambda: TaskConfig(name="-leading", spec=TaskSpec(target="f")), "name"),
        (lambda: TaskConfig(name="x" * 129, spec=TaskSpec(target="f")), "name"),
        (lambda: TaskConfig(name=None, spec=TaskSpec(target="f")), "name"),
        (lambda: TaskConfig(name="j", spec=TaskSpec(target="f"), enabled="false"), "enabled"),
        (lambda: TaskConfig.from_dict({"name": "j", "spec": {"target": "f"}, "enabled": 1}), "enabled"),
        # read by cron jobs only, checked for every job: a typo is not silently ignored
        (lambda: build_job("j", every="1s", dst_gap="foo"), "dst_gap"),
        (lambda: build_job("j", at="2030-01-01T00:00:00Z", dst_fold="thrice"), "dst_fold"),
        (lambda: build_job("j", every="1s", misfire_grace="-1s"), "misfire_grace"),
        (lambda: build_job("j", every="1s", misfire_grace="nan"), "misfire_grace"),
        (lambda: build_job("j", every="1s", retry={"delay": "1x"}), "retry.delay"),
    ],
)
def test_invalid_job_values_name_the_field(make, field):
    with pytest.raises(ValidationError) as exc:
        make()
    assert exc.value.field == field


def test_a_zero_grace_or_delay_reads_the_same_with_units():
    """``"0s"`` is ``0``: a misfire grace and a retry delay may be 0 (their own ranges); the
    string was held to an interval's range (0.01 s to 366 d) and refused."""
    with_units = build_job("j", every="1s", misfire_grace="0s", retry={"delay": "0s", "max_delay": "0ms"})
    plain = build_job("j", every="1s", misfire_grace=0, retry={"delay": 0, "max_delay": 0})
    assert with_units == plain and with_units.misfire.grace == 0 and with_units.spec.retry.delay == 0


# -- serialisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        every10("skip", grace=5.0, description="every ten seconds",
                overlap=OverlapPolicy(mode="serial", max_instances=2)),
        TaskConfig(
            name="nightly", spec=TaskSpec(executor="http", target="https://example.test/x", args=[1, "a"],
                                          kwargs={"k": [1, 2]}, options={"method": "POST"}, timeout=5.0,
                                          retry=RetryPolicy(max_attempts=4, jitter=0.1), balancer="round-robin"),
            trigger=CronTrigger("30 2 * * *", timezone="America/New_York", dst_gap="skip", dst_fold="twice"),
            enabled=False, version=3,
        ),
        TaskConfig(name="once", spec=TaskSpec(target="f"), trigger=AtTrigger.parse("2030-01-01T00:00Z")),
        TaskConfig(name="manual", spec=TaskSpec(target="f")),
    ],
)
def test_config_round_trip(config):
    data = json.loads(json.dumps(config.to_dict()))
    again = TaskConfig.from_dict(data)
    assert again == config
    assert again.to_dict() == config.to_dict()
    if config.trigger is not None:
        assert again.plan(T0, T0 + 100) == config.plan(T0, T0 + 100)


def test_from_dict_defaults():
    config = TaskConfig.from_dict({"name": "j", "spec": {"target": "f"}})
    assert config.trigger is None and config.enabled and config.version == 0
    assert config.misfire == MisfirePolicy() and config.overlap == OverlapPolicy()
