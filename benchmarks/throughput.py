"""Throughput: N no-op local tasks submitted in bulk, 1 scheduler + 2 worker processes.

    python benchmarks/throughput.py [-n 20000] [--runs 1] [--metrics] [--storage redis|postgres|both] [--json]

Starts its own redis-server (or, with --storage postgres, a throwaway PostgreSQL database).
On Redis it also measures, in the same run, a raw-Redis baseline: one
producer LPUSHing JSON messages, two consumer processes BLMPOP-ing batches of 100. Then
it starts `distsched scheduler` and two `distsched worker` processes, submits N one-off
tasks through the public API (`submit_many`), and measures the seconds from the first
submit until every result is recorded. Lost = tasks not succeeded; duplicated = extra
executions (each worker records what it ran and writes it out at exit). ``--metrics``: the
scheduler and the workers also serve Prometheus metrics (the cost of metrics shows in the
CPU per task).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter

from _common import deployment, parser, proc_cpu_seconds, proc_peak_rss_mb, run_storages

from distsched.testing.processes import Deployment
from distsched.testing.redis_server import RedisServer

TASKS = '''
import atexit, json, os
from distsched import task

_ran = []

@task
async def noop(i):
    _ran.append(i)

def _dump():
    with open(os.path.join(os.environ["BENCH_DIR"], f"ran-{os.getpid()}.json"), "w") as f:
        json.dump(_ran, f)

atexit.register(_dump)
'''

CONSUMER = '''
import json, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
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


def raw_baseline(dep: Deployment[RedisServer], n: int) -> float:
    import redis

    consumers = [subprocess.Popen([sys.executable, "-c", CONSUMER, str(dep.store.port)], stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for c in consumers:
        assert c.stdout.readline().strip() == "ready"
    client = redis.Redis(port=dep.store.port)
    start = time.perf_counter()
    for i in range(n):  # one LPUSH per message, as a plain producer would
        client.lpush("raw:q", json.dumps({"id": i, "target": "noop", "args": [i]}))
    client.rpush("raw:q", json.dumps({"stop": True}), json.dumps({"stop": True}))
    got = sum(int(c.stdout.readline()) for c in consumers)
    elapsed = time.perf_counter() - start
    for c in consumers:
        c.wait()
    assert got == n, f"raw baseline lost messages: {got} of {n}"
    return n / elapsed


async def submit_and_wait(url: str, n: int, timeout: float) -> tuple[float, dict[str, int]]:
    from distsched import DistributeSchedule
    from distsched.model import TaskSpec

    app = DistributeSchedule(url)
    storage = await app.storage()
    try:
        specs = [TaskSpec(target="noop", args=(i,)) for i in range(n)]
        start = time.perf_counter()
        for first in range(0, n, 2000):
            await app.submit_many(specs[first:first + 2000])
        deadline = start + timeout
        counts: dict[str, int] = {}
        while time.perf_counter() < deadline:
            counts = await storage.tasks.counts()
            if counts.get("succeeded", 0) + counts.get("failed", 0) >= n:
                break
            await asyncio.sleep(0.02)
        return time.perf_counter() - start, counts
    finally:
        await app.engine.close()


def _metrics(on: bool) -> list[str]:
    if not on:
        return []
    from distsched.testing.redis_server import free_port

    return ["--metrics", f"127.0.0.1:{free_port()}"]


def one_run(n: int, metrics: bool = False, storage: str = "redis") -> dict:
    with deployment(storage=storage) as dep:
        raw = raw_baseline(dep, n) if storage == "redis" else None
        dep.write("bench_tasks.py", TASKS)
        env = {"BENCH_DIR": str(dep.dir)}
        dep.spawn("scheduler", "scheduler", "--storage", dep.url, *_metrics(metrics), env=env)
        workers = [dep.spawn(f"worker{i}", "worker", "--storage", dep.url, "--import", "bench_tasks",
                             "--concurrency", "64", "--capacity", "1024", *_metrics(metrics), env=env)
                   for i in (1, 2)]

        async def registered(app, storage) -> bool:
            return len(await storage.workers.list_workers()) == 2

        dep.wait_for(lambda: dep.call(registered), 30, "two workers to register", interval=0.1)
        pids = {"scheduler": dep.procs["scheduler"].pid, "worker1": workers[0].pid, "worker2": workers[1].pid}
        if storage == "redis":  # PostgreSQL's server processes are not counted
            pids["redis"] = dep.store.pid
        cpu0 = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        own0 = time.process_time()
        elapsed, counts = asyncio.run(submit_and_wait(dep.url, n, timeout=120))
        cpu = {name: round(proc_cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()}
        cpu["submitter"] = round(time.process_time() - own0, 2)
        rss = [proc_peak_rss_mb(w.pid) for w in workers]
        for name in ("worker1", "worker2", "scheduler"):
            dep.stop(name)
        ran: Counter[int] = Counter()
        for path in dep.dir.glob("ran-*.json"):
            ran.update(json.loads(path.read_text()))
    succeeded = counts.get("succeeded", 0)
    return {
        "n": n, "seconds": round(elapsed, 3), "tasks_per_s": round(n / elapsed, 1),
        "storage": storage, "raw_redis_per_s": round(raw, 1) if raw else None,
        "ratio_to_raw": round(n / elapsed / raw, 3) if raw else None,
        "lost": n - succeeded, "duplicated": sum(c - 1 for c in ran.values() if c > 1),
        "executed": len(ran), "worker_peak_rss_mb": [round(r, 1) for r in rss],
        "cpu_seconds": cpu, "cpu_us_per_task": {k: round(v / n * 1e6) for k, v in cpu.items()},
    }


def measure(args, storage: str) -> tuple[dict, str, bool]:
    runs = [one_run(args.n, args.metrics, storage) for _ in range(args.runs)]
    figures = sorted(runs, key=lambda r: r["tasks_per_s"])[len(runs) // 2]
    figures["runs"] = [r["tasks_per_s"] for r in runs]
    ratios = [r["ratio_to_raw"] for r in runs if r["ratio_to_raw"] is not None]
    figures["median_ratio"] = statistics.median(ratios) if ratios else None
    baseline = (f" (raw Redis baseline {figures['raw_redis_per_s']}/s, ratio {figures['ratio_to_raw']})"
                if figures["raw_redis_per_s"] else "")
    line = (f"throughput: {figures['n']} tasks in {figures['seconds']}s = {figures['tasks_per_s']} tasks/s"
            f"{baseline}; lost {figures['lost']}, duplicated {figures['duplicated']}; "
            f"worker peak RSS {'/'.join(str(r) for r in figures['worker_peak_rss_mb'])} MB; "
            f"CPU us/task {' '.join(f'{k} {v}' for k, v in figures['cpu_us_per_task'].items())}")
    return figures, line, any(r["lost"] or r["duplicated"] for r in runs)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="tasks (default 20000)")
    p.add_argument("--runs", type=int, default=1, help="runs; the median run is reported (default 1)")
    p.add_argument("--metrics", action="store_true", help="scheduler and workers serve /metrics (--metrics)")
    run_storages(p.parse_args(), measure)


if __name__ == "__main__":
    main()
