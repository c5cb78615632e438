"""``distsched tasks show`` prints what the task's last attempt logged (and ``--json`` has it),
read from the store by the CLI like any other client - on memory:// (a store named in this
process), on a real Redis and on PostgreSQL (a schema of the throwaway database)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import pytest

from distsched import DistributeSchedule, current_task
from distsched.config import WorkerConfig

log = logging.getLogger("tasks.show_log_test")
log.setLevel(logging.INFO)


def flaky() -> str:
    me = current_task()
    assert me is not None
    log.info("attempt %d starts", me.attempt)
    if me.attempt == 1:
        log.warning("token=abc123 rejected by https://user:pw@api.example/v1")
        raise RuntimeError("first attempt fails")
    log.info("attempt %d done", me.attempt)
    return "done"


def quiet() -> int:
    return 1


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://cli-log-{uuid.uuid4().hex}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"clilog{uuid.uuid4().hex[:10]}")
    return request.getfixturevalue("redis_server").url_for(namespace=f"clilog{uuid.uuid4().hex[:10]}")


def _run(url: str) -> dict[str, str]:
    app = DistributeSchedule(url, heartbeat_interval=0.2, heartbeat_ttl=2.0,
                             worker=WorkerConfig(name="log-worker", concurrency=2))
    app.task(flaky, name="flaky")
    app.task(quiet, name="quiet")

    async def main() -> dict[str, str]:
        async with app.running():
            ids = {"flaky": await app.submit("flaky", retry={"max_attempts": 2, "backoff": "fixed", "delay": 0.05,
                                                             "jitter": 0}),
                   "quiet": await app.submit("quiet")}
            for task_id in ids.values():
                await app.wait(task_id, timeout=20)
            return ids

    return asyncio.run(main())


def test_tasks_show_prints_the_last_attempts_log(distsched_cli: Any, store_url: str) -> None:
    ids = _run(store_url)
    cli = lambda *args: distsched_cli(*args, "--storage", store_url)  # noqa: E731

    shown = cli("tasks", "show", ids["flaky"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    at = lines.index(f"log       of attempt {ids['flaky']}#2")
    assert [line.strip().split(" ", 2)[1:] for line in lines[at + 1:]] == [
        ["INFO", "tasks.show_log_test: attempt 2 starts"], ["INFO", "tasks.show_log_test: attempt 2 done"]]
    assert lines[at + 1].startswith("  20")  # indented, its time first
    assert "attempt 1" not in shown.output.split("log       of attempt")[1]  # the last attempt's only

    data = json.loads(cli("tasks", "show", ids["flaky"], "--json").output)
    assert data["task"]["result"]["attempt_id"] == f"{ids['flaky']}#2"
    assert data["task"]["result"]["log"].splitlines()[1].endswith("INFO tasks.show_log_test: attempt 2 done")

    quiet_shown = cli("tasks", "show", ids["quiet"])
    assert quiet_shown.exit_code == 0 and "log  " not in quiet_shown.output  # nothing logged: no log section
    assert json.loads(cli("tasks", "show", ids["quiet"], "--json").output)["task"]["result"]["log"] is None
