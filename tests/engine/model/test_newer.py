"""distsched.model.newer: a stored record holding a field a newer distsched node wrote does
not crash this version's reader. Informational records (a worker's or a scheduler's
registration, a result, an attempt record) are read without the field, with ONE WARNING per
(kind, field) per process naming both; records that decide what runs when (a job, its
trigger and policies, a task, its spec and retry policy) are refused naming the field (the
store puts them aside). A known field with a bad value is refused as before."""

import logging

import attrs
import pytest

from distsched.history import stored_attempt
from distsched.model import (
    AtTrigger,
    CronTrigger,
    RetryPolicy,
    Task,
    TaskConfig,
    TaskResult,
    TaskSpec,
    ValidationError,
    Worker,
    newer,
)
from distsched.model.trigger import trigger_from_dict
from distsched.model.trusted import stored_result, stored_spec, stored_task, stored_worker
from distsched.ports import Attempt, SchedulerNode
from distsched.testing import make_job, make_task, make_worker


@pytest.fixture(autouse=True)
def fresh_warnings(caplog):
    """Each test as in a fresh process: no (kind, field) warned yet."""
    newer._warned.clear()
    caplog.set_level(logging.WARNING, logger="distsched.upgrade")
    yield
    newer._warned.clear()


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "distsched.upgrade"]


def _result(**extra):
    return {**TaskResult(task_id="t", attempt_id="t#1", outcome="succeeded", started_at=1.0,
                         finished_at=2.0, worker_id="w1", value=3).to_dict(), **extra}


# -- informational kinds: read without the field, one WARNING per (kind, field) --------------
@pytest.mark.parametrize(("kind", "decode", "record"), [
    ("result", TaskResult.from_dict, _result),
    ("result", stored_result, _result),
    ("worker", Worker.from_dict, lambda **x: {**make_worker("w1", now=5.0).to_dict(), **x}),
    ("worker", stored_worker, lambda **x: {**make_worker("w1", now=5.0).to_dict(), **x}),
    ("scheduler", SchedulerNode.from_dict,
     lambda **x: {"id": "s1", "started_at": 1.0, "last_heartbeat": 2.0, **x}),
    ("attempt", stored_attempt,
     lambda **x: {"attempt_id": "t#1", "number": 1, "outcome": "succeeded", "started_at": 1.0, **x}),
])
def test_an_informational_record_is_read_without_a_newer_field_warning_once(caplog, kind, decode, record):
    plain = decode(record())
    for _ in range(50):  # the leader reads thousands a second: one WARNING, not one a record
        assert decode(record(zone="eu-west-1", cpu_model="x")) == plain
    messages = _warnings(caplog)
    assert len(messages) == 2, messages
    zone = next(m for m in messages if "'zone'" in m)
    assert zone.startswith(f"{kind} record: ignored its field 'zone'")
    assert "a newer distsched node wrote it" in zone and "0.2" in zone
    assert newer.newer_fields_warned() == {(kind, "zone"), (kind, "cpu_model")}


def test_the_same_field_in_another_kind_is_warned_about_again(caplog):
    TaskResult.from_dict(_result(zone="a"))
    Worker.from_dict({**make_worker("w1").to_dict(), "zone": "a"})
    TaskResult.from_dict(_result(zone="b"))
    assert len(_warnings(caplog)) == 2


def test_a_known_field_with_a_bad_value_is_still_refused_beside_a_newer_one():
    with pytest.raises(ValidationError, match="capacity"):
        Worker.from_dict({**make_worker("w1").to_dict(), "capacity": "lots", "zone": "a"})
    with pytest.raises(ValidationError, match="capacity"):
        stored_worker({**make_worker("w1").to_dict(), "capacity": [], "zone": "a"})
    with pytest.raises(ValueError, match="its result's error is not text"):
        stored_result(_result(error=5, zone="a"))
    with pytest.raises(ValidationError, match="outcome"):
        TaskResult.from_dict(_result(outcome="exploded", zone="a"))
    with pytest.raises(ValueError, match="its number is not an attempt number"):
        stored_attempt({"attempt_id": "t#1", "number": 0, "outcome": "failed", "zone": "a"})


def test_the_warnings_are_bounded(caplog, monkeypatch):
    """A store a hostile client filled with distinct names: a bounded set, a last WARNING."""
    monkeypatch.setattr(newer, "MAX_WARNED", 5)
    for i in range(20):
        TaskResult.from_dict(_result(**{f"f{i}": 1}))
    messages = _warnings(caplog)
    assert len(messages) == 6 and "further ones are dropped without a warning" in messages[-1]
    assert len(newer.newer_fields_warned()) == 5


# -- kinds that decide what runs when: refused naming the field ----------------------------
@pytest.mark.parametrize("trigger", [
    CronTrigger("*/5 * * * *", "Europe/Paris").to_dict(),
    make_job("j").trigger.to_dict(),
    AtTrigger(at=2e9).to_dict(),
])
def test_a_trigger_with_a_newer_option_is_refused_naming_it(trigger):
    assert trigger_from_dict(trigger).to_dict() == trigger
    with pytest.raises(ValidationError, match=r"^trigger\.calendar: unknown to this version \(distsched 0\.2") as info:
        trigger_from_dict({**trigger, "calendar": "holidays"})
    assert "a newer distsched node wrote this trigger record" in str(info.value)


@pytest.mark.parametrize(("path", "field"), [
    ((), "depends_on"), (("trigger",), "trigger.calendar"), (("misfire",), "misfire.catch_up"),
    (("overlap",), "overlap.queue"), (("spec",), "spec.priority"), (("spec", "retry"), "spec.retry.on_timeout"),
])
def test_a_job_with_a_newer_field_anywhere_is_refused_naming_it(path, field):
    stored = make_job("j").to_dict()
    assert TaskConfig.from_dict(stored) == make_job("j")
    where = stored
    for part in path:
        where = where[part]
    where[field.rsplit(".", 1)[-1]] = 1
    with pytest.raises(ValidationError, match=rf"^{field}: unknown to this version"):
        TaskConfig.from_dict(stored)


def test_a_spec_or_retry_policy_with_a_newer_field_is_refused_naming_it():
    spec = TaskSpec(target="noop", retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ValidationError, match=r"^spec\.priority: unknown"):
        TaskSpec.from_dict({**spec.to_dict(), "priority": 9})
    with pytest.raises(ValidationError, match=r"^retry\.on_timeout: unknown"):
        RetryPolicy.from_dict({**spec.retry.to_dict(), "on_timeout": False})
    with pytest.raises(ValueError, match=r"^spec\.priority: unknown"):
        stored_spec({**spec.to_dict(), "priority": 9})
    with pytest.raises(ValueError, match=r"^spec\.retry\.on_timeout: unknown"):
        stored_spec({**spec.to_dict(), "retry": {**spec.retry.to_dict(), "on_timeout": False}})
    assert stored_spec(spec.to_dict()) == spec


def test_a_task_with_a_newer_field_is_refused_naming_it_its_results_is_dropped(caplog):
    task = make_task("t", now=10.0)
    values = attrs.asdict(task, recurse=False)
    with pytest.raises(ValueError, match=r"^priority: unknown to this version .* this task record"):
        stored_task({**values, "priority": 3})
    with pytest.raises(ValidationError, match=r"^priority: unknown"):
        Task.from_dict({**task.to_dict(), "priority": 3})
    with pytest.raises(ValidationError, match=r"^spec\.priority: unknown"):
        Task.from_dict({**task.to_dict(), "spec": {**task.spec.to_dict(), "priority": 3}})
    done = Task.from_dict({**task.to_dict(), "result": _result(zone="a")})
    assert done.result == TaskResult.from_dict(_result())
    assert _warnings(caplog) and not any(kind != "result" for kind, _ in newer.newer_fields_warned())


def test_a_known_field_with_a_bad_value_is_refused_as_before_in_a_job():
    stored = make_job("j").to_dict()
    stored["trigger"]["interval"] = -1
    with pytest.raises(ValidationError, match="^every: must be between"):
        TaskConfig.from_dict(stored)


def test_the_record_kinds_are_sorted_into_one_rule_or_the_other():
    assert set(newer.IGNORED).isdisjoint(newer.REFUSED)
    assert newer.init_fields(Attempt) >= {"attempt_id", "number", "outcome"}
