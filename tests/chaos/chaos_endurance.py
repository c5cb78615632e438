"""The chaos harness's endurance profiles (issue 15, point 3 "Sustained load").

``python tests/chaos/run.py --profile endurance`` (1 hour) or ``--profile endurance-ci``
(5 minutes; ``--duration SECONDS`` overrides either) runs, on a throwaway ``redis-server``
started here (never the shared 6379) - or with ``--storage postgres`` on a throwaway
PostgreSQL cluster (``initdb`` + ``pg_ctl`` on a free port, the deployment in schema
``endure``; :class:`PostgresStore`) - 2 ``distsched scheduler`` and 3 ``distsched worker``
processes (real subprocesses) under a steady load:

* **one-off tasks** at ``rate`` per second (1,000), submitted the way a user's producer does
  in bulk: ``DistributeSchedule.submit_many`` batches of ``rate / 10`` every 100 ms, with
  ids of our own (``e<seed>-<n>``, ``n`` counting up) so that a failed batch is retried with
  the same ids (creation is idempotent) until it is acknowledged;
* **jobs**: ``jobs`` (500) jobs ``every = "1s"`` (slots on whole seconds of server time,
  ``misfire = "fire-all"``), so ``jobs`` slot tasks per second;
* **kills**: the current leader and a worker (round robin) are ``kill -9``-ed on a fixed
  schedule (see :class:`Endurance`) and restarted ``restart_delay`` seconds later.

Design for volume (3.6 M one-off tasks and 1.8 M slots an hour): nothing is written per
event. The accounting is online and lean, through the public API:

* every acknowledged batch is kept as an id range; ``check_age`` seconds after its ack, a
  **sweeper** reads its tasks back (``storage.tasks.get_many``, 1,000 ids a call) and counts
  each terminal one by state; a non-terminal one is read again 5 s later, until the end. A
  task the store does not have any more is **lost** when it was last seen (acked, or read
  non-terminal) less than ``retention`` ago - a finished task is kept ``retention`` after
  it finished, so only a lost one can be missing then. One read later than that would be
  counted **unverified** (never expected: the sweeper runs seconds behind; both are gated);
* every slot ``S`` (each whole second from the first checked slot until the jobs are
  paused) of every job is read the same way (its id is ``slot_task_id(job, S)``): a slot
  whose task has more dispatches than its crash re-deliveries and retries explain is
  **doubled**; one with no task ``slot_missing_after`` seconds after ``S`` is **missing**;
  its fire lag (the worker's ``started_at`` minus ``S``, as benchmarks/lag.py measures) goes
  into a per-window list;
* every 5 s a **sampler** records each process's RSS (``VmRSS`` of ``/proc/PID/status``),
  who leads, the store's own figures (Redis ``used_memory``; PostgreSQL's on-disk size of the
  schema's tables, see :class:`PostgresStore`) and the store's counts per state (``samples.jsonl``).

Only the store-specific part differs between the stores (:class:`EnduranceStore`: the server,
the URL options - ``retention`` on both -, the sampled figures, the name and the estimate of
the size the plateau check judges); the load, the accounting and every check are shared.

RSS "flat" (the issue: growth < 10 % after the first 5 minutes): processes are killed and
restarted, and a scheduler changes role when it takes over, so it is judged per *stint*:
each worker generation, and each stretch a scheduler generation leads. For a stint that
lasted at least ``rss_warmup`` + 2 minutes, the baseline is the median RSS over the minute
after its first ``rss_warmup`` seconds (5 minutes; 1 minute in CI mode) and the growth is
the median over its last minute against that baseline; every such stint must be < 10 %.

Redis memory "bounded by the retention": finished tasks expire ``retention`` after they
finish (60 s in CI mode, 300 s in the hour), so ``used_memory`` reaches its bound within
about ``retention`` + a few seconds; the plateau check compares the mean of the last
``plateau_window`` seconds with the mean of the ``plateau_window`` seconds starting at
``2 x retention`` (< 10 % higher), and reports the peak against the estimate of
docs/redis.md (2.7 KiB a finished task x tasks/s x retention). On PostgreSQL the same check
(same windows, same limit) judges the on-disk size of every table of the deployment's schema
(``pg_total_relation_size``: heap + indexes + TOAST, summed): finished tasks are deleted
``retention`` after they finish, and the space is reusable once (auto)vacuum has cleaned the
dead tuples, so the size plateaus only if vacuum keeps up - a bloat shows as growth. There is
no documented per-task figure to estimate the bound from; the ``tasks`` table's size (heap,
indexes), its live and dead tuples and its autovacuum count are reported beside it.

Fire-lag p99 "stable": p99 per ``lag_window`` (10 minutes; 1 minute in CI mode) of the slots
of that window; stable when the median window p99 of the second half of the run is at most
1.5 x that of the first half + 50 ms (no upward trend), and no window's p99 is above 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import statistics
import sys
import textwrap
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos_checks import Prop
from chaos_cluster import JsonlWriter, now

from distsched.testing.processes import (
    Deployment,
    NodeProcess,
    WaitTimeout,
    percentile,
    wait_until_async,
)

NAMESPACE = "endure"
SCHEDULERS = ("s1", "s2")
WORKERS = ("w1", "w2", "w3")
# Timings (CLI options of `distsched scheduler` / `worker`): shorter than the README's
# defaults so a kill resolves in seconds, longer than the smoke's so that a busy machine
# does not lose the lease on a slow pass.
LEASE_TTL = 4.0
RENEW_INTERVAL = 1.0
HEARTBEAT_TTL = 4.0
HEARTBEAT_INTERVAL = 0.5
WORKER_CONCURRENCY = 16
#: RSS growth limit of a stint, Redis plateau growth limit.
RSS_LIMIT = 0.10
PLATEAU_LIMIT = 0.10
#: A window's fire-lag p99 above this fails the stability check (a stuck leader).
LAG_CEILING = 10.0
SAMPLE_EVERY = 5.0
#: Bytes a finished task costs in Redis (docs/redis.md), for the estimate of the bound.
TASK_BYTES = 2.7 * 1024


@dataclass(frozen=True)
class EnduranceProfile:
    name: str
    #: Seconds of load (tasks submitted, jobs firing, kills).
    duration: float
    #: One-off tasks per second.
    rate: int = 1000
    #: Jobs firing every second.
    jobs: int = 500
    #: Seconds a finished task is kept (the storage URL's ``retention``).
    retention: int = 300
    rss_warmup: float = 300.0
    lag_window: float = 600.0
    plateau_window: float = 300.0
    #: (seconds after the load started, "leader" | "worker"); empty: every ``kill_every``
    #: seconds alternately a leader and a worker, starting with a leader at ``kill_every``.
    kills: tuple[tuple[float, str], ...] = ()
    kill_every: float = 300.0
    restart_delay: float = 3.0
    #: Seconds after its ack (or a slot's time) a task is first read back.
    check_age: float = 5.0
    #: A slot with no task this long after its time is missing.
    slot_missing_after: float = 45.0
    #: A slot due less than this before the jobs were paused may be unfired (reported apart).
    unfired_grace: float = 30.0
    quiesce: float = 120.0

    def schedule(self) -> list[tuple[float, str]]:
        if self.kills:
            return [k for k in self.kills if k[0] < self.duration]
        out, t, i = [], self.kill_every, 0
        while t < self.duration - 30:
            out.append((t, "leader" if i % 2 == 0 else "worker"))
            t += self.kill_every
            i += 1
        return out


ENDURANCE_PROFILES = {
    "endurance": EnduranceProfile(name="endurance", duration=3600.0, quiesce=240.0),
    "endurance-ci": EnduranceProfile(
        name="endurance-ci", duration=300.0, retention=60, rss_warmup=60.0, lag_window=60.0, plateau_window=60.0,
        kills=((90.0, "leader"), (180.0, "worker"), (240.0, "worker")), quiesce=60.0),
}


TASKS = '''\
"""Task functions of the endurance workload (imported by the workers)."""
from distsched import task


@task
def endurance_work(n):
    """A one-off task: no work (the load is the engine's own)."""
    return None


@task
def endurance_tick(job):
    """A slot task: no work."""
    return None
'''


def jobs_toml(jobs: int) -> str:
    out = ['[worker]\nimports = ["endurance_tasks"]\n']
    for i in range(jobs):
        out.append(textwrap.dedent(f'''
            [[jobs]]
            name = "{job_name(i)}"
            every = "1s"
            target = "endurance_tick"
            args = ["{job_name(i)}"]
            timeout = "30s"
            misfire = "fire-all"
        '''))
    return "".join(out)


def job_name(i: int) -> str:
    return f"e-{i:03d}"


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process, from /proc (None if it is gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def rss_kb(pid: int | None) -> int | None:
    """VmRSS of a process in KiB, from /proc (None if it is gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


# -- the store: what differs between Redis and PostgreSQL ----------------------------------
class EnduranceStore:
    """The store-specific part of an endurance run: the throwaway server, the URL options, what
    the sampler records of the store (``samples.jsonl``: under :attr:`key`) and how the
    "bounded by the retention" check names and estimates it. Everything else is shared.

    The judging attributes are class attributes, so :func:`judge` works from a run's files
    without a server (``STORES[meta["storage"]]``)."""

    #: The ``--storage`` value.
    name = ""
    #: The samples' key of the store's figures, and its CPU row.
    key = ""
    #: The sampled size the plateau check judges, and the figures' / property's key.
    size_field = ""
    prop = ""
    #: How the size is named in the property's line.
    size_label = ""
    #: How the size per stored task is named in the "sustained" line.
    per_task_label = ""

    def __init__(self) -> None:
        self.dep: Deployment[Any] | None = None

    # -- the deployment ------------------------------------------------------------------
    @classmethod
    def unavailable(cls) -> str | None:
        """Why this store cannot run here (None: it can)."""
        raise NotImplementedError

    def server(self) -> Any:
        raise NotImplementedError

    def url_options(self, p: EnduranceProfile) -> dict[str, Any]:
        raise NotImplementedError

    def where(self) -> str:
        """Where the store runs, for the progress line."""
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        raise NotImplementedError

    async def open(self, dep: Deployment[Any]) -> None:
        self.dep = dep

    async def sample(self) -> dict[str, Any]:
        """The store's figures now (``{"error": ...}`` when it did not answer)."""
        raise NotImplementedError

    async def final(self) -> dict[str, Any]:
        """The store's figures after the run (``run.json``)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass

    def keep_logs(self, run_dir: Path) -> None:
        """Before the store is removed: copy what is worth keeping into the run directory."""

    # -- the checks (class-level: they read samples only) -----------------------------------
    @classmethod
    def estimate(cls, p: EnduranceProfile, first: float) -> float | None:
        """The size expected at the bound (None: no documented per-task figure)."""
        return None

    @classmethod
    def extra(cls, samples: list[dict[str, Any]], p: EnduranceProfile, load_s: float) -> tuple[dict[str, Any], str]:
        """More figures of the store (and their text for the property's line)."""
        return {}, ""


class RedisStore(EnduranceStore):
    """A throwaway ``redis-server``: no persistence (Redis faults are not this profile's subject);
    ``noeviction`` so that memory the retention does not bound shows as growth, not as silent
    eviction. Sampled: ``INFO memory`` (``used_memory``, ``used_memory_rss``), ``DBSIZE``,
    ``INFO cpu``."""

    name = key = "redis"
    size_field = "used_memory"
    prop = "redis_memory"
    size_label = "Redis used_memory"
    per_task_label = "Redis bytes per stored task (used_memory over the store's counts, after the first quarter)"

    def __init__(self) -> None:
        super().__init__()
        self.client: Any = None

    @classmethod
    def unavailable(cls) -> str | None:
        import shutil

        return None if shutil.which("redis-server") else "redis-server is not on PATH"

    def server(self) -> Any:
        from distsched.testing.redis_server import RedisServer

        return RedisServer(config={"maxmemory-policy": "noeviction"})

    def url_options(self, p: EnduranceProfile) -> dict[str, Any]:
        return {"namespace": NAMESPACE, "retention": p.retention}

    def where(self) -> str:
        assert self.dep is not None
        return f"redis port {self.dep.store.port}"

    def meta(self) -> dict[str, Any]:
        assert self.dep is not None
        return {"redis": {"port": self.dep.store.port, "persistence": "none", "maxmemory-policy": "noeviction"}}

    async def open(self, dep: Deployment[Any]) -> None:
        import redis.asyncio as aioredis

        await super().open(dep)
        self.client = aioredis.Redis(host="127.0.0.1", port=dep.store.port, decode_responses=True)

    async def sample(self) -> dict[str, Any]:
        try:
            info = await bounded(self.client.info("memory"), 5.0)
            out = {"used_memory": info.get("used_memory"), "used_memory_rss": info.get("used_memory_rss")}
            out["dbsize"] = await bounded(self.client.dbsize(), 5.0)
            cpu = await bounded(self.client.info("cpu"), 5.0)
            out["cpu_s"] = float(cpu.get("used_cpu_user", 0)) + float(cpu.get("used_cpu_sys", 0))
            return out
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    async def final(self) -> dict[str, Any]:
        info = await bounded(self.client.info("memory"), 10.0)
        return {"used_memory": info.get("used_memory"), "dbsize": await bounded(self.client.dbsize(), 10.0)}

    async def close(self) -> None:
        if self.client is not None:
            await bounded(self.client.aclose(), 10.0)

    @classmethod
    def estimate(cls, p: EnduranceProfile, first: float) -> float | None:
        return first + (p.rate + p.jobs) * p.retention * TASK_BYTES


#: Settings of the throwaway PostgreSQL cluster (beside PostgresServer's fsync and
#: synchronous_commit on; autovacuum keeps PostgreSQL's defaults: what a deployment gets).
PG_SETTINGS = {
    "max_connections": "200",  # 5 nodes x (pool_size 10 + 1 LISTEN) + the harness's
    "shared_buffers": "128MB",  # PostgreSQL's own default (PostgresServer's is 32MB)
    "log_line_prefix": "%m [%p] ",
    "log_timezone": "UTC",
    "lc_messages": "C",
    "log_autovacuum_min_duration": "0",  # every autovacuum in the server log (postgres.log)
}

#: Every table of the deployment's schema: on-disk size (heap + indexes + TOAST), and the
#: statistics collector's live / dead tuples and vacuum counts.
PG_SIZES = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS total, pg_relation_size(c.oid) AS heap,
       pg_indexes_size(c.oid) AS indexes, s.n_live_tup AS live, s.n_dead_tup AS dead,
       s.autovacuum_count AS autovacuums, s.n_tup_del AS deleted
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
"""
PG_TASK_INDEXES = """
SELECT i.relname AS name, pg_relation_size(i.oid) AS bytes
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = $1 AND t.relname = 'tasks'
"""


def pg_cluster_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU seconds of a PostgreSQL cluster: the postmaster's own and its reaped children's
    (``cutime`` + ``cstime``: backends and autovacuum workers that exited) plus those of its
    live children, from /proc (None when the postmaster is gone)."""
    if postmaster is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{postmaster}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total = sum(int(x) for x in fields[11:15]) / tick
    except (OSError, ValueError, IndexError):
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return total


class PostgresStore(EnduranceStore):
    """A throwaway PostgreSQL cluster (:class:`distsched.testing.postgres_server.PostgresServer`,
    as the chaos smoke on PostgreSQL uses: ``initdb`` + ``pg_ctl`` on a free loopback port;
    settings :data:`PG_SETTINGS`), the deployment in schema ``endure``. Sampled: the on-disk
    size of every table of the schema (``pg_total_relation_size``: heap, indexes and TOAST)
    summed, the ``tasks`` table alone (and its heap, its indexes each), ``n_live_tup`` /
    ``n_dead_tup`` / ``autovacuum_count`` of ``pg_stat_user_tables``, the database's size, and
    the cluster's CPU (:func:`pg_cluster_cpu_seconds`)."""

    name = key = "postgres"
    size_field = "total_bytes"
    prop = "postgres_size"
    size_label = f"PostgreSQL on-disk size of schema '{NAMESPACE}' (tables + indexes + TOAST)"
    per_task_label = ("PostgreSQL bytes per stored task (the schema's on-disk size over the store's counts, "
                      "after the first quarter)")

    def __init__(self) -> None:
        super().__init__()
        self.conn: Any = None
        self.version: str | None = None

    @classmethod
    def unavailable(cls) -> str | None:
        from distsched.testing.postgres_server import postgres_bindir

        try:
            import asyncpg  # noqa: F401
        except ImportError:
            return "asyncpg is not installed (pip install 'distsched[postgres]')"
        return None if postgres_bindir() is not None else "PostgreSQL server binaries (initdb, pg_ctl) not found"

    def server(self) -> Any:
        from distsched.testing.postgres_server import PostgresServer

        return PostgresServer(settings=PG_SETTINGS)

    def url_options(self, p: EnduranceProfile) -> dict[str, Any]:
        return {"schema": NAMESPACE, "retention": p.retention}

    def where(self) -> str:
        assert self.dep is not None
        return f"postgres port {self.dep.store.port}"

    def meta(self) -> dict[str, Any]:
        assert self.dep is not None
        return {"postgres": {"port": self.dep.store.port, "schema": NAMESPACE, "settings": self.dep.store.settings}}

    async def open(self, dep: Deployment[Any]) -> None:
        import asyncpg

        await super().open(dep)
        self.conn = await asyncpg.connect(dep.store.url, timeout=10)
        self.version = await self.conn.fetchval("SHOW server_version")

    def postmaster(self) -> int | None:
        assert self.dep is not None
        try:
            return int((self.dep.store.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, AssertionError):
            return None

    async def sample(self) -> dict[str, Any]:
        try:
            rows = await bounded(self.conn.fetch(PG_SIZES, NAMESPACE), 5.0)
            idx = await bounded(self.conn.fetch(PG_TASK_INDEXES, NAMESPACE), 5.0)
            db = await bounded(self.conn.fetchval("SELECT pg_database_size(current_database())"), 5.0)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        tables = {r["name"]: r for r in rows}
        tasks = tables.get("tasks")
        out: dict[str, Any] = {"total_bytes": sum(r["total"] for r in rows), "database_bytes": db}
        if tasks is not None:
            out.update(tasks_bytes=tasks["total"], tasks_heap_bytes=tasks["heap"], tasks_index_bytes=tasks["indexes"],
                       tasks_live=tasks["live"], tasks_dead=tasks["dead"], tasks_autovacuums=tasks["autovacuums"],
                       tasks_deleted=tasks["deleted"])
        out["tables"] = {n: r["total"] for n, r in sorted(tables.items())}
        out["dead"] = {n: r["dead"] for n, r in sorted(tables.items()) if r["dead"]}
        out["tasks_indexes"] = {r["name"]: r["bytes"] for r in idx}
        out["cpu_s"] = pg_cluster_cpu_seconds(self.postmaster())
        return out

    async def final(self) -> dict[str, Any]:
        out = await self.sample()
        out["server_version"] = self.version
        return out

    async def close(self) -> None:
        if self.conn is not None:
            await bounded(self.conn.close(), 10.0)

    def keep_logs(self, run_dir: Path) -> None:
        assert self.dep is not None
        with contextlib.suppress(OSError, AssertionError):
            (run_dir / "postgres.log").write_text(self.dep.store.log.read_text(errors="replace"))

    @classmethod
    def extra(cls, samples: list[dict[str, Any]], p: EnduranceProfile, load_s: float) -> tuple[dict[str, Any], str]:
        """The ``tasks`` table: its size (heap / indexes) and dead tuples, early window against late."""
        rows = [(s["rel"], s[cls.key]) for s in samples if s.get("loading") and "tasks_bytes" in s.get(cls.key, {})]
        if not rows:
            return {}, ""
        a0 = 2 * p.retention
        early = [x for r, x in rows if a0 <= r < a0 + p.plateau_window]
        late = [x for r, x in rows if r >= load_s - p.plateau_window]

        def mean_mib(xs: list[dict[str, Any]], k: str) -> float | None:
            return round(statistics.mean(x[k] for x in xs) / 2**20, 1) if xs else None

        def mean_n(xs: list[dict[str, Any]], k: str) -> int | None:
            vals = [x[k] for x in xs if x.get(k) is not None]
            return round(statistics.mean(vals)) if vals else None

        fig = {"tasks_mib": {"early": mean_mib(early, "tasks_bytes"), "late": mean_mib(late, "tasks_bytes"),
                             "peak": round(max(x["tasks_bytes"] for _, x in rows) / 2**20, 1)},
               "tasks_heap_mib": {"early": mean_mib(early, "tasks_heap_bytes"), "late": mean_mib(late, "tasks_heap_bytes")},
               "tasks_index_mib": {"early": mean_mib(early, "tasks_index_bytes"),
                                   "late": mean_mib(late, "tasks_index_bytes")},
               "tasks_live": {"early": mean_n(early, "tasks_live"), "late": mean_n(late, "tasks_live")},
               "tasks_dead": {"early": mean_n(early, "tasks_dead"), "late": mean_n(late, "tasks_dead"),
                              "max": max((x.get("tasks_dead") or 0 for _, x in rows), default=None)},
               "tasks_autovacuums": rows[-1][1].get("tasks_autovacuums")}
        text = (f"; tasks table {fig['tasks_mib']['early']} -> {fig['tasks_mib']['late']} MiB (heap "
                f"{fig['tasks_heap_mib']['early']} -> {fig['tasks_heap_mib']['late']}, indexes "
                f"{fig['tasks_index_mib']['early']} -> {fig['tasks_index_mib']['late']}), live tuples "
                f"{fig['tasks_live']['early']} -> {fig['tasks_live']['late']}, dead {fig['tasks_dead']['early']} -> "
                f"{fig['tasks_dead']['late']} (max {fig['tasks_dead']['max']}), {fig['tasks_autovacuums']} autovacuums")
        return fig, text


STORES: dict[str, type[EnduranceStore]] = {"redis": RedisStore, "postgres": PostgresStore}


class EProc(NodeProcess):
    """A scheduler or worker process; each start is a new generation with its own node id."""

    def __init__(self, dep: Deployment[Any], name: str, role: str) -> None:
        super().__init__(name, directory=dep.dir, log_dir=dep.log_dir, env=dep.env, log_name="{name}-g{gen}.log")
        self.dep = dep
        self.role = role
        self.should_run = False
        self.started_at: dict[int, float] = {}

    @property
    def node_id(self) -> str:
        return f"{self.name}-g{self.gen}"

    def command(self) -> list[str]:
        head = [sys.executable, "-m", "distsched", "-q"]
        if self.role == "scheduler":
            return head + ["scheduler", "--storage", self.dep.url, "--node-id", self.node_id,
                           "--lease-ttl", str(LEASE_TTL), "--renew-interval", str(RENEW_INTERVAL),
                           "--heartbeat-ttl", str(HEARTBEAT_TTL)]
        return head + ["worker", "--storage", self.dep.url, "--name", self.name, "--import", "endurance_tasks",
                       "--concurrency", str(WORKER_CONCURRENCY), "--heartbeat-interval", str(HEARTBEAT_INTERVAL)]

    def start(self) -> EProc:
        super().start()
        self.should_run = True
        self.started_at[self.gen] = now()
        return self


@dataclass
class Tally:
    """The online accounting (figures only; ids only for what went wrong)."""

    acked: int = 0
    submit_calls: int = 0
    submit_errors: int = 0
    verified: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    tasks_doubled: list[str] = field(default_factory=list)
    rechecks: int = 0
    redelivered: int = 0
    slots_checked: int = 0
    slot_states: Counter[str] = field(default_factory=Counter)
    slots_doubled: list[str] = field(default_factory=list)
    slots_missing: list[str] = field(default_factory=list)
    slots_redelivered: int = 0
    slots_unfired_at_pause: int = 0
    sweep_reads: int = 0
    sweep_behind_max: float = 0.0


async def bounded(coro: Any, timeout: float) -> Any:
    """Await ``coro`` for at most ``timeout`` seconds without waiting for its cancellation
    to complete (asyncio.wait_for does, and a call stuck in its cancellation then hangs the
    harness: seen once at the end of a run); TimeoutError when it did not finish."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise TimeoutError(f"no answer in {timeout:g} s")
    return task.result()


async def retrying(what: str, call: Any, timeout: float = 10.0, attempts: int = 30) -> Any:
    for i in range(attempts):
        try:
            return await bounded(call(), timeout)
        except Exception as exc:
            if i == attempts - 1:
                raise RuntimeError(f"{what}: {type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(1.0)


def unexplained(task: Any) -> int:
    """Dispatches not explained by crash re-deliveries and retries (as chaos_checks does)."""
    if not task.dispatches:
        return 0
    return max(0, task.dispatches - (task.redeliveries + (task.attempt - 1) + 1))


class Endurance:
    """One endurance run (see the module docstring)."""

    def __init__(self, profile: EnduranceProfile, seed: int, run_dir: Path, *, verbose: bool = True,
                 storage: str = "redis") -> None:
        self.p = profile
        self.seed = seed
        self.dir = run_dir
        self.verbose = verbose
        self.rng = random.Random(seed)
        pythonpath = os.pathsep.join(x for x in (str(run_dir), os.environ.get("PYTHONPATH", "")) if x)
        self.store = STORES[storage]()
        self.dep: Deployment[Any] = Deployment(
            self.store.server(), directory=run_dir, log_dir=run_dir / "logs",
            url_options=self.store.url_options(profile), env={"PYTHONPATH": pythonpath})
        (run_dir / "endurance_tasks.py").write_text(TASKS)
        (run_dir / "jobs.toml").write_text(jobs_toml(profile.jobs))
        self.procs: dict[str, EProc] = {}
        self.samples = JsonlWriter(run_dir / "samples.jsonl")
        self.events = JsonlWriter(run_dir / "events.jsonl")
        self.t = Tally()
        self.app: Any = None
        self.storage: Any = None
        self.election: Any = None
        self.t0 = 0.0  # wall time the load started
        self.loading = False
        #: (due monotonic, first n, last n + 1, wall time acked) of acked batches not read yet.
        self.pending_ranges: deque[tuple[float, int, int, float]] = deque()
        #: (due monotonic, task id, wall time last seen alive, wall time acked) to read again.
        self.recheck: deque[tuple[float, str, float, float]] = deque()
        self.first_slot = 0
        self.next_slot = 0
        self.last_slot: int | None = None  # the last slot checked (set when the jobs are paused)
        self.paused_at: float | None = None
        self.slot_recheck: deque[tuple[float, str, int]] = deque()
        self.lags: dict[int, list[float]] = {}
        self.kills: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {"profile": asdict(profile), "seed": seed, "dir": str(run_dir), "storage": storage,
                                     "timings": {"lease_ttl": LEASE_TTL, "renew_interval": RENEW_INTERVAL,
                                                 "heartbeat_ttl": HEARTBEAT_TTL,
                                                 "heartbeat_interval": HEARTBEAT_INTERVAL,
                                                 "worker_concurrency": WORKER_CONCURRENCY}}

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[endurance {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # -- processes -------------------------------------------------------------------------
    async def leader(self) -> str | None:
        try:
            fence = await bounded(self.election.current(), 3.0)
        except Exception:
            return None
        return fence.node_id if fence is not None else None

    def by_node(self, node_id: str | None) -> EProc | None:
        if not node_id:
            return None
        proc = self.procs.get(node_id.split("-g", 1)[0])
        return proc if proc is not None and proc.node_id == node_id else None

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for proc in self.procs.values():
                if proc.should_run and proc.child is not None and not proc.alive():
                    self.events.write({"t": now(), "event": "exited on its own", "proc": proc.node_id,
                                       "rc": proc.returncode, "tail": proc.log_text()[-1500:]})
                    self.say(f"{proc.node_id} exited on its own (rc {proc.returncode}); restarting it")
                    proc.start()

    async def killer(self) -> None:
        worker_turn = 0
        for at, kind in self.p.schedule():
            await asyncio.sleep(max(0.0, self.t0 + at - now()))
            if not self.loading:
                return
            if kind == "leader":
                node = await self.leader()
                proc = self.by_node(node)
                if proc is None:
                    self.events.write({"t": now(), "event": "kill skipped", "kind": kind, "leader": node})
                    continue
            else:
                proc = self.procs[WORKERS[worker_turn % len(WORKERS)]]
                worker_turn += 1
            victim = proc.node_id
            proc.should_run = False
            proc.kill()
            t_kill = now()
            self.say(f"kill -9 {kind} {victim} at +{t_kill - self.t0:.0f} s")
            record: dict[str, Any] = {"t": t_kill, "at": round(t_kill - self.t0, 1), "kind": kind, "victim": victim}
            if kind == "leader":
                with contextlib.suppress(WaitTimeout):
                    async def other(victim: str = victim) -> str | None:
                        node = await self.leader()
                        return node if node and node != victim else None

                    new = await wait_until_async(other, 30.0, what="a new leader", interval=0.1)
                    record["new_leader"] = new
                    record["takeover_s"] = round(now() - t_kill, 2)
            await asyncio.sleep(max(0.0, t_kill + self.p.restart_delay - now()))
            proc.start()
            record["restarted_as"] = proc.node_id
            self.kills.append(record)
            self.events.write({"event": "kill", **record})

    # -- load ------------------------------------------------------------------------------
    async def submitter(self) -> None:
        from distsched import DistributeSchedule
        from distsched.model import TaskSpec

        app = DistributeSchedule(self.dep.url)
        spec = TaskSpec(target="endurance_work", args=(0,), timeout=30)
        n = 0
        step = 0.1
        start = time.monotonic()
        end = start + self.p.duration
        try:
            while time.monotonic() < end:
                due = min(int(self.p.rate * (time.monotonic() - start)) + 1, int(self.p.rate * self.p.duration))
                if due <= n:
                    await asyncio.sleep(step - (time.monotonic() - start) % step)
                    continue
                count = min(due - n, 1000)
                ids = [f"e{self.seed}-{i}" for i in range(n, n + count)]
                self.t.submit_calls += 1
                try:
                    await bounded(app.submit_many([spec] * count, task_ids=ids), 30.0)
                except Exception as exc:
                    self.t.submit_errors += 1
                    if self.t.submit_errors % 10 == 1:
                        self.say(f"submit failed ({type(exc).__name__}: {exc}); retrying the same ids")
                    await asyncio.sleep(0.2)
                    continue
                self.pending_ranges.append((time.monotonic() + self.p.check_age, n, n + count, now()))
                n += count
                self.t.acked = n
        finally:
            with contextlib.suppress(Exception):
                await bounded(app.engine.close(), 10.0)

    # -- the sweeper -----------------------------------------------------------------------
    async def _get_many(self, ids: list[str]) -> list[Any]:
        while True:
            try:
                self.t.sweep_reads += 1
                return list(await bounded(self.storage.tasks.get_many(ids), 30.0))
            except Exception as exc:
                self.say(f"read failed ({type(exc).__name__}: {exc}); again")
                await asyncio.sleep(1.0)

    def _again_in(self, age: float) -> float:
        """Seconds until a non-terminal task is read again: half its age, 5 s to a third of the
        retention (at most 60 s), so a backlog is not read over and over."""
        return max(5.0, min(age / 2, 60.0, self.p.retention / 3))

    async def _judge_tasks(self, ids: list[str], seen: list[float], acked: list[float]) -> None:
        found = await self._get_many(ids)
        t = now()
        for tid, seen_at, acked_at, task in zip(ids, seen, acked, found):
            if task is None:
                (self.t.lost if t - seen_at < self.p.retention else self.t.unverified).append(tid)
            elif task.state.terminal:
                self.t.verified += 1
                self.t.by_state[task.state.value] += 1
                if task.redeliveries:
                    self.t.redelivered += 1
                if unexplained(task):
                    self.t.tasks_doubled.append(tid)
            else:
                self.t.rechecks += 1
                self.recheck.append((time.monotonic() + self._again_in(t - acked_at), tid, t, acked_at))

    async def _judge_slots(self, ids: list[str], slots: list[int]) -> None:
        found = await self._get_many(ids)
        t = now()
        for tid, slot, task in zip(ids, slots, found):
            if task is None or not task.state.terminal:
                if task is None and self.paused_at is not None and slot > self.paused_at - self.p.unfired_grace:
                    # due shortly before the jobs were paused and not fired then: a paused job
                    # fires no more slots (not a loss; counted apart)
                    self.t.slots_unfired_at_pause += 1
                elif task is None and t - slot > self.p.slot_missing_after:
                    self.t.slots_missing.append(tid)
                else:
                    self.slot_recheck.append((time.monotonic() + self._again_in(t - slot), tid, slot))
                continue
            self.t.slots_checked += 1
            self.t.slot_states[task.state.value] += 1
            if task.redeliveries:
                self.t.slots_redelivered += 1
            if unexplained(task):
                self.t.slots_doubled.append(tid)
            if task.started_at is not None:
                window = int((slot - self.t0) // self.p.lag_window)
                self.lags.setdefault(window, []).append(task.started_at - slot)

    async def sweep_once(self, *, final: bool = False) -> int:
        """Read back what is due (everything when ``final``); the number of ids read."""
        from distsched.model.task import slot_task_id

        mono = time.monotonic()
        read = 0
        ids: list[str] = []
        seen: list[float] = []
        acks: list[float] = []
        while self.pending_ranges and (final or self.pending_ranges[0][0] <= mono) and len(ids) < 5000:
            _, lo, hi, acked = self.pending_ranges.popleft()
            self.t.sweep_behind_max = max(self.t.sweep_behind_max, now() - acked)
            ids += [f"e{self.seed}-{i}" for i in range(lo, hi)]
            seen += [acked] * (hi - lo)
            acks += [acked] * (hi - lo)
        # (the recheck queue is not in due order once delays differ: take what is due among
        # the first entries; the rest wait their turn)
        for _ in range(min(len(self.recheck), 6000)):
            if len(ids) >= 6000:
                break
            entry = self.recheck.popleft()
            if final or entry[0] <= mono:
                ids.append(entry[1])
                seen.append(entry[2])
                acks.append(entry[3])
            else:
                self.recheck.append(entry)
        done = 0
        try:
            for i in range(0, len(ids), 1000):
                await self._judge_tasks(ids[i:i + 1000], seen[i:i + 1000], acks[i:i + 1000])
                done = i + 1000
        except BaseException:
            # cancelled (the quiesce stops the sweeper, then sweeps once more) while a read was
            # in flight: what this pass took and did not judge goes back, or it would be
            # counted nowhere (CI saw acked 150,000, read back 149,969, lost 0, non-terminal 0)
            self.recheck.extendleft(reversed([(mono, tid, seen_at, acked_at) for tid, seen_at, acked_at
                                              in zip(ids[done:], seen[done:], acks[done:])]))
            raise
        read += len(ids)
        # slots: every whole second up to now - check_age (or the last slot when paused)
        limit = self.last_slot if self.last_slot is not None else int(now() - self.p.check_age)
        sids: list[str] = []
        sslots: list[int] = []
        while self.next_slot <= limit and len(sids) < 5 * self.p.jobs:
            s = self.next_slot
            sids += [slot_task_id(job_name(j), s) for j in range(self.p.jobs)]
            sslots += [s] * self.p.jobs
            self.next_slot += 1
        for _ in range(min(len(self.slot_recheck), 6000)):
            if len(sids) >= 6 * self.p.jobs:
                break
            sentry = self.slot_recheck.popleft()
            if final or sentry[0] <= mono:
                sids.append(sentry[1])
                sslots.append(sentry[2])
            else:
                self.slot_recheck.append(sentry)
        done = 0
        try:
            for i in range(0, len(sids), 1000):
                await self._judge_slots(sids[i:i + 1000], sslots[i:i + 1000])
                done = i + 1000
        except BaseException:  # the same for slots taken and not judged
            self.slot_recheck.extendleft(reversed([(mono, tid, slot) for tid, slot
                                                   in zip(sids[done:], sslots[done:])]))
            raise
        return read + len(sids)

    async def sweeper(self) -> None:
        while True:
            n = await self.sweep_once()
            await asyncio.sleep(0.5 if n == 0 else 0.05)

    # -- the sampler -----------------------------------------------------------------------
    async def sampler(self) -> None:
        while True:
            t = now()
            leader = await self.leader()
            procs = {}
            for p in self.procs.values():
                if p.alive():
                    procs[p.node_id] = {"role": p.role, "rss_kb": rss_kb(p.pid), "cpu_s": cpu_seconds(p.pid),
                                       "leader": p.node_id == leader}
            store = await self.store.sample()
            try:
                counts = await bounded(self.storage.tasks.counts(), 10.0)
            except Exception:
                counts = None
            self.samples.write({"t": t, "rel": round(t - self.t0, 1), "leader": leader, "procs": procs,
                                self.store.key: store, "counts": counts, "acked": self.t.acked,
                                "verified": self.t.verified, "slots_checked": self.t.slots_checked,
                                "loading": self.loading, "harness_cpu_s": round(time.process_time(), 2),
                                "loadavg": os.getloadavg()[0]})
            await asyncio.sleep(max(0.0, t + SAMPLE_EVERY - now()))

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(60.0 if self.p.duration > 600 else 30.0)
            el = now() - self.t0
            self.say(f"+{el:.0f} s: acked {self.t.acked} ({self.t.acked / max(el, 1):.0f}/s), verified "
                     f"{self.t.verified}, lost {len(self.t.lost)}, slots checked {self.t.slots_checked}, doubled "
                     f"{len(self.t.slots_doubled)}, missing {len(self.t.slots_missing)}, sweeper "
                     f"{len(self.pending_ranges)} ranges / {len(self.recheck)} rechecks behind")

    # -- the run ---------------------------------------------------------------------------
    async def main(self) -> None:
        from distsched import DistributeSchedule
        from distsched.jobs import load_jobs_file

        p = self.p
        t_start = now()
        self.meta["started"] = t_start

        def dump_tasks() -> None:  # kill -USR1 <pid>: where every coroutine of the harness waits
            for task in asyncio.all_tasks():
                task.print_stack(file=sys.stderr)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        await asyncio.to_thread(self.dep.start)
        await self.store.open(self.dep)
        self.meta.update(self.store.meta())
        self.meta["url"] = self.dep.url
        self.app = DistributeSchedule(self.dep.url)
        self.storage = await self.app.storage()
        self.election = await self.app.engine.open_election()
        await self.app.put_jobs(load_jobs_file(self.dir / "jobs.toml").jobs, replace=False)
        for name in SCHEDULERS:
            self.procs[name] = EProc(self.dep, name, "scheduler")
        for name in WORKERS:
            self.procs[name] = EProc(self.dep, name, "worker")
        for proc in self.procs.values():
            proc.start()
        supervisor = asyncio.create_task(self.supervise())

        async def ready() -> bool:
            if await self.leader() is None:
                return False
            ws = await self.storage.workers.list_workers()
            return len({w.pid for w in ws if w.is_alive(self.storage.clock(), HEARTBEAT_TTL)}) >= len(WORKERS)

        await wait_until_async(ready, 60, what="a leader and every worker", interval=0.2)
        self.t0 = now()
        self.first_slot = self.next_slot = math.ceil(self.t0) + 2
        self.meta["load_started"] = self.t0
        self.meta["first_slot"] = self.first_slot
        self.loading = True
        self.say(f"{len(self.procs)} processes up on {self.store.where()}; profile {p.name}: "
                 f"{p.rate} tasks/s + {p.jobs} jobs every 1 s for {p.duration:.0f} s, retention {p.retention} s, "
                 f"kills at {[(int(a), k) for a, k in p.schedule()]}")
        helpers = [asyncio.create_task(c) for c in (self.sweeper(), self.sampler(), self.progress())]
        killer = asyncio.create_task(self.killer())
        await self.submitter()
        self.loading = False
        self.meta["load_ended"] = now()
        await asyncio.wait({killer}, timeout=p.restart_delay + 35.0)
        killer.cancel()
        for proc in self.procs.values():  # a kill in flight when the load ended
            if not proc.alive():
                proc.start()
        # quiesce: pause the jobs, wait for every task to be terminal, read everything back
        for i in range(0, p.jobs, 50):
            await asyncio.gather(*(retrying(f"pause {job_name(j)}", lambda j=j: self.app.pause_job(job_name(j)))
                                   for j in range(i, min(i + 50, p.jobs))))
        t_pause = now()
        # every slot up to the pause is read back; one due less than unfired_grace before it
        # and not fired is reported apart (a paused job fires no more)
        self.last_slot = max(self.next_slot - 1, int(t_pause))
        self.meta["jobs_paused"] = t_pause
        deadline = time.monotonic() + p.quiesce
        live: dict[str, int] | None = None
        # after the live tasks are gone, rechecks of unfired slots conclude at once
        self.meta["jobs_paused"] = t_pause
        while time.monotonic() < deadline:
            try:
                counts = await bounded(self.storage.tasks.counts(), 10.0)
            except Exception:
                await asyncio.sleep(0.5)
                continue
            live = {k: v for k, v in counts.items() if k in ("pending", "dispatched", "running", "retrying") and v}
            if not live:
                break
            await asyncio.sleep(0.5)
        self.meta["live_at_end"] = live
        self.paused_at = t_pause
        self.meta["quiesce_seconds"] = round(now() - t_pause, 1)
        for h in helpers:
            h.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        # final sweep: everything acked, every slot up to the last, every recheck
        # (a loaded machine reads slowly: a sweep that read further waits for nothing - it
        # once ran out of time with 5 s of slots unread, counted as "expected, not checked")
        deadline = time.monotonic() + max(120.0, 2 * p.quiesce)
        while (self.pending_ranges or self.recheck or self.slot_recheck or self.next_slot <= self.last_slot) \
                and time.monotonic() < deadline:
            before = (len(self.recheck), len(self.slot_recheck), self.next_slot)
            await self.sweep_once(final=True)
            if (len(self.recheck), len(self.slot_recheck), self.next_slot) == before and not self.pending_ranges:
                await asyncio.sleep(1.0)
        self.meta["non_terminal_at_end"] = [e[1] for e in self.recheck][:20]
        self.meta["non_terminal_count"] = len(self.recheck)
        self.meta["slots_unresolved_at_end"] = len(self.slot_recheck)
        await self.sampler_once_final()
        supervisor.cancel()
        procs = [p for p in self.procs.values() if p.alive()]
        for proc in procs:
            proc.should_run = False
        codes = await asyncio.to_thread(self.dep.stop_all, procs, 40)
        self.meta["exit_codes"] = {p.node_id: c for p, c in codes.items()}
        self.meta["kills"] = self.kills
        self.meta["ended"] = now()
        self.meta["wall_seconds"] = round(now() - t_start, 1)
        with contextlib.suppress(Exception):
            await bounded(self.app.engine.close(), 10.0)
        with contextlib.suppress(Exception):
            await self.store.close()

    async def sampler_once_final(self) -> None:
        with contextlib.suppress(Exception):
            self.meta[f"{self.store.key}_final"] = await self.store.final()

    def cleanup(self) -> None:
        if self.store.dep is not None:
            self.store.keep_logs(self.dir)
        self.dep.close()
        self.samples.close()
        self.events.close()

    # -- the checks ------------------------------------------------------------------------
    def check(self) -> tuple[dict[str, Any], list[Prop]]:
        samples = [json.loads(line) for line in (self.dir / "samples.jsonl").read_text().splitlines() if line]
        return judge(self.p, self.meta, self.t, samples, self.lags)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def stints(samples: list[dict[str, Any]], p: EnduranceProfile) -> list[dict[str, Any]]:
    """RSS per stint: each worker generation, each stretch a scheduler generation leads."""
    series: dict[tuple[str, int], list[tuple[float, int]]] = {}
    runs: dict[str, int] = {}
    last_leading: dict[str, bool] = {}
    for s in samples:
        if not s.get("loading"):
            continue
        for node, info in s["procs"].items():
            if info["rss_kb"] is None:
                continue
            if info["role"] == "scheduler":
                if s.get("leader") is None:
                    continue  # who leads was not known at that sample (no answer in 3 s): no break
                if not info["leader"]:
                    last_leading[node] = False
                    continue
                if not last_leading.get(node):
                    runs[node] = runs.get(node, 0) + 1
                last_leading[node] = True
                key = (f"leader {node}", runs[node])
            else:
                key = (f"worker {node}", 1)
            series.setdefault(key, []).append((s["t"], info["rss_kb"]))
    out = []
    for (name, run), pts in series.items():
        t_first, t_last = pts[0][0], pts[-1][0]
        length = t_last - t_first
        row: dict[str, Any] = {"stint": name + (f" #{run}" if run > 1 else ""), "seconds": round(length),
                               "first_mib": round(pts[0][1] / 1024, 1), "peak_mib": round(max(r for _, r in pts) / 1024, 1)}
        if length >= p.rss_warmup + 120:
            base = _median([r for t, r in pts if t_first + p.rss_warmup <= t < t_first + p.rss_warmup + 60])
            end = _median([r for t, r in pts if t >= t_last - 60])
            if base and end:
                row["baseline_mib"] = round(base / 1024, 1)
                row["end_mib"] = round(end / 1024, 1)
                row["growth"] = round(end / base - 1, 4)
        out.append(row)
    return out


def judge(p: EnduranceProfile, meta: dict[str, Any], t: Tally, samples: list[dict[str, Any]],
          lags: dict[int, list[float]]) -> tuple[dict[str, Any], list[Prop]]:
    props: list[Prop] = []
    store = STORES[meta.get("storage") or "redis"]
    load_s = (meta.get("load_ended") or 0) - (meta.get("load_started") or 0)
    fig: dict[str, Any] = {"profile": p.name, "storage": store.name, "seed": meta["seed"], "wall_seconds": meta.get("wall_seconds"),
                           "load_seconds": round(load_s, 1), "kills": meta.get("kills", [])}

    # throughput --------------------------------------------------------------------------
    rate = t.acked / load_s if load_s else 0.0
    fig.update(tasks_acked=t.acked, submit_rate=round(rate, 1), submit_calls=t.submit_calls,
               submit_errors=t.submit_errors)
    target = p.rate * load_s
    props.append(Prop("rate", t.acked >= 0.95 * target,
                      f"load: {t.acked} one-off tasks acked in {load_s:.0f} s ({rate:.0f}/s of {p.rate}/s; "
                      f"submit_many batches of <= {p.rate // 10} every 100 ms, {t.submit_errors} failed calls "
                      f"retried) + {p.jobs} jobs every 1 s ({t.slots_checked} slots)"))

    # no task lost ------------------------------------------------------------------------
    fig.update(tasks_verified=t.verified, tasks_lost=len(t.lost), tasks_unverified=len(t.unverified),
               tasks_non_terminal=meta.get("non_terminal_count"), tasks_by_state=dict(t.by_state),
               tasks_lost_ids=t.lost[:20], tasks_doubled=len(t.tasks_doubled),
               tasks_redelivered=t.redelivered, rechecks=t.rechecks,
               sweeper_behind_max_s=round(t.sweep_behind_max, 1))
    ok = (not t.lost and not t.unverified and not meta.get("non_terminal_count") and t.verified == t.acked
          and t.acked > 0)
    props.append(Prop("no_task_lost", ok,
                      f"tasks: {t.acked} acked, {t.verified} read back terminal ({', '.join(f'{k} {v}' for k, v in sorted(t.by_state.items()))}), "
                      f"lost {len(t.lost)}, unverified {len(t.unverified)}, non-terminal at the end "
                      f"{meta.get('non_terminal_count')}; {t.redelivered} crash re-deliveries; "
                      f"dispatched twice unexplained {len(t.tasks_doubled)} (sweeper at most {t.sweep_behind_max:.0f} s behind)"))

    # slots ---------------------------------------------------------------------------------
    first, last = meta.get("first_slot"), meta.get("last_slot_checked")
    expected = (last - first + 1) * p.jobs if first is not None and last is not None else None
    fig.update(slots_expected=expected, slots_checked=t.slots_checked, slot_states=dict(t.slot_states),
               slots_doubled=len(t.slots_doubled), slots_missing=len(t.slots_missing),
               slots_unresolved=meta.get("slots_unresolved_at_end"), slots_redelivered=t.slots_redelivered,
               slots_unfired_at_pause=t.slots_unfired_at_pause,
               slots_doubled_ids=t.slots_doubled[:20], slots_missing_ids=t.slots_missing[:20])
    ok = (not t.slots_doubled and not t.slots_missing and not meta.get("slots_unresolved_at_end")
          and expected is not None and t.slots_checked + t.slots_unfired_at_pause == expected
          and t.slots_unfired_at_pause <= p.unfired_grace * p.jobs)
    props.append(Prop("slots", ok,
                      f"slots: {t.slots_checked} of {expected} expected ({p.jobs} jobs x {None if expected is None else expected // p.jobs} s) "
                      f"read back terminal ({', '.join(f'{k} {v}' for k, v in sorted(t.slot_states.items()))}); "
                      f"doubled {len(t.slots_doubled)}, missing {len(t.slots_missing)}, not fired before the pause "
                      f"{t.slots_unfired_at_pause}, unresolved "
                      f"{meta.get('slots_unresolved_at_end')}; {t.slots_redelivered} crash re-deliveries"))

    # RSS -------------------------------------------------------------------------------------
    rows = stints(samples, p)
    judged = [r for r in rows if "growth" in r]
    fig["rss_stints"] = rows
    worst = max(judged, key=lambda r: r["growth"]) if judged else None
    kinds = {r["stint"].split()[0] for r in judged}
    ok = bool(judged) and kinds == {"leader", "worker"} and all(r["growth"] < RSS_LIMIT for r in judged)
    worst_text = "n/a" if worst is None else f"{worst['growth'] * 100:+.1f} % ({worst['stint']})"
    detail = "; ".join(f"{r['stint']} {r['baseline_mib']}->{r['end_mib']} MiB ({r['growth'] * 100:+.1f} %, {r['seconds']} s)"
                       for r in judged)
    props.append(Prop("rss_flat", ok,
                      f"RSS growth after the first {p.rss_warmup:.0f} s of each stint (>= {p.rss_warmup + 120:.0f} s long; "
                      f"limit {RSS_LIMIT * 100:.0f} %): worst {worst_text}; "
                      f"{detail or 'no stint long enough'}"))

    # the store's size, bounded by the retention (Redis used_memory, PostgreSQL on-disk size)
    key, size_field = store.key, store.size_field
    mem = [(s["rel"], s[key][size_field]) for s in samples
           if s.get("loading") and size_field in (s.get(key) or {})]
    a0 = 2 * p.retention
    early = [m for r, m in mem if a0 <= r < a0 + p.plateau_window]
    late = [m for r, m in mem if r >= load_s - p.plateau_window]
    peak = max((m for _, m in mem), default=0)
    first_mem = mem[0][1] if mem else 0
    bound = store.estimate(p, first_mem)
    growth = (statistics.mean(late) / statistics.mean(early) - 1) if early and late else None
    per_window: list[float] = []
    w = p.lag_window
    for k in range(int(math.ceil(load_s / w))):
        xs = [m for r, m in mem if k * w <= r < (k + 1) * w]
        if xs:
            per_window.append(round(max(xs) / 2**20, 1))
    size: dict[str, Any] = {"first_mib": round(first_mem / 2**20, 1), "peak_mib": round(peak / 2**20, 1),
                            "plateau_early_mib": round(statistics.mean(early) / 2**20, 1) if early else None,
                            "plateau_late_mib": round(statistics.mean(late) / 2**20, 1) if late else None,
                            "plateau_growth": None if growth is None else round(growth, 4)}
    if bound is not None:
        size["estimate_mib"] = round(bound / 2**20, 1)
    size["max_per_window_mib"] = per_window
    more, more_text = store.extra(samples, p, load_s)
    size.update(more)
    fig[store.prop] = size
    ok = growth is not None and growth < PLATEAU_LIMIT
    estimate_text = "" if bound is None else f" (estimate {bound / 2**20:.0f} MiB)"
    props.append(Prop(store.prop, ok,
                      f"{store.size_label} (retention {p.retention} s): start {first_mem / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB"
                      f"{estimate_text}, mean {size['plateau_early_mib']} MiB over "
                      f"[{a0:.0f}, {a0 + p.plateau_window:.0f}) s -> {size['plateau_late_mib']} MiB over the last "
                      f"{p.plateau_window:.0f} s ({'n/a' if growth is None else f'{growth * 100:+.1f} %'}; limit {PLATEAU_LIMIT * 100:.0f} %); "
                      f"max per {w:.0f} s: {per_window}{more_text}"))

    # kept up: the backlog (tasks not finished) stays within a few seconds of input -------
    backlog = [(s["rel"], sum(v for k, v in (s["counts"] or {}).items() if k in ("pending", "retrying", "dispatched", "running")))
               for s in samples if s.get("loading") and s.get("counts")]
    per_s = p.rate + p.jobs
    tail = [b for r, b in backlog if r >= load_s - p.plateau_window]
    worst_tail = max(tail, default=None)
    stored = [(s[key][size_field], sum((s["counts"] or {}).values())) for s in samples
              if s.get("loading") and s.get("counts") and size_field in (s.get(key) or {})]
    if stored:
        b0 = stored[0][0]
        bpt = [round((m - b0) / n) for m, n in stored[len(stored) // 4:] if n]
        size["bytes_per_stored_task"] = {"min": min(bpt, default=None), "max": max(bpt, default=None)}
    fig["backlog"] = {"max": max((b for _, b in backlog), default=None), "last_window_max": worst_tail,
                      "limit": 10 * per_s}
    ok = worst_tail is not None and worst_tail <= 10 * per_s
    props.append(Prop("sustained", ok,
                      f"kept up: tasks not yet finished (pending + dispatched + running) at most {worst_tail} over the last "
                      f"{p.plateau_window:.0f} s of load (limit 10 s of input = {10 * per_s}); max over the run "
                      f"{fig['backlog']['max']}; {store.per_task_label} {size.get('bytes_per_stored_task')}"))

    # fire lag --------------------------------------------------------------------------------
    windows = []
    for k in sorted(lags):
        xs = lags[k]
        windows.append({"window": k, "slots": len(xs), "p50_ms": round((percentile(xs, 50) or 0) * 1000, 1),
                        "p99_ms": round((percentile(xs, 99) or 0) * 1000, 1), "max_ms": round(max(xs) * 1000, 1)})
    fig["fire_lag"] = windows
    p99s = [wd["p99_ms"] / 1000 for wd in windows]
    half = len(p99s) // 2
    first_half, second_half = _median(p99s[:half] or p99s), _median(p99s[half:])
    ok = bool(p99s) and first_half is not None and second_half is not None \
        and second_half <= 1.5 * first_half + 0.05 and max(p99s) <= LAG_CEILING
    props.append(Prop("fire_lag", ok,
                      f"fire lag p99 per {w:.0f} s (started_at - slot): {[wd['p99_ms'] for wd in windows]} ms; median of the "
                      f"first half {None if first_half is None else round(first_half * 1000, 1)} ms, second half "
                      f"{None if second_half is None else round(second_half * 1000, 1)} ms (stable: <= 1.5x + 50 ms, each <= {LAG_CEILING:.0f} s)"))

    # CPU (an observation: what the engine costs here, for the rate it holds) -------------
    loaded = [s for s in samples if s.get("loading")]
    if len(loaded) >= 2:
        span = loaded[-1]["t"] - loaded[0]["t"]
        per: Counter[str] = Counter()
        first_seen: dict[str, float] = {}
        last_seen: dict[str, tuple[str, float]] = {}
        for s in loaded:
            for node, info in s["procs"].items():
                if info.get("cpu_s") is None:
                    continue
                first_seen.setdefault(node, info["cpu_s"])
                last_seen[node] = (info["role"], info["cpu_s"])
        for node, (role, c) in last_seen.items():
            per[role] += c - first_seen[node]
        rc = [s[key].get("cpu_s") for s in loaded if (s.get(key) or {}).get("cpu_s") is not None]
        per[key] = (rc[-1] - rc[0]) if len(rc) >= 2 else 0.0
        per["harness (submit + sweep)"] = loaded[-1].get("harness_cpu_s", 0) - loaded[0].get("harness_cpu_s", 0)
        done = (loaded[-1]["verified"] - loaded[0]["verified"]) + (loaded[-1]["slots_checked"] - loaded[0]["slots_checked"])
        loads = [s.get("loadavg") or 0 for s in loaded]
        fig["cpu"] = {k: {"cores": round(v / span, 3), "us_per_task": round(v / max(done, 1) * 1e6, 1)}
                      for k, v in per.items()}
        fig["machine_loadavg_1m"] = {"median": round(statistics.median(loads), 2), "max": round(max(loads), 2)}
        props.append(Prop("cpu", True,
                          f"CPU over {span:.0f} s (cores busy; us per task read back): "
                          + ", ".join(f"{k} {v['cores']:.2f} ({v['us_per_task']:.0f})" for k, v in fig["cpu"].items())
                          + f"; machine load average (1 min) median {fig['machine_loadavg_1m']['median']}, max "
                          f"{fig['machine_loadavg_1m']['max']} on {os.cpu_count()} CPUs", gate=False))

    kills = meta.get("kills", [])
    kinds_killed = Counter(k["kind"] for k in kills)
    takeovers = [k.get("takeover_s") for k in kills if k["kind"] == "leader"]
    ok = kinds_killed["leader"] >= 1 and kinds_killed["worker"] >= 1 and all(x is not None for x in takeovers)
    props.append(Prop("kills", ok,
                      f"kills: {kinds_killed['leader']} leader, {kinds_killed['worker']} worker (kill -9, restarted after "
                      f"{p.restart_delay:.0f} s); takeover {takeovers} s; exits on their own: {meta.get('exited_on_their_own', 0)}"))
    bad_exit = {k: v for k, v in (meta.get("exit_codes") or {}).items() if v != 0}
    props.append(Prop("clean_stop", not bad_exit, "SIGTERM at the end: every process exited 0" if not bad_exit
                      else f"SIGTERM at the end: not 0: {bad_exit}", gate=False))
    fig["properties"] = {pr.key: pr.ok for pr in props if pr.gate}
    fig["ok"] = all(pr.ok for pr in props if pr.gate)
    return fig, props


def run_endurance(profile: str, seed: int | None = None, *, duration: float | None = None, rate: int | None = None,
                  jobs: int | None = None, workdir: str | None = None, as_json: bool = False,
                  verbose: bool = True, storage: str = "redis") -> tuple[dict[str, Any], list[Prop]]:
    import dataclasses
    import tempfile

    why = STORES[storage].unavailable()
    if why is not None:
        raise SystemExit(why)
    prof = ENDURANCE_PROFILES[profile]
    if duration is not None:
        prof = dataclasses.replace(prof, duration=float(duration))
    if rate is not None:
        prof = dataclasses.replace(prof, rate=int(rate))
    if jobs is not None:
        prof = dataclasses.replace(prof, jobs=int(jobs))
    seed = int(seed if seed is not None else random.SystemRandom().randrange(1, 10**6))
    run_dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"distsched-{profile}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    e = Endurance(prof, seed, run_dir, verbose=verbose, storage=storage)
    try:
        asyncio.run(e.main())
    finally:
        e.cleanup()
    e.meta["last_slot_checked"] = e.last_slot
    e.meta["exited_on_their_own"] = sum(1 for line in (run_dir / "events.jsonl").read_text().splitlines()
                                        if '"exited on its own"' in line)
    fig, props = e.check()
    fig["dir"] = str(run_dir)
    fig["command"] = f"python tests/chaos/run.py --profile {profile} --seed {seed}" + (
        f" --storage {storage}" if storage != "redis" else "") + (
        f" --duration {duration:g}" if duration is not None else "") + (
        f" --rate {rate}" if rate is not None else "") + (f" --jobs {jobs}" if jobs is not None else "")
    fig["load_avg"] = os.getloadavg()
    (run_dir / "figures.json").write_text(json.dumps(fig, indent=2, default=str))
    (run_dir / "run.json").write_text(json.dumps(e.meta, indent=2, default=str))
    out = sys.stderr if as_json else sys.stdout
    print(f"chaos {profile} seed {seed}: {e.meta.get('wall_seconds')} s wall clock, {fig['load_seconds']} s of load, "
          f"load average at the end {', '.join(f'{x:.1f}' for x in fig['load_avg'])} on {os.cpu_count()} CPUs", file=out)
    for pr in props:
        print(f"  [{pr.label}] {pr.line}", file=out)
    print(f"  run directory: {run_dir}", file=out)
    if as_json:
        print(json.dumps(fig, default=str))
    return fig, props


__all__ = ["ENDURANCE_PROFILES", "STORES", "Endurance", "EnduranceProfile", "EnduranceStore", "PostgresStore",
           "RedisStore", "judge", "run_endurance"]
