"""Test helpers for distsched and its plugins (importing this module imports no plugin).

* :func:`discovered_plugins` - the names found in the ``distsched`` entry-point group; the
  first test of every plugin should assert its own name is there.
* :mod:`distsched.testing.pytest_plugin` - opt-in fixtures:
  ``pytest_plugins = ["distsched.testing.pytest_plugin"]`` in your root conftest.py.
* :mod:`distsched.testing.contracts` - the contract suites a storage, election, executor or
  balancer plugin must pass.
* :mod:`distsched.testing.processes` - real ``python -m distsched`` processes on a throwaway
  store server (:class:`~distsched.testing.processes.Deployment`), waiting with a deadline.
* :mod:`distsched.testing.redis_server` - throwaway ``redis-server`` and Sentinel processes.
* :mod:`distsched.testing.redis_cluster` - a throwaway Redis Cluster (3 masters + 3 replicas).
"""

from __future__ import annotations

from typing import Any

from ..model import EveryTrigger, Task, TaskConfig, TaskSpec, Worker


def discovered_plugins() -> list[str]:
    from ..plugin.manager import PluginManager

    return sorted(PluginManager().plugins)


def make_task(task_id: str = "t1", *, now: float = 0.0, **spec: Any) -> Task:
    spec.setdefault("target", "noop")
    return Task(id=task_id, spec=TaskSpec(**spec), created_at=now)


def make_job(name: str = "job", *, every: float = 10.0, **spec: Any) -> TaskConfig:
    spec.setdefault("target", "noop")
    return TaskConfig(name=name, trigger=EveryTrigger(every), spec=TaskSpec(**spec))


async def all_tasks(storage: Any, **filters: Any) -> list[Task]:
    """Every task ``storage.tasks.query(**filters)`` pages through, newest first (for tests
    and tools that want them all; a page is at most 1000)."""
    out: list[Task] = []
    cursor = None
    while True:
        page = await storage.tasks.query(cursor=cursor, limit=1000, **filters)
        out += page.tasks
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def make_worker(worker_id: str = "w1", *, now: float = 0.0, **fields: Any) -> Worker:
    fields.setdefault("concurrency", 2)
    return Worker(id=worker_id, started_at=now, last_heartbeat=now, **fields)


__all__ = ["all_tasks", "discovered_plugins", "make_job", "make_task", "make_worker"]
