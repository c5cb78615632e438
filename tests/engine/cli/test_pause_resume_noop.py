"""`jobs resume` of a job that is not paused changed its next slot to the first after now: the
slots it had missed (the scheduler stopped meanwhile) were neither run nor recorded skipped,
which docs/reliability.md allows only for paused or disabled jobs. It now changes nothing and
says so; `jobs pause` says what a pause does to the slots."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from distsched import DistributeSchedule


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest) -> str:
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        return f"memory://pr-{tag}"
    return request.getfixturevalue("redis_server").url_for(namespace=f"pr{tag}")


async def _with_backlog(app: DistributeSchedule, name: str, behind: float) -> float:
    """A job ``every = "1s"`` whose next slot is ``behind`` seconds in the past (as a
    scheduler stopped that long leaves it); returns that slot's time."""
    config = await app.add_job(name, every="1s", target="noop", misfire="skip", misfire_grace="2s")
    storage = await app.storage()
    missed = float(int(storage.clock() - behind))
    await storage.jobs.update(config, next_fire_at=missed)
    return missed


async def test_resume_of_a_job_that_is_not_paused_keeps_its_backlog(url):
    app = DistributeSchedule(url)
    app.task(name="noop")(lambda: None)
    try:
        missed = await _with_backlog(app, "p10", 22)
        storage = await app.storage()
        resumed = await app.resume_job("p10")
        assert (await storage.jobs.state("p10")).next_fire_at == missed  # its backlog kept
        assert resumed is False  # not paused: nothing changed
        assert await app.pause_job("p10") is True
        assert await app.pause_job("p10") is False  # paused already
        assert await app.resume_job("p10") is True
        assert (await storage.jobs.state("p10")).next_fire_at > missed + 20  # resumed: from now on

        # the missed slots of the job never paused are handled by its misfire policy when
        # the scheduler comes back: recorded skipped, not silently dropped
        missed = await _with_backlog(app, "p11", 22)
        await app.resume_job("p11")
        async with app.running():
            deadline = time.monotonic() + 20
            skipped: list = []
            while time.monotonic() < deadline:
                tasks = (await app.job_history("p11", limit=100)).tasks
                skipped = [t for t in tasks if t.state == "skipped"]
                if len(skipped) >= 15:
                    break
                await asyncio.sleep(0.1)
        assert len(skipped) >= 15, skipped
        assert all(t.reason == "misfire: skipped" for t in skipped), [t.reason for t in skipped]
    finally:
        await app.stop()


def test_jobs_resume_and_pause_say_what_they_did(distsched_cli, url):
    async def seed() -> float:
        app = DistributeSchedule(url)
        try:
            return await _with_backlog(app, "p10", 22)
        finally:
            await app.stop()

    missed = asyncio.run(seed())

    def next_fire() -> float:
        listed = distsched_cli("jobs", "list", "--storage", url, "--json")
        return {j["name"]: j for j in json.loads(listed.stdout)}["p10"]["next_fire_at"]

    resume = distsched_cli("jobs", "resume", "p10", "--storage", url)
    assert resume.exit_code == 0, resume.output
    assert resume.stdout.strip() == "p10 is not paused: nothing changed", resume.stdout
    assert next_fire() == missed  # its backlog kept
    pause = distsched_cli("jobs", "pause", "p10", "--storage", url)
    assert pause.exit_code == 0, pause.output
    assert pause.stdout.strip() == "paused p10: its slots until it is resumed are neither run nor recorded"
    again = distsched_cli("jobs", "pause", "p10", "--storage", url)
    assert again.exit_code == 0 and again.stdout.strip() == "p10 is already paused: nothing changed", again.output
    resumed = distsched_cli("jobs", "resume", "p10", "--storage", url)
    assert resumed.exit_code == 0 and resumed.stdout.strip() == "resumed p10", resumed.output
    assert next_fire() > missed + 20
    missing = distsched_cli("jobs", "resume", "nope", "--storage", url)
    assert missing.exit_code == 1 and "job 'nope' does not exist" in missing.output


def test_pause_and_resume_help_say_what_happens_to_the_slots(distsched_cli):
    pause = " ".join(distsched_cli("jobs", "pause", "--help").stdout.split())
    assert "neither run nor recorded" in pause, pause
    resume = " ".join(distsched_cli("jobs", "resume", "--help").stdout.split())
    assert "neither run nor recorded" in resume and "not paused" in resume, resume
