"""`distsched jobs show NAME`: one stored job whole - its definition, its state and its last
runs - on memory:// and a real Redis. Before, no command showed one stored job: `jobs list`
gave a line a job, `explain` read a jobs file, only the dashboard's job page showed it."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import uuid

import pytest

from distsched import DistributeSchedule
from tests.engine.app.test_serial_backlog_shown import _two_serial_jobs

SECRET = "hunter2-do-not-print"

#: The keys of `jobs show --json`, as docs/cli.md lists them.
KEYS = {"name", "trigger", "schedule", "executor", "target", "enabled", "overlap", "backlog", "paused", "next_fire_at",
        "version", "ended", "description", "timezone", "start_date", "end_date", "jitter", "args", "kwargs",
        "options", "timeout", "retry", "retry_words", "misfire", "balancer", "balance_key", "next_fire_utc",
        "next_fire_local", "last_slot", "last_outcome", "last_outcome_at", "last_task", "backlog_oldest_at",
        "quarantined", "runs", "more_runs"}
RUN_KEYS = {"id", "job", "slot", "state", "attempt", "worker", "created_at", "started_at", "finished_at", "duration",
            "error", "error_line", "held_until", "scheduled_for"}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        return f"memory://show-{tag}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"js{tag}")
    return request.getfixturevalue("redis_server").url_for(namespace=f"js{tag}")


def ok() -> int:
    return 1


def login(password: str = "") -> None:
    raise ValueError(f"login failed (password={password})\nsecond line of the error")


def _seed_runs(url: str) -> None:
    """``good``: 3 slots run and succeeded; ``broken`` (a password in its kwargs): 1 slot
    failed after 2 attempts, its error naming the password over two lines."""
    async def main() -> None:
        app = DistributeSchedule(url, heartbeat_interval=0.2)
        app.task(ok, name="ok")
        app.task(login, name="login")
        store = await app.storage()
        good = await app.add_job("good", every="1h", target="ok", misfire="fire-all", misfire_grace="4h")
        broken = await app.add_job("broken", every="1h", target="login", kwargs={"password": SECRET},
                                   misfire="fire-all", misfire_grace="4h",
                                   retry={"max_attempts": 2, "delay": 0.01, "max_delay": 0.01})
        hour = 3600 * int(store.clock() // 3600)
        await store.jobs.update(good, next_fire_at=hour - 2 * 3600.0)  # 3 slots behind: fire-all runs them
        await store.jobs.update(broken, next_fire_at=float(hour))
        deadline = time.monotonic() + 20
        async with app.running():
            while time.monotonic() < deadline:
                done = [t for name in ("good", "broken") for t in (await app.job_history(name)).tasks
                        if t.state.value in ("succeeded", "failed")]
                if len(done) == 4:
                    break
                await asyncio.sleep(0.02)
        await app.stop()
        assert len(done) == 4, done

    asyncio.run(main())


def _field(output: str, label: str) -> str:
    """The value of the line ``label`` of `jobs show`."""
    return next(line[12:] for line in output.splitlines() if line.startswith(f"{label:<12}"))


def test_a_job_with_runs_shows_its_definition_state_and_last_runs(distsched_cli, url):
    _seed_runs(url)
    shown = distsched_cli("jobs", "show", "good", "--storage", url)
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert _field(out, "schedule") == "every 1h"
    assert _field(out, "call") == "local:ok()   timeout 1m"
    assert _field(out, "retry") == "1 attempt (no retry)"
    assert _field(out, "overlap") == "parallel, max_instances 1, max_backlog 100"
    assert _field(out, "misfire") == "fire-all, grace 4h"
    assert _field(out, "state") == "active"
    assert _field(out, "next").endswith(" UTC") and _field(out, "last slot").endswith(" UTC")
    assert _field(out, "last run").startswith("succeeded at ")
    assert _field(out, "runs") == "3, newest first (every one it has)"
    runs = out.splitlines()[-3:]
    assert [r.split()[2:4] for r in runs] == [["succeeded", "1"]] * 3, runs
    assert [r.split()[0:2] for r in runs] == sorted((r.split()[0:2] for r in runs), reverse=True)  # newest first

    shown = distsched_cli("jobs", "show", "broken", "--storage", url, "--runs", "1")
    assert shown.exit_code == 0, shown.output
    assert _field(shown.output, "call") == 'local:login(password="***")   timeout 1m'
    assert _field(shown.output, "retry") == "2 attempts, exponential backoff from 0.01s, at most 0.01s"
    last = shown.output.splitlines()[-1].split(None, 5)
    assert last[2:4] == ["failed", "2"], last  # its state and attempts
    assert last[5] == "ValueError: login failed (password=***)", last  # the error's first line, masked
    assert "second line" not in shown.output

    data = json.loads(distsched_cli("jobs", "show", "broken", "--storage", url, "--json").output)
    assert set(data) == KEYS
    assert (data["kwargs"], data["last_outcome"], data["retry"]["max_attempts"]) == ({"password": "***"}, "failed", 2)
    (run,) = data["runs"]
    assert set(run) == RUN_KEYS
    assert (run["state"], run["attempt"], run["error_line"]) == ("failed", 2, "ValueError: login failed (password=***)")
    assert run["slot"] == data["last_slot"] and run["id"] == data["last_task"]
    for args in (("--json",), ()):  # the secret is never printed
        assert SECRET not in distsched_cli("jobs", "show", "broken", "--storage", url, *args).output


JOBS = """
[[jobs]]
name = "nightly-report"
description = "the report, password=desc-do-not-print"
cron = "30 2 * * *"
timezone = "Europe/Paris"
target = "t"
jitter = "30s"
start_date = "2020-01-01T00:00:00Z"
end_date = "9999-01-01T00:00:00Z"
args = ["https://user:pa55word@example.com/x"]
kwargs = { api_token = "tok-do-not-print", rows = 3 }
options = { headers = { Authorization = "Bearer bearer-do-not-print" } }

[[jobs]]
name = "over"
every = "1h"
target = "t"
end_date = "2020-01-01T00:00:00Z"

[[jobs]]
name = "off"
every = "1h"
target = "t"
enabled = false
"""


def test_a_paused_job_an_ended_one_and_a_disabled_one_say_so(distsched_cli, tmp_path, url):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    assert distsched_cli("jobs", "sync", str(path), "--storage", url).exit_code == 0
    live = distsched_cli("jobs", "show", "nightly-report", "--storage", url)
    assert live.exit_code == 0, live.output
    assert _field(live.output, "schedule") == ("at 02:30 (cron '30 2 * * *', Europe/Paris), from 2020-01-01T00:00:00Z "
                                               "until 9999-01-01T00:00:00Z, jitter 30s")
    assert _field(live.output, "time zone") == "Europe/Paris"
    nxt = _field(live.output, "next")  # in UTC and in its zone: 02:30 in Paris is 01:30 or 00:30 UTC
    assert nxt.endswith("T02:30:00+01:00 Europe/Paris)") or nxt.endswith("T02:30:00+02:00 Europe/Paris)"), nxt
    assert " 01:30:00 UTC" in nxt or " 00:30:00 UTC" in nxt, nxt
    assert _field(live.output, "runs") == "none yet"
    for args in ((), ("--json",)):  # no secret of its args, kwargs or options is printed
        out = distsched_cli("jobs", "show", "nightly-report", "--storage", url, *args).output
        assert not any(s in out for s in ("pa55word", "tok-do-not-print", "bearer-do-not-print", "desc-do-not-print")), out
    data = json.loads(distsched_cli("jobs", "show", "nightly-report", "--storage", url, "--json").output)
    assert data["kwargs"] == {"api_token": "***", "rows": 3} and data["timezone"] == "Europe/Paris"
    assert data["next_fire_local"].endswith(("T02:30:00+01:00", "T02:30:00+02:00"))

    assert distsched_cli("jobs", "pause", "nightly-report", "--storage", url).exit_code == 0
    paused = distsched_cli("jobs", "show", "nightly-report", "--storage", url)
    assert _field(paused.output, "state") == "paused"
    assert _field(paused.output, "next").startswith("none while paused")
    data = json.loads(distsched_cli("jobs", "show", "nightly-report", "--storage", url, "--json").output)
    assert data["paused"] is True and data["next_fire_at"] is not None  # as stored, as jobs list --json gives it

    ended = distsched_cli("jobs", "show", "over", "--storage", url)
    assert ended.exit_code == 0, ended.output
    assert _field(ended.output, "state") == "ended: no slot after its end_date 2020-01-01 00:00:00"
    assert not any(line.startswith("next ") for line in ended.output.splitlines())
    data = json.loads(distsched_cli("jobs", "show", "over", "--storage", url, "--json").output)
    assert data["ended"] is True and data["next_fire_at"] is None

    off = distsched_cli("jobs", "show", "off", "--storage", url)
    assert _field(off.output, "state") == "disabled (enabled = false)"
    assert _field(off.output, "next") == "none while disabled"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backlog_url(request: pytest.FixtureRequest) -> str:
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        return f"memory://show-backlog-{tag}"
    return request.getfixturevalue("redis_server").url_for(namespace=f"jb{tag}")


def test_a_serial_jobs_backlog_is_shown(distsched_cli, backlog_url):
    lead = asyncio.run(_two_serial_jobs(backlog_url))
    asyncio.run(lead.app.stop())
    shown = distsched_cli("jobs", "show", "t", "--storage", backlog_url)
    assert shown.exit_code == 0, shown.output
    assert _field(shown.output, "backlog") == "serial, 4 waiting of 10  (oldest waiting slot 1970-01-01 00:01:41 UTC)"
    assert _field(shown.output, "overlap") == "serial, max_instances 1, max_backlog 10"
    full = distsched_cli("jobs", "show", "s", "--storage", backlog_url, "--json")
    data = json.loads(full.output)
    assert data["backlog"] == {"waiting": 100, "max_backlog": 100, "full": True,
                               "words": "serial, 100 waiting of 100 - full: new slots are skipped"}
    assert data["backlog_oldest_at"] == 101.0
    assert json.loads(distsched_cli("jobs", "show", "p", "--storage", backlog_url, "--json").output)["backlog"] is None


def test_an_unknown_name_is_one_line_with_the_closest_stored_names(distsched_cli, tmp_path, url):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    assert distsched_cli("jobs", "sync", str(path), "--storage", url).exit_code == 0
    typo = distsched_cli("jobs", "show", "nightly-reprot", "--storage", url)
    assert typo.exit_code == 1
    assert typo.output == "Error: no job named 'nightly-reprot'; did you mean 'nightly-report'?\n"
    none = distsched_cli("jobs", "show", "zzz", "--storage", url, "--json")
    assert (none.exit_code, none.output) == (1, "Error: no job named 'zzz'\n")


def test_a_store_that_cannot_be_opened_is_one_line(distsched_cli):
    shown = distsched_cli("jobs", "show", "x", "--storage", "redis://127.0.0.1:1/0")
    assert shown.exit_code == 1
    assert len(shown.output.splitlines()) == 1 and shown.output.startswith("Error: "), shown.output
    assert "could not open redis://127.0.0.1:1/0" in shown.output


@pytest.mark.redis
def test_a_quarantined_job_says_so(distsched_cli, redis_server):
    ns = f"jq{uuid.uuid4().hex[:10]}"
    url = redis_server.url_for(namespace=ns)

    async def seed() -> None:
        app = DistributeSchedule(url)
        await app.add_job("poison", every="1h", target="t")
        await app.stop()

    asyncio.run(seed())
    raw = redis_server.client(decode_responses=False)
    try:
        raw.hset("{" + ns + "}:jobs", "poison", b"{not json\xff")
        first = distsched_cli("jobs", "show", "poison", "--storage", url)  # the read moves it aside
        again = distsched_cli("jobs", "show", "poison", "--storage", url)
    finally:
        raw.close()
    for shown in (first, again):
        assert shown.exit_code == 1
        assert len(shown.output.splitlines()) == 1, shown.output
        assert shown.output.startswith("Error: job 'poison' is quarantined ("), shown.output
        assert shown.output.rstrip().endswith("see distsched quarantine list"), shown.output
