"""A misbehaving task affects only itself (issue 16.3), on memory and on real Redis.

Each test runs a scheduler and a worker, submits the bad task and then a healthy one: the bad
one fails with a clear error, the healthy one still runs, and the worker that ran both is
the same one (it was not deregistered or wedged)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time

import pytest

from distsched.config import WorkerConfig
from distsched.model.result import MAX_ERROR_CHARS


def ok():
    return "fine"


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


def lone_surrogate():
    return {"text": "\udcff"}


def huge_int():
    return 10**5000


def exits():
    sys.exit(3)


async def exits_async():
    sys.exit("bye")


def interrupts():
    raise KeyboardInterrupt


async def generator_exit():
    raise GeneratorExit


def unprintable():
    raise Unprintable()


def huge_error():
    raise ValueError("x" * (50 * 1024 * 1024))


async def blocks_the_loop():
    time.sleep(0.8)  # the mistake: a blocking call in an async function
    return "done"


async def blocks_past_its_timeout():
    time.sleep(0.6)  # blocks the loop past a 0.2 s timeout: asyncio's timeout cannot interrupt it
    return "late"


class Abort(BaseException):  # pytest's OutcomeException, gevent.Timeout...
    pass


def aborts():
    raise Abort("give up")


async def aborts_async():
    raise Abort("give up")


def uses_a_cancelled_future():
    future = concurrent.futures.Future()
    future.cancel()
    return future.result()  # concurrent.futures.CancelledError, of the function's own


async def awaits_a_cancelled_future():
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    return await future  # asyncio.CancelledError, though nobody cancelled the task


def first_match():
    return next(x for x in [1, 2, 3] if x > 10)  # StopIteration


def times_out_itself():
    raise TimeoutError("GET https://api.example/v1/orders: read timed out after 30s")


async def times_out_itself_async():
    raise TimeoutError("read timed out after 30s")


async def times_out_its_own_wait_for():
    await asyncio.wait_for(asyncio.Event().wait(), 0.01)  # asyncio.TimeoutError (Python 3.10: not TimeoutError)


FUNCTIONS = {f.__name__: f for f in (ok, lone_surrogate, huge_int, exits, exits_async, interrupts,
                                     generator_exit, unprintable, huge_error, blocks_the_loop,
                                     blocks_past_its_timeout, aborts, aborts_async, uses_a_cancelled_future,
                                     awaits_a_cancelled_future, first_match, times_out_itself,
                                     times_out_itself_async, times_out_its_own_wait_for)}


async def _run_bad_then_good(app, bad: str, **options):
    worker_before = app.engine.worker.id
    bad_id = await app.submit(bad, **options)
    bad_task = await app.wait(bad_id, timeout=20)
    good = await app.result(await app.submit("ok"), timeout=20)
    assert good.value == "fine"
    assert app.engine.worker.id == worker_before, "the worker was not re-registered"
    workers = await (await app.storage()).workers.list_workers()
    assert [w.id for w in workers] == [worker_before]
    return bad_task


async def _blocked_of(storage, worker_id: str) -> int | None:
    return {w.id: w.blocked for w in await storage.workers.list_workers()}.get(worker_id)


async def _until_blocked(storage, worker_id: str, count: int, why: str) -> None:
    """Poll the store until the worker reports ``count`` blocked execution slots."""
    deadline = time.monotonic() + 10
    while await _blocked_of(storage, worker_id) != count:
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("func", ["lone_surrogate", "huge_int"])
async def test_a_result_the_store_cannot_encode_fails_only_its_task(distsched_app, store_url, func):
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run_bad_then_good(app, func)
    # the int-to-str limit came in 3.11 and in 3.10.7 (and 3.9.14...): a Python without it stores it
    if func == "huge_int" and not hasattr(sys, "get_int_max_str_digits"):
        assert task.state.value == "succeeded" and task.result.value == 10**5000
        return
    assert task.state.value == "failed"
    assert task.result.error_type == "ResultNotJSON"
    assert "cannot be stored" in task.result.error


@pytest.mark.parametrize("func, kind", [("exits", "SystemExit"), ("exits_async", "SystemExit"),
                                        ("interrupts", "KeyboardInterrupt"), ("generator_exit", "GeneratorExit")])
async def test_exit_and_interrupt_in_a_task_are_its_failure(distsched_app, store_url, func, kind):
    """Was, on Python 3.10: the SystemExit or KeyboardInterrupt left the function's own asyncio
    task (``asyncio.wait_for`` ran it in one) and stopped the event loop: the whole process."""
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run_bad_then_good(app, func)
    assert task.state.value == "failed"
    assert task.result.error_type == kind
    assert "the worker goes on" in task.result.error


@pytest.mark.parametrize("func, kind, error", [
    ("aborts", "Abort", "Abort: give up"),
    ("aborts_async", "Abort", "Abort: give up"),
    ("uses_a_cancelled_future", "CancelledError", "CancelledError"),
    ("awaits_a_cancelled_future", "CancelledError", "CancelledError"),
    ("first_match", "StopIteration", "StopIteration"),
    ("times_out_itself", "TimeoutError", "TimeoutError: GET https://api.example/v1/orders: read timed out after 30s"),
    ("times_out_itself_async", "TimeoutError", "TimeoutError: read timed out after 30s"),
    ("times_out_its_own_wait_for", "TimeoutError", "TimeoutError"),
])
async def test_what_a_task_raises_is_its_prompt_failure(distsched_app, store_url, func, kind, error):
    """A BaseException subclass, a CancelledError of the task's own (not the worker's
    cancellation), a StopIteration from a sync function, a TimeoutError of the function (not
    its attempt's timeout): each fails its task at once, with its type and message; the
    attempt is not left running until its timeout (which was 30 s) and recorded timed out.
    Was, on Python 3.10: a CancelledError of the task's own was taken as the worker's
    cancellation - nothing was recorded, and the task read running until the leader timed it
    out (the function ran in an asyncio task of its own, under ``asyncio.wait_for``)."""
    app = await distsched_app(store_url, functions=FUNCTIONS)
    started = time.monotonic()
    task = await _run_bad_then_good(app, func, timeout=30, retry={"max_attempts": 1})
    assert time.monotonic() - started < 10
    assert task.state.value == "failed", task.result
    assert (task.result.error_type, task.result.error) == (kind, error)
    assert task.result.retryable


async def test_an_exception_that_cannot_be_printed_still_fails_its_task(distsched_app, store_url):
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run_bad_then_good(app, "unprintable")
    assert task.state.value == "failed"
    assert task.result.error == "Unprintable: <Unprintable object: str() raised RuntimeError>"


async def test_a_huge_error_message_is_capped(distsched_app, store_url):
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run_bad_then_good(app, "huge_error")
    assert task.state.value == "failed"
    assert len(task.result.error) < MAX_ERROR_CHARS + 100
    assert task.result.error.endswith("more characters]")


async def test_an_async_task_that_blocks_the_loop_is_named(distsched_app, store_url, monkeypatch, caplog):
    """An async function that blocks holds every task, heartbeat and report of its worker:
    the engine says so while it is held - naming the task, its function's file and line, and
    what to do - and for how long once it is free; the task itself still succeeds."""
    from distsched.app import engine as engine_module

    monkeypatch.setattr(engine_module, "LOOP_HELD_WARNING", 0.2)
    caplog.set_level("WARNING", logger="distsched.engine")
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run_bad_then_good(app, "blocks_the_loop")
    assert task.state.value == "succeeded"
    messages = [r.getMessage() for r in caplog.records if r.name == "distsched.engine"]
    held = [m for m in messages if "has held the event loop" in m]
    assert len(held) == 1, messages
    assert held[0].startswith(f"task {task.id} ") and "an async function must not block" in held[0]
    assert "the worker's other tasks, heartbeats and reports, the scheduler's passes and lease renewals" in held[0]
    line = blocks_the_loop.__code__.co_firstlineno + 1
    assert f"{__file__}:{line} in blocks_the_loop()" in held[0], held[0]
    freed = [m for m in messages if "the event loop was held for about" in m]
    assert len(freed) == 1 and freed[0].endswith(f"by task {task.id}"), messages


async def test_an_async_task_that_blocks_past_its_timeout_has_timed_out(distsched_app, store_url):
    """A timeout cannot interrupt an async function that blocks the loop (its timer runs on
    that loop): it returns after its timeout. It is recorded as timed out, as a sync function
    past its timeout is, and its error says why the timeout did not stop it."""
    app = await distsched_app(store_url, functions=FUNCTIONS)
    task = await _run_bad_then_good(app, "blocks_past_its_timeout", timeout=0.2)
    assert task.state.value == "timed_out", task.result
    assert task.result.value is None
    assert task.result.error_type == "Timeout"
    assert task.result.error.startswith("timed out after 0.2s (attempt took "), task.result.error
    assert task.result.duration >= 0.6  # it ran to its end: nothing could interrupt it
    assert "the event loop was held past its deadline" in task.result.error
    assert task.result.error.endswith("so its timeout could not interrupt it")


async def test_stuck_sync_functions_shrink_the_workers_capacity(distsched_app, distsched_workers, store_url):
    """Two sync calls that outlive their timeout hold both threads of a concurrency-2 worker:
    it reports them as blocked, takes no new task, and the leader sends work elsewhere."""
    release = threading.Event()

    def hang():
        release.wait(60)
        return "late"

    def where():
        return threading.current_thread().name

    functions = {"hang": hang, "where": where}
    app = await distsched_app(store_url, functions=functions, worker=WorkerConfig(name="stuck", concurrency=2),
                              heartbeat_interval=0.1)
    try:
        stuck_id = app.engine.worker.id
        hung = [await app.submit("hang", timeout=0.3, retry={"max_attempts": 1}) for _ in range(2)]
        for task_id in hung:
            assert (await app.wait(task_id, timeout=20)).state.value == "timed_out"
        storage = await app.storage()
        await _until_blocked(storage, stuck_id, 2, "the worker never reported its blocked slots")
        (other,) = await distsched_workers(store_url, 1, functions=functions)
        results = [await app.result(await app.submit("where"), timeout=20) for _ in range(4)]
        assert {r.worker_id for r in results} == {other.engine.worker.id}
    finally:
        release.set()
    # the threads returned: the slots are free again
    await _until_blocked(storage, stuck_id, 0, "blocked slots were never given back")


def _goes_on_after_cancel(release: asyncio.Event, started: asyncio.Event | None = None):
    """An async function that catches the worker's cancellation and goes on until released."""

    async def goes_on():
        if started is not None:
            started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                pass  # the mistake: the cancellation is swallowed
        return "late"

    return goes_on


async def test_an_async_task_that_goes_on_after_its_timeout_keeps_its_slot(distsched_app, distsched_workers,
                                                                           store_url, caplog):
    """Was: an async function that caught the CancelledError of its timeout and went on kept
    its worker's only execution slot, yet the worker reported nothing blocked; once its task
    was timed out (by the leader, ``timeout_grace`` later) the store counted the worker's load
    as 0, so the leader kept sending it tasks it could not start. Now the worker records the
    attempt timed out ``CANCEL_GRACE`` after its timeout, and reports the slot as blocked
    until the coroutine ends: work goes to the other worker meanwhile."""
    caplog.set_level("WARNING", logger="distsched.worker")
    release = asyncio.Event()

    def where():
        return "ran"

    functions = {"goes_on": _goes_on_after_cancel(release), "where": where}
    app = await distsched_app(store_url, functions=functions, worker=WorkerConfig(name="stuck", concurrency=1),
                              heartbeat_interval=0.1)
    storage = await app.storage()
    stuck_id = app.engine.worker.id
    try:
        started = time.monotonic()
        task = await app.wait(await app.submit("goes_on", timeout=0.3, retry={"max_attempts": 1}), timeout=20)
        assert task.state.value == "timed_out", task.result
        # by the worker, CANCEL_GRACE (1 s) after the timeout; not by the leader, timeout_grace (5 s) after it
        assert time.monotonic() - started < 3.5
        assert task.result.worker_id == stuck_id
        assert "caught the cancellation at its timeout and went on" in task.result.error, task.result.error
        await _until_blocked(storage, stuck_id, 1, "the worker never reported the slot the coroutine holds")
        (other,) = await distsched_workers(store_url, 1, functions=functions)
        results = [await app.result(await app.submit("where"), timeout=20) for _ in range(4)]
        assert {r.worker_id for r in results} == {other.engine.worker.id}
        assert await _blocked_of(storage, stuck_id) == 1
    finally:
        release.set()
    await _until_blocked(storage, stuck_id, 0, "the blocked slot was never given back")  # it returned
    assert (await app.result(await app.submit("where"), timeout=20)).value == "ran"
    again = [r.getMessage() for r in caplog.records if "stopping attempt" in r.getMessage()]
    assert again == [], "an attempt already over is not stopped again at every heartbeat"


async def test_a_worker_stops_though_a_task_goes_on_after_it_is_cancelled(distsched_app, store_url):
    """Was: a worker whose running task caught the CancelledError of the drain (and went on)
    never finished stopping: ``app.stop()`` waited for the coroutine for ever."""
    release, running = asyncio.Event(), asyncio.Event()
    app = await distsched_app(store_url, functions={"goes_on": _goes_on_after_cancel(release, running)},
                              worker=WorkerConfig(drain_timeout=0.2))
    await app.submit("goes_on", timeout=60)
    await asyncio.wait_for(running.wait(), 20)
    stopping = asyncio.create_task(app.stop())
    try:
        done, _ = await asyncio.wait({stopping}, timeout=10)
        assert done, "the worker never finished stopping"
    finally:
        release.set()  # lets the coroutine, and a stop that hangs on it, end
        await stopping


async def test_a_cancelled_task_that_goes_on_is_stopped_once_and_keeps_its_slot(distsched_app, store_url, caplog):
    """A task cancelled while it runs whose function catches the worker's cancellation and goes
    on: the worker stops it once (it was cancelled again, and logged, at every heartbeat), and
    reports its slot as blocked until it returns (the store no longer counts it)."""
    caplog.set_level("INFO", logger="distsched.worker")
    release, running = asyncio.Event(), asyncio.Event()
    app = await distsched_app(store_url, functions={"goes_on": _goes_on_after_cancel(release, running)},
                              worker=WorkerConfig(name="stuck", concurrency=1), heartbeat_interval=0.1)
    storage = await app.storage()
    stuck_id = app.engine.worker.id
    try:
        task_id = await app.submit("goes_on", timeout=60)
        await asyncio.wait_for(running.wait(), 20)
        await app.cancel_task(task_id)
        await _until_blocked(storage, stuck_id, 1, "the worker never reported the slot the coroutine holds")
        beats: set[float] = set()
        deadline = time.monotonic() + 10
        while len(beats) < 5:  # five heartbeats more: none stops it again
            assert time.monotonic() < deadline, "the worker stopped beating"
            beats.update(w.last_heartbeat for w in await storage.workers.list_workers() if w.id == stuck_id)
            await asyncio.sleep(0.02)
        assert app.engine.worker.abandoned == 1
        assert await _blocked_of(storage, stuck_id) == 1
    finally:
        release.set()
    await _until_blocked(storage, stuck_id, 0, "the blocked slot was never given back")
    stops = [r.getMessage() for r in caplog.records if "stopping attempt" in r.getMessage()]
    assert len(stops) == 1, stops
