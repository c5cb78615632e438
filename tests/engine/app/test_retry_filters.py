"""Retry policies as Celery, RQ and arq users write them, end to end on memory and real Redis
(the filters and a retry the function asks for on PostgreSQL too):
``retry_on`` / ``dont_retry_on`` (a listed exception is retried, an unlisted one ends the task
with a reason saying why), ``intervals`` (each retry's ``not_before``), and a function that
asks for its own retry (``raise distsched.Retry(after=...)``), counted as an attempt."""

from __future__ import annotations

import pytest

import distsched
from distsched.model import TaskState


def _raise(kind):
    def fail():
        raise kind("the upstream said no")

    return fail


def _delays(app):
    """The delay of every retry the leader scheduled (its not_before minus when it did)."""
    seen: list[tuple[str, float]] = []
    app.listeners.append(lambda e: seen.append((e.task_id, e.delay)) if e.kind == "task.retry_scheduled" else None)
    return seen


async def test_a_listed_exception_is_retried_an_unlisted_one_ends_the_task_saying_why(distsched_app, any_store_url):
    # on PostgreSQL too: each store keeps the policy's new fields and reads them back
    app = await distsched_app(any_store_url, functions={"conn": _raise(ConnectionError), "value": _raise(ValueError),
                                                    "key": _raise(KeyError)})
    retry = {"max_attempts": 3, "backoff": "fixed", "delay": 0, "retry_on": ["ConnectionError", "KeyError"],
             "dont_retry_on": ["KeyboardInterrupt"]}
    for name in ("conn", "value"):
        await app.add_job(name, every="1h", target=name, retry=retry)
    listed = await app.wait(await app.trigger_job("conn"), timeout=15)
    unlisted = await app.wait(await app.trigger_job("value"), timeout=15)

    assert listed.state is TaskState.FAILED and listed.attempt == 3   # every attempt spent
    assert listed.result.error_type == "ConnectionError" and listed.reason is None
    assert unlisted.state is TaskState.FAILED and unlisted.attempt == 1   # not retried
    assert unlisted.result.error_type == "ValueError"
    assert unlisted.reason == "not retried: ValueError is not in retry_on (ConnectionError, KeyError)"
    detail = await app.task_detail(unlisted.id)
    assert [a.outcome for a in detail.attempts] == ["failed"]

    never = await app.wait(await app.submit("key", retry={"max_attempts": 3, "dont_retry_on": ["KeyError"]}),
                           timeout=15)
    assert never.state is TaskState.FAILED and never.attempt == 1
    assert never.reason == "not retried: KeyError is in dont_retry_on"


async def test_intervals_set_each_retrys_not_before_the_last_one_repeating(distsched_app, store_url):
    app = await distsched_app(store_url, functions={"fail": _raise(OSError)})
    seen = _delays(app)
    task_id = await app.submit("fail", retry={"max_attempts": 4, "intervals": ["0.2s", 0.4]})
    task = await app.wait(task_id, timeout=15)
    assert task.state is TaskState.FAILED and task.attempt == 4
    assert [d for t, d in seen if t == task_id] == pytest.approx([0.2, 0.4, 0.4], abs=1e-3)
    attempts = (await app.task_detail(task_id)).attempts
    assert len(attempts) == 4
    for before, after in zip(attempts, attempts[1:]):
        # each retry waited for its not_before (recorded on the attempt that failed)
        assert before.retry_at is not None and after.started_at >= before.retry_at
    for attempt, delay in zip(attempts, (0.2, 0.4, 0.4)):
        # its not_before: the leader's time when it applied the result (just after the
        # attempt's end) plus the interval
        assert delay - 1e-3 <= attempt.retry_at - attempt.finished_at <= delay + 0.5


async def test_a_function_asks_for_its_own_retry_counted_and_capped(distsched_app, any_store_url):
    # on PostgreSQL too: the retry_after a result carries crosses its result channel
    calls: list[int] = []

    def busy():
        calls.append(distsched.current_task().attempt)
        if len(calls) < 3:
            raise distsched.Retry("the printer is busy", after=0.3 if len(calls) == 1 else 60)
        return "printed"

    app = await distsched_app(any_store_url, functions={"busy": busy, "always": _raise(distsched.Retry)})
    seen = _delays(app)
    # retry_on does not hold it back; max_delay caps the 60 s it asked for
    task_id = await app.submit("busy", retry={"max_attempts": 3, "delay": 0, "max_delay": "0.5s", "retry_on": ["OSError"]})
    task = await app.wait(task_id, timeout=15)
    assert task.state is TaskState.SUCCEEDED and task.result.value == "printed"
    assert calls == [1, 2, 3]
    assert [d for t, d in seen if t == task_id] == pytest.approx([0.3, 0.5], abs=1e-3)
    first = (await app.task_detail(task_id)).attempts[0]
    assert first.error == "retry requested (after 0.3s): the printer is busy"
    assert first.error_type == "distsched.Retry"

    spent = await app.wait(await app.submit("always", retry={"max_attempts": 2, "delay": 0}), timeout=15)
    assert spent.state is TaskState.FAILED and spent.attempt == 2
    assert spent.reason == "retry requested, but no attempt left (2 of 2)"
