"""Jobs files as the source of truth (issue 17.3): `distsched jobs sync` and
`distsched scheduler --jobs FILE [--prune]`, through the real command, on memory and Redis."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
import textwrap
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.model.sync import plan_sync
from distsched.testing.redis_server import redis_server_binary
from distsched.urls import redact_url

FIRST = """
[[jobs]]
name = "keep"
every = "10s"
target = "x"

[[jobs]]
name = "change"
cron = "30 2 * * *"
timezone = "Europe/Paris"
target = "y"

[[jobs]]
name = "stray"
every = "1m"
target = "z"
"""

SECOND = """
[[jobs]]
name = "keep"
every = "10s"
target = "x"

[[jobs]]
name = "change"
cron = "0 3 * * *"
timezone = "Europe/Paris"
target = "y"
timeout = "5s"

[[jobs]]
name = "new"
every = "250ms"
target = "w"
"""


def _write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _names(distsched_cli, url):
    result = distsched_cli("jobs", "list", "--storage", url, "--json")
    assert result.exit_code == 0, result.output
    return {job["name"]: job for job in json.loads(result.stdout)}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request):
    if request.param == "memory":
        return f"memory://sync-{uuid.uuid4().hex[:8]}"  # shared by the in-process commands of this test
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"sync{uuid.uuid4().hex[:8]}")
    server = request.getfixturevalue("redis_server")
    return f"{server.url}?namespace=sync-{uuid.uuid4().hex[:8]}"


def test_jobs_sync_adds_updates_and_prunes_with_a_diff(distsched_cli, tmp_path, store_url):
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    result = distsched_cli("jobs", "sync", first, "--storage", store_url)
    assert result.exit_code == 0, result.output
    assert "+ keep" in result.stdout and "+ stray" in result.stdout
    assert "3 added, 0 updated, 0 removed, 0 unchanged" in result.stdout
    before = _names(distsched_cli, store_url)
    assert set(before) == {"keep", "change", "stray"}

    # A dry run prints the diff and changes nothing.
    dry = distsched_cli("jobs", "sync", second, "--storage", store_url, "--prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert any(line.startswith("+ new") and "every 250ms" in line for line in lines), dry.stdout
    assert any(line.startswith("~ change") and "schedule: at 02:30" in line and "-> at 03:00" in line for line in lines), dry.stdout
    assert any("timeout: 1m -> 5s" in line for line in lines), dry.stdout
    assert any(line.startswith("- stray") for line in lines), dry.stdout
    assert "= 1 job(s) unchanged" in dry.stdout
    assert "(dry run: nothing changed)" in dry.stdout
    assert _names(distsched_cli, store_url) == before

    # Without --prune the stray job is named and kept.
    kept = distsched_cli("jobs", "sync", second, "--storage", store_url)
    assert kept.exit_code == 0, kept.output
    assert "! stray" in kept.stdout and "kept (--prune removes it)" in kept.stdout
    assert "1 added, 1 updated, 0 removed, 1 unchanged, 1 stored job(s) not in the file kept" in kept.stdout
    after = _names(distsched_cli, store_url)
    assert set(after) == {"keep", "change", "stray", "new"}
    assert after["keep"]["version"] == before["keep"]["version"]  # unchanged: not rewritten
    assert after["change"]["version"] == before["change"]["version"] + 1
    assert after["change"]["trigger"]["expr"] == "0 3 * * *"

    # With --prune the store equals the file.
    pruned = distsched_cli("jobs", "sync", second, "--storage", store_url, "--prune", "--json")
    assert pruned.exit_code == 0, pruned.output
    plan = json.loads(pruned.stdout)
    assert plan["removed"] == ["stray"] and plan["applied"] is True and sorted(plan["unchanged"]) == ["change", "keep", "new"]
    assert set(_names(distsched_cli, store_url)) == {"keep", "change", "new"}

    # Nothing to do: said so.
    again = distsched_cli("jobs", "sync", second, "--storage", store_url, "--prune")
    assert "0 added, 0 updated, 0 removed, 3 unchanged" in again.stdout


def test_jobs_sync_refuses_a_bad_file_and_changes_nothing(distsched_cli, tmp_path, store_url):
    first = _write(tmp_path, "first.toml", FIRST)
    assert distsched_cli("jobs", "sync", first, "--storage", store_url).exit_code == 0
    bad = _write(tmp_path, "bad.toml", """
        [[jobs]]
        name = "keep"
        every = "10s"
        target = "x"
        executor = "htp"

        [[jobs]]
        name = "other"
        every = "10s"
        target = "x"
        executor = "nope"
    """)
    result = distsched_cli("jobs", "sync", bad, "--storage", store_url, "--prune")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    # every problem of the file at once, as `jobs add` lists them
    assert "2 problem(s)" in result.output and "job 'keep': executor 'htp' is not registered" in result.output
    assert "job 'other': executor 'nope' is not registered" in result.output
    assert set(_names(distsched_cli, store_url)) == {"keep", "change", "stray"}


def test_plan_sync_names_each_changed_field():
    from distsched.facade import build_job

    old = [build_job("a", every="10s", target="t"), build_job("b", every="1m", target="t")]
    new = [build_job("a", every="10s", target="u", retry={"max_attempts": 3}), build_job("c", at="2099-01-01T00:00:00Z", target="t")]
    plan = plan_sync(old, new, prune=False)
    assert plan.added == ("c",) and plan.kept == ("b",) and plan.removed == ()
    (change,) = plan.updated
    assert [f.field for f in change.changes] == ["target", "retry"]
    assert change.changes[0].old == "t" and change.changes[0].new == "u"
    assert plan_sync(old, new, prune=True).removed == ("b",)
    assert plan.to_dict()["updated"][0]["changes"][1]["new"]["max_attempts"] == 3


async def test_facade_sync_jobs_dry_run_and_apply():
    app = DistributeSchedule(f"memory://facade-sync-{uuid.uuid4().hex[:6]}")
    try:
        await app.add_job("old", every="5s", target="t")
        from distsched.facade import build_job

        wanted = [build_job("fresh", every="5s", target="t")]
        plan = await app.sync_jobs(wanted, prune=True, dry_run=True)
        assert plan.added == ("fresh",) and plan.removed == ("old",) and not plan.applied
        assert [j.name for j in await app.jobs()] == ["old"]
        plan = await app.sync_jobs(wanted, prune=True)
        assert plan.applied and [j.name for j in await app.jobs()] == ["fresh"]
    finally:
        await app.stop()


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
def test_scheduler_names_stray_jobs_and_prunes_them(redis_server, tmp_path, distsched_cli, distsched_process,
                                                    line_matching):
    url = f"{redis_server.url}?namespace=sched-sync-{uuid.uuid4().hex[:6]}"
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0

    def start(name, *extra):
        node = distsched_process(name, "scheduler", "--storage", url, "--jobs", second, "--lease-ttl", "1",
                                 "--renew-interval", "0.3", *extra)
        line_matching(node, r"^scheduler \S+ on ")  # printed after the sync
        node.stop()
        return node.log_text()

    text = start("keeping")
    assert "! stray" in text and "1 stored job(s) not in" in text and "(kept; --prune removes them)" in text, text
    assert set(_names(distsched_cli, url)) == {"keep", "change", "stray", "new"}

    text = start("pruning", "--prune")
    assert "- stray" in text and "1 removed" in text, text
    assert set(_names(distsched_cli, url)) == {"keep", "change", "new"}


def test_prune_needs_a_jobs_file(distsched_cli):
    result = distsched_cli("scheduler", "--prune")
    assert result.exit_code == 2 and "--prune needs --jobs FILE" in result.output


@pytest.mark.redis
async def test_two_nodes_syncing_the_same_file_at_once_both_succeed(redis_server):
    """Two schedulers started together with a changed file: neither fails on the other's write."""
    from distsched.facade import build_job

    url = f"{redis_server.url}?namespace=race-{uuid.uuid4().hex[:6]}"
    first = [build_job(f"job-{i}", every="10s", target="t") for i in range(50)]
    second = [build_job(f"job-{i}", every="20s", target="t", timeout="5s") for i in range(50)]
    apps = [DistributeSchedule(url) for _ in range(4)]
    try:
        await apps[0].sync_jobs(first)
        import asyncio

        plans = await asyncio.gather(*(app.sync_jobs(second, prune=True) for app in apps))
        assert all(plan.applied for plan in plans)
        assert sum(len(p.updated) for p in plans) >= 50  # every job updated, by one node or another
        stored = {j.name: j for j in await apps[0].jobs()}
        assert len(stored) == 50 and all(j.spec.timeout == 5.0 for j in stored.values())
    finally:
        for app in apps:
            await app.stop()


class _Together:
    """A barrier for two syncs: each ``sync_jobs`` reads the stored jobs (its plan), then waits
    until the other has read them too, so both plan before either writes."""

    def __init__(self, apps):
        self.arrived = 0
        self.both = asyncio.Event()
        for app in apps:
            app.jobs = self._wrap(app.jobs)

    def _wrap(self, read):
        async def jobs():
            stored = await read()
            self.arrived += 1
            if self.arrived == 2:
                self.both.set()
            await self.both.wait()
            return stored

        return jobs


async def _sync_together(apps, *files, prune=False):
    _Together(apps)
    return await asyncio.gather(*(app.sync_jobs(jobs, prune=prune) for app, jobs in zip(apps, files)))


async def test_two_syncs_at_the_same_moment_each_report_what_they_wrote(any_store_url):
    """Was (probe finding): two schedulers syncing one jobs file at the same moment both
    reported "3 added" (the plan each computed before writing). Each now reports what it
    wrote: one adds (updates, removes) the jobs, the other names them ``concurrent`` - another
    node had made them as the file wants - and ``unchanged``. Both plan before either writes."""
    from distsched.facade import build_job

    def jobs(every, timeout="1m"):
        return [build_job(f"job-{i}", every=every, target="t", timeout=timeout) for i in range(3)]

    names = ("job-0", "job-1", "job-2")
    apps = [DistributeSchedule(any_store_url) for _ in range(2)]
    try:
        await apps[0].add_job("stray", every="1m", target="t")
        plans = await _sync_together(apps, jobs("10s"), jobs("10s"))
        assert all(p.applied and not p.updated and not p.removed for p in plans)
        for name in names:  # each job added by one sync, found made by the other
            writer = 0 if name in plans[0].added else 1
            assert name in plans[writer].added and name not in plans[writer].concurrent + plans[writer].unchanged
            other = plans[1 - writer]
            assert name not in other.added and name in other.concurrent and name in other.unchanged
        assert sum(len(p.added) for p in plans) == 3
        assert sorted(plans[0].to_dict()["concurrent"] + plans[1].to_dict()["concurrent"]) == list(names)

        plans = await _sync_together(apps, jobs("20s"), jobs("20s"), prune=True)
        for name in names:  # each job updated by one sync, found updated by the other
            updated = [[c.name for c in p.updated] for p in plans]
            writer = 0 if name in updated[0] else 1
            assert name in updated[writer] and name not in plans[writer].concurrent
            assert name not in updated[1 - writer] and name in plans[1 - writer].concurrent
            assert name in plans[1 - writer].unchanged
        remover = 0 if plans[0].removed else 1
        assert plans[remover].removed == ("stray",) and plans[1 - remover].removed == ()
        assert "stray" in plans[1 - remover].concurrent and "stray" not in plans[1 - remover].unchanged

        # Two different files at the same moment: for each job, the later writer updates what
        # the earlier one wrote, and shows the change from that (not from what it planned on).
        plans = await _sync_together(apps, jobs("30s", "5s"), jobs("30s", "7s"))
        timeouts = (5.0, 7.0)
        stored = {j.name: j.spec.timeout for j in await apps[0].jobs()}
        for name in names:
            changes = [[(f.field, f.old, f.new) for f in c.changes] for p in plans for c in p.updated if c.name == name]
            assert len(changes) == 2, (name, plans)
            later = 0 if len(changes[0]) == 1 else 1
            assert changes[later] == [("timeout", timeouts[1 - later], timeouts[later])]
            assert [field for field, _, _ in changes[1 - later]] == ["schedule", "timeout"]
            assert changes[1 - later][1] == ("timeout", 60.0, timeouts[1 - later])
            assert stored[name] == timeouts[later]
    finally:
        for app in apps:
            await app.stop()


ONE_SHOT = """
[[jobs]]
name = "once"
at = "2001-01-01T00:00:00Z"
target = "x"
args = [1]
"""


def test_a_one_shot_that_fired_stays_in_its_file(distsched_cli, tmp_path, store_url):
    """A one-shot job whose time has passed (it fired) stays in its jobs file: `jobs add`,
    `jobs sync` and a change of another field go through and keep its progress (it does not
    fire again); a new one-shot in the past, or a stored one given a new past time, is
    refused when named (`jobs add FILE NAME`), naming the job and the time, and nothing of
    the file is written; a sync (dry run too) or `jobs add` of the whole file stores it with no
    next slot (tests/engine/cli/test_past_one_shot.py says more)."""
    import asyncio

    from distsched.facade import build_job

    async def seed() -> None:  # as the leader leaves it once fired: stored, no next slot
        app = DistributeSchedule(store_url)
        try:
            await (await app.storage()).jobs.add(build_job("once", at="2001-01-01T00:00:00Z", target="x", args=[1]),
                                                 next_fire_at=None)
        finally:
            await app.stop()

    asyncio.run(seed())
    path = _write(tmp_path, "once.toml", ONE_SHOT)
    added = distsched_cli("jobs", "add", path, "--storage", store_url)
    assert added.exit_code == 0 and "once: version 1" in added.stdout, added.output
    synced = distsched_cli("jobs", "sync", path, "--storage", store_url)
    assert synced.exit_code == 0 and "0 added, 0 updated, 0 removed, 1 unchanged" in synced.stdout, synced.output

    changed = _write(tmp_path, "changed.toml", ONE_SHOT.replace("args = [1]", "args = [2]"))
    dry = distsched_cli("jobs", "sync", changed, "--storage", store_url, "--dry-run")
    assert dry.exit_code == 0 and "~ once" in dry.stdout and "args: [1] -> [2]" in dry.stdout, dry.output
    real = distsched_cli("jobs", "sync", changed, "--storage", store_url)
    assert real.exit_code == 0 and "0 added, 1 updated" in real.stdout, real.output
    job = _names(distsched_cli, store_url)["once"]
    assert job["version"] == 2 and job["next_fire_at"] is None, job  # updated, and fired already

    late = "\n[[jobs]]\nname = \"fine\"\nevery = \"1h\"\ntarget = \"x\"\n"
    for label, body in (("new", ONE_SHOT.replace('"once"', '"late"') + late),
                        ("re-timed", ONE_SHOT.replace("2001-", "2002-") + late)):
        path = _write(tmp_path, f"{label}.toml", body)
        name, year = ("late", 2001) if label == "new" else ("once", 2002)
        before = _names(distsched_cli, store_url)
        result = distsched_cli("jobs", "add", path, name, "fine", "--storage", store_url)
        assert result.exit_code == 1, (label, result.output)
        assert (f"job '{name}': at: {year}-01-01T00:00:00Z is in the past (beyond the misfire grace of 1m)"
                in result.output and "Traceback" not in result.output), (label, result.output)
        assert _names(distsched_cli, store_url) == before, label  # nothing of it written
        for args in (("jobs", "sync", path, "--dry-run"), ("jobs", "sync", path), ("jobs", "add", path)):
            result = distsched_cli(*args, "--storage", store_url)
            assert result.exit_code == 0, (label, args, result.output)
        jobs = _names(distsched_cli, store_url)
        assert jobs[name]["next_fire_at"] is None and jobs["fine"]["next_fire_at"] is not None, jobs


def _another_node_syncs_first(monkeypatch, url, configs, *, prune=False):
    """Between this sync's plan and its first write, another node syncs ``configs`` to the
    same store (two syncs at the same moment, in a fixed order). Returns a list that holds
    True once the other node has synced."""
    real = DistributeSchedule._put_jobs
    raced: list[bool] = []

    async def put_jobs(self, *args, **kwargs):
        if not raced:
            raced.append(True)
            other = DistributeSchedule(url)
            try:
                await other.sync_jobs(configs, prune=prune)
            finally:
                await other.stop()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(DistributeSchedule, "_put_jobs", put_jobs)
    return raced


def test_jobs_sync_prints_what_it_wrote_not_what_it_planned(distsched_cli, tmp_path, store_url, monkeypatch):
    """Was (noticed by the last stop): `jobs sync` printed its plan (`+ keep`, ...) before
    writing, above a summary of what it wrote: when another node synced the same file at
    the same moment, `+` lines stood above `0 added`. The diff is what this sync wrote."""
    from distsched.jobs import load_jobs_file

    path = _write(tmp_path, "first.toml", FIRST)
    keep = load_jobs_file(path).job("keep")
    raced = _another_node_syncs_first(monkeypatch, store_url, [keep])
    result = distsched_cli("jobs", "sync", path, "--storage", store_url)
    assert result.exit_code == 0, result.output
    assert raced
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith(("+", "~", "-"))] == [["+", "change"], ["+", "stray"]], \
        result.stdout
    assert "2 added, 0 updated, 0 removed, 1 unchanged" in result.stdout
    assert set(_names(distsched_cli, store_url)) == {"keep", "change", "stray"}


async def test_a_scheduler_start_prints_what_its_sync_wrote(any_store_url, tmp_path, monkeypatch, capsys):
    """`scheduler --jobs FILE` at start: the same (it printed the plan above the summary)."""
    from distsched.cli.sync import report_sync
    from distsched.jobs import load_jobs_file

    jobs_file = load_jobs_file(_write(tmp_path, "first.toml", FIRST))
    raced = _another_node_syncs_first(monkeypatch, any_store_url, jobs_file.jobs)
    app = DistributeSchedule(any_store_url)
    try:
        plan = await report_sync(app, jobs_file, prune=False)
    finally:
        await app.stop()
    assert raced and plan.added == ()
    err = capsys.readouterr().err
    assert not any(line.startswith(("+", "~", "-")) for line in err.splitlines()), err
    assert "0 added, 0 updated, 0 removed, 3 unchanged" in err


def test_jobs_sync_names_the_jobs_another_node_changed_at_the_same_moment(distsched_cli, tmp_path, store_url,
                                                                        monkeypatch):
    """Was (noticed by the last stop): the jobs another node's sync had written (or removed)
    as the file wants when this one came to (`SyncPlan.concurrent`) were only counted
    unchanged, never named: each has a `*` line, and the summary counts them."""
    from distsched.jobs import load_jobs_file

    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    assert distsched_cli("jobs", "sync", first, "--storage", store_url).exit_code == 0
    raced = _another_node_syncs_first(monkeypatch, store_url, load_jobs_file(second).jobs, prune=True)
    result = distsched_cli("jobs", "sync", second, "--storage", store_url, "--prune")
    assert result.exit_code == 0, result.output
    assert raced
    lines = result.stdout.splitlines()
    assert not any(line.startswith(("+", "~", "-")) for line in lines), result.stdout
    assert sorted(line for line in lines if line.startswith("*")) == [
        f"* {'change':<24} changed by another node at the same moment: already as in {second}",
        f"* {'new':<24} changed by another node at the same moment: already as in {second}",
        f"* {'stray':<24} changed by another node at the same moment: already removed (not in {second})",
    ], result.stdout
    assert lines[-1] == "0 added, 0 updated, 0 removed, 3 unchanged, 3 job(s) changed by another node at the same moment"
    assert set(_names(distsched_cli, store_url)) == {"keep", "change", "new"}




HTTP_JOBS = """
[[jobs]]
name = "ping"
every = "1m"
executor = "http"
target = "https://example.com/health"
"""


def test_jobs_sync_refuses_a_typo_in_the_worker_table_as_the_worker_does(distsched_cli, tmp_path, store_url):
    """Was (noticed by the last stop): `jobs sync` did not check the `[worker]` keys - a typo
    passed it silently and failed later at `distsched worker --jobs FILE`. It refuses it, the
    dry run too, with the worker's message and exit status, and writes nothing."""
    assert distsched_cli("jobs", "sync", _write(tmp_path, "first.toml", FIRST), "--storage", store_url).exit_code == 0
    path = _write(tmp_path, "jobs.toml", '[worker]\nconcurency = 4\nhttp_alow = ["example.com"]\n' + HTTP_JOBS)
    worker = distsched_cli("worker", "--jobs", path, "--storage", store_url, "--fail-fast")
    assert worker.exit_code == 1, worker.output
    said = worker.output[worker.output.find("Error: "):]
    assert said.startswith(f"Error: {path}: [worker] concurency, http_alow: unknown settings (concurency: did you "
                           "mean 'concurrency'?; http_alow: did you mean 'http_allow'?"), worker.output
    for args in ((), ("--dry-run",), ("--json",)):
        result = distsched_cli("jobs", "sync", path, "--storage", store_url, *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output[result.output.find("Error: "):] == said, (args, result.output)  # after memory://'s note
        assert "Traceback" not in result.output
    assert set(_names(distsched_cli, store_url)) == {"keep", "change", "stray"}  # nothing written
    fixed = _write(tmp_path, "fixed.toml", '[worker]\nconcurrency = 4\nhttp_allow = ["example.com"]\n' + HTTP_JOBS)
    assert distsched_cli("jobs", "sync", fixed, "--storage", store_url).exit_code == 0
    assert set(_names(distsched_cli, store_url)) == {"keep", "change", "stray", "ping"}


@pytest.mark.parametrize("table", [
    pytest.param('[worker]\nhttp_allow = ["http://exa mple.com:99999/"]\n', id="bad-value"),
    pytest.param('[worker]\nconcurency = 4\n', id="typo"),
])
def test_a_worker_table_the_worker_refuses_is_refused_before_anything_is_stored(distsched_cli, tmp_path, table):
    """``jobs sync`` checked only the ``[worker]`` keys: a value the http executor refuses (an
    ``http_allow`` entry that is no host) passed it and failed only when a worker started;
    ``scheduler --jobs FILE`` checked neither and synced the file. Both refuse it with the
    worker's own message, exit status 1, and store nothing."""
    url = f"memory://sync-{uuid.uuid4().hex[:8]}"  # shared by the in-process commands of this test
    path = _write(tmp_path, "jobs.toml", table + HTTP_JOBS)
    worker = distsched_cli("worker", "--jobs", path, "--storage", url, "--fail-fast")
    assert worker.exit_code == 1, worker.output
    said = worker.output[worker.output.find("Error: "):]
    assert said.startswith(f"Error: {path}: [worker] "), worker.output
    for command in (("jobs", "sync", path), ("jobs", "sync", path, "--dry-run")):
        result = distsched_cli(*command, "--storage", url)
        assert result.exit_code == 1, (command, result.output)
        assert result.output[result.output.find("Error: "):] == said, (command, result.output)
        assert "Traceback" not in result.output
    assert _names(distsched_cli, url) == {}, "nothing was stored"
    # a process of its own: a scheduler that is not refused runs (the timeout fails the test)
    scheduler = subprocess.run([sys.executable, "-m", "distsched", "scheduler", "--jobs", path, "--storage", url,
                                "--fail-fast"], capture_output=True, text=True, timeout=60)
    assert scheduler.returncode == 1, scheduler.stderr
    assert scheduler.stderr[scheduler.stderr.find("Error: "):] == said, scheduler.stderr


# -- a write that fails partway: the command says what the store holds then ----------------
#: The last line of a failed write's report when the command it gives shows a masked URL.
PUT_BACK = ("  the storage URL is shown with *** in place of its password (and secret query values): put them back "
            "to run it")


def _sync_fails(distsched_cli, path, url):
    result = distsched_cli("jobs", "sync", path, "--storage", url, "--prune")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.startswith("Error: jobs sync of "), result.output
    return result.output


@pytest.mark.redis
def test_a_sync_whose_writes_redis_refuses_says_it_wrote_nothing(distsched_cli, tmp_path, distsched_process,
                                                                  line_matching):
    """Was (noticed by the last stop): a sync whose write failed printed only the error (since
    the diff shown is what the store answered with, not the plan), so the operator did not
    know what was stored. Redis at its maxmemory refuses every write while it still answers
    reads: the sync says it wrote nothing, which changes were not made, and the cause; so
    does `scheduler --jobs FILE --prune` at its start."""
    from distsched.testing.redis_server import RedisServer

    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    with RedisServer() as server:
        url = server.url_for(namespace=f"full{uuid.uuid4().hex[:8]}")
        assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
        raw = server.client()
        try:
            raw.config_set("maxmemory", 1)
            said = _sync_fails(distsched_cli, second, url)
            scheduler = distsched_process("scheduler", "scheduler", "--jobs", second, "--prune", "--storage", url,
                                          "--fail-fast")
            assert scheduler.wait(timeout=60) == 1, scheduler.log_text()
            raw.config_set("maxmemory", 0)
        finally:
            raw.close()
        assert set(_names(distsched_cli, url)) == {"keep", "change", "stray"}  # as it said: nothing written
    assert said.splitlines()[0].startswith(f"Error: jobs sync of {second} wrote nothing: OutOfMemoryError: command "
                                           "not allowed when used memory > 'maxmemory'."), said
    assert said.splitlines()[1:] == [
        "  not written: + new, ~ change, - stray",
        f"  the stored jobs are as they were; once the cause is fixed, `distsched jobs sync {second} --storage "
        f"{shlex.quote(url)} --prune` writes them",
    ], said
    text = scheduler.log_text()
    assert f"Error: jobs sync of {second} wrote nothing: OutOfMemoryError: " in text, text
    assert "  not written: + new, ~ change, - stray" in text and "Traceback" not in text, text


@pytest.mark.postgres
def test_a_sync_postgresql_refuses_partway_says_what_it_wrote(distsched_cli, tmp_path, postgres_database):
    """PostgreSQL refuses the update of one job (a trigger of the database's, as a policy or
    a constraint would): the new job was already stored, the removal not made yet. The sync
    names each, with the database's error, and exits 1; run again once the cause is gone,
    it writes only what is left."""
    from distsched.testing.postgres_server import _admin

    schema = f"sync{uuid.uuid4().hex[:8]}"
    url = postgres_database.url_for(schema=schema)
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
    asyncio.run(_admin(postgres_database.url, f"""CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'job % is frozen by policy', OLD.name; END $$"""))
    asyncio.run(_admin(postgres_database.url, f"""CREATE TRIGGER refuse BEFORE UPDATE ON "{schema}".jobs FOR EACH ROW
        WHEN (OLD.name = 'change') EXECUTE FUNCTION "{schema}".refuse()"""))
    said = _sync_fails(distsched_cli, second, url)
    assert said.splitlines()[0].startswith(f"Error: jobs sync of {second} failed partway: ") and \
        "job change is frozen by policy" in said.splitlines()[0], said
    shown = redact_url(url)  # the test server's URL may hold a password ($DISTSCHED_TEST_POSTGRES)
    assert said.splitlines()[1:] == [
        f"  written before the failure (now stored as in {second}): + new",
        "  not written: ~ change, - stray",
        f"  the other stored jobs are as they were; once the cause is fixed, `distsched jobs sync {second} --storage "
        f"{shlex.quote(shown)} --prune` writes what is left",
    ] + ([] if shown == url else [PUT_BACK]), said
    assert set(_names(distsched_cli, url)) == {"keep", "change", "stray", "new"}
    asyncio.run(_admin(postgres_database.url, f'DROP TRIGGER refuse ON "{schema}".jobs'))
    again = distsched_cli("jobs", "sync", second, "--storage", url, "--prune")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == "0 added, 1 updated, 1 removed, 2 unchanged", again.stdout


@pytest.mark.redis
def test_a_sync_whose_store_goes_away_names_what_may_have_been_written(distsched_cli, tmp_path, monkeypatch):
    """Redis goes away during the sync (stopped once the new jobs are stored, before the
    update and the removal): the store cannot be read after the failure either, so the
    sync names every planned change as one that may or may not have been written."""
    from distsched.testing.redis_server import RedisServer

    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    with RedisServer() as server:
        url = server.url_for(namespace=f"gone{uuid.uuid4().hex[:8]}")
        assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
        real = DistributeSchedule._put_jobs

        async def put_jobs(self, *args, **kwargs):
            try:
                return await real(self, *args, **kwargs)
            finally:
                server.stop()  # after this sync's first writes: the rest fails

        monkeypatch.setattr(DistributeSchedule, "_put_jobs", put_jobs)
        said = _sync_fails(distsched_cli, second, url)
    lines = said.splitlines()
    assert lines[0].startswith(f"Error: jobs sync of {second} failed: ") and "Connection" in lines[0], said
    assert lines[1].startswith("  what it wrote is unknown: the store could not be read after the failure ("), said
    assert lines[2:] == [
        "  may or may not have been written: + new, ~ change, - stray",
        "  each job is written whole or not at all, but a sync is not one atomic write: once the store answers, "
        f"`distsched jobs sync {second} --storage {shlex.quote(url)} --prune --dry-run` shows what is left and "
        f"`distsched jobs sync {second} --storage {shlex.quote(url)} --prune` writes it",
    ], said
