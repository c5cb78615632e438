"""Shared pieces of the benchmarks: figures and their report, and ``--storage``. The deployment
(a throwaway store - a redis-server, or a database of its own on the PostgreSQL server - and
real distsched processes) and ``percentile`` come from ``distsched.testing.processes``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distsched.testing.processes import Deployment
from distsched.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


STORAGES = ("redis", "postgres")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--storage", choices=(*STORAGES, "both"), default="redis",
                   help="the store: a throwaway redis-server, a throwaway database on the PostgreSQL server at "
                        "$DISTSCHED_TEST_POSTGRES (default postgres@127.0.0.1:5432), or both in the same run "
                        "(default redis)")
    return p


def run_storages(args: argparse.Namespace, measure: Callable[[Any, str], tuple[dict[str, Any], str, bool]]) -> None:
    """Run ``measure(args, storage)`` on the storage(s) asked for and print the figures: one
    line (or JSON object) per storage; ``--storage both`` prints them side by side (JSON:
    ``{"redis": {...}, "postgres": {...}}``). Exits 1 when a run failed its checks."""
    storages = list(STORAGES) if args.storage == "both" else [args.storage]
    results = {storage: measure(args, storage) for storage in storages}
    failed = any(bad for _, _, bad in results.values())
    if len(storages) == 1:
        figures, line, _ = results[storages[0]]
        report(figures, line, args.json)
    elif args.json:
        print(json.dumps({storage: figures for storage, (figures, _, _) in results.items()}), flush=True)
    else:
        for storage, (_, line, _) in results.items():
            print(f"[{storage}] {line}", flush=True)
    if failed:
        sys.exit(1)


def report(figures: dict[str, Any], line: str, as_json: bool) -> None:
    print(json.dumps(figures) if as_json else line, flush=True)


def started_pid(pid: int | None) -> int:
    """A spawned process's pid, which it has once started."""
    if pid is None:
        raise ValueError("the process has not started: no pid")
    return pid


def proc_cpu_split(pid: int | None) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (Linux /proc): the system part is the kernel's
    work for it - its socket writes and reads, its waits, its wake-ups."""
    pid = started_pid(pid)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def proc_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    return sum(proc_cpu_split(pid))


def proc_switches(pid: int | None) -> int:
    """Voluntary context switches of a process so far (Linux /proc): how often it waited -
    for a reply, for work - and was woken."""
    pid = started_pid(pid)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise ValueError(f"no voluntary_ctxt_switches in /proc/{pid}/status")


def proc_peak_rss_mb(pid: int | None) -> float:
    pid = started_pid(pid)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_run(runs: list[dict[str, Any]], key: str = "tasks_per_s") -> dict[str, Any]:
    """The run whose ``key`` is the median (the upper middle one of an even count)."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def commandstats(client: Any) -> dict[str, tuple[int, int]]:
    """{command: (calls, the server's microseconds in it)} since the server started or its
    stats were reset (``INFO commandstats`` through ``client``, a redis-py client), INFO itself
    left out. A script's or a function's own figure includes the commands it runs, which are
    also counted apart."""
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in client.info("commandstats").items() if name != "cmdstat_info"}


#: A task's own Redis write (issue 13 measures tasks that each do one): where the benchmark's
#: processes reach Redis (redis-py's connection arguments as JSON, :func:`redis_kwargs`), the
#: counter every write increments, and the code a tasks module starts with - ``await
#: write_once()`` writes when that is given, else nothing.
TASK_WRITE_ENV = "BENCH_TASK_REDIS"
TASK_WRITES_KEY = "bench:task-writes"
TASK_WRITE_CODE = f'''
import json as _json, os as _os
_where = _os.environ.get("{TASK_WRITE_ENV}")
_conn = None

async def write_once():
    global _conn
    if _where:  # one Redis write of its own, on its own connection
        if _conn is None:
            import redis.asyncio
            _conn = redis.asyncio.Redis(**_json.loads(_where))
        await _conn.incr("{TASK_WRITES_KEY}")
'''


TRANSPORTS = ("tcp", "unix")


def redis_address(server: RedisServer, transport: str) -> str:
    """Where a benchmark's own Redis clients connect (``--transport``): the server's loopback
    port, or the path of its Unix socket."""
    return server.socket_path if transport == "unix" else str(server.port)


def redis_kwargs(address: str) -> dict[str, Any]:
    """redis-py's connection arguments for a :func:`redis_address` (as JSON, what the
    benchmarks' child processes are given)."""
    return {"unix_socket_path": address} if address.startswith("/") else {"port": int(address)}


def task_writes(port: int) -> int:
    """How many task writes (``write_once``) the Redis server on ``port`` counted."""
    import redis

    with redis.Redis(port=port) as client:
        return int(client.get(TASK_WRITES_KEY) or 0)


def deployment(namespace: str = "bench", storage: str = "redis") -> Deployment[Any]:
    """A throwaway redis-server (``noeviction``), or with ``storage="postgres"`` a database of
    its own on the PostgreSQL server (created, then dropped), for the distsched processes of a
    benchmark; ``with deployment() as dep:`` starts it, ``dep.spawn(name, *args)`` starts a
    process. ``dep.store`` is the RedisServer or the PostgresDatabase."""
    if storage == "postgres":
        from distsched.testing.postgres_server import PostgresDatabase, server_answers

        reason = server_answers()
        if reason is not None:
            raise SystemExit(reason)
        return Deployment(PostgresDatabase(), prefix="distsched-bench-", url_options={"namespace": namespace})
    return Deployment(RedisServer(config={"maxmemory-policy": "noeviction"}), prefix="distsched-bench-",
                      url_options={"namespace": namespace})


def rounded(value: float | None, digits: int) -> float | None:
    """``round(value, digits)``, None for None (a percentile of no values)."""
    return None if value is None else round(value, digits)

