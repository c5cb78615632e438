"""A Quartz / XXL-JOB cron expression (a '?' in a day field, as Quartz requires) is read as
cron reads it: its day-of-week numbers are cron's (0 or 7 = Sunday, 1 = Monday), not
Quartz's (1 = Sunday, 2 = Monday), so Quartz's `0 0 3 ? * 2-6` (Monday to Friday) ran
Tuesday to Saturday without a word. Loading such a job now says so, naming the job."""

from __future__ import annotations

import logging
import textwrap
import uuid
from datetime import datetime, timezone

import pytest

from distsched import DistributeSchedule
from distsched.model.build import build_job, quartz_weekdays

JOBS = """
[[jobs]]
name = "weekdays"
cron = "0 0 3 ? * 2-6"
target = "t"

[[jobs]]
name = "by-name"
cron = "0 0 3 ? * MON-FRI"
target = "t"
"""


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "Quartz" in r.getMessage()]


def test_the_model_names_numbered_days_of_a_quartz_style_expression():
    job = build_job("weekdays", cron="0 0 3 ? * 2-6", target="t")
    # what it means here: Tuesday (2) to Saturday (6), as the warning says
    first = job.next_fire_after(datetime(2026, 12, 7, tzinfo=timezone.utc).timestamp())  # a Monday
    assert datetime.fromtimestamp(first, timezone.utc).strftime("%A") == "Tuesday"
    said = quartz_weekdays(job)
    assert said is not None and "job 'weekdays'" in said and "'2-6'" in said and "MON-FRI" in said
    assert quartz_weekdays(build_job("n", cron="0 0 3 ? * MON-FRI", target="t")) is None
    assert quartz_weekdays(build_job("c", cron="0 3 * * 1-5", target="t")) is None  # plain cron: no '?'
    assert quartz_weekdays(build_job("e", every="1h", target="t")) is None


def test_jobs_sync_warns_once_naming_the_job(distsched_cli, tmp_path, caplog):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    result = distsched_cli("jobs", "sync", str(path), "--storage", f"memory://qz-{uuid.uuid4().hex[:8]}")
    assert result.exit_code == 0, result.output
    (said,) = _said(caplog)
    assert said.startswith(f"{path}: job 'weekdays': cron: '0 0 3 ? * 2-6' has a '?'"), said


async def test_add_job_warns_too(caplog):
    app = DistributeSchedule(f"memory://qz-{uuid.uuid4().hex[:8]}")
    try:
        await app.add_job("weekdays", cron="0 0 3 ? * 2-6", target="t")
        assert len(_said(caplog)) == 1
    finally:
        await app.stop()
