"""Event fan-out to observers, off the scheduling path.

``emit`` only appends to a queue (and costs nothing when no observer is registered); a
background task calls the observers, each isolated: an exception is logged with the
plugin's name and swallowed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from ..model.events import Event
from .manager import PluginManager


class EventBus:
    def __init__(self, plugins: PluginManager, listeners: list[Callable[[Event], Any]] | None = None) -> None:
        self.plugins = plugins
        #: In-process listeners (the CLI's task log, the facade); same isolation rules.
        self.listeners: list[Callable[[Event], Any]] = listeners if listeners is not None else []
        self._queue: deque[Event] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.plugins.has_observers or bool(self.listeners)

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
            self.plugins.notify(event)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    import logging

                    logging.getLogger("distsched.events").exception("event listener failed on %s", event.kind)

    async def aclose(self) -> None:
        self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
