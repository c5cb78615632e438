"""Event fan-out to observers, off the scheduling path.

``emit`` only appends to a queue (and costs nothing when nobody observes); a background task
hands each event to ``notify`` (the composition root passes the plugin manager's, which
calls the plugins' ``distsched_event`` hooks, each isolated) and to in-process listeners
(an exception is logged and swallowed).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..model.events import Event

log = logging.getLogger("distsched.events")


class EventBus:
    def __init__(self, notify: Callable[[Event], Any] | None = None,
                 listeners: list[Callable[[Event], Any]] | None = None, *,
                 observed: Callable[[], bool] | None = None) -> None:
        #: Called with every event when set (the plugins' observers); must not raise.
        self.notify = notify
        #: Whether ``notify`` has anyone to tell right now (asked on every event; observers
        #: may come and go at run time). None: always, when ``notify`` is set.
        self.observed = observed
        #: In-process listeners (the CLI's task log, the facade); same isolation rules.
        self.listeners: list[Callable[[Event], Any]] = listeners if listeners is not None else []
        self._queue: deque[Event] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return bool(self.listeners) or (self.notify is not None and (self.observed is None or self.observed()))

    def emit(self, event: Event) -> None:
        if not self.active:
            return
        self._queue.append(event)
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="distsched-events")
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        while self._queue:
            event = self._queue.popleft()
            if self.notify is not None and (self.observed is None or self.observed()):
                self.notify(event)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("event listener failed on %s", event.kind)

    async def aclose(self) -> None:
        self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
