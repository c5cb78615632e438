"""`@app.task` works everywhere `@distsched.task` does (issue 17.4): `distsched worker --import`
finds the functions of a DistributeSchedule in the module; waiting on a task no live worker
can run says why."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.testing.redis_server import redis_server_binary

APP_MODULE = """
from distsched import DistributeSchedule

app = DistributeSchedule()

@app.task
def add(a, b):
    return a + b

@app.task(name="greet")
def hello(who):
    return f"hello {who}"
"""

LATE_MODULE = """
from distsched import DistributeSchedule

app = DistributeSchedule()

def main():
    @app.task
    def add(a, b):
        return a + b
"""


def test_worker_import_refuses_an_app_without_functions_and_says_what_to_do(distsched_cli, tmp_path, monkeypatch):
    (tmp_path / "late_app_mod.py").write_text(LATE_MODULE)
    (tmp_path / "empty_mod.py").write_text("X = 1\n")
    monkeypatch.chdir(tmp_path)
    result = distsched_cli("worker", "--import", "late_app_mod")
    assert result.exit_code == 1, result.output
    assert "module 'late_app_mod' gives the worker no function" in result.output
    assert "decorate module-level functions with @app.task" in result.output and "Traceback" not in result.output
    result = distsched_cli("worker", "--import", "empty_mod")
    assert result.exit_code == 1
    assert "mark its functions with @distsched.task, or define the app at its top level" in result.output


async def test_result_says_no_worker_is_registered():
    app = DistributeSchedule(f"memory://nowk-{uuid.uuid4().hex[:6]}")
    async with app.running(worker=False):
        task_id = await app.submit("add", 1, 2)
        with pytest.raises(TimeoutError) as info:
            await app.result(task_id, timeout=0.3)
    assert "is still pending after 0.3s: no live worker is registered on memory://" in str(info.value)


async def test_result_says_no_worker_offers_the_function():
    """A worker runs, no scheduler: the task waits, and the timeout says why."""
    url = f"memory://offer-{uuid.uuid4().hex[:6]}"
    worker = DistributeSchedule(url)

    @worker.task
    def other():
        return 1

    caller = DistributeSchedule(url)
    async with worker.running(scheduler=False):
        (record,) = await (await caller.storage()).workers.list_workers()
        assert record.functions == ("other",)
        with pytest.raises(TimeoutError) as info:
            await caller.result(await caller.submit("add", 1, 2), timeout=0.3)
        message = str(info.value)
        assert "none of the 1 live worker(s) offers function 'add' (they offer: other)" in message
        assert "distsched worker --import MODULE" in message
        with pytest.raises(TimeoutError) as info:
            await caller.result(await caller.submit("other"), timeout=0.3)
        assert "no scheduler is leading" in str(info.value)
    await caller.stop()


async def test_local_tasks_go_to_the_workers_that_offer_their_function():
    url = f"memory://mixed-{uuid.uuid4().hex[:6]}"
    adder, other = DistributeSchedule(url), DistributeSchedule(url)

    @adder.task
    def add(a, b):
        return a + b

    @other.task
    def nothing():
        return None

    leader = DistributeSchedule(url, unroutable_wait=0)
    async with adder.running(scheduler=False), other.running(scheduler=False), leader.running(worker=False):
        ids = [await leader.submit("add", i, 1) for i in range(20)]
        results = [await leader.result(i, timeout=10) for i in ids]
        assert [r.value for r in results] == [i + 1 for i in range(20)]
        assert {r.worker_id for r in results} == {adder.engine.worker.id}
        # A function nobody offers fails at once under unroutable_wait=0, naming what the
        # worker has (by default it waits for a worker that offers it, up to 5 minutes:
        # tests/engine/app/test_unroutable_wait.py).
        task = await leader.wait(await leader.submit("typo"), timeout=10)
        assert task.state.value == "failed" and "'typo' is not registered" in task.result.error


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
async def test_worker_import_runs_app_task_functions(redis_server, tmp_path, distsched_process, line_matching):
    url = f"{redis_server.url}?namespace=apptask-{uuid.uuid4().hex[:6]}"
    (tmp_path / "my_app_mod.py").write_text(textwrap.dedent(APP_MODULE))
    worker = distsched_process("worker", "-v", "worker", "--storage", url, "--import", "my_app_mod")
    assert "functions: add, greet" in line_matching(worker, r"worker on ")
    line_matching(worker, r"registered")
    app = DistributeSchedule(url)
    async with app.running(worker=False):
        first = await app.submit("add", 2, 3)
        second = await app.submit("greet", "you")
        assert (await app.result(first, timeout=10)).value == 5
        assert (await app.result(second, timeout=10)).value == "hello you"
        (record,) = await (await app.storage()).workers.list_workers()
        assert record.functions == ("add", "greet")


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_the_worker_start_line_shows_as_many_functions_as_fit_then_how_many_more(redis_server, tmp_path,
                                                                                  distsched_process, line_matching):
    """The start line listed every function (4,097 names on one line in a probe): it shows
    as many as fit, then how many more."""
    module = "from distsched import task\n" + "".join(
        f"\n@task\ndef a_rather_long_function_name_{i:03d}():\n    return {i}\n" for i in range(300))
    (tmp_path / "many_functions_mod.py").write_text(module)
    url = f"{redis_server.url}?namespace=manyfn-{uuid.uuid4().hex[:6]}"
    worker = distsched_process("worker", "worker", "--storage", url, "--import", "many_functions_mod")
    line = line_matching(worker, r"worker on ")
    assert "functions: a_rather_long_function_name_000, a_rather_long_function_name_001" in line, line
    shown = line.split("functions: ", 1)[1].split(" (+", 1)[0].count(", ") + 1
    assert f"(+{300 - shown} more)" in line and len(line) < 400, line
