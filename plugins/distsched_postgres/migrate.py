"""Versioned schema migrations: ``migrations/NNNN_name.sql`` in this package, applied in order.

Each deployment (a PostgreSQL schema) records the versions applied in its table
``schema_migrations``. :func:`upgrade` applies the missing ones in one transaction under a
transaction-level advisory lock keyed by the schema, so nodes opening a fresh deployment at the
same time do not race (the second waits, then finds everything applied). A schema that carries a
version this code does not know - written by a newer distsched - is refused with
:class:`SchemaTooNew`: an older node must not write a layout it does not understand.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any

import attrs

from distsched.model import ValidationError

from .url import PostgresSettings

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def migrations() -> list[Migration]:
    """The migrations shipped with this package, by version."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):  # pragma: no cover - a packaging mistake
        raise RuntimeError(f"distsched_postgres migrations are not numbered 1..n: {versions}")
    return found


def latest() -> int:
    return migrations()[-1].version


class SchemaTooNew(ValidationError):
    """The deployment's schema was written by a newer distsched."""


class SchemaOutdated(ValidationError):
    """Migrations are missing and the node was told not to apply them (``migrate=false``)."""


class ServerRefusesWrites(ValidationError):
    """A process that writes opened a server that refuses writes: a hot standby, or
    sessions read-only by default."""


#: What the commands that only read are: they work where writes are refused.
READERS = ("status, jobs list, tasks list and show, quarantine list, jobs sync --dry-run and the dashboard "
           "without a token only read")


async def refuses_writes(conn: Any) -> str | None:
    """Why the server refuses this session's writes, and what to do - a hot standby
    (``pg_is_in_recovery()``), or ``default_transaction_read_only = on`` - or None when it
    takes them."""
    row = await conn.fetchrow("SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') "
                              "AS read_only")
    if row["standby"]:
        return ("PostgreSQL is a standby (in recovery): it refuses writes, and this command writes - point the "
                "storage URL at the primary")
    if row["read_only"] == "on":
        return ("PostgreSQL sessions are read-only (default_transaction_read_only = on): writes are refused, and "
                "this command writes - turn it off for this database or user")
    return None


@attrs.frozen
class Status:
    schema: str
    applied: tuple[tuple[int, str, str], ...]  # (version, name, applied_at ISO)
    known: int

    @property
    def current(self) -> int:
        return max((v for v, _, _ in self.applied), default=0)

    @property
    def pending(self) -> list[int]:
        done = {v for v, _, _ in self.applied}
        return [m.version for m in migrations() if m.version not in done]


_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"""


async def _exists(conn: Any, settings: PostgresSettings) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations')",
        settings.schema))


async def status(conn: Any, settings: PostgresSettings) -> Status:
    """What is applied in the deployment's schema (nothing when it does not exist)."""
    rows: list[Any] = []
    if await _exists(conn, settings):
        rows = await conn.fetch(
            f"SELECT version, name, applied_at FROM {settings.quoted_schema}.schema_migrations ORDER BY version")
    return Status(settings.schema, tuple((r["version"], r["name"], r["applied_at"].isoformat()) for r in rows),
                  latest())


def _too_new(settings: PostgresSettings, current: int) -> SchemaTooNew:
    return SchemaTooNew(
        "storage",
        f"{settings.redacted}: schema {settings.schema!r} is at version {current}, newer than this "
        f"distsched knows (up to {latest()}); upgrade distsched on this node (a newer node migrated it)",
    )


async def upgrade(conn: Any, settings: PostgresSettings, *, apply: bool = True, reader: bool = False) -> list[int]:
    """Apply the missing migrations (all in one transaction, under the schema's advisory lock);
    returns the versions applied. With ``apply=False`` (``migrate=false``), or for a
    ``reader`` (a process that only reads: the engine's ``reader``), only check - no DDL, no
    schema created: raise SchemaOutdated when some are missing, naming the command that
    applies them. Raises SchemaTooNew for a schema newer than this code, and - for anything
    but a reader - ServerRefusesWrites on a server that refuses writes (a hot standby): a
    writer's open fails there in one line, before any DDL, rather than on its first write
    (or on ``CREATE SCHEMA``: "cannot execute CREATE SCHEMA in a read-only transaction")."""
    known = migrations()
    if not reader:
        why_not = await refuses_writes(conn)
        if why_not is not None:
            raise ServerRefusesWrites(
                "storage", f"{settings.redacted}: {why_not} ({READERS}, and work there)")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", settings.lock_key())
        if reader or not apply:
            current_status = await status(conn, settings)
            if current_status.current > latest():
                raise _too_new(settings, current_status.current)
            why = ("this command only reads, and applies no migration" if reader else "migrate=false")
            if current_status.applied and not current_status.pending:
                return []
            # A standby replays the primary's schema: the upgrade is run there.
            url = ("PRIMARY_URL' (this server is a standby: the upgrade runs on the primary)"
                   if (await conn.fetchval("SELECT pg_is_in_recovery()")) else "URL'")
            if not current_status.applied:
                raise SchemaOutdated(
                    "storage",
                    f"{settings.redacted}: schema {settings.schema!r} holds no distsched deployment - is the "
                    f"schema name right? ({why}: 'distsched db upgrade --storage {url} creates it, as the first "
                    "scheduler or worker does)")
            raise SchemaOutdated(
                "storage",
                f"{settings.redacted}: schema {settings.schema!r} is at version {current_status.current}, "
                f"this distsched needs {latest()} ({why}: run 'distsched db upgrade --storage {url})")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {settings.quoted_schema}")
        await conn.execute(f"SET LOCAL search_path TO {settings.quoted_schema}")
        await conn.execute(_TABLE)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        if done and max(done) > latest():
            raise _too_new(settings, max(done))
        applied = []
        for migration in known:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                               migration.version, migration.name, migration.checksum)
            applied.append(migration.version)
        return applied
