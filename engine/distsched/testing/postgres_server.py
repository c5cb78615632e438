"""Throwaway PostgreSQL databases for tests.

>>> db = PostgresDatabase()          # admin URL: $DISTSCHED_TEST_POSTGRES or postgres@127.0.0.1:5432
>>> db.create()                      # CREATE DATABASE distsched_test_<random>
>>> db.url_for(schema="contract_1")  # postgresql://postgres@127.0.0.1:5432/distsched_test_...?schema=...
>>> db.drop()                        # DROP DATABASE ... WITH (FORCE)

Only the database created here is ever changed or dropped; every other database of the
server is left alone. Needs the ``asyncpg`` driver (the ``postgres`` extra).

:class:`PostgresServer` runs a cluster of its own instead (``initdb`` + ``pg_ctl`` on a free
loopback port) for tests that stop, crash or restart the server.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..urls import redact_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "distsched_test_"


def admin_url() -> str:
    return os.environ.get("DISTSCHED_TEST_POSTGRES") or DEFAULT_ADMIN_URL


async def _admin(url: str, sql: str, timeout: float = 10.0) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=timeout)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def server_answers(url: str | None = None, timeout: float = 3.0) -> str | None:
    """None when the server at ``url`` (the admin URL) accepts a connection, else the reason."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install 'distsched[postgres]')"
    try:
        asyncio.run(_admin(url or admin_url(), "SELECT 1", timeout))
    except Exception as exc:
        return f"no PostgreSQL server answers at {redact_url(url or admin_url())}: {type(exc).__name__}: {exc}"
    return None


class PostgresDatabase:
    """A database of its own on a shared PostgreSQL server, created and dropped here."""

    def __init__(self, admin: str | None = None) -> None:
        self.admin = admin or admin_url()
        self.name = PREFIX + uuid.uuid4().hex[:12]
        self.created = False
        self._socket_directory: str | None = None  # "" once asked and there is none

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin)
        return urlunsplit(parts._replace(path="/" + self.name, query=""))

    def url_for(self, *, unix: bool = False, **options: Any) -> str:
        """The database's URL with distsched options (``schema=...``, ``pool_size=...``);
        ``unix=True``: through the server's Unix socket (:meth:`socket_directory`; a
        ``RuntimeError`` when it has none), with the same credentials."""
        query = urlencode({k: str(v) for k, v in options.items()})
        url = self.url
        if unix:
            directory = self.socket_directory()
            if directory is None:
                raise RuntimeError("the PostgreSQL server listens on no Unix socket")
            netloc = urlsplit(url).netloc
            creds = netloc.rsplit("@", 1)[0] + "@" if "@" in netloc else ""
            url = f"postgresql://{creds}/{self.name}?host={directory}"
            return f"{url}&{query}" if query else url
        return f"{url}?{query}" if query else url

    def socket_directory(self) -> str | None:
        """The first directory of the server's Unix socket (``unix_socket_directories``), or
        None when it listens on none."""
        if self._socket_directory is None:
            directories = str(asyncio.run(_admin(self.admin, "SHOW unix_socket_directories")))
            found = [d.strip() for d in directories.split(",") if d.strip().startswith("/")]
            self._socket_directory = found[0] if found else ""
        return self._socket_directory or None

    def create(self) -> PostgresDatabase:
        asyncio.run(_admin(self.admin, f'CREATE DATABASE "{self.name}"'))
        self.created = True
        atexit.register(self.drop)
        return self

    def drop(self) -> None:
        if not self.created:
            return
        self.created = False
        asyncio.run(_admin(self.admin, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    # -- the StoreServer protocol of distsched.testing.processes (what a Deployment needs) ---
    @property
    def running(self) -> bool:
        return self.created

    def start(self) -> PostgresDatabase:
        """Create the database (a no-op when it exists)."""
        return self if self.created else self.create()

    def stop(self) -> None:
        """Drop the database."""
        self.drop()

    def kill(self) -> None:
        raise NotImplementedError("a database on a shared server is never crashed: use PostgresServer "
                                  "(a cluster of its own) for fault tests")

    def restart(self) -> PostgresDatabase:
        raise NotImplementedError("a database on a shared server is never restarted: use PostgresServer")

    def log_tail(self, lines: int = 20) -> str:
        return ""

    def __enter__(self) -> PostgresDatabase:
        return self.create()

    def __exit__(self, *exc: Any) -> None:
        self.drop()


# -- a private cluster (initdb + pg_ctl) for tests that stop or crash the server ------------------
def postgres_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (``$DISTSCHED_PG_BINDIR``, ``pg_config
    --bindir``, or the newest /usr/lib/postgresql/*/bin); None when PostgreSQL is not installed."""
    found = os.environ.get("DISTSCHED_PG_BINDIR")
    candidates = [Path(found)] if found else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                                  timeout=10).stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster of its own (``initdb`` in a temp dir, ``pg_ctl`` on a free loopback
    port, trust auth for the ``postgres`` user), for tests that stop, crash or restart the
    server. Run as root, the server commands run as the ``postgres`` OS user (PostgreSQL
    refuses root). Fits the ``StoreServer`` protocol of the process harness: ``kill()`` is
    ``pg_ctl stop -m immediate`` (a crash: the next start runs crash recovery)."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.settings = {"fsync": "on", "synchronous_commit": "on", "max_connections": "100",
                         "shared_buffers": "32MB", **(settings or {})}
        self.port = 0
        self.dir: Path | None = None
        self.database = "distsched"
        self._started = False

    # -- plumbing ----------------------------------------------------------------------------
    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        proc = subprocess.run(self._as_server_user(list(argv)), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr or proc.stdout}"
                               f"\n{self.log_tail()}")

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def log(self) -> Path:
        assert self.dir is not None
        return self.dir / "server.log"

    # -- the protocol ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        if self.dir is None:
            return False
        return subprocess.run(self._as_server_user([str(self.bindir / "pg_ctl"), "status", "-D", str(self.data)]),
                              capture_output=True, timeout=30).returncode == 0

    def start(self) -> PostgresServer:
        if self._started and self.running:
            return self
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="distsched-pg-"))
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self.port = _free_port()
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-instructions")
            conf = [f"port = {self.port}", "listen_addresses = '127.0.0.1'",
                    f"unix_socket_directories = '{self.dir}'"]
            conf += [f"{k} = '{v}'" for k, v in self.settings.items()]
            with open(self.data / "postgresql.conf", "a") as out:
                out.write("\n".join(conf) + "\n")
            atexit.register(self._cleanup)
        self._run(str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))
        if not self._started:
            asyncio.run(_admin(self.admin_url, f'CREATE DATABASE "{self.database}"'))
        self._started = True
        return self

    def stop(self) -> None:
        """Stop (fast shutdown) and remove the cluster."""
        self._cleanup()

    def kill(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, nothing is flushed
        beyond what was committed; the next start runs crash recovery."""
        self._run(str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-w", "-D", str(self.data))

    def restart(self) -> PostgresServer:
        return self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def url_for(self, **options: Any) -> str:
        query = urlencode({k: str(v) for k, v in options.items()})
        return f"{self.url}?{query}" if query else self.url

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    def _cleanup(self) -> None:
        if self.dir is None:
            return
        with contextlib.suppress(Exception):
            if self.running:
                self._run(str(self.bindir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data))
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        self._started = False

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


__all__ = ["DEFAULT_ADMIN_URL", "PostgresDatabase", "PostgresServer", "admin_url", "postgres_bindir", "server_answers"]
