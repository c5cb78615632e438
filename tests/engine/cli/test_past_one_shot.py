"""A jobs file's one-shot (`at`) whose time is more than its misfire grace in the past does
not stop the file's other jobs: `jobs sync`, `run FILE` and the facade's ``sync_jobs`` /
``put_jobs`` store it as a one-shot that already fired (listed, never fires) with one
WARNING naming it; a direct ``add_job`` / ``jobs add FILE NAME`` of it is still refused."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from distsched import DistributeSchedule
from distsched.model import ValidationError
from distsched.model.build import build_job

REPO = Path(__file__).resolve().parents[3]
PAST = "2026-01-07T18:50:37Z"  # long before the tests run: beyond any grace


def _file(tmp_path: Path, *, at: str = PAST, tick: str = "3s", imports: bool = False) -> str:
    path = tmp_path / "jobs.toml"
    head = '[worker]\nimports = ["pastmod"]\n' if imports else ""
    path.write_text(head + textwrap.dedent(f"""
        [[jobs]]
        name = "atsoon"
        at = "{at}"
        misfire_grace = "5s"
        target = "noop"

        [[jobs]]
        name = "tick3"
        every = "{tick}"
        target = "noop"
        """))
    return str(path)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "atsoon" in r.getMessage()]


def _listed(distsched_cli, url: str) -> dict[str, dict]:
    result = distsched_cli("jobs", "list", "--storage", url, "--json")
    assert result.exit_code == 0, result.output
    return {job["name"]: job for job in json.loads(result.stdout)}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest) -> str:
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        return f"memory://past-{tag}"
    return request.getfixturevalue("redis_server").url_for(namespace=f"past{tag}")


def test_jobs_sync_stores_a_past_one_shot_as_fired_and_the_others_as_usual(distsched_cli, tmp_path, url, caplog):
    path = _file(tmp_path)
    dry = distsched_cli("jobs", "sync", path, "--storage", url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "+ atsoon" in dry.stdout and "+ tick3" in dry.stdout
    (said,) = _warnings(caplog)  # the dry run says it too
    assert f"job 'atsoon': at: {PAST} is in the past (beyond the misfire grace of 5s)" in said
    assert "will not run" in said
    caplog.clear()

    result = distsched_cli("jobs", "sync", path, "--storage", url)
    assert result.exit_code == 0, result.output
    assert "2 added, 0 updated, 0 removed, 0 unchanged" in result.stdout
    assert len(_warnings(caplog)) == 1, _warnings(caplog)  # once, not at the plan and again at the write
    jobs = _listed(distsched_cli, url)
    assert jobs["atsoon"]["next_fire_at"] is None  # a one-shot that already fired: listed, never fires
    assert jobs["tick3"]["next_fire_at"] > time.time() - 5
    caplog.clear()

    # stored as fired: the next sync keeps it as it is, and says nothing
    again = distsched_cli("jobs", "sync", path, "--storage", url)
    assert again.exit_code == 0 and "0 added, 0 updated, 0 removed, 2 unchanged" in again.stdout, again.output
    assert _warnings(caplog) == []


def test_jobs_add_refuses_a_named_past_one_shot_and_stores_the_whole_file(distsched_cli, tmp_path, url, caplog):
    path = _file(tmp_path)
    named = distsched_cli("jobs", "add", path, "atsoon", "--storage", url)
    assert named.exit_code == 1
    assert f"job 'atsoon': at: {PAST} is in the past (beyond the misfire grace of 5s)" in named.output
    assert "Traceback" not in named.output
    assert _listed(distsched_cli, url) == {}
    whole = distsched_cli("jobs", "add", path, "--storage", url)
    assert whole.exit_code == 0, whole.output
    assert "atsoon: version 1" in whole.stdout and "tick3: version 1" in whole.stdout
    assert len(_warnings(caplog)) == 1
    assert _listed(distsched_cli, url)["atsoon"]["next_fire_at"] is None


def test_run_starts_with_a_file_holding_a_past_one_shot(tmp_path, url):
    (tmp_path / "pastmod.py").write_text("import distsched\n\n@distsched.task\ndef noop():\n    return 'ok'\n")
    path = _file(tmp_path, tick="0.3s", imports=True)
    proc = subprocess.run([sys.executable, "-m", "distsched", "run", path, "--storage", url, "--duration", "1.5"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "job 'atsoon': at: " in proc.stderr and "is in the past" in proc.stderr, proc.stderr
    assert proc.stderr.count("job 'atsoon'") == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(" tick3 " in line and "succeeded" in line for line in lines), proc.stdout
    assert not any(" atsoon " in line for line in lines), proc.stdout


def _jobs() -> list:
    return [build_job("atsoon", at=PAST, misfire_grace="5s", target="noop"),
            build_job("tick3", every="0.2s", target="noop")]


async def test_facade_sync_and_put_jobs_store_a_past_one_shot_as_fired(url, caplog):
    app = DistributeSchedule(url)
    ran: list[str] = []

    @app.task(name="noop")
    def noop() -> None:
        ran.append("noop")

    try:
        with pytest.raises(ValidationError, match=r"at: .* is in the past \(beyond the misfire grace of 5s\)"):
            await app.add_job("atsoon", at=PAST, misfire_grace="5s", target="noop")  # direct: refused
        with pytest.raises(ValidationError, match="is in the past"):
            await app.put_jobs(_jobs(), missed=False)
        assert await app.jobs() == []

        plan = await app.sync_jobs(_jobs())
        assert plan.added == ("atsoon", "tick3")
        assert len(_warnings(caplog)) == 1
        page = await app.jobs_page()
        states = {job.name: state for job, state in page.jobs}
        assert states["atsoon"].next_fire_at is None and states["tick3"].next_fire_at is not None

        # a store that lost its data: put_jobs (the re-sync, `run FILE`) stores them again
        await app.remove_job("atsoon")
        await app.remove_job("tick3")
        stored = await app.put_jobs(_jobs(), replace=True)
        assert [j.name for j in stored] == ["atsoon", "tick3"]
        assert len(_warnings(caplog)) == 1  # said once by this app

        # a stored job re-timed into the past by a file: stored as fired too
        await app.sync_jobs([build_job("later", at="2099-01-01T00:00:00Z", target="noop")])
        await app.sync_jobs([build_job("later", at=PAST, misfire_grace="5s", target="noop")])
        states = {job.name: state for job, state in (await app.jobs_page()).jobs}
        assert states["later"].next_fire_at is None
        assert any("job 'later'" in r.getMessage() for r in caplog.records)

        async with app.running():
            deadline = time.monotonic() + 20
            while len(ran) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(ran) >= 2
        assert (await app.job_history("atsoon")).tasks == ()
        assert (await app.job_history("later")).tasks == ()
    finally:
        await app.stop()

