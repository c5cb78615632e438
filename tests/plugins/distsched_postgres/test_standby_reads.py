"""The operator's reading commands against a PostgreSQL hot standby.

A deployment that keeps its state in PostgreSQL runs a streaming-replication standby; an
operator (or a dashboard) pointing ``distsched status``, ``jobs list``, ``tasks list``,
``tasks show``, ``quarantine list``, ``jobs sync --dry-run`` or the token-less ``distsched
web`` at it gets the primary's answers and writes nothing (a standby cannot). A command that
writes - or the dashboard with a token, which opens its store as a writer - fails in one line
naming the standby: its open ran ``CREATE SCHEMA`` first and failed with "cannot execute
CREATE SCHEMA in a read-only transaction". A record that cannot be decoded is left out of a
standby's answer with one clear warning (it cannot be moved aside there). ``status`` on a
standby says what it reads from instead of "point the storage URL at the primary".

One throwaway cluster for the module: a primary (``initdb`` + ``pg_ctl`` on a free port,
``wal_level = replica``) and a hot standby (``pg_basebackup -R`` into a second data
directory, another free port), filled through distsched on the primary, each read made once
the standby replayed the primary's WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distsched.testing.postgres_server import PostgresServer, postgres_bindir

pytestmark = pytest.mark.postgres

SCHEMA = "prod"
JOBS_FILE = ('[[jobs]]\nname = "every-hour"\nevery = "1h"\ntarget = "ok"\n\n'
             '[[jobs]]\nname = "nightly"\ncron = "0 3 * * *"\ntarget = "ok"\n')
#: the file `jobs sync --dry-run` compares with the store: one job changed, one new, one gone
SYNC_FILE = '[[jobs]]\nname = "every-hour"\nevery = "2h"\ntarget = "ok"\n\n[[jobs]]\nname = "new-one"\nevery = "1h"\ntarget = "ok"\n'
#: the line a writer's open on the standby fails with (and `distsched db upgrade`)
REFUSED = ("PostgreSQL is a standby (in recovery): it refuses writes, and this command writes - point the storage "
           "URL at the primary")
TOKEN = "standby-test-token-4f1c9e"


def _ok() -> str:
    return "fine"


def _bad() -> None:
    raise ValueError("boom")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A primary and its hot standby, both throwaway."""

    def __init__(self) -> None:
        # fsync off: nothing here is about durability, and the checkpoints of CREATE DATABASE
        # and of the base backup cost seconds on a busy machine with it
        self.primary = PostgresServer(settings={"wal_level": "replica", "max_wal_senders": "4", "hot_standby": "on",
                                                "fsync": "off"})
        self.standby_port = 0
        self.standby_data: Path | None = None

    def start(self) -> Cluster:
        primary = self.primary.start()
        assert primary.dir is not None
        self.standby_data = primary.dir / "standby"
        self.standby_port = _free_port()
        # -c fast: the backup's checkpoint at once (a spread one waits up to 4.5 min)
        primary._run(str(primary.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U",
                     "postgres", "-D", str(self.standby_data), "-R", "-X", "stream", "-c", "fast", "--no-sync")
        with open(self.standby_data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.standby_port}\nhot_standby = on\n")
        primary._run(str(primary.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.standby_data),
                     "-l", str(primary.dir / "standby.log"))
        return self

    def stop(self) -> None:
        if self.standby_data is not None and self.standby_data.exists():
            subprocess.run(self.primary._as_server_user([str(self.primary.bindir / "pg_ctl"), "stop", "-m",
                                                         "immediate", "-w", "-D", str(self.standby_data)]),
                           capture_output=True, timeout=60)
        self.primary.stop()  # removes its directory, the standby's data with it

    def url(self, standby: bool = False, **options: Any) -> str:
        port = self.standby_port if standby else self.primary.port
        query = "&".join(f"{k}={v}" for k, v in {"schema": SCHEMA, **options}.items())
        return f"postgresql://postgres@127.0.0.1:{port}/{self.primary.database}?{query}"

    def dsn(self, standby: bool = False) -> str:
        return self.url(standby).split("?")[0]

    async def replayed(self) -> None:
        """Wait (with a deadline) until the standby replayed everything the primary wrote."""
        import asyncpg

        primary, standby = await asyncpg.connect(self.dsn()), await asyncpg.connect(self.dsn(standby=True))
        try:
            lsn = await primary.fetchval("SELECT pg_current_wal_lsn()")
            deadline = time.monotonic() + 20
            while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn):
                assert time.monotonic() < deadline, "the standby did not replay the primary's WAL within 20 s"
                await asyncio.sleep(0.02)
            assert await standby.fetchval("SELECT pg_is_in_recovery()")
        finally:
            await primary.close()
            await standby.close()

    async def execute(self, sql: str) -> None:
        import asyncpg

        # writable whatever the database's default says
        conn = await asyncpg.connect(self.dsn(), server_settings={"default_transaction_read_only": "off"})
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def digest(self) -> dict[str, str]:
        """Every table of the deployment's schema on the primary, hashed: what a read must
        leave as it is."""
        import asyncpg

        conn = await asyncpg.connect(self.dsn())
        try:
            tables = [r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", SCHEMA)]
            return {t: await conn.fetchval(f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "
                                           f'FROM "{SCHEMA}"."{t}" r') for t in tables}
        finally:
            await conn.close()


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from distsched.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


async def _fill(cluster: Cluster) -> dict[str, Any]:
    """What a deployment leaves, through distsched on the primary (its jobs file synced):
    tasks run to success and failure by a worker (one fired from a job), a record moved aside."""
    from distsched import DistributeSchedule
    from distsched.model import TaskSpec

    app = DistributeSchedule(cluster.url(), heartbeat_interval=0.2)
    app.task(_ok, name="ok")
    app.task(_bad, name="bad")
    await app.start()
    try:
        ids = [await app.trigger_job("nightly")]
        ids += await app.submit_many([TaskSpec(target="ok")] * 3 + [TaskSpec(target="bad")])
        for task_id in ids:
            await app.wait(task_id, timeout=30)
        worker = (await (await app.storage()).workers.list_workers())[0].id
        # a job row distsched did not write: the next read moves it aside
        await cluster.execute(f"INSERT INTO {SCHEMA}.jobs (name, config, version, enabled) "
                              "VALUES ('zz-broken', 'not json', 1, true)")
        assert "zz-broken" not in [c.name for c in await app.jobs()]
    finally:
        await app.stop()
    await cluster.replayed()
    return {"task": ids[1], "fired": ids[0], "failed": ids[-1], "worker": worker}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: Any) -> Iterator[tuple[Cluster, dict[str, Any]]]:
    bindir = postgres_bindir()
    missing = [tool for tool in ("initdb", "pg_ctl", "pg_basebackup") if bindir is None or not (bindir / tool).exists()]
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        missing.append("asyncpg (pip install 'distsched[postgres]')")
    if missing:
        reason = f"a primary + hot standby needs {', '.join(missing)}, not found"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}, and CI=true: CI runs the standby tests (install the PostgreSQL server)",
                        pytrace=False)
        pytest.skip(reason)
    files = tmp_path_factory.mktemp("standby")
    (files / "jobs.toml").write_text(JOBS_FILE)
    (files / "sync.toml").write_text(SYNC_FILE)
    made = Cluster()
    try:
        made.start()
        synced = _cli("jobs", "sync", str(files / "jobs.toml"), "--storage", made.url())
        assert synced.exit_code == 0, synced.output
        facts = asyncio.run(_fill(made))
        facts["sync"] = files / "sync.toml"
        yield made, facts
    finally:
        made.stop()


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return json.loads(result.output)


def _reads(url: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Every reading command of the CLI against ``url``: what each says of the deployment."""
    status = _json(_cli("status", "--storage", url, "--json"))
    out: dict[str, Any] = {
        "status": {"jobs": status["jobs"], "counts": status["counts"], "quarantined": status["quarantined"],
                   "quarantine": status["quarantine"],
                   "leader": {k: status["leader"][k] for k in ("node_id", "term", "acquired_at", "expired")},
                   "workers": sorted((w["id"], w["state"]) for w in status["workers"])},
        "jobs": _json(_cli("jobs", "list", "--storage", url, "--json")),
        "jobs text": _cli("jobs", "list", "--storage", url).output,
        "quarantine": _cli("quarantine", "list", "--storage", url).output,
        "sync": _json(_cli("jobs", "sync", str(facts["sync"]), "--prune", "--dry-run", "--json", "--storage", url)),
    }
    for name, args in (("tasks", ()), ("failed", ("--state", "failed")), ("worker", ("--worker", facts["worker"])),
                       ("job", ("--job", "nightly")), ("page", ("-n", "2"))):
        out[name] = _json(_cli("tasks", "list", "--storage", url, "--json", *args))
    out["next page"] = _json(_cli("tasks", "list", "--storage", url, "--json", "-n", "2",
                                  "--cursor", out["page"]["next_cursor"]))
    for task_id in (facts["task"], facts["failed"]):
        out[task_id] = _json(_cli("tasks", "show", task_id, "--storage", url, "--json"))
    out["text"] = _cli("tasks", "show", facts["failed"], "--storage", url).output
    return out


def test_every_reading_command_on_the_standby_says_what_the_primary_says(cluster, caplog) -> None:
    """Each reading command exits 0 on the standby with the primary's answer; the status says
    it reads a standby (not "point the storage URL at the primary": the operator did so on
    purpose); the same reads on the primary change nothing there."""
    made, facts = cluster
    before = asyncio.run(made.digest())
    caplog.set_level(logging.WARNING)
    on_standby = _reads(made.url(standby=True), facts)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    on_primary = _reads(made.url(), facts)
    assert asyncio.run(made.digest()) == before, "a reading command wrote nothing"
    assert on_standby == on_primary

    seen = on_primary
    assert seen["status"]["jobs"]["total"] == 2 and seen["status"]["counts"] == {"succeeded": 4, "failed": 1}
    assert seen["status"]["quarantined"] == 1 and "zz-broken" in seen["quarantine"]
    assert [j["name"] for j in seen["jobs"]] == ["every-hour", "nightly"]
    assert len(seen["tasks"]["tasks"]) == 5 and len(seen["worker"]["tasks"]) == 5
    assert [t["id"] for t in seen["failed"]["tasks"]] == [facts["failed"]]
    assert [t["id"] for t in seen["job"]["tasks"]] == [facts["fired"]]
    assert len(seen["page"]["tasks"]) == len(seen["next page"]["tasks"]) == 2
    assert seen["sync"]["added"] == ["new-one"] and seen["sync"]["removed"] == ["nightly"], seen["sync"]
    assert "ValueError: boom" in seen["text"]

    standby = _json(_cli("status", "--storage", made.url(standby=True), "--json"))["store_warnings"]
    assert len(standby) == 1 and standby[0].startswith(
        "PostgreSQL is a standby (in recovery): what this reads is the primary's data as of the last transaction "
        "it replayed (committed "), standby
    assert "point the storage URL at the primary" not in standby[0]
    assert _json(_cli("status", "--storage", made.url(), "--json"))["store_warnings"] == []


def test_a_command_that_writes_fails_on_the_standby_in_one_line(cluster) -> None:
    """A writer's open ran CREATE SCHEMA first ("cannot execute CREATE SCHEMA in a read-only
    transaction"); with migrate=false it opened and failed at its first write. Now each
    names the standby and the primary, before any DDL."""
    made, facts = cluster
    for args in (("jobs", "sync", str(facts["sync"])), ("tasks", "submit", "ok"), ("db", "upgrade")):
        for url in (made.url(standby=True), made.url(standby=True, migrate="false")):
            result = _cli(*args, "--storage", url)
            assert result.exit_code == 1, (args, result.output)
            assert REFUSED in result.output, (args, result.output)
            assert "Traceback" not in result.output and "CREATE SCHEMA" not in result.output
            assert len(result.output.strip().splitlines()) == 1, result.output
    assert _cli("db", "status", "--storage", made.url(standby=True)).exit_code == 0  # it only reads

    # the same on a primary whose sessions are read-only by default
    database = made.primary.database
    asyncio.run(made.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
    try:
        result = _cli("jobs", "sync", str(facts["sync"]), "--storage", made.url())
        assert result.exit_code == 1 and ("PostgreSQL sessions are read-only (default_transaction_read_only = on): "
                                          "writes are refused, and this command writes - turn it off for this "
                                          "database or user") in result.output, result.output
        assert _cli("jobs", "list", "--storage", made.url()).exit_code == 0
    finally:
        asyncio.run(made.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only'))


def _get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class _Web:
    """``distsched web`` over ``url`` in a process of its own, on a free loopback port."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_WEB_TOKEN"}
        if token is not None:
            env["DISTSCHED_WEB_TOKEN"] = token
        self.proc = subprocess.Popen([sys.executable, "-m", "distsched", "web", "--storage", url, "--bind",
                                      f"127.0.0.1:{self.port}"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def wait(self) -> _Web:
        """Until it listens (with a deadline)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    output = self.stop()
                    raise AssertionError(f"distsched web did not listen: {output}") from None
                time.sleep(0.05)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        output, _ = self.proc.communicate(timeout=30)
        return str(output)



def test_the_dashboard_without_a_token_on_the_standby_shows_what_the_primary_shows(cluster) -> None:
    """The token-less dashboard opens its store as a reader: every API read and page answers
    on the standby as on the primary. With a token it is a writer, and its API says in one
    line why the standby cannot serve it."""
    made, facts = cluster
    api = ["/api/v1/jobs", "/api/v1/jobs/nightly", "/api/v1/jobs/nightly/history", "/api/v1/tasks",
           f"/api/v1/tasks/{facts['failed']}", "/api/v1/tasks?state=failed", "/api/v1/quarantine"]
    pages = ["/", "/jobs", "/jobs/nightly", "/tasks", f"/tasks/{facts['failed']}", "/workers"]
    shown: dict[str, dict[str, Any]] = {}
    # the three dashboards start at once (a process each: most of this test's time)
    with contextlib.ExitStack() as started:
        standby, primary, writer = webs = [_Web(made.url(standby=True)), _Web(made.url()),
                                           _Web(made.url(standby=True), token=TOKEN)]
        for web in webs:
            started.callback(web.stop)
        for web in webs:
            web.wait()
        for where, web in (("standby", standby), ("primary", primary)):
            answers: dict[str, Any] = {}
            for path in [*api, "/api/v1/overview", "/api/v1/workers", *pages]:
                status, body = _get(web.port, path)
                assert status == 200, (where, path, body[:500])
                assert "Traceback" not in body
                answers[path] = json.loads(body) if path.startswith("/api/") else body
            shown[where] = answers
        status, body = _get(writer.port, "/api/v1/jobs", token=TOKEN)
    for path in api:
        assert shown["standby"][path] == shown["primary"][path], path
    for where in shown:
        overview = shown[where]["/api/v1/overview"]
        assert [f["id"] for f in overview["failures"]] == [facts["failed"]], where
        assert [w["id"] for w in shown[where]["/api/v1/workers"]["items"]] == [facts["worker"]]
        assert "nightly" in shown[where]["/jobs"] and "ValueError: boom" in shown[where][f"/tasks/{facts['failed']}"]
    assert [r["key"] for r in shown["standby"]["/api/v1/quarantine"]["items"]] == ["zz-broken"]
    assert status >= 400 and REFUSED in json.loads(body)["error"]["reason"], body
    assert "Traceback" not in body


def test_a_record_that_cannot_be_decoded_is_left_out_on_the_standby_with_one_warning(cluster, caplog) -> None:
    """A bad row written on the primary and replayed before any read moved it aside: the
    standby's reads leave it out (exit 0, the answer without it) and warn once that it stays
    there until a read on the primary moves it; the primary keeps it until then."""
    made, facts = cluster
    before = _json(_cli("jobs", "list", "--storage", made.url(standby=True), "--json"))
    asyncio.run(made.execute(f"INSERT INTO {SCHEMA}.jobs (name, config, version, enabled) "
                             "VALUES ('zz-late', 'not json', 1, true)"))
    asyncio.run(made.replayed())
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        assert _json(_cli("jobs", "list", "--storage", made.url(standby=True), "--json")) == before
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 2 and all(s.startswith("job 'zz-late' cannot be decoded (") and
                                  "left out of what this reads; this server refuses writes (a standby?), so it "
                                  "stays where it is until a read on the primary moves it aside" in s
                                  for s in said), said
    # one process (the dashboard) says it once
    from distsched import DistributeSchedule

    async def twice() -> None:
        app = DistributeSchedule(made.url(standby=True), reader=True)
        try:
            for _ in range(3):
                assert "zz-late" not in [c.name for c in await app.jobs()]
        finally:
            await app.stop()

    caplog.clear()
    asyncio.run(twice())
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert "zz-late" not in _cli("quarantine", "list", "--storage", made.url()).output  # not moved yet


def test_a_schema_missing_on_the_standby_names_the_upgrade_on_the_primary(cluster) -> None:
    """A reading command on a standby whose schema is missing (or outdated) named
    'distsched db upgrade --storage URL' - which, run with the standby's URL, is refused: the
    upgrade runs on the primary, and the error says so."""
    made, _ = cluster
    result = _cli("status", "--storage", made.url(standby=True, schema="never_made"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert ("'distsched db upgrade --storage PRIMARY_URL' (this server is a standby: the upgrade runs on the "
            "primary) creates it") in result.output, result.output
    # on the primary, the URL it was given
    result = _cli("status", "--storage", made.url(schema="never_made"))
    assert result.exit_code == 1 and "'distsched db upgrade --storage URL' creates it" in result.output, result.output
