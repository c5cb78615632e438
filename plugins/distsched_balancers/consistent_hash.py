"""``consistent-hash``: tasks with the same balance key go to the same worker.

A hash ring with ``vnodes`` virtual nodes per worker, hashed with BLAKE2b (stable across
processes and runs, unlike ``hash()``). A task's key is ``spec.balance_key`` (the job name
for job tasks) or else its id; it belongs to the first virtual node clockwise from the key's
hash. When that worker cannot accept (full, draining, stale heartbeat) the walk continues
clockwise to the next distinct eligible worker - exactly where the key would go if the owner
had left - so a busy worker's keys spill over without disturbing anyone else's.

The ring depends only on the *set* of worker ids, not on the list order, and is rebuilt only
when a worker id it does not know appears (or most of its members are gone); a select costs
a dict build over the workers, one (cached) hash and a bisect.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import chain

from distsched.model import Task, Worker

DEFAULT_VNODES = 160
_EIGHT_U64 = struct.Struct(">8Q")


@lru_cache(maxsize=8192)
def stable_hash(key: str) -> int:
    """A 64-bit hash of ``key`` that is the same in every process (cached: job names repeat)."""
    data = key.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _points(worker_id: str, vnodes: int) -> list[int]:
    """``vnodes`` 64-bit ring points for a worker: eight per 64-byte BLAKE2b digest."""
    out: list[int] = []
    for block in range((vnodes + 7) // 8):
        digest = hashlib.blake2b(f"{worker_id}#{block}".encode("utf-8", "surrogatepass")).digest()
        out.extend(_EIGHT_U64.unpack(digest))
    return out[:vnodes]


def build_ring(worker_ids: Iterable[str], vnodes: int) -> tuple[list[int], list[str]]:
    """The ring as two parallel lists sorted by point: the points and their owners' ids.

    Workers are taken in id order and the sort is stable, so even a (64-bit) point collision
    resolves the same way whatever order the ids come in.
    """
    points: list[int] = []
    owners: list[str] = []
    for wid in sorted(worker_ids):
        own = _points(wid, vnodes)
        points.extend(own)
        owners.extend([wid] * len(own))
    order = sorted(range(len(points)), key=points.__getitem__)  # faster than sorting tuples
    return [points[i] for i in order], [owners[i] for i in order]


class ConsistentHashBalancer:
    def __init__(self, vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be >= 1, not {vnodes!r}")
        self.vnodes = vnodes
        self._members: frozenset[str] = frozenset()
        self._points: list[int] = []
        self._owners: list[str] = []

    def _ring_for(self, by_id: dict[str, Worker]) -> None:
        present = by_id.keys()
        members = self._members
        if present == members:
            return
        # A ring built for a superset gives the same answers (a missing member is walked past
        # exactly like an ineligible one), so workers that drop out of the list for a while -
        # e.g. a caller that passes only the workers with room - cost no rebuild. Rebuild when
        # a new id appears, or when most of the ring is gone (to keep the walks short).
        if present <= members and len(members) <= 4 * len(present) + 8:
            return
        self._members = frozenset(present)
        self._points, self._owners = build_ring(self._members, self.vnodes)

    def select(
        self, task: Task, workers: Sequence[Worker], *, now: float, ttl: float
    ) -> Worker | None:
        by_id = {w.id: w for w in workers}
        if not by_id:
            return None
        self._ring_for(by_id)
        owners = self._owners
        size = len(owners)
        start = bisect_right(self._points, stable_hash(task.spec.balance_key or task.id))
        if start == size:
            start = 0
        worker = by_id.get(owners[start])
        if worker is not None and worker.can_accept(now, ttl):  # the common case
            return worker
        # Walk clockwise to the next distinct eligible worker; stop once every worker in the
        # list has been looked at.
        left = len(by_id)
        seen: set[str] = set()
        for pos in chain(range(start, size), range(start)):
            wid = owners[pos]
            if wid in seen:
                continue
            seen.add(wid)
            worker = by_id.get(wid)
            if worker is None:  # on the ring but not in this list
                continue
            if worker.can_accept(now, ttl):
                return worker
            left -= 1
            if left == 0:
                break
        return None
