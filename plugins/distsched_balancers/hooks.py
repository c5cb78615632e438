"""Entry point of the ``balancers`` plugin: hook implementations only, nothing heavy."""

from __future__ import annotations

from distsched import hookimpl


@hookimpl
def distsched_register_balancers(registry):
    registry.add(
        "least-tasks",
        _least_tasks,
        description="Picks the healthy worker with the lowest load relative to its capacity",
    )
    registry.add(
        "round-robin",
        _round_robin,
        description="Cycles through the healthy workers in id order, skipping full or draining ones",
    )
    registry.add(
        "consistent-hash",
        _consistent_hash,
        description=(
            "Sends tasks with the same balance key (default: the job name) to the same worker; "
            "a membership change moves only about 1/N of the keys"
        ),
    )


def _least_tasks():
    from .least_tasks import LeastTasksBalancer

    return LeastTasksBalancer()


def _round_robin():
    from .round_robin import RoundRobinBalancer

    return RoundRobinBalancer()


def _consistent_hash():
    from .consistent_hash import ConsistentHashBalancer

    return ConsistentHashBalancer()
