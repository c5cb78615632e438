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


async def test_rewrite_function_changes_the_overload_named_and_refuses_a_name_two_share(storage,
                                                                                      rewrite_function) -> None:
    """The tests' ``rewrite_function`` read a function by its name alone (``regproc``): since
    version 22, ``ds_lease_acquire`` has two overloads, which it could not tell apart. It
    takes a signature now, and a bare name two functions share fails naming both."""
    from distsched_postgres.election import PostgresElection

    with pytest.raises(AssertionError, match=r"'ds_lease_acquire' names 2 functions of the schema "
                                             r"\(ds_lease_acquire\(text,double precision\), "
                                             r"ds_lease_acquire\(text,double precision,double precision\)\)"):
        await rewrite_function("ds_lease_acquire", "renew_interval = p_renew", "renew_interval = 42")
    # the three-argument form (what a node of version 22 calls) made to record 42 s, whatever
    # it is given; the two-argument one is left as it was
    await rewrite_function("ds_lease_acquire(text, float8, float8)", "renew_interval = p_renew",
                           "renew_interval = 42")
    election = PostgresElection(storage, ttl=10.0, renew_interval=3.0)
    assert await election.acquire("n1") is not None
    assert (await election.lease()).renew_interval == 42.0
    two = await storage.pool.fetchval("SELECT pg_get_functiondef('ds_lease_acquire(text, float8)'::regprocedure)")
    assert "42" not in two and "NULL::float8" in two
