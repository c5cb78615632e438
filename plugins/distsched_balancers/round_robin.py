"""``round-robin``: cycle through the eligible workers in id order.

The balancer remembers the id of the worker it picked last and picks the eligible worker
with the next larger id (wrapping around to the smallest). Remembering an id rather than an
index keeps the rotation fair when workers join, leave or become full between calls, and
needs one pass over the list per call (no sorting).
"""

from __future__ import annotations

from collections.abc import Sequence

from distsched.model import Task, Worker

from ._eligible import eligible


class RoundRobinBalancer:
    def __init__(self) -> None:
        self._last: str | None = None

    def select(
        self, task: Task, workers: Sequence[Worker], *, now: float, ttl: float
    ) -> Worker | None:
        last = self._last
        first: Worker | None = None  # smallest eligible id (where the cycle wraps to)
        after: Worker | None = None  # smallest eligible id strictly after `last`
        for worker in eligible(workers, now, ttl):
            wid = worker.id
            if first is None or wid < first.id:
                first = worker
            if last is not None and wid > last and (after is None or wid < after.id):
                after = worker
        chosen = after if after is not None else first
        if chosen is not None:
            self._last = chosen.id
        return chosen
