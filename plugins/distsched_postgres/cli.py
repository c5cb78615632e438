"""``distsched db``: the PostgreSQL schema for operators (added through ``distsched_cli_commands``).

``distsched db status --storage URL``   the versions applied, the ones pending
``distsched db upgrade --storage URL``  apply the pending migrations (under the advisory lock)
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import click

STORAGE_ENV = "DISTSCHED_STORAGE"


def _settings(url: str | None) -> Any:
    from distsched.model import ValidationError

    from .url import parse

    if not url:
        raise click.UsageError(f"give the database: --storage postgresql://... (or set {STORAGE_ENV})")
    try:
        return parse(url)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None


def _run(settings: Any, work: Any) -> Any:
    from distsched.model import DistschedError

    from .storage import PostgresStorage, connect

    async def main() -> Any:
        conn = await connect(settings, migrations=True)
        try:
            return await work(conn)
        finally:
            await conn.close()

    unreachable: tuple[type[BaseException], ...] = (*PostgresStorage.transient_errors, OSError, asyncio.TimeoutError)
    try:
        return asyncio.run(main())
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None
    except unreachable as exc:
        raise click.ClickException(f"{settings.redacted}: cannot connect: {exc}") from None


storage_option = click.option("--storage", "storage", default=lambda: os.environ.get(STORAGE_ENV),
                              metavar="URL", help=f"postgresql://... storage URL (default ${STORAGE_ENV})")


@click.group(name="db")
def db() -> None:
    """The PostgreSQL schema of a deployment: status and upgrade."""


@db.command()
@storage_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(storage: str | None, as_json: bool) -> None:
    """Show the schema version applied and the migrations pending. Exits 1 when the schema
    is newer than this distsched knows (its nodes refuse it)."""
    from . import migrate

    settings = _settings(storage)
    found = _run(settings, lambda conn: migrate.status(conn, settings))
    too_new = found.current > found.known  # the nodes of this version refuse it: so does the exit status
    if as_json:
        click.echo(json.dumps({"schema": found.schema, "current": found.current, "known": found.known,
                               "pending": found.pending,
                               "applied": [{"version": v, "name": n, "applied_at": at} for v, n, at in found.applied]}))
        if too_new:
            raise SystemExit(1)
        return
    click.echo(f"database {settings.redacted}, schema {found.schema!r}")
    if not found.applied:
        click.echo(f"  no distsched schema yet (this distsched knows versions up to {found.known}): "
                   "'distsched db upgrade' creates it, or any node does at start")
        return
    for version, name, at in found.applied:
        click.echo(f"  {version:04d} {name:<20} applied {at}")
    if too_new:
        click.echo(f"  version {found.current} is newer than this distsched knows ({found.known}): upgrade distsched")
        raise SystemExit(1)
    elif found.pending:
        click.echo(f"  pending: {', '.join(f'{v:04d}' for v in found.pending)} (run 'distsched db upgrade')")
    else:
        click.echo("  up to date")


@db.command()
@storage_option
def upgrade(storage: str | None) -> None:
    """Apply the pending migrations (safe to run while nodes run: one transaction, under the
    schema's advisory lock)."""
    from . import migrate

    settings = _settings(storage)
    applied = _run(settings, lambda conn: migrate.upgrade(conn, settings))
    if applied:
        click.echo(f"schema {settings.schema!r}: applied {', '.join(f'{v:04d}' for v in applied)}; "
                   f"now at version {migrate.latest()}")
    else:
        click.echo(f"schema {settings.schema!r}: up to date (version {migrate.latest()})")
