"""`every = "1d"` with `timezone = "Europe/Berlin"` was taken silently and fired at 00:00 UTC:
`timezone` is read by cron and a naive `at` only. Loading such a job now logs a WARNING naming
it and saying `every` counts from the UNIX epoch in UTC; `distsched explain` no longer shows
the zone as if it applied."""

from __future__ import annotations

import json
import logging
import textwrap
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.model.build import build_job, ignored_timezone

JOBS = """
[[jobs]]
name = "daily"
every = "1d"
timezone = "Europe/Berlin"
target = "t"

[[jobs]]
name = "nightly"
cron = "0 0 * * *"
timezone = "Europe/Berlin"
target = "t"
"""


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "timezone" in r.getMessage()]


def _file(tmp_path) -> str:
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    return str(path)


def test_the_model_names_an_every_jobs_ignored_zone():
    said = ignored_timezone(build_job("daily", every="1d", timezone="Europe/Berlin", target="t"))
    assert said is not None and "job 'daily'" in said and "'Europe/Berlin'" in said
    assert "counts from the UNIX epoch in UTC" in said
    assert ignored_timezone(build_job("d", every="1d", target="t")) is None
    assert ignored_timezone(build_job("c", cron="0 0 * * *", timezone="Europe/Berlin", target="t")) is None


def test_jobs_sync_warns_once_naming_the_job(distsched_cli, tmp_path, caplog):
    result = distsched_cli("jobs", "sync", _file(tmp_path), "--storage", f"memory://tz-{uuid.uuid4().hex[:8]}")
    assert result.exit_code == 0, result.output
    (said,) = _said(caplog)
    assert "jobs.toml: job 'daily': timezone: 'Europe/Berlin' is not read by an every schedule" in said, said
    assert "every counts from the UNIX epoch in UTC" in said, said
    assert "nightly" not in said


def test_explain_does_not_show_the_zone_as_if_it_applied(distsched_cli, tmp_path, caplog):
    path = _file(tmp_path)
    result = distsched_cli("explain", path, "daily", "-n", "2", "--after", "2026-06-01T12:00:00Z")
    assert result.exit_code == 0, result.output
    head, first, _ = result.stdout.splitlines()
    assert "time zone Europe/Berlin" not in result.stdout, result.stdout
    assert "in UTC" in head and "'Europe/Berlin' is not read" in head, head
    assert first.split()[1:] == ["2026-06-02T00:00:00Z", "2026-06-02T00:00:00+00:00"], first
    data = json.loads(distsched_cli("explain", path, "--json").stdout)
    daily, nightly = data
    assert daily["timezone"] == "UTC" and daily["timezone_ignored"] == "Europe/Berlin"
    assert nightly["timezone"] == "Europe/Berlin" and "timezone_ignored" not in nightly
    assert len(_said(caplog)) == 2  # one per load


async def test_add_job_warns_too(caplog):
    app = DistributeSchedule(f"memory://tz-{uuid.uuid4().hex[:8]}")
    try:
        await app.add_job("daily", every="1d", timezone="Europe/Berlin", target="t")
        (said,) = _said(caplog)
        assert "job 'daily'" in said
        await app.add_job("utc", every="1d", target="t")
        assert len(_said(caplog)) == 1
    finally:
        await app.stop()
