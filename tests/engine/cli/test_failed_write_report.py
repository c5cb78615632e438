"""What a failed write of a jobs file's jobs tells the operator to run, and `distsched run`'s
failed write: real Redis servers refusing writes (``maxmemory``), real commands.

* The command a failed `jobs sync` (or `scheduler --jobs FILE`) names to write what is left
  was `distsched jobs sync FILE [--prune]`: without the store, so run as given it synced the
  default store. It now names the store as the command was given it - a URL given on the
  command line or in a config file as ``--storage URL`` (its password masked, and a line
  saying to put it back), an environment variable as that variable, ``$DISTSCHED_STORAGE``
  (which `jobs sync` reads too) not at all - and runs as given once the cause is fixed.
* `distsched run FILE`, whose write failed, printed the error alone: it now says what the
  store holds, as `jobs sync` does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.testing.redis_server import RedisServer

FIRST = """
[[jobs]]
name = "keep"
every = "10s"
target = "x"

[[jobs]]
name = "change"
cron = "30 2 * * *"
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
target = "y"

[[jobs]]
name = "new"
every = "1h"
target = "w"
"""

#: `run`'s jobs file: SECOND, with the functions its worker runs.
RUN_SECOND = '[worker]\nimports = ["failed_write_tasks"]\n' + SECOND
TASKS = "from distsched import task\n\n\n@task\ndef x():\n    pass\n\n\n@task\ndef y():\n    pass\n\n\n" \
        "@task\ndef w():\n    pass\n"

PASSWORD = "s3cret-Pw"
PUT_BACK = ("  the storage URL is shown with *** in place of its password (and secret query values): put them back "
            "to run it")


def _write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A Redis of this module's own (its maxmemory is changed), with a user that has a password."""
    with RedisServer() as redis:
        raw = redis.client()
        try:
            raw.execute_command("ACL", "SETUSER", "syncer", "on", f">{PASSWORD}", "~*", "&*", "+@all")
        finally:
            raw.close()
        yield redis


def _full(server: RedisServer, full: bool) -> None:
    raw = server.client()
    try:
        raw.config_set("maxmemory", 1 if full else 0)
    finally:
        raw.close()


def _stored(url: str) -> set[str]:
    import asyncio

    async def names() -> set[str]:
        app = DistributeSchedule(url)
        try:
            return {job.name for job in await app.jobs()}
        finally:
            await app.stop()

    return asyncio.run(names())


def _command_in(report: str) -> str:
    """The command a failed write's report says writes what is left."""
    found = re.search(r"once the cause is fixed, `([^`]*)` writes", report)
    assert found, report
    return found.group(1)


def _run_shell(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``command`` as an operator would paste it into a shell (``distsched`` on the PATH)."""
    environment = {**os.environ, **(env or {})}
    environment["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(command, shell=True, env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.redis
def test_a_failed_sync_names_the_store_it_was_given_with_its_password_masked(
        distsched_cli: Any, tmp_path: Path, server: RedisServer) -> None:
    """`jobs sync FILE --storage URL`, URL with a password, refused: the command it names has
    `--storage URL` with the password masked (never printed) and a line saying to put it back;
    with the password put back, it runs as given and writes what is left."""
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    url = server.url_for("syncer", PASSWORD, namespace=f"pw{uuid.uuid4().hex[:8]}")
    assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
    _full(server, True)
    try:
        result = distsched_cli("jobs", "sync", second, "--storage", url, "--prune")
    finally:
        _full(server, False)
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output, result.output
    masked = url.replace(PASSWORD, "***")
    command = _command_in(result.output)
    assert command == f"distsched jobs sync {second} --storage {shlex.quote(masked)} --prune", result.output
    assert result.output.splitlines()[-1] == PUT_BACK, result.output
    assert _stored(url) == {"keep", "change", "stray"}
    again = _run_shell(command.replace("***", PASSWORD))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "1 added, 1 updated, 1 removed, 1 unchanged", again.stdout
    assert _stored(url) == {"keep", "change", "new"}


@pytest.mark.redis
def test_a_failed_sync_on_the_store_of_distsched_storage_does_not_repeat_it(
        distsched_cli: Any, tmp_path: Path, server: RedisServer) -> None:
    """The store from ``$DISTSCHED_STORAGE``: the command it names has no ``--storage`` (`jobs
    sync` reads the variable too) - in the same environment it writes to the same store."""
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    url = server.url_for("syncer", PASSWORD, namespace=f"env{uuid.uuid4().hex[:8]}")
    env = {"DISTSCHED_STORAGE": url}
    assert distsched_cli("jobs", "sync", first, env=env).exit_code == 0
    _full(server, True)
    try:
        result = distsched_cli("jobs", "sync", second, env=env)
    finally:
        _full(server, False)
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output and "***" not in result.output, result.output
    assert _command_in(result.output) == f"distsched jobs sync {second}", result.output
    again = _run_shell(_command_in(result.output), env=env)
    assert again.returncode == 0, again.stderr
    assert _stored(url) == {"keep", "change", "stray", "new"}


@pytest.mark.redis
@pytest.mark.parametrize("given", ["config-file", "environment"])
def test_a_scheduler_whose_sync_fails_names_its_store_as_it_was_given(
        tmp_path: Path, server: RedisServer, given: str) -> None:
    """`scheduler --jobs FILE` (a process of its own) with its store from a config file (which
    `jobs sync` does not read: the URL, masked, with the line to put the password back) or
    from ``$DISTSCHED_SCHEDULER_STORAGE`` (`jobs sync` does not read it either: the variable,
    which the same environment expands)."""
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    url = server.url_for("syncer", PASSWORD, namespace=f"sch{uuid.uuid4().hex[:8]}")
    assert _run_shell(f"distsched jobs sync {first} --storage {shlex.quote(url)}").returncode == 0
    env = {"DISTSCHED_SCHEDULER_STORAGE": url} if given == "environment" else {}
    args = ["--config", _write(tmp_path, "distsched.toml", f'storage = "{url}"\n')] if given == "config-file" else []
    env.pop("DISTSCHED_STORAGE", None)
    _full(server, True)
    try:
        scheduler = subprocess.run([sys.executable, "-m", "distsched", "scheduler", *args, "--jobs", second,
                                    "--prune", "--fail-fast"], capture_output=True, text=True, timeout=60,
                                   env={k: v for k, v in {**os.environ, **env}.items() if k != "DISTSCHED_STORAGE"})
    finally:
        _full(server, False)
    assert scheduler.returncode == 1, scheduler.stderr
    report = scheduler.stderr[scheduler.stderr.find("Error: "):]
    assert report.startswith(f"Error: jobs sync of {second} wrote nothing: OutOfMemoryError: "), scheduler.stderr
    assert PASSWORD not in scheduler.stderr, scheduler.stderr
    command = _command_in(report)
    if given == "environment":
        assert command == f'distsched jobs sync {second} --storage "$DISTSCHED_SCHEDULER_STORAGE" --prune', report
        assert "***" not in report, report
    else:
        assert command == f"distsched jobs sync {second} --storage {shlex.quote(url.replace(PASSWORD, '***'))} --prune"
        assert report.splitlines()[-1] == PUT_BACK, report
        command = command.replace("***", PASSWORD)
    again = _run_shell(command, env=env)
    assert again.returncode == 0, again.stderr
    assert _stored(url) == {"keep", "change", "new"}


@pytest.mark.redis
def test_run_whose_writes_redis_refuses_says_it_wrote_nothing(
        distsched_cli: Any, tmp_path: Path, server: RedisServer) -> None:
    """Was: `distsched run FILE` whose write Redis refused printed the error alone. It says, as
    `jobs sync` does, that it wrote nothing and which changes it did not make (it adds and
    updates the file's jobs, removes none), and the command that writes them; nothing starts."""
    _write(tmp_path, "failed_write_tasks.py", TASKS)
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", RUN_SECOND)
    url = server.url_for("syncer", PASSWORD, namespace=f"run{uuid.uuid4().hex[:8]}")
    assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
    _full(server, True)
    try:
        result = distsched_cli("run", second, "--storage", url, "--duration", "0")
    finally:
        _full(server, False)
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output and "Traceback" not in result.output, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Error: storing the jobs of {second} wrote nothing: OutOfMemoryError: command not "
                               "allowed when used memory > 'maxmemory'."), result.output
    masked = shlex.quote(url.replace(PASSWORD, "***"))
    assert lines[1:] == [
        "  not written: + new, ~ change",
        f"  the stored jobs are as they were; once the cause is fixed, `distsched jobs sync {second} --storage "
        f"{masked}` writes them",
        PUT_BACK,
    ], result.output
    assert _stored(url) == {"keep", "change", "stray"}


@pytest.mark.redis
def test_run_whose_write_redis_refuses_partway_says_what_it_wrote(
        distsched_cli: Any, tmp_path: Path, server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis starts refusing writes once `run`'s new job is stored (its maxmemory set as the
    first stored job is updated): `run` names the job it wrote and the update it did not make."""
    _write(tmp_path, "failed_write_tasks.py", TASKS)
    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", RUN_SECOND)
    url = server.url_for(namespace=f"part{uuid.uuid4().hex[:8]}")
    assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
    real = DistributeSchedule._converge

    async def converge(self: Any, *args: Any, **kwargs: Any) -> Any:
        _full(server, True)  # the new jobs are stored (in bulk, first); the updates are refused
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(DistributeSchedule, "_converge", converge)
    try:
        result = distsched_cli("run", second, "--storage", url, "--duration", "0")
    finally:
        _full(server, False)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Error: storing the jobs of {second} failed partway: OutOfMemoryError: "), \
        result.output
    assert lines[1:] == [
        f"  written before the failure (now stored as in {second}): + new",
        "  not written: ~ change",
        f"  the other stored jobs are as they were; once the cause is fixed, `distsched jobs sync {second} --storage "
        f"{shlex.quote(url)}` writes what is left",
    ], result.output
    assert _stored(url) == {"keep", "change", "stray", "new"}


def test_a_failed_sync_after_a_data_loss_names_the_command_on_this_store(caplog: pytest.LogCaptureFixture) -> None:
    """`run` and `scheduler --jobs FILE` sync again when their store lost its data; when that
    fails, the error named `distsched jobs sync FILE` alone (the default store): it names the
    command :func:`sync_again` built, with the store."""
    import asyncio
    import logging

    from distsched.cli.service import SyncAgainOnDataLoss

    async def fails() -> None:
        raise ConnectionError("the store is down")

    async def lose() -> None:
        listener = SyncAgainOnDataLoss(fails, "jobs.toml", "distsched jobs sync jobs.toml --storage 'redis://u:***@h/0'")
        listener(type("Lost", (), {"kind": "store.data_lost"})())
        assert listener._running is not None
        await listener._running

    with caplog.at_level(logging.ERROR, logger="distsched.cli"):
        asyncio.run(lose())
    assert [r.getMessage() for r in caplog.records] == [
        "could not sync the jobs of jobs.toml again after the store lost its data (the store is down); sync them by "
        "hand: distsched jobs sync jobs.toml --storage 'redis://u:***@h/0'"], caplog.text


@pytest.mark.postgres
def test_a_sync_whose_read_of_the_stored_jobs_times_out_says_it_wrote_nothing(
        distsched_cli: Any, tmp_path: Path, postgres_database: Any) -> None:
    """The stored jobs are read first, to plan the sync. With PostgreSQL's jobs table locked
    by another session past the store's command timeout, `jobs sync` printed `Error:
    TimeoutError:  (run with -vv for the traceback)`: not what timed out, nor that nothing
    was written. It now says so, with the command to run once the store answers (the
    password masked)."""
    import asyncio
    import threading

    import asyncpg

    first, second = _write(tmp_path, "first.toml", FIRST), _write(tmp_path, "second.toml", SECOND)
    schema = f"lk{uuid.uuid4().hex[:8]}"
    url = postgres_database.url_for(schema=schema, command_timeout=0.5).replace(
        "postgres@", f"postgres:{PASSWORD}@", 1)  # trust auth: the password is only shown, or not
    assert distsched_cli("jobs", "sync", first, "--storage", url).exit_code == 0
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        async def hold() -> None:
            conn = await asyncpg.connect(postgres_database.url)
            try:
                async with conn.transaction():
                    await conn.execute(f'LOCK TABLE "{schema}".jobs IN ACCESS EXCLUSIVE MODE')
                    held.set()
                    await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
            finally:
                await conn.close()

        asyncio.run(hold())

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert held.wait(10), "the lock was not taken"
        result = distsched_cli("jobs", "sync", second, "--storage", url)
    finally:
        release.set()
        holder.join(30)
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"Error: jobs sync of {second} wrote nothing: the stored jobs could not be read to plan it "
                        "(TimeoutError: the store did not answer in time)"), result.output
    masked = url.replace(PASSWORD, "***")
    assert lines[1] == f"  once the store answers, `distsched jobs sync {second} --storage {shlex.quote(masked)}` " \
                       "writes them", result.output
    assert lines[-1] == PUT_BACK
    assert _stored(url) == {"keep", "change", "stray"}
