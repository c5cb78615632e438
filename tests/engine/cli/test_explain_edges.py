"""``distsched explain`` at the ends of the calendar and for a disabled job, ``jobs resume``
of a disabled job, and ``tasks cancel --help``: each said something untrue or printed a
traceback."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest


def _jobs(tmp_path: Path, body: str) -> str:
    path = tmp_path / "e.toml"
    path.write_text(textwrap.dedent(body))
    return str(path)


DAILY = """
    [[jobs]]
    name = "daily"
    every = "1d"
    target = "x"
"""

OFF_AND_ON = """
    [[jobs]]
    name = "off"
    every = "1h"
    target = "x"
    enabled = false

    [[jobs]]
    name = "on"
    every = "1h"
    target = "x"
"""


def _ok(result: Any) -> str:
    assert result.exit_code == 0 and result.exception is None, result.output
    return str(result.output)


def test_a_one_shot_whose_local_time_is_past_year_9999(distsched_cli: Any, tmp_path: Path) -> None:
    path = _jobs(tmp_path, """
        [[jobs]]
        name = "far"
        at = "9999-12-31T23:00:00Z"
        timezone = "Asia/Tokyo"
        target = "x"
    """)
    assert "9999-12-31T23:00:00Z       (past year 9999 there)" in _ok(distsched_cli("explain", path))
    rows = json.loads(_ok(distsched_cli("explain", path, "--json")))[0]["slots"]
    assert rows == [{"utc": "9999-12-31T23:00:00Z", "local": None, "skip": None}]


def test_the_listing_ends_at_year_9999(distsched_cli: Any, tmp_path: Path) -> None:
    path = _jobs(tmp_path, DAILY)
    out = _ok(distsched_cli("explain", path, "-n", "3", "--after", "9999-12-30T12:00:00Z"))
    assert "9999-12-31T00:00:00Z" in out and "year 10000" not in out
    assert len([line for line in out.splitlines() if line.startswith("    1  ")]) == 1  # one slot, then the end
    assert "    2  " not in out
    assert "(no more fire times)" in _ok(distsched_cli("explain", path, "--after", "9999-12-31T00:00:00Z"))


def test_a_cron_near_year_1_in_a_zone_whose_wall_clock_is_in_year_0(distsched_cli: Any, tmp_path: Path) -> None:
    path = _jobs(tmp_path, """
        [[jobs]]
        name = "k"
        cron = "* * * * *"
        timezone = "Pacific/Kiritimati"
        target = "x"
    """)
    out = _ok(distsched_cli("explain", path, "-n", "2", "--after", "0001-01-01T00:30:00"))
    assert "    1  0001-01-01T" in out and "    2  0001-01-01T" in out


@pytest.mark.parametrize("after", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_after_out_of_the_calendar_is_a_clear_error(distsched_cli: Any, tmp_path: Path, after: str) -> None:
    path = _jobs(tmp_path, DAILY)
    result = distsched_cli("explain", path, "--after", after)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--after" in result.output and "is not between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z" in result.output


def test_explain_says_a_disabled_job_never_fires(distsched_cli: Any, tmp_path: Path) -> None:
    path = _jobs(tmp_path, OFF_AND_ON)
    out = _ok(distsched_cli("explain", path, "-n", "1"))
    off, on = out.split("on: every", 1)
    assert "disabled (enabled = false): it never fires" in off and "disabled" not in on
    assert [item["enabled"] for item in json.loads(_ok(distsched_cli("explain", path, "--json")))] == [False, True]


def test_resume_of_a_disabled_job_says_it_stays_disabled(distsched_cli: Any, tmp_path: Path) -> None:
    path = _jobs(tmp_path, OFF_AND_ON)
    url = f"memory://resume-{uuid.uuid4().hex[:8]}"
    _ok(distsched_cli("jobs", "sync", path, "--storage", url))
    for name in ("off", "on"):
        _ok(distsched_cli("jobs", "pause", name, "--storage", url))
    off = _ok(distsched_cli("jobs", "resume", "off", "--storage", url))
    assert off.startswith("resumed off, but it is disabled (enabled = false): it never fires")
    assert _ok(distsched_cli("jobs", "resume", "on", "--storage", url)).strip() == "resumed on"


def test_tasks_cancel_help_says_a_running_attempt_is_stopped(distsched_cli: Any) -> None:
    text = " ".join(_ok(distsched_cli("tasks", "cancel", "--help")).split())
    assert "not interrupted" not in text
    assert "A running attempt is stopped by its worker within one heartbeat" in text
