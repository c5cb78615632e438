"""The ``most-free`` balancer: the eligible worker with the most free slots.

A worker is eligible when ``worker.can_accept(now, ttl)``: its heartbeat is no older than
``ttl``, it is not draining and not full. Among those, the one with the largest
``capacity - load`` wins; ties go to the smallest worker id, so the choice depends only on
the workers, never on the order of the list (the balancer is deterministic and stateless).
Unlike ``least-tasks`` (lowest load *ratio*), a big worker keeps winning until its free
slots drop to those of the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from distsched.model import Task, Worker


class MostFreeBalancer:
    def select(self, task: Task, workers: Sequence[Worker], *, now: float, ttl: float) -> Worker | None:
        eligible = (w for w in workers if w.can_accept(now, ttl))
        return min(eligible, key=_rank, default=None)


def _rank(worker: Worker) -> tuple[int, str]:
    return (-worker.free, worker.id)
