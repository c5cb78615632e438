"""``least-tasks``: the eligible worker with the lowest load relative to its usable capacity."""

from __future__ import annotations

from collections.abc import Sequence

from distsched.model import Task, Worker

from ._eligible import eligible


def _rank(worker: Worker) -> tuple[float, int, str]:
    # Ratio first (a 2/64 worker beats a 1/4 one), then absolute load, then id: deterministic.
    return (worker.load / max(1, worker.usable_capacity), worker.load, worker.id)


class LeastTasksBalancer:
    """Stateless: the pick depends only on the workers' loads, capacities and ids."""

    def select(
        self, task: Task, workers: Sequence[Worker], *, now: float, ttl: float
    ) -> Worker | None:
        return min(eligible(workers, now, ttl), key=_rank, default=None)
