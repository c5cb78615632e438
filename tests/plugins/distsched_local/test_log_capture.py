"""What a task's code logs is kept with its attempt's result (``TaskResult.log``): through a
real worker on memory, Redis and PostgreSQL, for sync and async functions, one task's lines
only even when two run at once in one worker; the last ``log_capture`` bytes, the cut said;
secrets masked; control characters escaped; on a return, a raise and a timeout alike."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.model import TaskState, ValidationError
from distsched_local.capture import DEFAULT_LOG_CAPTURE, capture_limit

log = logging.getLogger("tasks.capture_test")
log.setLevel(logging.INFO)  # a level of its own (the root's WARNING no longer hides INFO: test_log_capture_level.py)


def chatty(n: int) -> int:
    log.info("step %d of %d", 1, n)
    log.warning("almost done\x1b[31m red\rrewritten")
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
    return n


async def async_chatty(secret_arg: str) -> str:
    log.info("async start")
    await asyncio.sleep(0)
    log.error("async end")
    return "ok"


def raises() -> None:
    log.info("about to fail")
    raise ValueError("it went wrong")


async def hangs() -> None:
    log.info("waiting for ever")
    await asyncio.Event().wait()


def many(n: int) -> None:
    for i in range(n):
        log.info("line %04d %s", i, "x" * 20)


def leaks() -> None:
    log.warning("connecting to postgresql://report:hunter2@db.internal/sales with password=s3cr3t-pw")


#: Two sync functions that run at once (a barrier lets neither go on alone) and two async.
_barrier = threading.Barrier(2, timeout=10)


def sync_pair(name: str) -> str:
    log.info("%s first", name)
    _barrier.wait()
    log.info("%s second", name)
    _barrier.wait()
    return name


_async_gate: dict[str, asyncio.Event] = {}


async def async_pair(name: str, other: str) -> str:
    _async_gate.setdefault(name, asyncio.Event()).set()
    log.info("%s first", name)
    await _async_gate.setdefault(other, asyncio.Event()).wait()
    await asyncio.sleep(0)
    log.info("%s second", name)
    return name


FUNCTIONS = {"chatty": chatty, "async_chatty": async_chatty, "raises": raises, "hangs": hangs, "many": many,
             "leaks": leaks, "sync_pair": sync_pair, "async_pair": async_pair}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://log-{uuid.uuid4().hex}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"log{uuid.uuid4().hex[:10]}")
    return request.getfixturevalue("redis_server").url_for(namespace=f"log{uuid.uuid4().hex[:10]}")


async def _run(app: Any, target: str, *args: Any, **kw: Any) -> Any:
    task = await app.wait(await app.submit(target, *args, **kw), timeout=15)
    return task


async def test_a_tasks_lines_are_stored_with_its_result(distsched_app, store_url):
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run(app, "chatty", 3)
    assert task.state is TaskState.SUCCEEDED and task.result.value == 3
    lines = task.result.log.splitlines()
    assert lines[0].endswith(" INFO tasks.capture_test: step 1 of 3"), lines
    assert lines[0][:24].endswith("Z") and lines[0][4] == "-" and lines[0][10] == "T"  # 2026-12-08T00:53:02.123Z
    # control characters escaped (a terminal or a page gets no escape sequence), the line kept
    assert lines[1].endswith(" WARNING tasks.capture_test: almost done\\x1b[31m red\\x0drewritten")
    assert lines[2].endswith(" ERROR tasks.capture_test: lookup failed")
    assert lines[3].startswith('  File "') and lines[3].endswith(", in chatty")
    assert lines[4] == "  KeyError: 'missing'" and len(lines) == 5
    # read back by another client of the store (the CLI, the dashboard)
    stored = await (await app.storage()).tasks.get(task.id)
    assert stored.result.log == task.result.log

    task = await _run(app, "async_chatty", "arg-value-never-logged")
    assert [line.split(" ", 1)[1] for line in task.result.log.splitlines()] == [
        "INFO tasks.capture_test: async start", "ERROR tasks.capture_test: async end"]
    assert "arg-value-never-logged" not in task.result.log  # the task's arguments are not written


async def test_a_failed_and_a_timed_out_attempt_keep_what_they_logged(distsched_app):
    app = await distsched_app(functions=FUNCTIONS)
    task = await _run(app, "raises")
    assert task.state is TaskState.FAILED and task.result.error == "ValueError: it went wrong"
    assert task.result.log.endswith(" INFO tasks.capture_test: about to fail")
    task = await _run(app, "hangs", timeout=0.3)
    assert task.state is TaskState.TIMED_OUT and task.result.error_type == "Timeout"
    assert task.result.log.endswith(" INFO tasks.capture_test: waiting for ever")


async def test_two_tasks_running_at_once_in_one_worker_each_get_their_own_lines(distsched_app, store_url):
    app = await distsched_app(store_url, functions=FUNCTIONS, worker=WorkerConfig(name="pair", concurrency=4))
    _async_gate.clear()
    ids = [await app.submit("sync_pair", "alpha"), await app.submit("sync_pair", "beta"),
           await app.submit("async_pair", "gamma", "delta"), await app.submit("async_pair", "delta", "gamma")]
    tasks = [await app.wait(task_id, timeout=15) for task_id in ids]
    for task, name in zip(tasks, ("alpha", "beta", "gamma", "delta")):
        assert task.state is TaskState.SUCCEEDED, task.result
        assert [line.split(": ", 1)[1] for line in task.result.log.splitlines()] == [f"{name} first", f"{name} second"]
    assert len({t.result.worker_id for t in tasks}) == 1  # one worker ran them all


async def test_only_the_last_bytes_are_kept_and_the_cut_is_said(distsched_app):
    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(settings={"log_capture": 600}))
    task = await _run(app, "many", 100)
    text = task.result.log
    first, *kept = text.splitlines()
    assert kept[-1].endswith("line 0099 " + "x" * 20)
    each = len(kept[-1]) + 1  # every line has the same length here (and its newline)
    assert len(kept) == 600 // each and first == (
        f"[log truncated: {100 - len(kept)} earlier lines ({(100 - len(kept)) * each} bytes) dropped; "
        f"the last 600 bytes are kept]")
    assert len(text.encode()) - len(first) - 1 <= 600


async def test_log_capture_0_turns_it_off(distsched_app):
    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(settings={"log_capture": 0}))
    task = await _run(app, "chatty", 1)
    assert task.state is TaskState.SUCCEEDED and task.result.log is None


async def test_a_secret_in_a_logged_line_is_masked_before_it_leaves_the_worker(distsched_app, store_url):
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run(app, "leaks")
    # as the store holds it (no display masked it): the worker masked it
    stored = (await (await app.storage()).tasks.get(task.id)).result.log
    assert "hunter2" not in stored and "s3cr3t-pw" not in stored
    assert stored.endswith("connecting to postgresql://report:***@db.internal/sales with password=***")


def test_the_setting_is_a_number_of_bytes():
    assert capture_limit(None) == DEFAULT_LOG_CAPTURE == 16 * 1024
    assert capture_limit(0) == 0 and capture_limit(256 * 1024) == 256 * 1024
    for bad in ("16k", -1, 256 * 1024 + 1, True, 1.5):
        with pytest.raises(ValidationError, match=r"^log_capture: must be a number of bytes from 0 \(no capture\) "
                                                  r"to 262144, not "):
            capture_limit(bad)


async def test_a_worker_with_a_bad_setting_does_not_start(distsched_app):
    with pytest.raises(ValidationError, match="log_capture: must be a number of bytes"):
        await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(settings={"log_capture": "16k"}))
