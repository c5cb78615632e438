"""Small asyncio helpers shared by the core and the plugins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class WakeSignal:
    """A wake-up flag waiters can await with a timeout.

    Built on plain futures and ``call_later`` rather than ``asyncio.wait_for``: on Python
    3.11 ``wait_for`` can swallow a cancellation that races with the inner wait completing,
    which would leave a cancelled leader loop running. Futures follow the running loop, so
    a store can outlive the event loops of successive tests.
    """

    def __init__(self) -> None:
        self._flag = False
        self._waiters: set[asyncio.Future[bool]] = set()

    def set(self) -> None:
        self._flag = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(True)

    async def wait(self, timeout: float) -> bool:
        if self._flag:
            self._flag = False
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(waiter)
        timer = loop.call_later(max(0.0, timeout), _resolve, waiter, False)
        try:
            woke = await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)
        if woke:
            self._flag = False
        return woke


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], timeout: float = 5.0) -> set[asyncio.Task[object]]:
    """Cancel ``tasks`` and wait for them to end, but never forever; returns those that did
    not stop in time (a store client can swallow a cancellation)."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if not pending:
        return set()
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    return stuck
