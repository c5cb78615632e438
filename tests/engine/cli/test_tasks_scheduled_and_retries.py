"""What `distsched tasks list` / `show` say of a task submitted for later (`scheduled for
<time> (in 4m10s)`, not a plain `pending`), of a retry and the task it retries (`retry of` /
`retried as`); and `tasks submit --at` a time long past: accepted, with a WARNING."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest


def _url() -> str:
    return f"memory://cli-{uuid.uuid4().hex}"


def test_list_and_show_say_when_a_task_for_later_is_due(distsched_cli: Any) -> None:
    url = _url()
    at = datetime.fromtimestamp(time.time() + 600, timezone.utc).replace(microsecond=0)
    shown_at = at.strftime("%Y-%m-%d %H:%M:%S")
    assert distsched_cli("tasks", "submit", "noop", "--at", at.isoformat(), "--id", "later", "--storage", url).exit_code == 0
    assert distsched_cli("tasks", "submit", "noop", "--id", "now", "--storage", url).exit_code == 0

    listed = distsched_cli("tasks", "list", "--storage", url)
    assert listed.exit_code == 0, listed.output
    (later,) = [line for line in listed.output.splitlines() if line.startswith("later ")]
    (now,) = [line for line in listed.output.splitlines() if line.startswith("now ")]
    assert re.search(rf" scheduled +1 .* scheduled for {shown_at} \(in (9m5\d|10m00)s\)$", later), later
    assert " pending " in now and "scheduled" not in now, now
    rows = {r["id"]: r for r in json.loads(distsched_cli("tasks", "list", "--json", "--storage", url).stdout)["tasks"]}
    assert rows["later"]["state"] == "pending" and rows["later"]["scheduled_for"] == at.timestamp()
    assert rows["now"]["scheduled_for"] is None
    # --state pending lists it: its state is pending
    assert "later" in distsched_cli("tasks", "list", "--state", "pending", "--storage", url).output

    shown = distsched_cli("tasks", "show", "later", "--storage", url)
    assert shown.exit_code == 0, shown.output
    assert re.search(rf"^state     pending \(scheduled for {shown_at}, in (9m5\d|10m00)s\)   attempt 1 of 1$",
                     shown.output, re.M), shown.output
    data = json.loads(distsched_cli("tasks", "show", "later", "--json", "--storage", url).stdout)
    assert data["scheduled_for"] == data["due_at"] == at.timestamp() and "now" not in data
    assert "scheduled" not in distsched_cli("tasks", "show", "now", "--storage", url).output


def test_show_links_a_retry_and_the_task_it_retries(distsched_cli: Any) -> None:
    url = _url()
    assert distsched_cli("tasks", "submit", "noop", "--id", "one", "--storage", url).exit_code == 0
    assert distsched_cli("tasks", "cancel", "one", "--storage", url).exit_code == 0
    retried = distsched_cli("tasks", "retry", "one", "--storage", url)
    assert retried.exit_code == 0 and retried.stdout == "one.retry-1\n", retried.output

    new = distsched_cli("tasks", "show", "one.retry-1", "--storage", url)
    assert "\nretry of  one\n" in new.output and "retried as" not in new.output, new.output
    old = distsched_cli("tasks", "show", "one", "--storage", url)
    assert "\nretried as one.retry-1\n" in old.output and "retry of" not in old.output, old.output
    assert distsched_cli("tasks", "retry", "one", "--storage", url).stdout == "one.retry-2\n"
    assert "\nretried as one.retry-1, one.retry-2\n" in distsched_cli("tasks", "show", "one", "--storage", url).output
    data = json.loads(distsched_cli("tasks", "show", "one", "--json", "--storage", url).stdout)
    assert data["retry_of"] is None and data["retried_as"] == ["one.retry-1", "one.retry-2"]
    data = json.loads(distsched_cli("tasks", "show", "one.retry-2", "--json", "--storage", url).stdout)
    assert data["retry_of"] == "one" and data["retried_as"] == [] and data["task"]["spec"]["retry_of"] == "one"


def test_submit_at_a_time_long_past_warns_and_runs_at_once(distsched_cli: Any, caplog: pytest.LogCaptureFixture) -> None:
    url = _url()
    result = distsched_cli("tasks", "submit", "noop", "--at", "1970-01-01T00:00:00Z", "--id", "epoch", "--storage", url)
    assert result.exit_code == 0 and result.stdout == "epoch\n", result.output  # accepted: not an error
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and said[0].startswith("task 'epoch': at: 1970-01-01T00:00:00Z is "), said
    assert "in the past: the task is due at once" in said[0]
    shown = distsched_cli("tasks", "show", "epoch", "--storage", url)
    assert "scheduled" not in shown.output and "state     pending   attempt" in shown.output, shown.output
