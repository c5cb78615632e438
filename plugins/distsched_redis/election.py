"""The lease with fencing terms, in the same Redis data set (and pool) as the storage.

Key ``{ns}:lease`` = ``"<node_id>|<term>"`` with a PX TTL; ``{ns}:term`` holds the last term
issued. Acquire, renew and release are scripts (``lua/lease_*.lua``); the leader-write scripts
check the same key with the same snippet (``fence_ok`` in ``lua/lib/common.lua``), so a write
carrying a term that no longer holds the lease is refused where it lands.

The status's record of the lease, ``{ns}:leaseinfo``, also carries the holder's renew
interval: fields ``i`` (seconds) and ``it`` (the term it was written for), written by the
acquire script in the step that takes the lease (and again by each renewal, as the rest of
the record). Only an ``i`` of the record's own term is read (``stats_read.lua``, in the same
call as the rest of the record): a node of an older version taking the lease rewrites the
other fields and leaves these, and the status then estimates the interval, as it does for a
record without them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from distsched.config import lease_timing
from distsched.model import ValidationError
from distsched.ports import Fence, LeaseInfo

from .storage import RedisStorage, _token
from .url import parse

log = logging.getLogger("distsched.redis")


class RedisElection:
    def __init__(self, storage: RedisStorage, ttl: float = 10.0, renew_interval: float = 3.0) -> None:
        if not isinstance(storage, RedisStorage):
            raise TypeError("the redis election needs redis:// (or rediss://, redis+unix://, redis(s)+sentinel://, "
                            "redis(s)+cluster://) storage")
        self.storage = storage
        self.ttl, self.renew_interval = lease_timing(ttl, renew_interval)
        self._ttl_ms = str(max(1, int(round(self.ttl * 1000))))
        self._interval = repr(self.renew_interval)  # recorded in the lease record (``i``)
        self._broken: list[Any] | None = None  # the last unreadable lease record, logged once

    @classmethod
    def for_url(cls, url: str, *, storage: Any, **options: Any) -> RedisElection:
        """The election of ``url``, which must name the storage's data set: the fence is only
        checked where the lease lives."""
        if isinstance(storage, RedisStorage) and url != storage.url:
            mine = parse(url).target()
            if mine != storage.settings.target():
                raise ValidationError(
                    "election",
                    f"{parse(url).redacted} must name the same Redis and namespace as the storage "
                    f"({storage.settings.redacted}): the leader's writes are fenced by the lease "
                    "stored beside the data",
                )
        return cls(storage, **options)

    async def acquire(self, node_id: str) -> Fence | None:
        if not isinstance(node_id, str) or not node_id:
            raise ValidationError("node_id", f"must be a non-empty string, not {node_id!r}")
        # the renew interval is recorded in the same script call (lua/lease_acquire.lua)
        term = await self.storage.run(self.storage.scripts.lease_acquire, [node_id, self._ttl_ms, self._interval],
                                      op=False)
        return None if term is None else Fence(node_id, int(term))

    async def renew(self, fence: Fence) -> bool:
        ok = await self.storage.run(self.storage.scripts.lease_renew, [_token(fence), self._ttl_ms, self._interval],
                                    op=False)
        return bool(ok)

    async def release(self, fence: Fence) -> None:
        await self.storage.run(self.storage.scripts.lease_release, [_token(fence)], op=False)

    async def current(self) -> Fence | None:
        value = await self.storage.client.get(self.storage.prefix + "lease")
        if not value:
            return None
        if isinstance(value, bytes):  # decode_responses=True gives str; be safe
            value = value.decode()
        node_id, _, term = value.rpartition("|")
        try:
            return Fence(node_id, int(term))
        except ValueError:
            return None

    async def lease(self) -> LeaseInfo | None:
        reply = await self.storage.run(self.storage.scripts.stats_read, ["lease"], op=False)
        if not reply:
            return None
        # interval: the record's ``i`` when its ``it`` is the record's term, else None (the
        # script compares them)
        holder, term, acquired, renewed, expires, now, interval = reply
        try:
            times = [float(acquired), float(renewed), float(expires)]
            if not all(map(math.isfinite, times)):
                raise ValueError(f"times {acquired!r}, {renewed!r}, {expires!r}")
            return LeaseInfo(holder=holder, term=int(term), acquired_at=times[0], renewed_at=times[1],
                             expires_at=times[2], now=float(now),
                             renew_interval=_interval(interval))
        except (TypeError, ValueError) as exc:
            # {ns}:leaseinfo is the status's record only (the lease key decides who leads), and
            # the holder's next renewal writes it whole again: until then, no lease to show
            # rather than a status (and the dashboard's overview) that fails
            if self._broken != reply:
                self._broken = reply
                log.warning("the lease record %sleaseinfo cannot be read (%s: %s); the status shows no lease "
                            "until the holder's next renewal or a new leader writes it again",
                            self.storage.prefix, type(exc).__name__, exc)
            return None


def _interval(text: Any) -> float | None:
    """A recorded renew interval (``leaseinfo`` field ``i``), or None for one that is not a
    number (written by something other than distsched; the status also ignores one that is
    not a positive, finite number of seconds)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
