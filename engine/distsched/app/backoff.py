"""Exponential backoff for reconnecting to a store that went away."""

from __future__ import annotations

import asyncio
import random

#: The engine's own random stream (the reconnect backoff's and the retry jitter's): it draws
#: nothing from the global one, which an application may seed for its own reproducible sequence.
ENGINE_RANDOM = random.Random()


class Backoff:
    def __init__(self, first: float = 0.05, cap: float = 2.0) -> None:
        self.first, self.cap, self.current = first, cap, 0.0

    def next(self) -> float:
        self.current = self.first if self.current == 0 else min(self.cap, self.current * 2)
        return self.current * (0.5 + ENGINE_RANDOM.random() / 2)

    def reset(self) -> None:
        self.current = 0.0


async def wait_or_stop(stop: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds or until ``stop`` is set; True when stopped."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, delay))
    except asyncio.TimeoutError:
        return False
    return True
