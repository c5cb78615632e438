"""Entry point of the ``redis`` plugin: hook implementations only; the backend (and redis-py)
is imported when a URL of these schemes is opened."""

from __future__ import annotations

from distsched import hookimpl

SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")


@hookimpl
def distsched_register_storage(registry):
    registry.add(
        "redis",
        schemes=SCHEMES,
        factory=_open_storage,
        description="Redis storage: redis://[user:pass@]host:port/db?namespace=NAME, rediss:// (TLS), "
                    "redis+unix:///path/to/redis.sock?db=N (a Unix socket), "
                    "redis+sentinel://host:port[,host:port]/SERVICE/db, rediss+sentinel:// (TLS), "
                    "redis+cluster://host:port[,host:port]/?namespace=NAME (the namespace is one cluster slot), "
                    "rediss+cluster:// (a cluster over TLS)",
    )


@hookimpl
def distsched_register_election(registry):
    registry.add(
        "redis",
        schemes=SCHEMES,
        factory=_open_election,
        description="Redis lease (compare-and-SET PX in a script) with fencing terms checked inside every leader-write script",
    )


def _open_storage(url, *, options, reader=False):
    from .storage import RedisStorage

    return RedisStorage.open(url, options, reader=reader)  # a coroutine: connects in the engine's loop


def _open_election(url, *, storage, options):
    from .election import RedisElection

    return RedisElection.for_url(url, storage=storage, **options)
