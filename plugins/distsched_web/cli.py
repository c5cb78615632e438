"""``distsched web``: the dashboard and REST API over a shared store."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from distsched.config import STORAGE_ENV
from distsched.model import DistschedError

from .auth import DEFAULT_BIND, TOKEN_ENV


@click.command("web")
@click.option("--storage", "storage", metavar="URL", default=None,
              help=f"Storage URL (memory://, redis://host:6379/0, ...). Default: ${STORAGE_ENV} or memory://.")
@click.option("--bind", default=DEFAULT_BIND, show_default=True, metavar="HOST:PORT",
              help=f"Where to listen. Anything but loopback needs ${TOKEN_ENV}.")
@click.pass_context
def web(ctx: click.Context, storage: str | None, bind: str) -> None:
    """Serve the web dashboard and the REST API (/api/v1) over the store at --storage.

    Without $DISTSCHED_WEB_TOKEN it listens on loopback only and is read-only (it opens the
    store as a reader and writes nothing, as 'status' does); with it, changes need the token
    (log in on the pages; 'Authorization: Bearer' on the API).
    """
    from .hooks import _require_extra

    try:
        _require_extra()
        from .auth import Security, parse_bind

        security = Security.for_bind(parse_bind(bind)[0])
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None
    # Without the token nothing on the server may change anything: its store is opened as a
    # reader, as `status` opens it (no migrations, no layout marks, no tidying writes), so
    # the read-only dashboard works on a read-only replica or standby and writes nothing.
    app = _app(ctx, storage, reader=not security.writable)
    if app.config.storage.rstrip("/") == "memory:":
        click.echo("note: memory:// is private to this process, so there is nothing to show; use "
                   "`distsched run JOBS_FILE --web` for the embedded engine, or --storage redis://...", err=True)

    async def main() -> None:
        from .server import serve

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await serve(app, bind, stop)
        finally:
            await app.engine.close()

    try:
        asyncio.run(main())
    except (DistschedError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _app(ctx: click.Context, storage: str | None, *, reader: bool = False) -> Any:
    """The facade, with the global --disable-plugin / -p / --allow-replace options of the root
    command; ``reader``: the store is opened as a reader (``EngineConfig.reader``)."""
    from distsched import DistributeSchedule
    from distsched.plugin.manager import (
        allow_replace_from_env,
        disabled_from_env,
        load_plugin_modules,
        modules_from_env,
    )

    obj = ctx.find_root().obj or {}
    disabled = list(obj.get("disable") or ()) + sorted(disabled_from_env()) if obj.get("disable") else None
    allowed = (list(obj.get("allow_replace") or ()) + sorted(allow_replace_from_env())
               if obj.get("allow_replace") else None)
    try:
        extra = load_plugin_modules(list(obj.get("plugins") or ()) + modules_from_env())
        return DistributeSchedule(storage, disabled_plugins=disabled, allow_replace=allowed, plugins=extra,
                                  reader=reader)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None
