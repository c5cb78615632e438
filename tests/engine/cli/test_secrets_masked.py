"""The CLI shows a job's or task's target, options and arguments with their secrets masked,
as the web dashboard does (``distsched.masking.mask_secrets``): ``jobs sync`` (its diff and
``--json``), the scheduler's ``--jobs`` diff, ``jobs list`` (table and ``--json``), ``tasks
show`` / ``tasks list`` and the task log. Before, each printed the URL's password, the
secret query value and the Authorization header in clear."""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.cli import task_json, task_line
from distsched.jobs import load_jobs_file
from distsched.model import events as ev

PASSWORD, TOKEN, BEARER = "hunter2-canary", "tok3n-canary", "TOPSECRET-canary"
CANARIES = (PASSWORD, TOKEN, BEARER)
TARGET = f"https://admin:{PASSWORD}@example.com/x?token={TOKEN}"

JOB = f"""
[[jobs]]
name = "https-pw"
every = "1h"
executor = "http"
target = "{TARGET}"
"""
WITH_HEADER = JOB + f'options = {{ headers = {{ Authorization = "Bearer {BEARER}" }} }}\n'


def _clean(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} shown in:\n{text}"


@pytest.fixture
def url() -> str:
    return f"memory://mask-{uuid.uuid4().hex[:8]}"


def _file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_jobs_sync_and_jobs_list_mask_targets_and_headers(distsched_cli: Any, tmp_path: Path, url: str) -> None:
    first, second = _file(tmp_path, "a.toml", JOB), _file(tmp_path, "b.toml", WITH_HEADER)

    dry = distsched_cli("jobs", "sync", str(first), "--storage", url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "+ https-pw" in dry.output and "http:https://admin:***@example.com/x?token=***" in dry.output
    _clean(dry.output)
    assert distsched_cli("jobs", "sync", str(first), "--storage", url).exit_code == 0

    changed = distsched_cli("jobs", "sync", str(second), "--storage", url, "--dry-run")
    assert changed.exit_code == 0, changed.output
    assert 'options: {} -> {"headers": {"Authorization": "***"}}' in changed.output
    _clean(changed.output)
    plan = distsched_cli("jobs", "sync", str(second), "--storage", url, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.output)["updated"][0]["changes"][0]["new"] == {"headers": {"Authorization": "***"}}
    _clean(plan.output)

    table = distsched_cli("jobs", "list", "--storage", url)
    assert table.exit_code == 0 and "http:https://admin:***@" in table.output, table.output
    _clean(table.output)
    listed = distsched_cli("jobs", "list", "--storage", url, "--json")
    assert json.loads(listed.output)[0]["target"] == "https://admin:***@example.com/x?token=***"
    _clean(listed.output)


def test_a_change_of_a_masked_secret_alone_is_named(distsched_cli: Any, tmp_path: Path, url: str) -> None:
    assert distsched_cli("jobs", "sync", str(_file(tmp_path, "a.toml", WITH_HEADER)), "--storage", url).exit_code == 0
    rotated = _file(tmp_path, "b.toml", WITH_HEADER.replace(BEARER, "ROTATED-canary"))
    result = distsched_cli("jobs", "sync", str(rotated), "--storage", url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "options: " in result.output and "(a masked secret changed)" in result.output
    _clean(result.output)
    assert "ROTATED-canary" not in result.output


def test_the_schedulers_jobs_diff_masks_them(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from distsched.cli.sync import report_sync

    async def main() -> None:
        app = DistributeSchedule(url)
        try:
            await report_sync(app, load_jobs_file(_file(tmp_path, "a.toml", JOB)), prune=False)
            await report_sync(app, load_jobs_file(_file(tmp_path, "b.toml", WITH_HEADER)), prune=False)
        finally:
            await app.stop()

    asyncio.run(main())
    err = capsys.readouterr().err
    assert "admin:***@" in err and '"Authorization": "***"' in err, err
    _clean(err)


def test_tasks_show_masks_the_call(distsched_cli: Any, url: str) -> None:
    async def submit() -> str:
        app = DistributeSchedule(url)
        try:
            return await app.submit(TARGET, executor="http",
                                    options={"headers": {"Authorization": f"Bearer {BEARER}"}})
        finally:
            await app.stop()

    task_id = asyncio.run(submit())
    shown = distsched_cli("tasks", "show", task_id, "--storage", url)
    assert shown.exit_code == 0, shown.output
    assert "call      http:https://admin:***@example.com/x?token=***(" in shown.output
    _clean(shown.output)
    as_json = distsched_cli("tasks", "show", task_id, "--storage", url, "--json")
    spec = json.loads(as_json.output)["task"]["spec"]
    assert spec["options"]["headers"]["Authorization"] == "***" and "admin:***@" in spec["target"]
    _clean(as_json.output)


def test_the_task_log_masks_urls_in_errors() -> None:
    finished = ev.TaskFinished(at=1.0, task_id="t", job="j", state="failed", attempt=1, duration=0.1,
                               error=f"ConnectError: {TARGET}")
    line, data = task_line(finished), task_json(finished)
    assert line is not None and data is not None
    assert "admin:***@" in line and "admin:***@" in json.loads(data)["error"]
    _clean(line + data)
