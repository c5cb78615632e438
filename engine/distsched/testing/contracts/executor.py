"""ExecutorContract: success, failure, timeout, and nothing left behind by a cut attempt.

Provide ``executor_name`` and three fixtures returning tasks for this executor:
``succeeding_task`` (its Outcome is ok), ``failing_task`` (not ok, error text set) and
``hanging_task`` (takes longer than its timeout). Optionally ``executor_context`` (the
:class:`~distsched.ports.ExecutorContext` the factory gets: functions, concurrency,
settings).

A timed-out or cancelled attempt must leave nothing running: no child process (nor a
grandchild: the processes are listed while the attempt runs, so one orphaned by its parent
is still found) and no asyncio task it started. Resources an executor keeps on purpose
(a pool, a client) are started by its factory or its first run: the suite runs
``succeeding_task`` first and counts only what the cut attempt added. Child processes are
read from ``/proc`` (Linux); elsewhere that part is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ...model import Outcome, Task
from ...plugin.manager import EXECUTOR
from ...ports import Executor, ExecutorContext
from ...registry import FunctionRegistry
from ._harness import plugin_manager_for

#: How long a cut attempt may take to wind down (its cancellation handlers, its children
#: exiting) before what is left counts as left behind.
GRACE = 3.0
#: How long the contract waits for what it killed (SIGKILL) to be gone before it returns.
KILL_WAIT = 5.0
_PROC = Path("/proc")


def _process(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process from /proc, or None when it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ..." - comm may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int | None = None) -> dict[int, int]:
    """The running (non-zombie) descendants of ``root`` (default: this process), as
    ``{pid: start time}``; empty where /proc is not available."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if entry.name.isdigit():
            info = _process(int(entry.name))
            if info is not None and info[1] != "Z":
                children.setdefault(info[0], []).append(int(entry.name))
                started[int(entry.name)] = info[2]
    out: dict[int, int] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        if pid not in out:
            out[pid] = started[pid]
            todo.extend(children.get(pid, ()))
    return out


def _alive(pids: dict[int, int]) -> dict[int, int]:
    out = {}
    for pid, start in pids.items():
        info = _process(pid)
        if info is not None and info[1] != "Z" and info[2] == start:
            out[pid] = start
    return out


class ExecutorContract:
    @pytest.fixture
    def executor_name(self) -> str:  # pragma: no cover - must be overridden
        raise NotImplementedError("an ExecutorContract subclass must provide the executor_name fixture")

    @pytest.fixture
    def executor_context(self) -> ExecutorContext:
        return ExecutorContext(functions=FunctionRegistry(), concurrency=2)

    @pytest.fixture
    def make_executor(self, request: pytest.FixtureRequest, executor_name: str, executor_context: ExecutorContext):
        """An async function building the executor through the plugin manager (looked up,
        built, awaited when the factory returns an awaitable, checked against the port)."""
        plugins = plugin_manager_for(request)
        plugins.registration(EXECUTOR, executor_name)  # an unknown name fails here, clearly

        async def make() -> Executor:
            return await plugins.build(EXECUTOR, executor_name, executor_context)

        return make

    @staticmethod
    def _run(make, task: Task, *, timeout: float | None = None) -> Outcome:
        async def main() -> Outcome:
            executor = await make()
            try:
                return await asyncio.wait_for(executor.run(task), timeout or task.spec.timeout)
            finally:
                close = getattr(executor, "close", None)
                if close is not None:
                    await close()

        return asyncio.run(main())

    def test_success(self, make_executor, succeeding_task: Task) -> None:
        outcome = self._run(make_executor, succeeding_task)
        assert isinstance(outcome, Outcome) and outcome.ok and outcome.error is None
        json.dumps([outcome.value, outcome.meta])  # JSON only

    def test_failure_is_an_outcome_or_an_exception(self, make_executor, failing_task: Task) -> None:
        try:
            outcome = self._run(make_executor, failing_task)
        except Exception:
            return  # the worker turns an exception into a failed, retryable result
        assert isinstance(outcome, Outcome) and not outcome.ok and outcome.error
        json.dumps([outcome.value, outcome.meta])

    def test_timeout_is_honoured(self, make_executor, hanging_task: Task) -> None:
        start = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            self._run(make_executor, hanging_task)
        assert time.monotonic() - start < hanging_task.spec.timeout + 2.0

    def test_a_timed_out_attempt_leaves_nothing_behind(self, make_executor, succeeding_task: Task,
                                                      hanging_task: Task) -> None:
        self.check_nothing_left_behind(make_executor, succeeding_task, hanging_task, cut_after=None)

    def test_a_cancelled_attempt_leaves_nothing_behind(self, make_executor, succeeding_task: Task,
                                                      hanging_task: Task) -> None:
        self.check_nothing_left_behind(make_executor, succeeding_task, hanging_task,
                                       cut_after=hanging_task.spec.timeout / 2)

    @staticmethod
    def check_nothing_left_behind(make: Callable[[], object], succeeding_task: Task, hanging_task: Task, *,
                                  cut_after: float | None, grace: float = GRACE) -> None:
        """Run ``succeeding_task`` (the executor sets up what it keeps), then ``hanging_task``,
        cut by its timeout (``cut_after=None``, as the worker does) or cancelled after
        ``cut_after`` seconds; then the processes and asyncio tasks the cut attempt started
        must be gone within ``grace`` seconds. Whatever is left is killed (or cancelled)
        before the assertion fails, so a failing executor does not leak into other tests."""

        async def main() -> tuple[dict[int, int], list[str]]:
            executor = await make()  # type: ignore[misc]
            try:
                await asyncio.wait_for(executor.run(succeeding_task), succeeding_task.spec.timeout)
                processes_before = descendants()
                tasks_before = asyncio.all_tasks()
                attempt = asyncio.ensure_future(executor.run(hanging_task))
                deadline = hanging_task.spec.timeout if cut_after is None else cut_after
                done, _ = await asyncio.wait({attempt}, timeout=deadline)
                assert not done, f"the hanging task finished within {deadline}s: {attempt.result()!r}"
                started = {pid: t for pid, t in descendants().items() if processes_before.get(pid) != t}
                attempt.cancel()
                try:
                    await attempt
                except BaseException:  # noqa: S110 - cancelled, or its error: both end the attempt
                    pass
                loop = asyncio.get_running_loop()
                wind_down = loop.time() + grace
                while True:
                    left = _alive(started)
                    stray = [t for t in asyncio.all_tasks() - tasks_before if not t.done()
                             and t is not asyncio.current_task()]
                    if (not left and not stray) or loop.time() >= wind_down:
                        break
                    await asyncio.sleep(0.02)
                names = [f"{t.get_name()} ({t.get_coro()!r})" for t in stray]
                for task in stray:
                    task.cancel()
                return left, names
            finally:
                close = getattr(executor, "close", None)
                if close is not None:
                    await close()

        left, stray = asyncio.run(main())
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # A killed process runs until the kernel schedules its exit: on a busy machine it may
        # still show as running when this returns (seen once in CI); wait until it is gone.
        gone_by = time.monotonic() + KILL_WAIT
        while _alive(left) and time.monotonic() < gone_by:
            time.sleep(0.01)
        how = "timed out" if cut_after is None else "cancelled"
        assert not left, (f"a {how} attempt left {len(left)} child process(es) running {grace}s later "
                          f"(pids {sorted(left)}): kill the process (group) when run() is cancelled")
        assert not stray, (f"a {how} attempt left asyncio task(s) running {grace}s later: {stray}; "
                           f"cancel and await them when run() is cancelled")
