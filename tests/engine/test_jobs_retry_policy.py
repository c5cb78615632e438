"""A jobs file's retry table with intervals, retry_on and dont_retry_on: read, refused naming
the job and the field when wrong, and shown by ``distsched explain``."""

from __future__ import annotations

import json
import textwrap

import pytest

from distsched.jobs import JobsFileError, load_jobs_file


def write(tmp_path, text):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    [[jobs]]
    name = "sync"
    every = "1h"
    target = "sync"
    retry = { max_attempts = 4, intervals = ["10s", 30, "1m"], retry_on = ["ConnectionError", "Timeout"], dont_retry_on = ["ValueError"] }
"""


def test_the_fields_are_read(tmp_path):
    [job] = load_jobs_file(write(tmp_path, GOOD)).jobs
    retry = job.spec.retry
    assert retry.intervals == (10.0, 30, 60.0) and retry.max_attempts == 4
    assert retry.retry_on == ("ConnectionError", "Timeout") and retry.dont_retry_on == ("ValueError",)


def test_bad_tables_are_refused_naming_the_job_and_the_field(tmp_path):
    path = write(tmp_path, """
        [[jobs]]
        name = "a"
        every = "1h"
        retry = { max_attempts = 4, intervals = ["10s"], backoff = "fixed" }

        [[jobs]]
        name = "b"
        every = "1h"
        retry = { max_attempts = 4, retry_on = ["requests.exceptions.ConnectionError"] }

        [[jobs]]
        name = "c"
        every = "1h"
        retry = { max_attempts = 4, intervals = ["soon"] }

        [[jobs]]
        name = "d"
        every = "1h"
        retry = { max_attempts = 4, dont_retry_on = "ValueError" }

        [[jobs]]
        name = "e"
        every = "1h"
        retry = { intervals = [10, 30] }
    """)
    with pytest.raises(JobsFileError) as err:
        load_jobs_file(path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "job 'a': retry.intervals: cannot be combined with retry.backoff" in text
    assert "job 'b': retry.retry_on: 'requests.exceptions.ConnectionError' is not an exception class's bare name" in text
    assert "write ConnectionError" in text
    assert "job 'c': retry.intervals: " in text and "soon" in text
    assert "job 'd': retry.dont_retry_on: must be a list of exception class names" in text
    assert "job 'e': retry.intervals: are never used with max_attempts = 1" in text
    assert len(problems) == 5


def test_explain_shows_the_policy(distsched_cli, tmp_path):
    path = str(write(tmp_path, GOOD))
    result = distsched_cli("explain", path, "-n", "1")
    assert result.exit_code == 0, result.output
    assert ("    retry: 4 attempts, waits 10s, 30s, 60s (the last repeats); retried only on ConnectionError, "
            "Timeout; never on ValueError") in result.output
    data = json.loads(distsched_cli("explain", path, "-n", "1", "--json").output)
    assert data[0]["retry"]["intervals"] == [10.0, 30, 60.0] and data[0]["retry"]["dont_retry_on"] == ["ValueError"]
