"""What the long-running roles (``scheduler``, ``worker``) do before they start: wait for a
store that is not reachable yet, with backoff, logging each attempt (``--fail-fast``: exit
with the error at once, the old behaviour)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click

log = logging.getLogger("distsched.cli")


async def wait_for_store(app: Any, stop: asyncio.Event, *, fail_fast: bool, role: str, url: str) -> bool:
    """``app.wait_for_storage`` with a warning per failed attempt. False when ``stop`` was
    set first; a store that refuses the request, or any failure with ``fail_fast``, ends the
    command with the error."""
    from ..model.errors import DistschedError

    attempts = [0]

    def warn(attempt: int, exc: BaseException, delay: float) -> None:
        attempts[0] = attempt
        log.warning("%s: store %s unreachable (attempt %d: %s); retrying in %.1fs (--fail-fast to exit instead)",
                    role, url, attempt, _short(exc), delay)

    try:
        ready = await app.wait_for_storage(stop=stop, retry=not fail_fast, on_retry=warn)
    except DistschedError:
        raise
    except Exception as exc:
        raise click.ClickException(f"{role}: cannot open {url}: {type(exc).__name__}: {exc}") from None
    if ready and attempts[0]:
        log.warning("%s: store %s reachable after %d attempts", role, url, attempts[0] + 1)
    return bool(ready)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
