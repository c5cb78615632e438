"""Redis Cluster vs one redis-server: the same end-to-end run on both.

    python benchmarks/cluster.py [-n 20000] [--mode single|bulk] [--runs 1] [--json]

For each store - one ``redis-server`` (``redis://``) and a Redis Cluster of 3 masters + 3
replicas (``redis+cluster://``, :class:`distsched.testing.redis_cluster.RedisClusterServer`) -
a `distsched scheduler` and two `distsched worker` processes run N no-op tasks submitted in
bulk (``submit_many``) or one at a time; figures: tasks/s from the first submit to the last
recorded result, Redis commands per task on the server holding the namespace (``INFO
commandstats`` of the single server, or of the slot's master), CPU microseconds per task of
each process (scheduler, workers, the submitting client, the serving redis-server), lost and
duplicated. What it shows is the cost of redis-py's cluster client (routing each command by
its key's slot) against the plain client: the server does the same work in both.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

from _common import median_run, proc_cpu_seconds, report
from throughput import TASKS, command_calls, submit

from distsched.testing.processes import Deployment
from distsched.testing.redis_cluster import RedisClusterServer
from distsched.testing.redis_server import RedisServer

NAMESPACE = "bench"


async def submit_and_wait(url: str, mode: str, n: int, timeout: float) -> tuple[float, float]:
    """(seconds from the first submit to the last result, submitter CPU seconds)."""
    from distsched import DistributeSchedule

    app = DistributeSchedule(url)
    storage = await app.storage()
    try:
        await app.submit("noop", -1)  # warm: connections (the cluster's topology), imports
        cpu0, start = time.process_time(), time.perf_counter()
        await submit(app, mode, n)
        cpu = time.process_time() - cpu0
        while time.perf_counter() < start + timeout:
            if (await storage.tasks.counts()).get("succeeded", 0) >= n + 1:
                break
            await asyncio.sleep(0.02)
        return time.perf_counter() - start, cpu
    finally:
        await app.engine.close()


def one_run(kind: str, n: int, mode: str) -> dict[str, Any]:
    store: Any = RedisServer(config={"maxmemory-policy": "noeviction"}) if kind == "single" \
        else RedisClusterServer(config={"maxmemory-policy": "noeviction"})
    with Deployment(store, prefix="distsched-bench-", url_options={"namespace": NAMESPACE}) as dep:
        serving: RedisServer = store if kind == "single" else store.master_for_key("{" + NAMESPACE + "}:lease")
        dep.write("bench_tasks.py", TASKS)
        env = {"BENCH_DIR": str(dep.dir)}
        dep.spawn("scheduler", "scheduler", "--storage", dep.url, env=env)
        workers = [dep.spawn(f"worker{i}", "worker", "--storage", dep.url, "--import", "bench_tasks",
                             "--concurrency", "64", "--capacity", "1024", env=env) for i in (1, 2)]

        async def registered(app: Any, storage: Any) -> bool:
            return len(await storage.workers.list_workers()) == 2

        dep.wait_for(lambda: dep.call(registered), 60, "two workers to register", interval=0.1)
        assert serving.pid is not None and serving.port is not None
        pids = {"scheduler": dep.procs["scheduler"].pid, "worker1": workers[0].pid, "worker2": workers[1].pid,
                "redis": serving.pid}
        cpu0 = {name: proc_cpu_seconds(pid) for name, pid in pids.items() if pid is not None}
        before = command_calls(serving.port)
        elapsed, submit_cpu = asyncio.run(submit_and_wait(dep.url, mode, n, timeout=300))
        cmds = command_calls(serving.port) - before
        cpu = {name: proc_cpu_seconds(pid) - cpu0[name] for name, pid in pids.items() if pid is not None}
        cpu["submitter"] = submit_cpu

        async def succeeded(app: Any, storage: Any) -> int:
            return int((await storage.tasks.counts()).get("succeeded", 0))

        done = dep.call(succeeded) - 1  # less the warm-up task
        for name in ("worker1", "worker2", "scheduler"):
            dep.stop(name)
        ran: Counter[int] = Counter()
        for path in dep.dir.glob("ran-*.json"):
            ran.update(json.loads(path.read_text()))
    ran.pop(-1, None)
    return {
        "store": kind, "mode": mode, "n": n, "seconds": round(elapsed, 3), "tasks_per_s": round(n / elapsed, 1),
        "commands_per_task": round(sum(cmds.values()) / n, 2),
        "commands_per_task_by_command": {k: round(v / n, 2) for k, v in cmds.most_common() if v / n >= 0.05},
        "cpu_us_per_task": {k: round(v / n * 1e6) for k, v in cpu.items()},
        "lost": n - done, "duplicated": sum(c - 1 for c in ran.values() if c > 1), "executed": len(ran),
    }


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="tasks (default 20000)")
    p.add_argument("--mode", choices=("single", "bulk"), default="bulk",
                   help="single: sequential app.submit; bulk: submit_many (default bulk)")
    p.add_argument("--runs", type=int, default=1, help="runs per store, alternating; the median is reported")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
    for _ in range(args.runs):
        for kind in runs:
            runs[kind].append(one_run(kind, args.n, args.mode))
    figures: dict[str, Any] = {}
    for kind, results in runs.items():
        figures[kind] = dict(median_run(results), runs=[r["tasks_per_s"] for r in results])
    figures["lost"] = sum(r["lost"] for rs in runs.values() for r in rs)
    figures["duplicated"] = sum(r["duplicated"] for rs in runs.values() for r in rs)
    line = "\n".join(
        f"{kind}: {f['n']} tasks ({f['mode']}) in {f['seconds']}s = {f['tasks_per_s']} tasks/s (runs {f['runs']}); "
        f"Redis commands/task on the serving node {f['commands_per_task']}; lost {f['lost']}, duplicated "
        f"{f['duplicated']}; CPU us/task {' '.join(f'{k} {v}' for k, v in f['cpu_us_per_task'].items())}"
        for kind, f in ((k, figures[k]) for k in runs))
    report(figures, line, args.json)
    if figures["lost"] or figures["duplicated"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
