"""Each call of the local executor gets arguments of its own (probe finding): the stores share
one decoded spec between the tasks of a job and the attempts of a task (Redis and PostgreSQL
cache the decoding of a spec's JSON; memory keeps the object it was given), so a function
that changed its list or dict arguments in place changed what later tasks and retries
received, and what the store wrote back. Run with a real worker on memory, Redis and
PostgreSQL."""

from __future__ import annotations

from typing import Any

from distsched.config import WorkerConfig
from distsched.model import TaskSpec
from distsched.plugin.registry import FunctionRegistry
from distsched.ports import ExecutorContext
from distsched.testing import make_task
from distsched_local.executor import LocalExecutor


def grow(items: list[str], *, seen: dict[str, Any]) -> int:
    items.append("x")
    seen.setdefault("lengths", []).append(len(items))
    return len(items) * 10 + len(seen["lengths"])


async def grow_async(items: list[str], *, seen: dict[str, Any]) -> int:
    return grow(items, seen=seen)


async def test_tasks_sharing_a_spec_each_get_their_own_arguments(distsched_app, any_store_url):
    """Four tasks of one spec (as a job's tasks are), sync and async: each sees its list and
    its keyword's dict empty; the spec read back from the store still holds them empty."""
    app = await distsched_app(any_store_url, functions={"grow": grow, "grow_async": grow_async},
                              worker=WorkerConfig(concurrency=1))
    for target in ("grow", "grow_async"):
        spec = TaskSpec(target=target, args=[[]], kwargs={"seen": {}})
        ids = await app.submit_many([spec] * 4)
        values = [(await app.result(task_id, timeout=20)).value for task_id in ids]
        assert values == [11, 11, 11, 11], (target, values)
        for task_id in ids:
            stored = (await app.get_task(task_id)).spec
            assert stored.args == ([],) and stored.kwargs == {"seen": {}}, stored


async def test_a_retry_gets_the_arguments_the_task_was_submitted_with(distsched_app, any_store_url):
    """A function that counts its runs in a dict argument and fails until the third: every
    attempt starts from the submitted dict, so the count is 1 at every attempt."""
    counts: list[int] = []

    def count(cfg: dict[str, int]) -> int:
        cfg["runs"] += 1
        counts.append(cfg["runs"])
        if len(counts) < 3:
            raise RuntimeError("not yet")
        return cfg["runs"]

    app = await distsched_app(any_store_url, functions={"count": count})
    task_id = await app.submit("count", {"runs": 0}, retry={"max_attempts": 3, "delay": 0.0})
    result = await app.result(task_id, timeout=20)
    assert counts == [1, 1, 1]
    assert result.value == 1
    assert (await app.get_task(task_id)).spec.args == ({"runs": 0},)


async def test_nested_arguments_are_copied_and_scalars_passed_as_they_are():
    received: list[Any] = []

    def keep(*args: Any, **kwargs: Any) -> None:
        received.append((args, kwargs))
        args[0]["a"].append(2)
        kwargs["k"][0]["b"] = 3

    def plain(*args: Any) -> None:
        received.append(args)

    functions = FunctionRegistry()
    functions.add("keep", keep)
    functions.add("plain", plain)
    executor = LocalExecutor(ExecutorContext(functions=functions, concurrency=1))
    try:
        task = make_task("t1", target="keep", args=({"a": [1]}, "s"), kwargs={"k": [{"b": 1}], "n": 5})
        assert (await executor.run(task)).ok
        assert task.spec.args == ({"a": [1]}, "s") and task.spec.kwargs == {"k": [{"b": 1}], "n": 5}
        (args, kwargs), = received
        assert args[0] is not task.spec.args[0] and kwargs["k"] is not task.spec.kwargs["k"]
        scalars = make_task("t2", target="plain", args=(1, "text", 2.5, None, True))
        assert (await executor.run(scalars)).ok
        assert all(a is b for a, b in zip(received[1], scalars.spec.args))  # not copied
    finally:
        await executor.close()
