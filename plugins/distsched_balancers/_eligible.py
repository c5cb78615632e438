"""The eligibility rule every built-in balancer shares."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from distsched.model import Worker


def eligible(workers: Sequence[Worker], now: float, ttl: float) -> Iterator[Worker]:
    """The workers that may take one more task now: alive (heartbeat no older than ``ttl``),
    not draining and not full."""
    return (w for w in workers if w.can_accept(now, ttl))
