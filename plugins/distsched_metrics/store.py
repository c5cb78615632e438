"""Deployment gauges read from the store at each scrape, for a server that runs no scheduler
and no worker (the web dashboard over a store): no events reach it, the store knows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from distsched.model import TaskState

log = logging.getLogger("distsched.metrics")


class StoreGauges(Collector):
    """The figures of the last :meth:`refresh`, as gauges (a custom collector: each scrape
    shows exactly the store's current workers, none left over from an earlier one)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._tasks: dict[str, int] = {}
        #: (id, load, alive, silent) as ``distsched status`` counts them
        self._workers: list[tuple[str, int, bool, bool]] = []
        self._term: int | None = None
        self._up = 0

    async def refresh(self) -> None:
        """Read task counts, workers and the lease (three store reads). A store that does
        not answer gives ``distsched_store_up 0`` and no other store gauge, not an error."""
        try:
            await self._read()
        except Exception as exc:
            log.warning("metrics: cannot read the store (%s: %s)", type(exc).__name__, exc)
            self._up = 0
            self._tasks, self._workers, self._term = {}, [], None
        else:
            self._up = 1

    async def _read(self) -> None:
        engine = self.engine
        storage = await engine.open()
        now = storage.clock()
        ttl, interval = engine.config.heartbeat_ttl, engine.config.heartbeat_interval
        workers = storage.workers
        listing = getattr(workers, "list_workers", None) or workers.list  # list_workers after the port rename
        self._tasks = dict(await storage.tasks.counts())
        seen = []
        for w in await listing():
            # status's rules (distsched.status.worker_status): within the TTL, and silent when
            # not fresh - no heartbeat for two of its intervals (Worker.is_fresh)
            heard = w.is_alive(now, ttl)
            fresh = w.is_fresh(now, interval, ttl)
            seen.append((w.id, w.load, heard and fresh, heard and not fresh))
        self._workers = seen
        fence = await (await engine.open_election()).current()
        self._term = fence.term if fence is not None else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("distsched_store_up", "1 when the store answered the last scrape's reads.",
                                value=self._up)
        if not self._up:
            return
        tasks = GaugeMetricFamily("distsched_store_tasks", "Tasks in the store by state.", labels=["state"])
        # every state, 0 where the store counts none (its counts leave empty states out): a
        # series that vanishes at 0 reads as "no data" in PromQL, not as none
        counts = {state.value: 0 for state in TaskState} | self._tasks
        for state, count in counts.items():
            tasks.add_metric([state], count)
        yield tasks
        yield GaugeMetricFamily("distsched_store_workers_alive",
                                "Registered workers heard from within two heartbeat intervals (alive or draining), "
                                "as distsched status counts them.",
                                value=sum(1 for _, _, alive, _ in self._workers if alive))
        yield GaugeMetricFamily("distsched_store_workers_silent",
                                "Registered workers silent for two heartbeat intervals but not yet reaped (given no "
                                "task), as distsched status counts them.",
                                value=sum(1 for _, _, _, silent in self._workers if silent))
        depth = GaugeMetricFamily("distsched_store_worker_queue_depth",
                                  "Tasks each registered worker holds, queued and running.", labels=["worker"])
        for worker_id, load, _, _ in self._workers:
            depth.add_metric([worker_id], load)
        yield depth
        if self._term is not None:
            yield GaugeMetricFamily("distsched_store_leader_term", "Fencing term of the current lease holder.",
                                    value=self._term)
