"""The jobs file's start_date, end_date and jitter: TOML offset date-times or text with an
offset are read, a local (naive) date-time is refused naming the job and the field, as is an
end_date not after the start_date and a jitter out of bounds - every problem at once."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import pytest

from distsched.jobs import JobsFileError, load_jobs_file

GOOD = """
[[jobs]]
name = "campaign"
cron = "*/5 * * * *"
target = "t"
start_date = 2030-01-01T09:00:00+01:00
end_date = "2030-02-01T00:00:00Z"
jitter = "30s"

[[jobs]]
name = "poll"
every = "1m"
target = "t"
start_date = "2030-01-01T00:00:07Z"
jitter = 10
"""

BAD = """
[[jobs]]
name = "naive"
every = "1m"
target = "t"
start_date = 2030-01-01T09:00:00

[[jobs]]
name = "naive-text"
cron = "* * * * *"
target = "t"
end_date = "2030-01-01 09:00"

[[jobs]]
name = "backwards"
every = "1m"
target = "t"
start_date = 2030-01-02T00:00:00Z
end_date = 2030-01-01T00:00:00Z

[[jobs]]
name = "wide"
every = "1m"
target = "t"
jitter = "2m"

[[jobs]]
name = "once"
at = "2030-01-01T00:00:00Z"
target = "t"
jitter = "1s"

[[jobs]]
name = "a-day"
cron = "* * * * *"
target = "t"
start_date = 2030-01-01
"""


def _write(tmp_path, text):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_window_and_jitter_are_read(tmp_path):
    jobs = load_jobs_file(_write(tmp_path, GOOD))
    campaign, poll = jobs.job("campaign").trigger, jobs.job("poll").trigger
    assert campaign.start == datetime(2030, 1, 1, 8, tzinfo=timezone.utc).timestamp()
    assert campaign.end == datetime(2030, 2, 1, tzinfo=timezone.utc).timestamp() and campaign.jitter == 30
    assert poll.start_date == datetime(2030, 1, 1, 0, 0, 7, tzinfo=timezone.utc).timestamp() and poll.jitter == 10


def test_bad_windows_are_refused_naming_the_job_and_field(tmp_path):
    with pytest.raises(JobsFileError) as err:
        load_jobs_file(_write(tmp_path, BAD))
    problems = err.value.problems
    assert len(problems) == 6, problems
    said = "\n".join(problems)
    for line in ("job 'naive': start_date: ", "job 'naive-text': end_date: ", "job 'backwards': end_date: must be "
                 "after start_date", "job 'wide': jitter: ", "job 'once': jitter: applies to cron and every",
                 "job 'a-day': start_date: "):
        assert line in said, said
    assert said.count("no time zone") == 2 and "Traceback" not in said
