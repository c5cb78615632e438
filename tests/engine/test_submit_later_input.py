"""``submit(delay=)`` / ``submit(at=)`` / ``submit_many`` per-spec times: what they store and
what they refuse (a ValidationError naming the field and the reason; nothing stored)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from distsched import DistributeSchedule
from distsched.model import TaskSpec, TaskState, ValidationError


@pytest.fixture
async def app():
    app = DistributeSchedule(f"memory://later-{uuid.uuid4().hex}")
    app.task(lambda: None, name="noop")
    return app


async def _stored(app: DistributeSchedule, task_id: str):
    task = await app.get_task(task_id)
    assert task.state is TaskState.PENDING
    return task


@pytest.mark.parametrize("delay, seconds", [(10, 10.0), (2.5, 2.5), ("10s", 10.0), ("1h30m", 5400.0),
                                            (timedelta(minutes=2), 120.0), (0, 0.0)])
async def test_delay_is_stored_as_not_before(app, delay, seconds):
    task = await _stored(app, await app.submit("noop", delay=delay))
    assert task.not_before == pytest.approx(task.created_at + seconds)


@pytest.mark.parametrize("at", [
    lambda now: datetime.fromtimestamp(now + 60, timezone.utc),
    lambda now: datetime.fromtimestamp(now + 60, timezone(timedelta(hours=5))),
    lambda now: datetime.fromtimestamp(now + 60, timezone.utc).isoformat().replace("+00:00", "Z"),
    lambda now: datetime.fromtimestamp(now + 60, timezone(timedelta(hours=-3))).isoformat(),
    lambda now: now + 60,
    lambda now: int(now + 60),
    lambda now: str(now + 60),
])
async def test_at_is_stored_as_not_before(app, at):
    now = (await app.storage()).clock()
    task = await _stored(app, await app.submit("noop", at=at(now)))
    assert task.not_before == pytest.approx(now + 60, abs=1.0)


async def test_a_time_already_past_is_due_at_once(app):
    task = await _stored(app, await app.submit("noop", at="2001-01-01T00:00:00Z"))
    assert task.not_before == task.created_at


@pytest.mark.parametrize("kwargs, field, words", [
    ({"delay": -1}, "delay", "0 or more"),
    ({"delay": "-5s"}, "delay", "duration"),
    ({"delay": "soon"}, "delay", "duration"),
    ({"delay": True}, "delay", "duration"),
    ({"delay": float("inf")}, "delay", "finite"),
    ({"delay": [1]}, "delay", "not a list"),
    ({"at": ("2030-01-01T00:00:00Z",)}, "at", "not a list"),
    ({"delay": "400d"}, "delay", "366 days"),
    ({"delay": timedelta(days=400)}, "delay", "366 days"),
    ({"at": datetime(2030, 1, 1, 9, 0)}, "at", "no time zone"),
    ({"at": "2030-01-01T09:00:00"}, "at", "no time zone"),
    ({"at": datetime(2030, 1, 1).date()}, "at", "date"),
    ({"at": "next tuesday"}, "at", "ISO-8601"),
    ({"at": False}, "at", "date-time"),
    ({"at": float("nan")}, "at", "finite"),
    ({"at": {"t": 1}}, "at", "date-time"),
    ({"at": 1_700_000_000_000}, "at", "milliseconds"),  # epoch ms given as seconds
    ({"delay": "10s", "at": "2030-01-01T00:00:00Z"}, "at", "not both"),
])
async def test_bad_times_are_refused_naming_the_field(app, kwargs, field, words):
    with pytest.raises(ValidationError) as caught:
        await app.submit("noop", task_id="refused", **kwargs)
    assert caught.value.field == field
    assert words in caught.value.reason
    assert (await (await app.storage()).tasks.get("refused")) is None


async def test_submit_many_takes_one_time_for_all_or_one_per_spec(app):
    specs = [TaskSpec(target="noop") for _ in range(3)]
    ids = await app.submit_many(specs, delay="30s")
    for task_id in ids:
        task = await _stored(app, task_id)
        assert task.not_before == pytest.approx(task.created_at + 30)
    ids = await app.submit_many(specs, delay=[None, "10s", timedelta(seconds=20)])
    tasks = [await _stored(app, i) for i in ids]
    assert [t.not_before - t.created_at for t in tasks] == pytest.approx([0, 10, 20])
    now = (await app.storage()).clock()
    ids = await app.submit_many(specs[:2], at=[None, now + 100])
    tasks = [await _stored(app, i) for i in ids]
    assert tasks[0].not_before == tasks[0].created_at
    assert tasks[1].not_before == pytest.approx(now + 100)


async def test_submit_many_refuses_a_bad_per_spec_time_naming_it_and_stores_none(app):
    specs = [TaskSpec(target="noop") for _ in range(3)]
    with pytest.raises(ValidationError) as caught:
        await app.submit_many(specs, task_ids=["a", "b", "c"], delay=["1s", -3, None])
    assert caught.value.field == "delay[1]"
    with pytest.raises(ValidationError) as caught:
        await app.submit_many(specs, task_ids=["a", "b", "c"], at=[None, None])
    assert caught.value.field == "at" and "one per spec" in caught.value.reason
    with pytest.raises(ValidationError) as caught:
        await app.submit_many(specs, task_ids=["a", "b", "c"], delay=[None, "1s", None], at=[None, "2030-01-01T00:00:00Z", None])
    assert caught.value.field == "at[1]"
    assert await (await app.storage()).tasks.get_many(["a", "b", "c"]) == [None, None, None]
