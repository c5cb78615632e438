"""Dashboard and REST API: response times over a big store, and what a polling dashboard costs.

    python benchmarks/web_bench.py [--jobs 100000] [--tasks 200000] [--requests 40] [-n 20000] [--json]

Part 1 - pages and API calls: starts its own redis-server, bulk-loads ``--jobs`` jobs
(``put_jobs``) and ``--tasks`` finished tasks (submitted, then written finished through the
leader's fenced ``tasks.save`` - the path that also writes the history indexes, the
attempts, the per-minute throughput and each job's last outcome), 10 % of them failed.
Then runs ``distsched web`` and two idle ``distsched worker`` processes and requests every
page and API call ``--requests`` times, one at a time; prints p50 / p95 per call (target:
p95 < 100 ms).

Part 2 - a dashboard polling every 2 s: the throughput benchmark (``-n`` no-op tasks, one
scheduler and two worker processes) with and without a ``distsched web`` whose overview
page is fetched every 2 s, runs alternated; prints both medians and the difference
(target: under 5 % lower).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from typing import Any

import httpx
from _common import deployment, parser, proc_cpu_seconds, report, rounded
from throughput import TASKS, final_counts, submit_and_wait

from distsched.testing.processes import NodeProcess, percentile
from distsched.testing.redis_server import free_port

DUE_NEVER = "24h"


async def load(url: str, jobs: int, tasks: int) -> dict[str, Any]:
    from distsched import DistributeSchedule
    from distsched.facade import build_job
    from distsched.model import Task, TaskResult, TaskSpec

    app = DistributeSchedule(url)
    storage = await app.storage()
    t0 = time.perf_counter()
    configs = [build_job(f"job-{i:06d}", every=DUE_NEVER, target="noop", args=[i]) for i in range(jobs)]
    for first in range(0, jobs, 5000):
        await app.put_jobs(configs[first:first + 5000])
    jobs_s = time.perf_counter() - t0

    election = await app.engine.open_election()
    fence = await election.acquire("bench-loader")
    assert fence is not None, "the loader could not take the lease"
    spec = TaskSpec(target="noop", args=(0,))
    with_job = min(jobs, 1000)  # the tasks belong to the first 1000 jobs (their histories are long)
    t1 = time.perf_counter()
    now = storage.clock()
    chunk = 2000
    for first in range(0, tasks, chunk):
        batch = []
        for i in range(first, min(tasks, first + chunk)):
            job = f"job-{i % with_job:06d}"
            slot = now - 3600 + i * 3600 / tasks
            batch.append(Task(id=f"{job}@{int(slot * 1000)}-{i}", spec=spec, job=job, slot=slot, created_at=slot))
        await storage.tasks.submit(batch)
        stored = [t for t in await storage.tasks.get_many([t.id for t in batch]) if t is not None]
        done = []
        for i, task in enumerate(stored):
            at = task.created_at
            worker = f"bench-worker-{i % 2}"
            attempt = task.dispatch(worker, at)
            task.start(attempt, at + 0.001)
            ok = (first + i) % 10 != 0
            result = TaskResult(task_id=task.id, attempt_id=attempt, outcome="succeeded" if ok else "failed",
                                started_at=at + 0.001, finished_at=at + 0.005, worker_id=worker,
                                value=first + i if ok else None, error=None if ok else "RuntimeError: bench failure",
                                error_type=None if ok else "RuntimeError", retryable=False)
            task.finish(result, at + 0.005)
            done.append(task)
        assert await election.renew(fence), "the loader lost the lease"
        written = await storage.tasks.save(fence, done)
        assert all(written), "a finished task was not written"
    tasks_s = time.perf_counter() - t1
    await election.release(fence)
    counts = await storage.tasks.counts()
    await app.engine.close()
    return {"jobs_load_s": round(jobs_s, 1), "tasks_load_s": round(tasks_s, 1), "counts": counts}


def answers(url: str, proc: NodeProcess) -> bool:
    """True once ``url`` answers; a SystemExit when the process serving it has exited."""
    try:
        httpx.get(url, timeout=5)
        return True
    except httpx.TransportError:
        if proc.poll() is not None:
            raise SystemExit(f"distsched web exited ({proc.returncode}) without answering at {url}") from None
        return False


def calls(base: str, jobs: int, failed_task: str, done_task: str, tasks_cursor: str | None) -> dict[str, str]:
    middle = f"job-{jobs // 2:06d}"
    busy = "job-000001"
    out = {
        "page /": "/", "page /jobs": "/jobs", "page /jobs?after=middle": f"/jobs?after={middle}",
        "page /jobs/NAME (busy)": f"/jobs/{busy}", "page /jobs/NAME (idle)": f"/jobs/job-{jobs - 1:06d}",
        "page /tasks": "/tasks", "page /tasks?state=failed": "/tasks?state=failed",
        "page /tasks?job=NAME": f"/tasks?job={busy}", "page /tasks/ID": f"/tasks/{failed_task}",
        "page /workers": "/workers",
        "api overview": "/api/v1/overview", "api jobs": "/api/v1/jobs", "api jobs?after": f"/api/v1/jobs?after={middle}",
        "api job": f"/api/v1/jobs/{busy}", "api job history": f"/api/v1/jobs/{busy}/history",
        "api tasks": "/api/v1/tasks", "api tasks?state=failed": "/api/v1/tasks?state=failed",
        "api tasks?job": f"/api/v1/tasks?job={busy}", "api task": f"/api/v1/tasks/{done_task}",
        "api workers": "/api/v1/workers",
    }
    if tasks_cursor:
        out["api tasks?cursor"] = f"/api/v1/tasks?cursor={tasks_cursor}"
    return {k: base + v for k, v in out.items()}


def part1(jobs: int, tasks: int, requests: int) -> dict[str, Any]:
    with deployment("webbench") as dep:
        loaded = asyncio.run(load(dep.url, jobs, tasks))
        port = free_port()
        dep.write("bench_tasks.py", TASKS)
        env = {"BENCH_DIR": str(dep.dir)}
        web = dep.spawn("web", "web", "--storage", dep.url, "--bind", f"127.0.0.1:{port}", env=env)
        for i in (1, 2):
            dep.spawn(f"worker{i}", "worker", "--storage", dep.url, "--import", "bench_tasks", env=env)
        base = f"http://127.0.0.1:{port}"
        dep.wait_for(lambda: answers(base + "/api/v1/openapi.json", web), 30, "distsched web", interval=0.1)
        with httpx.Client(timeout=30) as http:
            dep.wait_for(lambda: len(http.get(base + "/api/v1/workers").json()["items"]) == 2, 30, "2 workers")
            failed = http.get(base + "/api/v1/tasks?state=failed&limit=1").json()["items"][0]["id"]
            page = http.get(base + "/api/v1/tasks?limit=50").json()
            done = page["items"][0]["id"]
            targets = calls(base, jobs, failed, done, page["next_cursor"])
            times: dict[str, list[float]] = {name: [] for name in targets}
            for name, url in targets.items():  # warm-up: one request each
                response = http.get(url)
                assert response.status_code == 200, (name, response.status_code, response.text[:300])
            for _ in range(requests):
                for name, url in targets.items():
                    t = time.perf_counter()
                    response = http.get(url)
                    times[name].append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, (name, response.status_code)
    table = {name: {"p50_ms": rounded(percentile(v, 50), 1), "p95_ms": rounded(percentile(v, 95), 1)}
             for name, v in times.items()}
    return {"jobs": jobs, "tasks": tasks, "requests_each": requests, **loaded, "calls": table,
            "worst_p95_ms": max((v["p95_ms"] for v in table.values() if v["p95_ms"] is not None), default=None)}


def throughput_run(n: int, poll: bool) -> dict[str, Any]:
    with deployment("webtp") as dep:
        dep.write("bench_tasks.py", TASKS)
        env = {"BENCH_DIR": str(dep.dir)}
        dep.spawn("scheduler", "scheduler", "--storage", dep.url, env=env)
        for i in (1, 2):
            dep.spawn(f"worker{i}", "worker", "--storage", dep.url, "--import", "bench_tasks", "--concurrency", "64",
                      "--capacity", "1024", env=env)
        stop = threading.Event()
        polls: list[float] = []
        poller = None
        if poll:
            port = free_port()
            web = dep.spawn("web", "web", "--storage", dep.url, "--bind", f"127.0.0.1:{port}", env=env)
            base = f"http://127.0.0.1:{port}"
            dep.wait_for(lambda: answers(base + "/api/v1/openapi.json", web), 30, "distsched web", interval=0.1)
            httpx.get(base + "/", timeout=30)  # warm-up: templates compiled before the measurement

            def poll_loop() -> None:  # a browser tab on the overview: one page load every 2 s
                with httpx.Client(timeout=10) as http:
                    while not stop.is_set():
                        t = time.perf_counter()
                        http.get(base + "/")
                        polls.append((time.perf_counter() - t) * 1000)
                        stop.wait(2.0)

            poller = threading.Thread(target=poll_loop, daemon=True)

        async def registered(app, storage) -> bool:
            return len(await storage.workers.list_workers()) == 2

        dep.wait_for(lambda: dep.call(registered), 30, "two workers", interval=0.1)
        pids = [dep.procs[name].pid for name in ("scheduler", "worker1", "worker2")] + [dep.store.pid]
        if poll:
            pids.append(dep.procs["web"].pid)
        cpu0 = sum(proc_cpu_seconds(pid) for pid in pids)
        web_cpu0 = proc_cpu_seconds(dep.procs["web"].pid) if poll else 0.0
        if poller is not None:
            poller.start()
        elapsed, *_ = asyncio.run(submit_and_wait(dep.url, "bulk", n, timeout=180))
        stop.set()
        counts = asyncio.run(final_counts(dep.url))
        if poller is not None:
            poller.join(15)
        web_cpu = proc_cpu_seconds(dep.procs["web"].pid) - web_cpu0 if poll else 0.0
        cpu = sum(proc_cpu_seconds(pid) for pid in pids) - cpu0
    return {"tasks_per_s": round(n / elapsed, 1), "succeeded": counts.get("succeeded", 0), "polls": len(polls),
            "poll_ms_max": round(max(polls), 1) if polls else None, "seconds": elapsed,
            "web_cpu_s": round(web_cpu, 3), "cpu_us_per_task": round(cpu / n * 1e6, 1)}


def part2(n: int, runs: int) -> dict[str, Any]:
    plain: list[dict[str, Any]] = []
    polled: list[dict[str, Any]] = []
    for i in range(runs):  # alternate, so a busy moment of the machine hits both
        order = (False, True) if i % 2 == 0 else (True, False)
        for poll in order:
            (polled if poll else plain).append(throughput_run(n, poll))
    base = statistics.median(r["tasks_per_s"] for r in plain)
    with_dash = statistics.median(r["tasks_per_s"] for r in polled)
    return {"n": n, "runs": runs, "plain_tasks_per_s": [r["tasks_per_s"] for r in plain],
            "polled_tasks_per_s": [r["tasks_per_s"] for r in polled], "median_plain": base,
            "median_polled": with_dash, "lower_pct": round((base - with_dash) / base * 100, 1),
            # CPU of every process of the deployment (scheduler, workers, Redis, and the
            # dashboard when it runs) per task: less sensitive than tasks/s to a busy machine.
            "cpu_us_per_task_plain": statistics.median(r["cpu_us_per_task"] for r in plain),
            "cpu_us_per_task_polled": statistics.median(r["cpu_us_per_task"] for r in polled),
            "lost": sum(n - r["succeeded"] for r in plain + polled),
            "polls": [r["polls"] for r in polled],
            # The dashboard's own CPU while the benchmark ran: what it takes from the machine.
            "web_cpu_share_pct": round(100 * sum(r["web_cpu_s"] for r in polled)
                                       / sum(r["seconds"] for r in polled), 2)}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=100_000, help="jobs stored (default 100000)")
    p.add_argument("--tasks", type=int, default=200_000, help="finished tasks stored (default 200000)")
    p.add_argument("--requests", type=int, default=40, help="requests per page / API call (default 40)")
    p.add_argument("-n", type=int, default=20_000, help="tasks per throughput run (default 20000)")
    p.add_argument("--runs", type=int, default=3, help="throughput runs with and without the dashboard (default 3)")
    p.add_argument("--skip-throughput", action="store_true", help="only part 1")
    p.add_argument("--skip-pages", action="store_true", help="only part 2")
    args = p.parse_args()
    figures: dict[str, Any] = {"cpus": os.cpu_count()}
    if not args.skip_pages:
        figures["part1"] = part1(args.jobs, args.tasks, args.requests)
    if not args.skip_throughput:
        figures["part2"] = part2(args.n, args.runs)
    lines = []
    if "part1" in figures:
        one = figures["part1"]
        lines.append(f"web: {one['jobs']} jobs (loaded in {one['jobs_load_s']} s), {one['tasks']} finished tasks "
                     f"(loaded in {one['tasks_load_s']} s); {one['requests_each']} requests per call, one at a time:")
        lines += [f"  {name:<28} p50 {v['p50_ms']:7.1f} ms   p95 {v['p95_ms']:7.1f} ms"
                  for name, v in one["calls"].items()]
        lines.append(f"  worst p95 {one['worst_p95_ms']} ms")
    if "part2" in figures:
        two = figures["part2"]
        lines.append(f"throughput ({two['n']} tasks, {two['runs']} runs each): without dashboard "
                     f"{two['median_plain']}/s {two['plain_tasks_per_s']}, with a dashboard polling every 2 s "
                     f"{two['median_polled']}/s {two['polled_tasks_per_s']}: {two['lower_pct']} % lower; "
                     f"the dashboard used {two['web_cpu_share_pct']} % of one CPU meanwhile; CPU per task (all "
                     f"processes) {two['cpu_us_per_task_plain']} -> {two['cpu_us_per_task_polled']} us; "
                     f"lost {two['lost']}")
    report(figures, "\n".join(lines), args.json)
    if figures.get("part2", {}).get("lost"):
        sys.exit(1)


if __name__ == "__main__":
    main()
