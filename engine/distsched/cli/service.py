"""What the long-running roles (``run``, ``scheduler``, ``worker``) do before they start: wait
for a store that is not reachable yet, with backoff, logging each attempt (``--fail-fast``:
exit with the error at once, the old behaviour); then, in a process of their own, take what
start-up built out of the garbage collector's way."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
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
        raise click.ClickException(f"{role}: cannot open {url}: {type(exc).__name__}: {_short(exc, 2000)}") from None
    if ready and attempts[0]:
        log.warning("%s: store %s reachable after %d attempts", role, url, attempts[0] + 1)
    return bool(ready)


#: Set by the ``distsched`` console script (:func:`distsched.cli.main`, also ``python -m
#: distsched``): the command owns its process. A command invoked inside another program (a
#: test's ``CliRunner``, a script calling ``cli()``) leaves that program's collector alone.
OWN_PROCESS = False


def freeze_startup_objects() -> bool:
    """In a process of its own, collect once and freeze every object still alive (the
    modules, plugins, task functions and connections of start-up): the garbage collector no
    longer traverses them. True when it did.

    A full collection of a loaded worker took 15-23 ms of CPU (the start-up objects are
    about 50,000 of its 54,000 tracked objects), every 5-15 s under load; one that fell on a slot
    instant started that slot's tasks that late (docs/performance.md, round 2's eighth and
    ninth sessions). Frozen objects are never collected: one that is dropped later (a
    connection replaced after a reconnect) stays in memory, once - nothing made after start-up
    is frozen."""
    if not OWN_PROCESS:
        return False
    gc.collect()
    gc.freeze()
    return True


class SyncAgainOnDataLoss:
    """An event listener of ``scheduler --jobs FILE`` and ``run FILE``: on ``store.data_lost``
    (emitted by the leader: its store found the data it held gone - a Redis restarted empty)
    it syncs the file's jobs again with ``sync``, in the background, saying so. Without it
    nothing would fire until an operator noticed and synced by hand. So it does when the
    store put a job aside (``record.quarantined`` of a job: a record it could not read, half
    of a job lost in a partial loss): the file's job takes its place."""

    def __init__(self, sync: Callable[[], Awaitable[Any]], source: str, command: str = "") -> None:
        self.sync = sync
        self.source = source
        #: The command that syncs by hand (on this command's store: ``sync.sync_again``).
        self.command = command or f"distsched jobs sync {source}"
        self._running: asyncio.Task[Any] | None = None
        #: Why to sync once more when the sync under way ends (an event came during it).
        self._again: str | None = None

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "kind", None)
        if kind == "store.data_lost":
            why = "the store lost its data"
        elif kind == "record.quarantined" and event.record == "job" and event.action == "quarantined":
            why = f"the store put job {event.key!r} aside"
        else:
            return
        log.warning("%s: syncing the jobs of %s again", why, self.source)
        if self._running is not None and not self._running.done():
            self._again = why  # the sync under way may have read the store before: once more after it
            return
        self._running = asyncio.get_running_loop().create_task(self._sync(why), name="distsched-sync-again")

    async def _sync(self, why: str = "the store lost its data") -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # the store down again...: the next loss found says it again
                log.error("could not sync the jobs of %s again after %s (%s); "
                          "sync them by hand: %s", self.source, why, _short(exc), self.command)
            if self._again is None:
                return
            why, self._again = self._again, None


def _short(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s text, at most ``limit`` characters, a URL's password in it
    masked (a driver's error may name the store's URL whole)."""
    from ..urls import redact_text

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact_text(text)[:limit]
