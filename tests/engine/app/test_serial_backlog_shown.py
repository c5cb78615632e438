"""An operator sees a serial job's backlog: ``status``, ``jobs list`` (text and --json) and
"why is this task waiting" (the facade's query, ``tasks show``) on each built-in store.

Before, a serial job 100 slots behind showed nothing of it: ``status`` said ``pending 101``
and ``oldest pending -`` (its held slots are not in the ready queue), ``jobs list`` showed no
backlog, and a task waiting its turn was given no reason (or "no live worker")."""

import asyncio
import json

from click.testing import CliRunner

from distsched.cli import cli
from distsched.cli.status import render
from distsched.model import TaskState
from distsched.testing import make_worker

from .test_scheduler import Leader


async def _two_serial_jobs(url):
    """``s``: a serial job 150 slots behind (misfire fire-all): 1 run dispatched, 100 slots
    waiting (its default max_backlog: full), 49 skipped; ``t``: max_backlog 10, 4 waiting;
    ``p``: parallel, 5 slots pending (not dispatched yet)."""
    lead = await Leader.create(url)
    st = lead.storage
    await st.workers.register(make_worker("w1", now=st.clock(), concurrency=1, capacity=10))
    await lead.add("s", 100.0, every="1s", overlap="serial", misfire="fire-all")
    await lead.add("t", 100.0, every="1s", overlap="serial", misfire="fire-all", max_backlog=10)
    while await lead.scheduler.fire_due(lead.fence, 104.0):
        pass
    await st.jobs.set_paused("t", True)
    while await lead.scheduler.fire_due(lead.fence, 249.0):
        pass
    await st.jobs.set_paused("s", True)
    await lead.scheduler.dispatch_ready(lead.fence, st.clock())
    # (fired after the leader's pass: p's slots stay pending, in the ready queue)
    await lead.add("p", 100.0, every="1s", misfire="fire-all")
    while await lead.scheduler.fire_due(lead.fence, 104.0):
        pass
    await st.jobs.set_paused("p", True)
    return lead


async def _cli(url, *args):
    result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--storage", url])
    assert result.exit_code == 0, result.output
    return result.output


async def test_status_counts_the_slots_held_behind_serial_jobs(any_store_url):
    lead = await _two_serial_jobs(any_store_url)
    try:
        status = await lead.app.status()
        assert status.counts["pending"] == 100 + 4 + 5  # p's 5 slots are pending (not held)
        assert status.held is not None
        assert (status.held.total, status.held.jobs) == (104, 2)
        assert [(b.job, b.waiting) for b in status.held.backlogs] == [("s", 100), ("t", 4)]
        now = status.now
        assert abs(status.held.backlogs[0].oldest_age - (now - 101.0)) < 60
        assert abs(status.held.backlogs[1].oldest_age - (now - 101.0)) < 60
        # the oldest task the leader may dispatch: p's first slot (the held ones left out)
        assert abs(status.oldest_pending_age - (now - 100.0)) < 60
        text = render({"storage": "x", "reachable": True, **status.to_dict()})
        assert "pending 109 (104 held behind 2 serial job(s))" in text
        assert "(the held ones left out" in text
        assert "serial backlog  104 slot(s) wait their turn" in text
        assert [line.split()[:3] for line in text.splitlines() if line.startswith("  s ") or line.startswith("  t ")] \
            == [["s", "100", "waiting,"], ["t", "4", "waiting,"]]
        out = await _cli(any_store_url, "status")
        assert "pending 109 (104 held behind 2 serial job(s))" in out
        data = json.loads(await _cli(any_store_url, "status", "--json"))
        assert data["held"]["total"] == 104
        assert [b["job"] for b in data["held"]["backlogs"]] == ["s", "t"]
    finally:
        await lead.app.stop()


async def test_jobs_list_shows_how_many_slots_of_a_serial_job_wait(any_store_url):
    lead = await _two_serial_jobs(any_store_url)
    try:
        out = await _cli(any_store_url, "jobs", "list")
        lines = out.splitlines()
        assert lines[lines.index(next(x for x in lines if x.startswith("s "))) + 1] == \
            "  serial, 100 waiting of 100 - full: new slots are skipped"
        assert lines[lines.index(next(x for x in lines if x.startswith("t "))) + 1] == "  serial, 4 waiting of 10"
        p_line = lines.index(next(x for x in lines if x.startswith("p ")))
        assert p_line == len(lines) - 1 or not lines[p_line + 1].startswith("  "), "a parallel job has no backlog line"
        rows = {r["name"]: r for r in json.loads(await _cli(any_store_url, "jobs", "list", "--json"))}
        assert rows["s"]["backlog"] == {"waiting": 100, "max_backlog": 100, "full": True,
                                        "words": "serial, 100 waiting of 100 - full: new slots are skipped"}
        assert rows["t"]["backlog"] == {"waiting": 4, "max_backlog": 10, "full": False,
                                        "words": "serial, 4 waiting of 10"}
        assert rows["p"]["backlog"] is None
    finally:
        await lead.app.stop()


async def test_why_a_task_waits_names_its_turn_behind_the_serial_jobs_runs(any_store_url):
    lead = await _two_serial_jobs(any_store_url)
    try:
        live = {t.slot: t for t in await lead.storage.tasks.live("t")}
        assert live[100.0].state is TaskState.DISPATCHED
        why = await lead.app.why_waiting(live[103.0].id)
        assert why.startswith("waiting its turn behind 3 run(s) of serial job 't' (1 started, 2 waiting with an "
                              "earlier slot; max_instances 1)"), why
        assert await lead.app.why_waiting(live[100.0].id) == ""  # dispatched: not waiting
        try:
            await lead.app.wait(live[101.0].id, timeout=0.05)
        except TimeoutError as exc:
            assert "waiting its turn behind 1 run(s) of serial job 't'" in str(exc)
        else:
            raise AssertionError("the task is not dispatched")
        out = await _cli(any_store_url, "tasks", "show", live[103.0].id)
        assert "why       waiting its turn behind 3 run(s) of serial job 't'" in out
        data = json.loads(await _cli(any_store_url, "tasks", "show", live[103.0].id, "--json"))
        assert data["waiting"].startswith("waiting its turn behind 3 run(s)")
    finally:
        await lead.app.stop()
