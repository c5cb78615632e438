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
def distsched_serve(engine: Any, name: str, address: str) -> Any:
    """``distsched run --web``: the dashboard beside the engine, over the same store."""
    if name != "web":
        return None
    _require_extra()
    from distsched import DistributeSchedule

    from .server import start

    return start(DistributeSchedule.of_engine(engine), address)


def _require_extra() -> None:
    from distsched.model import DistschedError

    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise DistschedError(f"the web dashboard needs the 'web' extra: pip install 'distsched[web]' ({exc})") from None
