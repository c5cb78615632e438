"""`distsched tasks submit --in DURATION / --at TIME`: a one-off task for later, stored at once
(pending; `tasks show` says when it is due), refused naming the option when the time is bad,
and cancelled before its time by `tasks cancel`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from distsched import DistributeSchedule


def _task(url: str, task_id: str) -> Any:
    async def main() -> Any:
        return await DistributeSchedule(url).get_task(task_id)

    return asyncio.run(main())


def test_submit_in_and_at_store_the_due_time_and_show_says_it(distsched_cli: Any) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    before = time.time()
    result = distsched_cli("tasks", "submit", "noop", "--in", "1h", "--id", "later", "--storage", url)
    assert result.exit_code == 0 and result.stdout == "later\n", result.output
    task = _task(url, "later")
    assert task.state.value == "pending" and task.not_before == task.created_at + 3600 and task.created_at >= before
    at = datetime.fromtimestamp(time.time() + 600, timezone.utc).replace(microsecond=0)
    result = distsched_cli("tasks", "submit", "noop", "--at", at.isoformat().replace("+00:00", "Z"), "--id", "at",
                           "--storage", url)
    assert result.exit_code == 0, result.output
    assert _task(url, "at").not_before == at.timestamp()
    shown = distsched_cli("tasks", "show", "at", "--storage", url)
    assert shown.exit_code == 0, shown.output
    assert f"(scheduled for {at.strftime('%Y-%m-%d %H:%M:%S')}, in " in shown.output, shown.output
    data = json.loads(distsched_cli("tasks", "show", "at", "--json", "--storage", url).stdout)
    assert data["due_at"] == at.timestamp()
    cancelled = distsched_cli("tasks", "cancel", "at", "--storage", url)
    assert cancelled.exit_code == 0 and cancelled.stdout == "cancelled at\n", cancelled.output
    assert _task(url, "at").state.value == "cancelled"
    data = json.loads(distsched_cli("tasks", "show", "at", "--json", "--storage", url).stdout)
    assert data["due_at"] is None


def test_a_task_due_at_once_shows_no_due_time(distsched_cli: Any) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    assert distsched_cli("tasks", "submit", "noop", "--id", "now", "--storage", url).exit_code == 0
    shown = distsched_cli("tasks", "show", "now", "--storage", url)
    assert "scheduled for" not in shown.output


@pytest.mark.parametrize("args, option, words", [
    (("--in", "-5"), "--in", "0 or more"),
    (("--in", "soon"), "--in", "duration"),
    (("--in", "400d"), "--in", "366 days"),
    (("--at", "2030-01-01T09:00:00"), "--at", "no time zone"),
    (("--at", "tomorrow"), "--at", "ISO-8601"),
    (("--at", "1700000000000"), "--at", "366 days"),
])
def test_a_bad_time_is_refused_naming_the_option(distsched_cli: Any, args: tuple[str, ...], option: str,
                                                 words: str) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    result = distsched_cli("tasks", "submit", "noop", *args, "--id", "bad", "--storage", url)
    assert result.exit_code == 2, result.output
    assert option in result.output and words in result.output, result.output
    assert "Traceback" not in result.output
    assert distsched_cli("tasks", "show", "bad", "--storage", url).exit_code != 0


def test_in_and_at_together_are_refused(distsched_cli: Any) -> None:
    result = distsched_cli("tasks", "submit", "noop", "--in", "5s", "--at", "2030-01-01T00:00:00Z",
                           "--storage", f"memory://cli-{uuid.uuid4().hex}")
    assert result.exit_code == 2 and "--in or --at, not both" in result.output, result.output
