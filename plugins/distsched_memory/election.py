"""An in-process lease with fencing terms, sharing the memory store's state."""

from __future__ import annotations

from distsched.config import lease_timing
from distsched.ports import Fence, LeaseInfo

from .storage import MemoryStorage


class MemoryElection:
    def __init__(self, storage: MemoryStorage, ttl: float = 10.0, renew_interval: float = 3.0) -> None:
        if not isinstance(storage, MemoryStorage):
            raise TypeError("the memory election needs memory:// storage")
        self.state = storage.state
        self.clock = storage.clock
        self.ttl, self.renew_interval = lease_timing(ttl, renew_interval)

    async def acquire(self, node_id: str) -> Fence | None:
        lease = self.state.lease
        now = self.clock()
        if lease.holder is not None and lease.expires_at > now and lease.holder != node_id:
            return None
        lease.term += 1
        lease.holder = lease.last_holder = node_id
        lease.expires_at = now + self.ttl
        lease.acquired_at = lease.renewed_at = now
        lease.renew_interval = self.renew_interval
        return Fence(node_id, lease.term)

    async def renew(self, fence: Fence) -> bool:
        now = self.clock()
        if not self.state.holds(fence, now):
            return False
        self.state.lease.expires_at = now + self.ttl
        self.state.lease.renewed_at = now
        return True

    async def release(self, fence: Fence) -> None:
        now = self.clock()
        if self.state.holds(fence, now):
            self.state.lease.holder = None
            self.state.lease.expires_at = now

    async def current(self) -> Fence | None:
        lease = self.state.lease
        if lease.holder is None or lease.expires_at <= self.clock():
            return None
        return Fence(lease.holder, lease.term)

    async def lease(self) -> LeaseInfo | None:
        lease = self.state.lease
        if lease.last_holder is None:
            return None
        return LeaseInfo(holder=lease.last_holder, term=lease.term, acquired_at=lease.acquired_at,
                         renewed_at=lease.renewed_at, expires_at=lease.expires_at, now=self.clock(),
                         renew_interval=lease.renew_interval)
