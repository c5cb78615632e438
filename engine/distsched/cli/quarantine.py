"""``distsched quarantine``: the records a store moved aside because they could not be decoded.

    distsched quarantine list [-n N] [--json]
    distsched quarantine drop KIND KEY

A record written by something other than distsched (a broken client, a bad migration,
someone with credentials) that the engine cannot decode is moved aside - out of every index,
its bytes kept, the reason recorded - and the deployment goes on without it
(``distsched.ports.Quarantine``). ``list`` shows every such record; ``drop`` forgets one once
its kept bytes were inspected (where they are: the Failure modes of docs/redis.md and
docs/postgres.md).
"""

from __future__ import annotations

import json
from typing import Any

import click

from . import _store_call, cli, storage_option
from .format import note_memory, when


@cli.group()
def quarantine() -> None:
    """The records the store moved aside because they could not be decoded: list them; drop one
    once its kept bytes were inspected (see Failure modes in docs/redis.md or docs/postgres.md)."""


@quarantine.command("list")
@storage_option
@click.option("-n", "limit", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="How many records, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def quarantine_list(ctx: click.Context, storage: str | None, limit: int, as_json: bool) -> None:
    """List the quarantined records, newest first: when, kind, key and why."""
    async def call(app: Any) -> list[Any]:
        found = await app.quarantined(limit)
        note_memory(app.config.storage, not found)
        return found

    rows = _store_call(ctx, storage, call, reader=True)
    if as_json:
        click.echo(json.dumps({"quarantined": [{"kind": q.kind, "key": q.key, "reason": q.reason, "at": q.at}
                                               for q in rows]}))
        return
    if not rows:
        click.echo("nothing quarantined")
        return
    for q in rows:
        click.echo(f"{when(q.at)}  {q.kind} {q.key!r}: {q.reason}")
    click.echo("inspect a record's kept bytes (see Failure modes in docs/redis.md or docs/postgres.md), then: "
               "distsched quarantine drop KIND KEY")


@quarantine.command("drop")
@click.argument("kind")
@click.argument("key")
@storage_option
@click.pass_context
def quarantine_drop(ctx: click.Context, kind: str, key: str, storage: str | None) -> None:
    """Forget the quarantined record KIND KEY (as `list` shows them: job nightly, task ID...),
    its kept bytes with it. Exit status 1 when no such record is quarantined."""
    if not _store_call(ctx, storage, lambda app: app.drop_quarantined(kind, key)):
        raise click.ClickException(f"no {kind} {key!r} is quarantined (distsched quarantine list shows them)")
    click.echo(f"dropped {kind} {key!r}: its entry and its kept bytes")
