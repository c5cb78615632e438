"""The memory lease: its record carries the holder's renew interval, as the other stores'."""

from __future__ import annotations

import uuid

from distsched_memory.election import MemoryElection
from distsched_memory.storage import MemoryStorage


async def test_the_lease_record_itself_carries_the_holders_renew_interval() -> None:
    """The interval was kept in a weak side-table of the module, by store, beside the lease
    (``Lease`` had no field for it): a second record of the same lease that a reader had to
    match by term. It is a field of the lease now, written with the rest in the acquisition
    and read from it, as Redis's ``i`` and PostgreSQL's ``renew_interval`` column."""
    store = MemoryStorage.open(f"memory://lease-{uuid.uuid4().hex}")
    try:
        assert store.state.lease.renew_interval is None, "no lease taken yet"
        slow = MemoryElection(store, ttl=10.0, renew_interval=8.0)
        fence = await slow.acquire("slow")
        assert fence is not None and store.state.lease.renew_interval == 8.0
        assert (await slow.lease()).renew_interval == 8.0
        await slow.release(fence)
        assert (await slow.lease()).renew_interval == 8.0, "kept with the record after a release"
        other = MemoryElection(store, ttl=10.0, renew_interval=2.0)
        assert await other.acquire("other") is not None
        assert (await slow.lease()).renew_interval == 2.0, "the new holder's, whoever reads it"
        store.state.lease.renew_interval = None  # a record with none: the status estimates it
        assert (await slow.lease()).renew_interval is None
    finally:
        await store.close()
