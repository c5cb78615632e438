"""The PostgreSQL lease row's record of its holder's renew interval (version 22)."""

from __future__ import annotations

from typing import Any

import pytest

from distsched.status import leader_status

pytestmark = pytest.mark.postgres


async def test_the_lease_row_carries_the_holders_renew_interval(storage: Any) -> None:
    """`renewal overdue` estimated the holder's renew interval as 30 % of the lease TTL (the
    row did not carry it): a leader renewing every 8 s of a 10 s lease was flagged 6 s after
    each renewal. ``ds_lease_acquire`` records the interval (``renew_interval``); a node of
    version 21 still running calls the two-argument form, which records none (NULL: the
    status estimates it, rather than taking the previous holder's); a value written by hand
    that is no interval reads as none."""
    from distsched_postgres.election import PostgresElection

    slow = PostgresElection(storage, ttl=10.0, renew_interval=8.0)
    fence = await slow.acquire("slow")
    assert fence is not None
    info = await slow.lease()
    assert info.renew_interval == 8.0 and leader_status(info).renewal_overdue_after == 16.0
    assert await slow.renew(fence)
    assert (await slow.lease()).renew_interval == 8.0, "a renewal keeps it"
    await slow.release(fence)

    term = await storage.pool.fetchval("SELECT ds_lease_acquire('old-node', 10.0)")  # a version-21 node
    info = await slow.lease()
    assert info.holder == "old-node" and info.term == term and info.renew_interval is None
    assert leader_status(info).renewal_overdue_after == pytest.approx(6.0, abs=0.01)  # the estimate: 2 x 30 % of 10 s

    for broken in ("'NaN'", "'Infinity'", "-1", "0"):
        await storage.pool.execute(f"UPDATE lease SET renew_interval = {broken} WHERE id = 1")
        status = leader_status(await slow.lease())
        assert status.renew_interval is None and status.renewal_overdue_after == pytest.approx(6.0, abs=0.01), broken
