"""The executor contract catches an executor that leaves a process or an asyncio task behind
when its attempt is cut (timed out or cancelled), and passes one that cleans up."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from distsched import hookimpl
from distsched.model import Outcome, Task
from distsched.model.errors import PluginError
from distsched.testing import make_task
from distsched.testing.contracts import ExecutorContract
from distsched.testing.contracts.executor import descendants

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child processes are read from /proc")

OK = make_task("ok", executor="proc", target="ok")
HANG = make_task("hang", executor="proc", target="hang", timeout=1.0)
#: The child of a hanging attempt: a shell that waits for its own child (a grandchild).
HANG_COMMAND = "sleep 60; exit 0"


class NaiveSubprocessExecutor:
    """Starts a process and awaits it: a cancelled ``run`` leaves it running."""

    async def run(self, task: Task) -> Outcome:
        command = "exit 0" if task.spec.target == "ok" else HANG_COMMAND
        proc = await asyncio.create_subprocess_shell(command)
        return Outcome.success(await proc.wait())


class KillsOnlyItsChild:
    """Kills the shell on cancel, but not the shell's own child (orphaned, still running)."""

    async def run(self, task: Task) -> Outcome:
        command = "exit 0" if task.spec.target == "ok" else HANG_COMMAND
        proc = await asyncio.create_subprocess_shell(command)
        try:
            return Outcome.success(await proc.wait())
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise


class LeavesATask:
    """Runs its work in a background task it never cancels."""

    async def run(self, task: Task) -> Outcome:
        if task.spec.target == "ok":
            return Outcome.success(None)
        work = asyncio.create_task(asyncio.sleep(60), name="forgotten-work")
        await asyncio.shield(work)
        return Outcome.success(None)


class CarefulSubprocessExecutor:
    """A process group per attempt, killed (and reaped) when the attempt is cancelled."""

    async def run(self, task: Task) -> Outcome:
        command = "exit 0" if task.spec.target == "ok" else HANG_COMMAND
        proc = await asyncio.create_subprocess_shell(command, start_new_session=True)
        try:
            return Outcome.success(await proc.wait())
        except asyncio.CancelledError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise


def _factory(cls):
    async def make():
        return cls()

    return make


@pytest.mark.parametrize("cut_after", [None, 0.5], ids=["timed-out", "cancelled"])
def test_a_naive_subprocess_executor_fails_the_contract(cut_after):
    before = descendants()  # other tests' servers, if any
    with pytest.raises(AssertionError, match=r"attempt left 2 child process\(es\) running"):
        ExecutorContract.check_nothing_left_behind(_factory(NaiveSubprocessExecutor), OK, HANG,
                                                   cut_after=cut_after, grace=1.0)
    assert descendants().items() <= before.items(), "the contract kills what a failing executor left behind"


def test_a_grandchild_left_behind_is_caught():
    with pytest.raises(AssertionError, match=r"attempt left 1 child process\(es\) running"):
        ExecutorContract.check_nothing_left_behind(_factory(KillsOnlyItsChild), OK, HANG, cut_after=None, grace=1.0)


def test_a_stray_asyncio_task_is_caught():
    with pytest.raises(AssertionError, match=r"left asyncio task\(s\) running .*forgotten-work"):
        ExecutorContract.check_nothing_left_behind(_factory(LeavesATask), OK, HANG, cut_after=0.5, grace=1.0)


@pytest.mark.parametrize("cut_after", [None, 0.5], ids=["timed-out", "cancelled"])
def test_an_executor_that_kills_its_process_group_passes(cut_after):
    before = descendants()
    ExecutorContract.check_nothing_left_behind(_factory(CarefulSubprocessExecutor), OK, HANG, cut_after=cut_after)
    assert descendants().items() <= before.items()


class SyncRunExecutor:
    """``run`` is a plain ``def``: the worker (and the contract) would await an Outcome."""

    def run(self, task: Task) -> Outcome:
        return Outcome.success(None)


class _SyncRunPlugin:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("sync-run", lambda context: SyncRunExecutor())


class TestTheContractRefusesASyncRun(ExecutorContract):
    """The contract builds the executor as a worker does: a plain ``run`` fails every test
    with the reason, naming the plugin (not a TypeError from ``asyncio.wait_for``)."""

    @pytest.fixture
    def distsched_plugins(self):
        return [("sync-run-plugin", _SyncRunPlugin())]

    @pytest.fixture
    def executor_name(self):
        return "sync-run"

    def test_success(self, make_executor, succeeding_task=OK) -> None:
        with pytest.raises(PluginError, match=r"executor 'sync-run' from plugin 'sync-run-plugin' returned "
                                              r"SyncRunExecutor, whose run is not a coroutine function: run must be a "
                                              r"coroutine function \(async def run"):
            super().test_success(make_executor, OK)

    def test_failure_is_an_outcome_or_an_exception(self) -> None:  # type: ignore[override]
        pass

    def test_timeout_is_honoured(self) -> None:  # type: ignore[override]
        pass

    def test_a_timed_out_attempt_leaves_nothing_behind(self) -> None:  # type: ignore[override]
        pass

    def test_a_cancelled_attempt_leaves_nothing_behind(self) -> None:  # type: ignore[override]
        pass
