"""`distsched jobs list` (issue 17.7): schedules in words, long cells wrapped, and on
`memory://` in a fresh process a note that memory storage lives in one process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from distsched.cli.format import NAME_WIDTH, SCHEDULE_WIDTH, TARGET_WIDTH

JOBS = """
[[jobs]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Europe/Paris"
target = "report"

[[jobs]]
name = "every-90s-job-with-a-name-longer-than-its-column"
every = "90s"
executor = "http"
target = "https://example.invalid/a/rather/long/path/that/cannot/fit/in/its/column?and=a&query=string"

[[jobs]]
name = "seconds"
cron = "*/20 * * * * *"
target = "tick"
"""


def test_memory_in_a_fresh_process_says_why_nothing_is_listed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_STORAGE"}
    result = subprocess.run([sys.executable, "-m", "distsched", "jobs", "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == "no jobs"
    assert "memory:// storage lives only inside one process" in result.stderr
    assert "--storage redis://" in result.stderr


def test_schedules_in_words_and_long_cells_wrapped(distsched_cli, tmp_path, any_store_url):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    assert distsched_cli("jobs", "sync", str(path), "--storage", any_store_url).exit_code == 0
    result = distsched_cli("jobs", "list", "--storage", any_store_url)
    assert result.exit_code == 0, result.output
    assert "memory://" not in result.stderr  # the store has jobs: no note
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "TARGET", "NEXT", "(UTC)"]
    width = NAME_WIDTH + SCHEDULE_WIDTH + TARGET_WIDTH + 2
    assert all(len(line) <= width + 21 for line in lines), "no cell runs past its column"
    text = "\n".join(lines)
    assert "at 02:30 (cron '30 2 * * *'," in text and "Europe/Paris)" in text
    assert "every 1m30s" in text and "every 20 seconds" in text
    # the long target is wrapped, not cut: its pieces, in order, give it back
    target_cells = [line[NAME_WIDTH + SCHEDULE_WIDTH + 2:NAME_WIDTH + SCHEDULE_WIDTH + 2 + TARGET_WIDTH].strip()
                    for line in lines[1:]]
    joined = "".join(target_cells)
    assert "http:https://example.invalid/a/rather/long/path/that/cannot/fit/in/its/column?and=a&query=string" in joined
    data = json.loads(distsched_cli("jobs", "list", "--storage", any_store_url, "--json").stdout)
    assert {j["name"]: j["schedule"] for j in data}["seconds"] == "every 20 seconds (cron '*/20 * * * * *')"


@pytest.mark.redis
def test_listing_many_jobs_reads_them_by_pages(distsched_cli, redis_server):
    """`jobs list` read each job's schedule state with a call of its own: 10,000 jobs were
    10,000 round trips. It reads pages of jobs with their state now."""
    from distsched import DistributeSchedule
    from distsched.model import build_job

    url = redis_server.url_for(namespace=f"many{uuid.uuid4().hex[:8]}")
    names = [f"job-{i:04d}" for i in range(1500)]

    async def add() -> None:
        async with DistributeSchedule(url) as app:
            await app.put_jobs([build_job(n, every="1h", target="tick") for n in names])

    asyncio.run(add())
    raw = redis_server.client()
    try:
        before = _script_calls(raw)
        result = distsched_cli("jobs", "list", "--storage", url, "--json")
        after = _script_calls(raw)
    finally:
        raw.close()
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [j["name"] for j in listed] == names
    assert all(j["next_fire_at"] is not None and j["paused"] is False for j in listed)
    # two pages of up to 1,000: a few script calls, not one a job
    assert after - before < 20, after - before


def _script_calls(raw) -> int:
    """Script and function calls the server ran so far (FCALL, EVALSHA, EVAL and their _RO forms)."""
    stats = raw.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items()
               if k.split("_", 1)[1].split("|")[0] in ("fcall", "fcall_ro", "evalsha", "evalsha_ro", "eval", "eval_ro"))
