"""The lease with fencing terms, in the ``lease`` row of the same schema as the storage.

Acquire, renew and release are single UPDATE statements on that row, judged on the database
clock (``clock_timestamp()``), never the client's. The term rises by one with every
acquisition. The leader-write functions check the same row (``ds_fence``) in their own
transaction and hold a share lock on it until they commit, so a node taking the lease over
waits until a write that passed the check has landed: a write carrying a term that no longer
holds the lease is refused where it lands.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from distsched.config import lease_timing
from distsched.model import ValidationError
from distsched.ports import Fence, LeaseInfo

from .storage import PostgresStorage
from .url import parse

log = logging.getLogger(__name__)


class PostgresElection:
    def __init__(self, storage: PostgresStorage, ttl: float = 10.0, renew_interval: float = 3.0) -> None:
        if not isinstance(storage, PostgresStorage):
            raise TypeError("the postgres election needs postgresql:// (or postgres://) storage")
        self.storage = storage
        self.ttl, self.renew_interval = lease_timing(ttl, renew_interval)
        self._broken: tuple[float, float, float] | None = None  # the unreadable lease times last warned of

    @classmethod
    def for_url(cls, url: str, *, storage: Any, **options: Any) -> PostgresElection:
        """The election of ``url``, which must name the storage's schema: the fence is only
        checked where the lease lives."""
        if isinstance(storage, PostgresStorage) and url != storage.url:
            mine = parse(url)
            if mine.target() != storage.settings.target():
                raise ValidationError(
                    "election",
                    f"{mine.redacted} must name the same database and schema as the storage "
                    f"({storage.settings.redacted}): the leader's writes are fenced by the lease "
                    "stored beside the data",
                )
        return cls(storage, **options)

    async def acquire(self, node_id: str) -> Fence | None:
        if not isinstance(node_id, str) or not node_id:
            raise ValidationError("node_id", f"must be a non-empty string, not {node_id!r}")
        # the renew interval goes into the lease row (version 22): the status measures a late
        # renewal by it
        term = await self.storage.call("fetchval", "SELECT ds_lease_acquire($1, $2, $3)", node_id, self.ttl,
                                       self.renew_interval)
        return None if term is None else Fence(node_id, int(term))

    async def renew(self, fence: Fence) -> bool:
        ok = await self.storage.call("fetchval", "SELECT ds_lease_renew($1, $2, $3)", fence.node_id, fence.term,
                                     self.ttl)
        return ok is True

    async def release(self, fence: Fence) -> None:
        await self.storage.call("execute", "SELECT ds_lease_release($1, $2)", fence.node_id, fence.term)

    async def current(self) -> Fence | None:
        row = await self.storage.call(
            "fetchrow", "SELECT holder, term FROM lease WHERE id = 1 AND holder IS NOT NULL "
                        "AND expires_at > clock_timestamp()")
        return None if row is None else Fence(row["holder"], int(row["term"]))

    async def lease(self) -> LeaseInfo | None:
        row = await self.storage.call(
            "fetchrow", "SELECT last_holder, term, extract(epoch FROM acquired_at)::float8 AS acquired_at, "
                        "extract(epoch FROM renewed_at)::float8 AS renewed_at, "
                        "extract(epoch FROM expires_at)::float8 AS expires_at, renew_interval, ds_now() AS now "
                        "FROM lease WHERE id = 1 AND last_holder IS NOT NULL")
        if row is None:
            return None
        times = (row["acquired_at"], row["renewed_at"], row["expires_at"])
        if not all(map(math.isfinite, times)):
            # timestamptz takes '-infinity' and 'infinity' (a row written by hand, or restored
            # from elsewhere): no age or date can show such a lease, and a status carrying it
            # failed the dashboard's overview (no JSON number). Shown as no lease until the
            # holder's next renewal writes the row whole (ds_lease_renew, version 16) or a
            # node takes it (an expiry past LEASE_TTL_MAX can be taken, version 13).
            if self._broken != times:
                self._broken = times
                log.warning("the lease row of schema %s has a time no date can show (acquired %s, renewed %s, "
                            "expires %s); the status shows no lease until its holder's next renewal or a new "
                            "leader writes it again", self.storage.settings.schema, *times)
            return None
        # renew_interval: NULL for a lease taken by a node before version 22 (and whatever
        # else was written there by hand: the status uses only a positive, finite one)
        return LeaseInfo(holder=row["last_holder"], term=int(row["term"]), acquired_at=times[0],
                         renewed_at=times[1], expires_at=times[2], now=row["now"],
                         renew_interval=row["renew_interval"])
