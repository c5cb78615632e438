"""A job left half-stored: its config, its schedule state or both gone while the rest stays (a
partial loss of Redis's data - keys evicted or deleted one by one, a hand-made ``HDEL`` -).

Found by the CLI's data-loss test when it deleted a namespace key by key while the scheduler
synced its file again: the half a deletion left behind stopped that job for good. A due entry
whose job could not be read held the leader's next due time in the past, so the leader ran
its pass thousands of times a second; a schedule state without its config made the job's
name "already exist" for ``jobs add`` and ``jobs sync`` while no read showed the job.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.testing import poison
from distsched.testing.processes import wait_until_async

pytestmark = pytest.mark.redis

EVERY = 0.3


def noop(*args: Any, **kwargs: Any) -> str:
    return "ok"


@pytest.fixture
def ns() -> str:
    return f"h{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(redis_server):
    client = redis_server.client(decode_responses=False)
    yield client
    client.close()


async def _start(distsched_app, redis_server, ns):
    app = await distsched_app(redis_server.url_for(namespace=ns), functions={"noop": noop},
                              worker=WorkerConfig(name="w", concurrency=4), heartbeat_interval=0.2)
    await app.add_job("healthy", every=f"{EVERY}s", target="noop")
    await app.add_job("half", every=f"{EVERY}s", target="noop")
    await wait_until_async(lambda: poison.succeeded(app, "half"), 10, what="the job 'half' running once")
    return app


async def _not_due(raw, p: str) -> bool:
    return raw.zscore(p + "due", "half") is None


@pytest.mark.parametrize("lost", ["jobs", "jst"])
async def test_a_job_whose_config_or_state_is_gone_is_put_aside_and_can_be_added_again(
        distsched_app, redis_server, ns, raw, lost):
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    kept = "jst" if lost == "jobs" else "jobs"
    kept_bytes = raw.hget(p + kept, "half")
    raw.hdel(p + lost, "half")
    entry = await poison.quarantined(app, "job", "half")
    what = "config" if lost == "jobs" else "schedule state"
    assert f"its {what} is missing" in entry.reason, entry.reason
    assert raw.hget(p + "qd:job:half", "config" if kept == "jobs" else "state") == kept_bytes, "the half kept"
    assert await _not_due(raw, p)
    await poison.keeps_firing(app, every=EVERY)
    # the name is free again: the job is added anew and fires
    before = await poison.succeeded(app, "half")
    await app.add_job("half", every=f"{EVERY}s", target="noop")
    await wait_until_async(lambda: _more(app, before), 10, what="the job added again firing")


async def _more(app, before: int) -> bool:
    return await poison.succeeded(app, "half") > before


async def test_a_due_entry_whose_job_is_gone_is_removed(distsched_app, redis_server, ns, raw):
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    raw.hdel(p + "jobs", "half")
    raw.hdel(p + "jst", "half")
    await wait_until_async(lambda: _not_due(raw, p), 10, what="the due entry of a job that is gone removed")
    await poison.keeps_firing(app, every=EVERY)


@pytest.mark.parametrize("how", ["add", "sync"])
async def test_a_schedule_state_left_without_its_config_does_not_hold_the_name(distsched_app, redis_server, ns,
                                                                             raw, how):
    """A paused job (no due entry, so the leader never reads it) lost its config: no read
    shows it, and adding or syncing a job of its name was refused as existing, for good."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    await app.pause_job("half")
    raw.hdel(p + "jobs", "half")
    assert "half" not in {job.name for job in await app.jobs()}
    if how == "add":
        await app.add_job("half", every=f"{EVERY}s", target="noop")
    else:
        from distsched.model import build_job
        plan = await app.sync_jobs([build_job("healthy", every=f"{EVERY}s", target="noop"),
                                    build_job("half", every=f"{EVERY}s", target="noop")])
        assert plan.added == ("half",), plan
    stored = {job.name: job for job in await app.jobs()}
    assert "half" in stored
    before = await poison.succeeded(app, "half")
    await wait_until_async(lambda: _more(app, before), 10, what="the job added again firing (not paused)")


async def test_jobs_whose_due_index_is_gone_get_their_entries_back(distsched_app, redis_server, ns, raw, caplog):
    """The due index lost whole (evicted, deleted) while the jobs stayed: they were listed,
    their next fire time in the past, and never fired again. The leader's housekeeping walks
    the jobs' states a slice a pass and gives each its entry back."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    await poison.keeps_firing(app, every=EVERY)
    caplog.set_level("WARNING", logger="distsched.redis")
    raw.delete(p + "due")
    await wait_until_async(lambda: _both_due(raw, p), 10, what="the due entries given back")
    assert any("lost their entry in the due index" in r.getMessage() and "'half'" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    before = await poison.succeeded(app, "half")
    await wait_until_async(lambda: _more(app, before), 10, what="the job firing again")
    await poison.keeps_firing(app, every=EVERY)


async def _both_due(raw, p: str) -> bool:
    return raw.zscore(p + "due", "half") is not None and raw.zscore(p + "due", "healthy") is not None


@pytest.mark.parametrize("reader", [False, True], ids=["writer", "reader"])
async def test_a_page_of_half_stored_jobs_does_not_end_the_paging(redis_server, ns, raw, reader):
    """A paused job (no due entry: no read puts it aside) whose schedule state is gone is left
    out of a page. A page of them - 60 here, one page's worth - came back empty with no next
    page: every job named after them was missing from `jobs list`, the dashboard's jobs pages
    and /api/v1/jobs while `status` counted them. A writer pages by the name index
    (``{ns}:jn``), a reader of a namespace without it by every name (``HKEYS``)."""
    from click.testing import CliRunner

    from distsched import DistributeSchedule
    from distsched.cli import cli

    url = redis_server.url_for(namespace=ns)
    app = DistributeSchedule(url, reader=reader)
    p = "{" + ns + "}:"
    writer = DistributeSchedule(url)
    for name in ("zeta", "zulu"):
        await writer.add_job(name, every="1h", target="noop")
    config = raw.hget(p + "jobs", "zeta")
    raw.hset(p + "jobs", mapping={f"half{i:03d}": config for i in range(60)})  # no schedule state
    await writer.stop()
    if reader:
        raw.delete(p + "jn")  # a namespace written before the name index: a reader pages every name
    try:
        seen, after, pages = [], None, 0
        while pages < 10:
            page = await app.jobs_page(after=after, limit=50)
            seen += [config.name for config, _ in page.jobs]
            pages += 1
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == ["zeta", "zulu"] and pages == 2, (seen, pages)
    finally:
        await app.stop()
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["jobs", "list", "--json", "--storage", url],
                                     env={"DISTSCHED_STORAGE": None})
    assert result.exit_code == 0, result.output
    assert [job["name"] for job in json.loads(result.output)] == ["zeta", "zulu"]


async def test_a_config_left_without_its_state_and_due_entry_is_put_aside_by_the_housekeeping(
        distsched_app, redis_server, ns, raw):
    """A paused job (no due entry) whose schedule state is gone: no read meets it, so it was
    never put aside - `status` and the dashboard's overview counted it as a job that no list
    showed, and its page said it did not exist, for ever. The leader's housekeeping walks the
    configs too (job_check.lua 'configs', 200 a second) and puts it aside, naming the half
    that is missing; the name is free again."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    await app.pause_job("half")
    assert raw.zscore(p + "due", "half") is None
    kept = raw.hget(p + "jobs", "half")
    raw.hdel(p + "jst", "half")
    entry = await poison.quarantined(app, "job", "half")
    assert "its schedule state is missing" in entry.reason, entry.reason
    assert raw.hget(p + "qd:job:half", "config") == kept, "the half kept"
    storage = await app.storage()
    assert await storage.jobs.count() == (1, 1), "only the healthy job is counted"
    await poison.keeps_firing(app, every=EVERY)
