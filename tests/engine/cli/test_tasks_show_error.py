"""An error text is shown in a terminal by ``tasks show``, ``tasks list`` and ``run``: its
control characters (an exception message holding ANSI escapes, a carriage return) are kept
as ``\\xNN`` text, never sent to the terminal as they are - on memory://, a real Redis and
PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.config import WorkerConfig

#: Clears the operator's screen, then writes a line that looks like a success.
HOSTILE = "\x1b[2J\x1b[H\rall good\x07"


def hostile() -> None:
    raise ValueError(f"bad input {HOSTILE}\nsecond line\tand a tab")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://cli-err-{uuid.uuid4().hex}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"clierr{uuid.uuid4().hex[:10]}")
    return request.getfixturevalue("redis_server").url_for(namespace=f"clierr{uuid.uuid4().hex[:10]}")


def _run(url: str) -> str:
    app = DistributeSchedule(url, heartbeat_interval=0.2, heartbeat_ttl=2.0, worker=WorkerConfig(name="err-worker"))
    app.task(hostile, name="hostile")

    async def main() -> str:
        async with app.running():
            task_id = await app.submit("hostile")
            await app.wait(task_id, timeout=20)
            return task_id

    return asyncio.run(main())


def test_an_errors_control_characters_never_reach_the_terminal(distsched_cli: Any, store_url: str) -> None:
    task_id = _run(store_url)
    for args in (("tasks", "show", task_id), ("tasks", "show", task_id, "--json"), ("tasks", "list")):
        shown = distsched_cli(*args, "--storage", store_url)
        assert shown.exit_code == 0, shown.output
        assert "bad input" in shown.output, (args, shown.output)
        assert not any(c in shown.output for c in "\x1b\r\x07"), (args, shown.output)
    shown = distsched_cli("tasks", "show", task_id, "--storage", store_url)
    assert "\\x1b[2J\\x1b[H\\x0dall good\\x07" in shown.output
