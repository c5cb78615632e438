"""What the long-running roles (``scheduler``, ``worker``) do before they start: wait for a
store that is not reachable yet, with backoff, logging each attempt (``--fail-fast``: exit
with the error at once, the old behaviour)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click

from ..app.backoff import Backoff, wait_or_stop

log = logging.getLogger("distsched.cli")

#: Names of exception types (anywhere in their class hierarchy) that mean "not reachable
#: now, try again": a server down, restarting, loading, or a network cut. A store plugin's
#: errors reach the core wrapped, so they are recognised by name (the core imports no client).
RETRYABLE_NAMES = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError", "ConnectionRefusedError",
                             "ConnectionResetError", "OperationalError", "MasterNotFoundError"})
#: ... unless one of these says the request itself is wrong (retrying cannot help).
FATAL_NAMES = frozenset({"AuthenticationError", "AuthenticationWrongNumberOfArgsError", "AuthorizationError",
                         "NoPermissionError", "SSLError", "SSLCertVerificationError", "CertificateError",
                         "ValidationError", "UnknownName", "ResponseError"})
#: The longest wait between two attempts (seconds).
MAX_DELAY = 30.0


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the store is unreachable for now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    retry = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & FATAL_NAMES:
            return False
        if names & RETRYABLE_NAMES or isinstance(current, (OSError, asyncio.TimeoutError)):
            retry = True
        current = current.__cause__ or current.__context__
    return retry


async def wait_for_store(app: Any, stop: asyncio.Event, *, fail_fast: bool, role: str, url: str) -> bool:
    """Open the store, retrying with exponential backoff (0.5 s doubling up to 30 s, with
    jitter) while it is unreachable. False when ``stop`` was set first. A store that refuses
    the request (bad URL, wrong password, untrusted certificate) and ``fail_fast`` end it at
    once with the error."""
    from ..model.errors import DistschedError

    backoff = Backoff(first=0.5, cap=MAX_DELAY)
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            await app.storage()
        except Exception as exc:
            if fail_fast or not unreachable(exc):
                if isinstance(exc, DistschedError):
                    raise
                raise click.ClickException(f"{role}: cannot open {url}: {type(exc).__name__}: {exc}") from None
            delay = backoff.next()
            log.warning("%s: store %s unreachable (attempt %d: %s); retrying in %.1fs (--fail-fast to exit instead)",
                        role, url, attempt, _short(exc), delay)
            await wait_or_stop(stop, delay)
            continue
        if attempt > 1:
            log.warning("%s: store %s reachable after %d attempts", role, url, attempt)
        return True
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
