"""Entry point of the ``web`` plugin: hook implementations only, nothing heavy.

Starlette, uvicorn and Jinja2 (the ``web`` extra) are imported when a server starts, so
``distsched --help`` works without them.
"""

from __future__ import annotations

from typing import Any

from distsched import hookimpl


@hookimpl
def distsched_cli_commands() -> list[Any]:
    from .cli import web

    return [web]


@hookimpl
def distsched_serve_beside(app: Any, service: str, bind: str) -> Any:
    if service != "web":
        return None
    _require_extra()
    from .auth import Security, parse_bind

    Security.for_bind(parse_bind(bind)[0])  # refuse a bad bind before the engine starts

    async def serve(stop: Any) -> None:
        from .server import serve as serve_web

        await serve_web(app, bind, stop)

    return serve


def _require_extra() -> None:
    from distsched.model.errors import DistschedError

    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise DistschedError(f"the web dashboard needs the 'web' extra: pip install 'distsched[web]' ({exc})") from None
