"""A retry says what it retries, and the retried task which retries it: ``retry_task``'s new
task carries ``retry_of`` (the old id) in its spec, which every store keeps in the spec's JSON
(no migration; a record written before reads with none), and its id is ``<old id>.retry-N``,
so ``retried_as`` finds it from the old task with no index. And an ``at`` long past, due at
once, is a WARNING naming the task, not a silence."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.model import Task, TaskSpec


def _past(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "in the past" in r.getMessage()]


async def test_a_retry_links_both_ways_on_every_store(any_store_url: str) -> None:
    app = DistributeSchedule(any_store_url)
    try:
        storage = await app.storage()
        await app.submit("noop", 1, task_id="ops/one")
        await app.cancel_task("ops/one")
        first = await app.retry_task("ops/one")
        second = await app.retry_task("ops/one")
        assert (first, second) == ("ops/one.retry-1", "ops/one.retry-2")
        new = await app.get_task(first)  # read back from the store: the spec's JSON kept the link
        assert new.spec.retry_of == "ops/one" and new.spec.args == (1,) and new.spec.target == "noop"
        assert await app.retried_as("ops/one") == [first, second]
        assert (await app.get_task("ops/one")).spec.retry_of is None
        # a retry of the retry links to the retry, not to the first task
        await app.cancel_task(first)
        again = await app.retry_task(first)
        assert again == "ops/one.retry-1.retry-1" and (await app.get_task(again)).spec.retry_of == first
        assert await app.retried_as(first) == [again] and await app.retried_as("ops/one") == [first, second]

        # a job's task stays with its job; an id too long for the suffix gets a hash of it
        spec = TaskSpec(target="noop")
        now = storage.clock()
        long_id = "j@" + "x" * 254
        await storage.tasks.submit([Task(id="j@1000", spec=spec, job="j", created_at=now),
                                    Task(id=long_id, spec=spec, job="j", created_at=now)])
        for task_id in ("j@1000", long_id):
            await app.cancel_task(task_id)
        assert await app.retry_task("j@1000") == "j@1000.retry-1"
        assert (await app.get_task("j@1000.retry-1")).job == "j"
        hashed = await app.retry_task(long_id)
        assert hashed.startswith("j@retry-") and hashed.endswith(".retry-1") and len(hashed) <= 256
        assert await app.retried_as(long_id) == [hashed]

        # records written before the link: a retry with a random id, and a task named like a
        # retry that is none - nothing is claimed of either
        await storage.tasks.submit([Task(id="old", spec=spec, created_at=now),
                                    Task(id="j@retry-6ff90933aec1", spec=spec, job="j", created_at=now),
                                    Task(id="old.retry-1", spec=spec, created_at=now)])
        await app.cancel_task("old")
        assert await app.retried_as("old") == [] and (await app.get_task("j@retry-6ff90933aec1")).spec.retry_of is None
        # ...and retrying it takes the next free number
        assert await app.retry_task("old") == "old.retry-2"
        # a task that has not finished has no retries to list
        await app.submit("noop", task_id="live")
        assert await app.retried_as("live") == []
    finally:
        await app.stop()


def test_a_spec_without_the_link_encodes_as_before() -> None:
    from distsched.facade import retry_id

    spec = TaskSpec(target="noop")
    assert "retry_of" not in spec.to_dict()
    linked = TaskSpec.from_dict({**spec.to_dict(), "retry_of": "a"})
    assert linked.to_dict()["retry_of"] == "a" and linked.retry_of == "a"
    with pytest.raises(Exception, match="retry_of"):
        TaskSpec(target="noop", retry_of=5)  # type: ignore[arg-type]
    assert retry_id(Task(id="a", spec=spec, created_at=0.0), 3) == "a.retry-3"


async def test_an_at_long_past_is_a_warning_naming_the_task(caplog: pytest.LogCaptureFixture) -> None:
    import uuid

    app = DistributeSchedule(f"memory://past-{uuid.uuid4().hex[:8]}")
    try:
        now = (await app.storage()).clock()
        await app.submit("noop", task_id="epoch", at=0)
        (said,) = _past(caplog)
        assert said.startswith("task 'epoch': at: 1970-01-01T00:00:00Z is ") and "days in the past" in said, said
        assert (await app.get_task("epoch")).state.value == "pending"  # accepted, due at once
        caplog.clear()
        await app.submit("noop", task_id="recent", at=now - 30)  # a clock's or a network's delay: no word
        await app.submit("noop", task_id="later", at=now + 600)
        assert _past(caplog) == []
        ids: Any = ["m0", "m1"]
        await app.submit_many([TaskSpec(target="noop")] * 2, task_ids=ids, at=[now + 5, now - 7200])
        (said,) = _past(caplog)
        assert said.startswith("task 'm1': at[1]: ") and "2h in the past" in said, said
    finally:
        await app.stop()
