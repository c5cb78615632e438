"""Throwaway PostgreSQL databases for tests.

>>> db = PostgresDatabase()          # admin URL: $DISTSCHED_TEST_POSTGRES or postgres@127.0.0.1:5432
>>> db.create()                      # CREATE DATABASE distsched_test_<random>
>>> db.url_for(schema="contract_1")  # postgresql://postgres@127.0.0.1:5432/distsched_test_...?schema=...
>>> db.drop()                        # DROP DATABASE ... WITH (FORCE)

Only the database created here is ever changed or dropped; every other database of the
server is left alone. Needs the ``asyncpg`` driver (the ``postgres`` extra).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

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
        return f"no PostgreSQL server answers at {_redact(url or admin_url())}: {type(exc).__name__}: {exc}"
    return None


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class PostgresDatabase:
    """A database of its own on a shared PostgreSQL server, created and dropped here."""

    def __init__(self, admin: str | None = None) -> None:
        self.admin = admin or admin_url()
        self.name = PREFIX + uuid.uuid4().hex[:12]
        self.created = False

    @property
    def url(self) -> str:
        parts = urlsplit(self.admin)
        return urlunsplit(parts._replace(path="/" + self.name, query=""))

    def url_for(self, **options: Any) -> str:
        """The database's URL with distsched options (``schema=...``, ``pool_size=...``)."""
        query = urlencode({k: str(v) for k, v in options.items()})
        return f"{self.url}?{query}" if query else self.url

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

    def __enter__(self) -> PostgresDatabase:
        return self.create()

    def __exit__(self, *exc: Any) -> None:
        self.drop()
