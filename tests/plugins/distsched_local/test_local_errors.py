"""How a task's exception is recorded, run by a real worker (probe finding): an exception
with an empty message was recorded ``Kind: `` (a trailing colon and space)."""

from __future__ import annotations

import pytest


def plain() -> None:
    raise ValueError()


def empty() -> None:
    raise KeyError("")  # str() of it is "''": a message, kept


async def coroutine() -> None:
    raise RuntimeError()


def stop() -> None:
    raise StopIteration  # the executor's own wording of it (it cannot cross into asyncio)


def worded() -> None:
    raise ValueError("bad input")


@pytest.mark.parametrize(("target", "error"), [
    ("plain", "ValueError"), ("coroutine", "RuntimeError"), ("stop", "StopIteration"),
    ("worded", "ValueError: bad input"), ("empty", "KeyError: ''"),
])
async def test_an_exception_without_a_message_is_recorded_as_its_kind(distsched_app, target, error):
    functions = {"plain": plain, "empty": empty, "coroutine": coroutine, "stop": stop, "worded": worded}
    app = await distsched_app(functions=functions)
    result = await app.result(await app.submit(target), timeout=20)
    assert not result.ok and result.error == error and result.error_type == error.split(":")[0]
