"""Entry point of the ``memory`` plugin: hook implementations only, nothing heavy."""

from __future__ import annotations

from distsched import hookimpl


@hookimpl
def distsched_register_storage(registry):
    registry.add(
        "memory",
        schemes=("memory",),
        factory=_open_storage,
        description="In-process storage: memory:// (private to one engine) or memory://NAME (shared in the process)",
    )


@hookimpl
def distsched_register_election(registry):
    registry.add(
        "memory",
        schemes=("memory",),
        factory=_open_election,
        description="In-process lease with fencing terms; a single node is always leader",
    )


def _open_storage(url, *, options):
    from .storage import MemoryStorage

    return MemoryStorage.open(url)


def _open_election(url, *, storage, options):
    from .election import MemoryElection

    return MemoryElection(storage, **options)
