"""Throughput: N local tasks (each one Redis write of its own), 1 scheduler + 2 worker processes, submitted one at a time or in bulk.

    python benchmarks/throughput.py [-n 20000] [--mode single|bulk|both|lone] [--runs 1] [--metrics] [--pace R]
        [--concurrency C] [--task-write on|off] [--transport tcp|unix]
        [--storage redis|postgres|both] [--json]

Starts its own redis-server (or, with --storage postgres, a throwaway PostgreSQL database:
then without the raw-Redis ceilings and the Redis command counts). Per mode and run, in the
same store:

- two raw-Redis ceilings: a **pipelined** producer (LPUSH in batches of 100) and a
  **sequential** one (one LPUSH round trip per message), each with two consumer processes
  BLMPOP-ing batches of 100;
- **enqueue only**: N submits into a namespace nobody consumes (``single``: sequential
  ``await app.submit("noop", i)``, the way a web handler submits; ``bulk``: ``submit_many``
  in chunks of 2,000): submits/s, Redis commands per submit, the submitter's CPU;
- **end to end**: `distsched scheduler` and two `distsched worker` processes; the same N
  submits, timed from the first submit until every result is recorded. Each task does one
  Redis write of its own (an ``INCR`` on its own connection, as issue 13 measures and the
  peers' tasks do; not counted in the engine's commands per task; ``--task-write off``: it
  only records that it ran). ``--pace R``: single mode submits at most R a second; ``--mode
  lone``: each task is submitted once the one before succeeded, so every pass handles one
  task - its Redis commands and CPU per task are the cost of one task alone, whatever the
  machine's load.

Printed per mode: both rates, Redis commands per task (``INFO commandstats``, every command
any client or script ran in the window, less the benchmark's own polls), CPU microseconds per
task per process (and the kernel's part of it), voluntary context switches per task per
process, lost (tasks not succeeded) and duplicated (extra executions: each worker
records what it ran and writes it out at exit), and the ratio of the end-to-end rate to
both raw ceilings. ``--metrics``: the scheduler and the workers also serve Prometheus
metrics (the cost of metrics shows in the CPU per task). ``--transport unix``: every process
of the run reaches redis-server through its Unix socket (``redis+unix://``) instead of loopback
TCP. ``--json`` adds the commands and
the server's microseconds per task of each command (``INFO commandstats``).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from _common import (
    TASK_WRITE_CODE,
    TASK_WRITE_ENV,
    TRANSPORTS,
    commandstats,
    deployment,
    median_run,
    parser,
    proc_cpu_split,
    proc_peak_rss_mb,
    proc_switches,
    redis_address,
    redis_kwargs,
    run_storages,
    task_writes,
)

from distsched.testing.processes import Deployment
from distsched.testing.redis_server import RedisServer

TASKS = TASK_WRITE_CODE + '''
import atexit, json, os
from distsched import task

_ran = []

@task
async def noop(i):
    await write_once()  # as issue 13's task and the peers' tasks do (with TASK_WRITE_ENV set)
    _ran.append(i)

def _dump():
    with open(os.path.join(os.environ["BENCH_DIR"], f"ran-{os.getpid()}.json"), "w") as f:
        json.dump(_ran, f)

atexit.register(_dump)
'''

CONSUMER = '''
import json, sys, redis
r = redis.Redis(**json.loads(sys.argv[1]))  # redis_kwargs()
got = 0
print("ready", flush=True)
while True:
    item = r.blmpop(5, 1, "raw:q", direction="LEFT", count=100)
    if item is None:
        break
    batch = item[1]
    for k, raw in enumerate(batch):
        msg = json.loads(raw)
        if msg.get("stop"):
            rest = [b for b in batch[k + 1:]]
            if rest:
                r.lpush("raw:q", *reversed(rest))  # e.g. the other consumer's stop
            print(got, flush=True)
            sys.exit(0)
        got += 1
print(got, flush=True)
'''

BULK_CHUNK = 2000
#: --pace: single mode's end-to-end part submits at most this many tasks per second (0: no limit)
PACE = 0.0
#: each task does one Redis write of its own (--task-write on), as issue 13 measures
TASK_WRITE = True
#: Each worker's concurrency (--concurrency).
CONCURRENCY = 64
RAW_BATCH = 100
#: how every process of a run reaches Redis (--transport): loopback TCP or its Unix socket
TRANSPORT = "tcp"


def raw_baseline(dep: Deployment[RedisServer], n: int, *, pipelined: bool) -> float:
    """Messages/s through a plain Redis list: one producer (pipelined: LPUSH batches of 100
    in one round trip each; else one LPUSH round trip per message), two BLMPOP-100 consumers."""
    import redis

    where = redis_kwargs(redis_address(dep.store, TRANSPORT))
    consumers = [subprocess.Popen([sys.executable, "-c", CONSUMER, json.dumps(where)], stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for c in consumers:
        assert c.stdout is not None and c.stdout.readline().strip() == "ready"
    client = redis.Redis(**where)
    start = time.perf_counter()
    if pipelined:
        for first in range(0, n, RAW_BATCH):
            client.lpush("raw:q", *[json.dumps({"id": i, "target": "noop", "args": [i]})
                                   for i in range(first, min(n, first + RAW_BATCH))])
    else:
        for i in range(n):
            client.lpush("raw:q", json.dumps({"id": i, "target": "noop", "args": [i]}))
    client.rpush("raw:q", json.dumps({"stop": True}), json.dumps({"stop": True}))
    got = sum(int(c.stdout.readline()) for c in consumers if c.stdout is not None)
    elapsed = time.perf_counter() - start
    for c in consumers:
        c.wait()
    client.close()
    assert got == n, f"raw baseline lost messages: {got} of {n}"
    return n / elapsed


def client_transports(server: RedisServer) -> dict[str, int]:
    """The connections named ``distsched`` that ``server`` has (``CLIENT LIST``), by whether
    they came through its Unix socket or over TCP."""
    import redis

    assert server.port is not None, "the server is not started"
    with redis.Redis(port=server.port) as client:
        names = [c for c in client.client_list() if c.get("name") == "distsched"]
    unix = sum(1 for c in names if "U" in c.get("flags", ""))  # (U: connected through the Unix socket)
    return {"unix": unix, "tcp": len(names) - unix}


def pg_transports(database: Any) -> dict[str, int]:
    """The other connections to the throwaway ``database`` (``pg_stat_activity``), by whether
    they came through the server's Unix socket (no client address) or over TCP."""
    import asyncpg

    async def count() -> dict[str, int]:
        conn = await asyncpg.connect(database.url)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE client_addr IS NULL) AS unix, "
                "count(*) FILTER (WHERE client_addr IS NOT NULL) AS tcp FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return {"unix": int(row["unix"]), "tcp": int(row["tcp"])}
        finally:
            await conn.close()

    return asyncio.run(count())


def command_calls(port: int, field: str = "calls") -> Counter[str]:
    """Calls per command since the server started (:func:`commandstats`); ``field="usec"``:
    the server's microseconds in each command instead."""
    import redis

    client = redis.Redis(port=port)
    try:
        stats = commandstats(client)
    finally:
        client.close()
    index = {"calls": 0, "usec": 1}[field]
    return Counter({cmd: pair[index] for cmd, pair in stats.items()})


async def submit(app: Any, mode: str, n: int, pace: float = 0.0) -> None:
    if mode == "single" and pace > 0:  # a trickle: at most `pace` submits per second
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / pace - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await app.submit("noop", i)
    elif mode in ("single", "lone"):
        for i in range(n):
            await app.submit("noop", i)
    else:
        from distsched.model import TaskSpec

        specs = [TaskSpec(target="noop", args=(i,)) for i in range(n)]
        for first in range(0, n, BULK_CHUNK):
            await app.submit_many(specs[first:first + BULK_CHUNK])


async def enqueue_only(url: str, mode: str, n: int) -> tuple[float, float]:
    """(submits/s, submitter CPU seconds) into a namespace nobody consumes."""
    from distsched import DistributeSchedule

    app = DistributeSchedule(url)
    await app.storage()
    try:
        await app.submit("noop", -1)  # warm: the connection, the first-call imports
        cpu0, start = time.process_time(), time.perf_counter()
        await submit(app, mode, n)
        return n / (time.perf_counter() - start), time.process_time() - cpu0
    finally:
        await app.engine.close()


async def submit_and_wait(url: str, mode: str, n: int, timeout: float) -> tuple[float, float, int, float]:
    """(seconds from the first submit to the last result, seconds from the first submit to the
    last submit's return, polls made, submitter CPU seconds)."""
    from distsched import DistributeSchedule

    app = DistributeSchedule(url)
    storage = await app.storage()
    client = getattr(storage, "client", None)  # Redis: one ZCARD per poll, not counts()
    done_key = getattr(storage, "prefix", "") + "x:succeeded"  # one entry per succeeded task
    polls = 0

    async def succeeded() -> int:
        nonlocal polls
        polls += 1  # one ZCARD: subtracted from the commands counted
        if client is not None and hasattr(client, "zcard"):
            return int(await client.zcard(done_key))
        return (await storage.tasks.counts()).get("succeeded", 0)

    try:
        cpu0, start = time.process_time(), time.perf_counter()
        if mode == "lone":  # each task alone: submitted once the one before succeeded
            for i in range(n):
                await app.submit("noop", i)
                while await succeeded() <= i and time.perf_counter() < start + timeout:
                    await asyncio.sleep(0.001)
        else:
            await submit(app, mode, n, PACE)
        cpu, submitted = time.process_time() - cpu0, time.perf_counter() - start
        deadline = start + timeout
        while time.perf_counter() < deadline:
            if await succeeded() >= n:
                break
            await asyncio.sleep(0.01)
        return time.perf_counter() - start, submitted, polls, cpu
    finally:
        await app.engine.close()


async def final_counts(url: str) -> dict[str, int]:
    from distsched import DistributeSchedule

    app = DistributeSchedule(url)
    try:
        return await (await app.storage()).tasks.counts()
    finally:
        await app.engine.close()


def _metrics(on: bool) -> list[str]:
    if not on:
        return []
    from distsched.testing.redis_server import free_port

    return ["--metrics", f"127.0.0.1:{free_port()}"]


def _with_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


def one_run(n: int, mode: str, metrics: bool = False, storage: str = "redis", lean: bool = True) -> dict:
    redis = storage == "redis"
    with deployment(storage=storage) as dep:
        via: dict[str, Any] = {"unix": True} if redis and TRANSPORT == "unix" else {}  # RedisServer.url_for's

        def store_url(namespace: str) -> str:
            if not redis and TRANSPORT == "unix":  # PostgresDatabase.url_for's
                return dep.store.url_for(unix=True, namespace=namespace)
            url = dep.store.url_for(**via, namespace=namespace)
            # --lean off: every process's Redis calls go through redis-py's client (storage option lean=false)
            return url if lean or not redis else _with_option(url, "lean=false")

        url = store_url(dep.url_options["namespace"])
        raw_pipelined = raw_baseline(dep, n, pipelined=True) if redis else None
        raw_sequential = raw_baseline(dep, n, pipelined=False) if redis else None
        port = dep.store.port if redis else None

        def calls(field: str = "calls") -> Counter[str]:
            return command_calls(port, field) if port is not None else Counter()

        before = calls()
        enq_rate, enq_cpu = asyncio.run(enqueue_only(store_url("enqueue"), mode, n))
        enq_cmds = calls() - before
        dep.write("bench_tasks.py", TASKS)
        env = {"BENCH_DIR": str(dep.dir)}
        if TASK_WRITE and port is not None:
            env[TASK_WRITE_ENV] = json.dumps(redis_kwargs(redis_address(dep.store, TRANSPORT)))
        dep.spawn("scheduler", "scheduler", "--storage", url, *_metrics(metrics), env=env)
        workers = [dep.spawn(f"worker{i}", "worker", "--storage", url, "--import", "bench_tasks",
                             "--concurrency", str(CONCURRENCY), "--capacity", "1024", *_metrics(metrics), env=env)
                   for i in (1, 2)]

        async def registered(app, storage) -> bool:
            return len(await storage.workers.list_workers()) == 2

        dep.wait_for(lambda: dep.call(registered), 30, "two workers to register", interval=0.1)
        transports = client_transports(dep.store) if redis else pg_transports(dep.store)
        pids = {"scheduler": dep.procs["scheduler"].pid, "worker1": workers[0].pid, "worker2": workers[1].pid}
        if redis:  # PostgreSQL's server processes are not counted
            pids["redis"] = dep.store.pid
        pids["submitter"] = os.getpid()
        cpu0 = {name: proc_cpu_split(pid) for name, pid in pids.items()}
        switches0 = {name: proc_switches(pid) for name, pid in pids.items()}
        before, usec0 = calls(), calls("usec")
        elapsed, submitted, polls, submit_cpu = asyncio.run(submit_and_wait(url, mode, n, timeout=120))
        cmds, usec = calls() - before, calls("usec") - usec0
        writes = task_writes(port) if TASK_WRITE and port is not None else None
        if redis:
            cmds["zcard"] -= polls
            if writes is not None:  # the tasks' own writes are not the engine's commands (redis-py's incr is INCRBY)
                cmds["incrby"] -= writes
                usec["incrby"] = 0
        cpu1 = {name: proc_cpu_split(pid) for name, pid in pids.items()}
        switches = {name: proc_switches(pid) - switches0[name] for name, pid in pids.items()}
        cpu = {name: round(sum(cpu1[name]) - sum(cpu0[name]), 2) for name in pids}
        kernel = {name: cpu1[name][1] - cpu0[name][1] for name in pids}
        counts = asyncio.run(final_counts(url))
        rss = [proc_peak_rss_mb(w.pid) for w in workers]
        for name in ("worker1", "worker2", "scheduler"):
            dep.stop(name)
        ran: Counter[int] = Counter()
        for path in dep.dir.glob("ran-*.json"):
            ran.update(json.loads(path.read_text()))
    succeeded = counts.get("succeeded", 0)
    rate = n / elapsed
    total_cmds = sum(cmds.values())
    return {
        "storage": storage, "lean": lean if redis else None, "transport": TRANSPORT,
        "mode": mode, "n": n,
        "seconds": round(elapsed, 3), "tasks_per_s": round(rate, 1),
        # the submitter's part of those seconds: once it is most of them, the end-to-end rate is
        # the rate of a sequential producer on the loaded machine, and the rest keeps up
        "submit_seconds": round(submitted, 3), "drain_ms": round((elapsed - submitted) * 1000, 1),
        "enqueue_per_s": round(enq_rate, 1), "enqueue_cpu_us_per_submit": round(enq_cpu / n * 1e6, 1),
        "enqueue_commands_per_submit": round(sum(enq_cmds.values()) / n, 2) if redis else None,
        "raw_pipelined_per_s": round(raw_pipelined, 1) if raw_pipelined else None,
        "raw_sequential_per_s": round(raw_sequential, 1) if raw_sequential else None,
        "ratio_to_pipelined": round(rate / raw_pipelined, 3) if raw_pipelined else None,
        "ratio_to_sequential": round(rate / raw_sequential, 3) if raw_sequential else None,
        "commands_per_task": round(total_cmds / n, 2) if redis else None,
        "commands_per_task_by_command": {k: round(v / n, 2) for k, v in cmds.most_common() if v / n >= 0.05},
        "redis_us_per_task_by_command": {k: round(v / n, 1) for k, v in usec.most_common() if v / n >= 0.5},
        "lost": n - succeeded, "duplicated": sum(c - 1 for c in ran.values() if c > 1),
        "executed": len(ran), "task_writes": writes,
        # the scheduler's and workers' connections (client name distsched), by how they reach Redis
        "distsched_connections": transports, "worker_peak_rss_mb": [round(r, 1) for r in rss],
        "cpu_seconds": cpu, "cpu_us_per_task": {k: round(v / n * 1e6) for k, v in cpu.items()},
        # of which the kernel's (system time): socket writes and reads, waits, wake-ups
        "kernel_us_per_task": {k: round(v / n * 1e6) for k, v in kernel.items()},
        # voluntary context switches per task: how often each process waited and was woken
        "switches_per_task": {k: round(v / n, 2) for k, v in switches.items()},
        "submit_cpu_us_per_task": round(submit_cpu / n * 1e6, 1),
    }


def summary(f: dict) -> str:
    redis = (f" ({f['enqueue_commands_per_submit']} Redis commands, {f['enqueue_cpu_us_per_submit']} us CPU per submit); "
             f"raw Redis pipelined {f['raw_pipelined_per_s']}/s (ratio {f['ratio_to_pipelined']}), "
             f"sequential {f['raw_sequential_per_s']}/s (ratio {f['ratio_to_sequential']}); "
             f"Redis commands/task {f['commands_per_task']}" if f["storage"] == "redis"
             else f" ({f['enqueue_cpu_us_per_submit']} us CPU per submit)")
    return (f"throughput {f['mode']}: {f['n']} tasks in {f['seconds']}s = {f['tasks_per_s']} tasks/s end to end "
            f"(runs {f['runs']}; submitting took {f['submit_seconds']}s, the last result {f['drain_ms']} ms "
            f"after); enqueue only {f['enqueue_per_s']} submits/s{redis}; "
            f"lost {f['lost']}, duplicated {f['duplicated']}; "
            f"worker peak RSS {'/'.join(str(r) for r in f['worker_peak_rss_mb'])} MB; "
            f"CPU us/task {' '.join(f'{k} {v}' for k, v in f['cpu_us_per_task'].items())} "
            f"(kernel {' '.join(str(v) for v in f['kernel_us_per_task'].values())}); "
            f"context switches/task {' '.join(str(v) for v in f['switches_per_task'].values())}")


def measure(args: Any, storage: str) -> tuple[dict, str, bool]:
    modes = ("single", "bulk") if args.mode == "both" else (args.mode,)
    results: dict[str, dict] = {}
    failed = False
    for mode in modes:
        runs = [one_run(args.n, mode, args.metrics, storage, args.lean == "on") for _ in range(args.runs)]
        figures = median_run(runs)
        figures["runs"] = [r["tasks_per_s"] for r in runs]
        ratios = [r["ratio_to_pipelined"] for r in runs if r["ratio_to_pipelined"] is not None]
        figures["median_ratio_to_pipelined"] = statistics.median(ratios) if ratios else None
        results[mode] = figures
        failed = failed or any(r["lost"] or r["duplicated"] for r in runs)
    out: dict[str, Any] = dict(results[modes[0]]) if len(modes) == 1 else {"storage": storage, "modes": results}
    line = "\n".join(summary(f) for f in results.values())
    if len(modes) == 2 and storage == "redis":
        out["single_to_bulk_commands"] = round(results["single"]["commands_per_task"]
                                               / results["bulk"]["commands_per_task"], 2)
        line += f"\nRedis commands per task, single / bulk: {out['single_to_bulk_commands']}"
    # the correctness figures at the top level, for either shape
    out["lost"] = sum(r["lost"] for r in results.values())
    out["duplicated"] = sum(r["duplicated"] for r in results.values())
    out["executed"] = min(r["executed"] for r in results.values())
    return out, line, failed


def add_transport(p: Any) -> None:
    p.add_argument("--transport", choices=TRANSPORTS, default="tcp",
                   help="Redis: how every process (distsched's, the raw ceilings', the tasks' own writes; "
                        "peers.py: the peers' too) reaches redis-server: loopback TCP, or its Unix socket "
                        "(redis+unix://); PostgreSQL (throughput.py --storage postgres): every distsched process "
                        "reaches the server through its Unix socket (default tcp)")


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="tasks (default 20000)")
    p.add_argument("--mode", choices=("single", "bulk", "both", "lone"), default="both",
                   help="single: sequential app.submit; bulk: submit_many (default both); lone: each task "
                        "submitted once the one before succeeded (the path of one task alone, whatever the "
                        "machine's load; use a small -n)")
    p.add_argument("--lean", choices=("on", "off"), default="on",
                   help="Redis: the lean connection of the hot calls (default on); off = storage option lean=false")
    p.add_argument("--runs", type=int, default=1, help="runs per mode; the median run is reported (default 1)")
    p.add_argument("--metrics", action="store_true", help="scheduler and workers serve /metrics (--metrics)")
    p.add_argument("--pace", type=float, default=0.0,
                   help="single mode end to end: submit at most this many tasks per second, a trickle in "
                        "which every task is alone in its passes (commands and CPU per task then measure the "
                        "path of one task, whatever the machine's load); default 0: as fast as possible")
    p.add_argument("--task-write", choices=("on", "off"), default="on",
                   help="Redis: each task does one Redis write of its own (an INCR on its own connection, as "
                        "issue 13's measurement and the peers' tasks do; not counted in the engine's commands per "
                        "task); off: a task only records that it ran, as in the figures docs/performance.md recorded before "
                        "round 2's eighth session (default on)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="each worker's concurrency (default 64); a small one keeps the workers' slots full "
                        "with a backlog queued, as with slow tasks")
    add_transport(p)
    args = p.parse_args()
    global PACE, CONCURRENCY, TASK_WRITE, TRANSPORT
    TRANSPORT = args.transport
    PACE = max(0.0, args.pace)
    TASK_WRITE = args.task_write == "on"
    CONCURRENCY = max(1, args.concurrency)
    run_storages(args, measure)


if __name__ == "__main__":
    main()
