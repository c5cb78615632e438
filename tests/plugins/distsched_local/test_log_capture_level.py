"""``[worker] log_capture_level``: a task's records at or above it (INFO by default) are
captured even when the root logger's level (WARNING, the worker without ``-v``) drops them,
and the worker's console gains none of them; a level the application set on a logger still
decides; outside a task nothing more is made. The console here is a stream handler on the
root with no level of its own, set up by ``logging.config.dictConfig`` before the worker
starts - what ``logging.basicConfig`` (the CLI's) and a user's configuration make."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.model import TaskState, ValidationError

plain = logging.getLogger("tasks.level_test.plain")  # no level of its own: the root's decides
strict = logging.getLogger("tasks.level_test.strict")  # set to ERROR by the application
strict_child = logging.getLogger("tasks.level_test.strict.child")  # no level: its parent's ERROR decides
seen_inside: dict[str, bool] = {}


def every_level() -> str:
    plain.debug("plain debug")
    plain.info("plain info %d", 1)
    plain.warning("plain warning")
    seen_inside["debug"] = plain.isEnabledFor(logging.DEBUG)
    return "ok"


def strict_levels() -> str:
    strict.info("strict info")
    strict.warning("strict warning")
    strict_child.info("strict child info")
    strict.error("strict error")
    plain.info("plain info")
    return "ok"


def relays() -> str:
    """Hands a record made elsewhere to a logger (as a socket or queue receiver does)."""
    plain.handle(logging.makeLogRecord({"name": plain.name, "levelno": logging.DEBUG, "levelname": "DEBUG",
                                        "msg": "relayed debug"}))
    plain.handle(logging.makeLogRecord({"name": plain.name, "levelno": logging.INFO, "levelname": "INFO",
                                        "msg": "relayed info"}))
    strict.handle(logging.makeLogRecord({"name": strict.name, "levelno": logging.WARNING, "levelname": "WARNING",
                                         "msg": "relayed warning"}))
    return "ok"


_barrier = threading.Barrier(2, timeout=10)


def sync_pair(name: str) -> str:
    plain.info("%s first", name)
    _barrier.wait()
    plain.info("%s second", name)
    _barrier.wait()
    return name


_gate: dict[str, asyncio.Event] = {}


async def async_pair(name: str, other: str) -> str:
    _gate.setdefault(name, asyncio.Event()).set()
    plain.info("%s first", name)
    await _gate.setdefault(other, asyncio.Event()).wait()
    await asyncio.sleep(0)
    plain.info("%s second", name)
    return name


FUNCTIONS = {"every_level": every_level, "strict_levels": strict_levels, "relays": relays, "sync_pair": sync_pair,
             "async_pair": async_pair}


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The worker's console: the root at WARNING with a stream handler of no level of its own
    (dictConfig, before the worker starts); the root's handlers and level restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "stream": stream, "formatter": "plain"}},
        "root": {"level": "WARNING", "handlers": ["console"]},
    })
    try:
        yield stream
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _messages(log: str | None) -> list[str]:
    return [line.split(" ", 1)[1] for line in (log or "").splitlines()]  # "LEVEL LOGGER: MESSAGE"


async def _run(app: Any, target: str, *args: Any) -> Any:
    task = await app.wait(await app.submit(target, *args), timeout=15)
    assert task.state is TaskState.SUCCEEDED, task.result
    return task


async def test_a_tasks_info_lines_are_captured_while_the_console_shows_warnings_only(distsched_app, console):
    app = await distsched_app(functions=FUNCTIONS)
    task = await _run(app, "every_level")
    assert _messages(task.result.log) == ["INFO tasks.level_test.plain: plain info 1",
                                          "WARNING tasks.level_test.plain: plain warning"]
    assert console.getvalue() == "WARNING tasks.level_test.plain: plain warning\n"  # as before: no INFO
    assert seen_inside["debug"] is False  # below log_capture_level: not even made in the task
    # outside a task the root's WARNING decides, as before: nothing more is made
    assert not plain.isEnabledFor(logging.INFO) and not plain.isEnabledFor(logging.DEBUG)
    plain.info("outside a task")
    assert "outside a task" not in console.getvalue()

    logging.disable(logging.INFO)  # the application's logging.disable is kept in a task too
    try:
        task = await _run(app, "every_level")
    finally:
        logging.disable(logging.NOTSET)
    assert _messages(task.result.log) == ["WARNING tasks.level_test.plain: plain warning"]


async def test_a_debug_line_is_captured_with_log_capture_level_debug_only(distsched_app, console):
    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(settings={"log_capture_level": "DEBUG"}))
    task = await _run(app, "every_level")
    assert _messages(task.result.log) == ["DEBUG tasks.level_test.plain: plain debug",
                                          "INFO tasks.level_test.plain: plain info 1",
                                          "WARNING tasks.level_test.plain: plain warning"]
    assert console.getvalue() == "WARNING tasks.level_test.plain: plain warning\n"
    assert not plain.isEnabledFor(logging.DEBUG)  # outside a task: not made

    # the root at INFO (the worker's -v): the console shows INFO as before, the capture its level
    logging.getLogger().setLevel(logging.INFO)
    task = await _run(app, "every_level")
    assert _messages(task.result.log) == ["DEBUG tasks.level_test.plain: plain debug",
                                          "INFO tasks.level_test.plain: plain info 1",
                                          "WARNING tasks.level_test.plain: plain warning"]
    assert console.getvalue().splitlines()[1:] == ["INFO tasks.level_test.plain: plain info 1",
                                                   "WARNING tasks.level_test.plain: plain warning"]

    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(settings={"log_capture_level": "warning"}))
    task = await _run(app, "every_level")
    assert _messages(task.result.log) == ["WARNING tasks.level_test.plain: plain warning"]


async def test_a_logger_the_application_set_to_error_stays_error(distsched_app, console):
    strict.setLevel(logging.ERROR)
    try:
        app = await distsched_app(functions=FUNCTIONS)
        task = await _run(app, "strict_levels")
    finally:
        strict.setLevel(logging.NOTSET)
    assert _messages(task.result.log) == ["ERROR tasks.level_test.strict: strict error",
                                          "INFO tasks.level_test.plain: plain info"]
    assert console.getvalue() == "ERROR tasks.level_test.strict: strict error\n"


async def test_a_record_a_task_hands_to_a_logger_itself_reaches_the_console(distsched_app, console):
    # Logger.handle never looked at the logger's level: only a record made for the capture alone is kept from it
    strict.setLevel(logging.ERROR)
    try:
        app = await distsched_app(functions=FUNCTIONS)
        await _run(app, "relays")
    finally:
        strict.setLevel(logging.NOTSET)
    assert console.getvalue() == ("DEBUG tasks.level_test.plain: relayed debug\n"
                                  "INFO tasks.level_test.plain: relayed info\n"
                                  "WARNING tasks.level_test.strict: relayed warning\n")


async def test_tasks_running_at_once_each_get_only_their_own_info_lines(distsched_app, console):
    app = await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(name="pair", concurrency=4))
    _gate.clear()
    ids = [await app.submit("sync_pair", "alpha"), await app.submit("sync_pair", "beta"),
           await app.submit("async_pair", "gamma", "delta"), await app.submit("async_pair", "delta", "gamma")]
    tasks = [await app.wait(task_id, timeout=15) for task_id in ids]
    for task, name in zip(tasks, ("alpha", "beta", "gamma", "delta")):
        assert task.state is TaskState.SUCCEEDED, task.result
        assert _messages(task.result.log) == [f"INFO tasks.level_test.plain: {name} first",
                                              f"INFO tasks.level_test.plain: {name} second"]
    assert console.getvalue() == ""


def test_the_setting_is_a_level_name():
    from distsched_local.capture import capture_level

    assert capture_level(None) == logging.INFO
    assert [capture_level(name) for name in ("DEBUG", "info", "Warning", "ERROR")] == [10, 20, 30, 40]
    for bad in ("verbose", "CRITICAL", 20, True, ""):
        with pytest.raises(ValidationError, match=r"^log_capture_level: must be one of DEBUG, INFO, WARNING, ERROR, "
                                                  r"not "):
            capture_level(bad)


async def test_a_worker_with_a_bad_level_does_not_start(distsched_app):
    with pytest.raises(ValidationError, match=r"log_capture_level: must be one of DEBUG, INFO, WARNING, ERROR, "
                                              r"not 'verbose'"):
        await distsched_app(functions=FUNCTIONS, worker=WorkerConfig(settings={"log_capture_level": "verbose"}))
