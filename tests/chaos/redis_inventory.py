"""Inventory of a distsched namespace in Redis, by key family (diagnostic tool, issue 15.3).

    python tests/chaos/redis_inventory.py PORT [OUT.json]

Groups every key by its first two segments (``{ns}:t:*``, ``{ns}:tw:*``, ``{ns}:tc`` ...), and
prints per group: the number of keys, their types, the entries of the collection keys
(ZCARD/LLEN/HLEN/SCARD, summed; not counted for groups of more than 2,000 keys) and an
estimate of their memory (``MEMORY USAGE`` of up to 300 sampled keys x the key count).
``INFO keyspace`` is read before the SCAN, which reclaims the expired keys it meets: the
difference is the expired keys Redis had not reclaimed yet. Read-only apart from that; meant
for a throwaway server such as the endurance profile's, not a production one (SCAN of all).
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

import redis


def inventory(client: redis.Redis) -> dict[str, Any]:
    before = client.info("keyspace")
    t0 = time.monotonic()
    groups: dict[str, list[str]] = {}
    for key in client.scan_iter(count=5000):
        parts = key.split(":")
        groups.setdefault(":".join(parts[:2]) + (":*" if len(parts) > 2 else ""), []).append(key)
    out: dict[str, Any] = {}
    for group, keys in sorted(groups.items()):
        sample = keys if len(keys) <= 300 else random.sample(keys, 300)
        pipe = client.pipeline(transaction=False)
        for key in sample:
            pipe.memory_usage(key, samples=0)
            pipe.type(key)
        replies = pipe.execute()
        sizes = [v for v in replies[0::2] if v]
        types = sorted(set(replies[1::2]) - {"none"})
        entries = None
        if len(keys) <= 2000:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                typ = client.type(key)
                {"zset": pipe.zcard, "list": pipe.llen, "hash": pipe.hlen, "set": pipe.scard,
                 "string": pipe.strlen}.get(typ, pipe.exists)(key)
            entries = sum(x or 0 for x in pipe.execute())
        out[group] = {"keys": len(keys), "types": types, "entries": entries,
                      "bytes_est": round(sum(sizes) / max(1, len(sizes)) * len(keys))}
    mem = client.info("memory")
    return {"scan_seconds": round(time.monotonic() - t0, 1), "keyspace_before_scan": before,
            "keyspace_after_scan": client.info("keyspace"), "groups": out,
            "memory": {k: mem.get(k) for k in ("used_memory", "used_memory_dataset", "used_memory_overhead",
                                               "used_memory_rss", "mem_fragmentation_ratio", "allocator_allocated",
                                               "allocator_active", "allocator_frag_ratio", "used_memory_lua")}}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[1].isdigit():
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    client = redis.Redis(host="127.0.0.1", port=int(argv[1]), decode_responses=True)
    doc = inventory(client)
    if len(argv) == 3:
        with open(argv[2], "w") as f:
            json.dump(doc, f, indent=1, default=str)
    for group, g in sorted(doc["groups"].items(), key=lambda kv: -kv[1]["bytes_est"]):
        print(f"{group:40s} {g['keys']:9d} keys {','.join(g['types']):12s} entries {g['entries']!s:>9s} "
              f"{g['bytes_est'] / 2**20:8.1f} MiB")
    print("keyspace before the scan", doc["keyspace_before_scan"], "after", doc["keyspace_after_scan"])
    print("memory", json.dumps(doc["memory"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
