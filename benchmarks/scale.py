"""Scale: 100,000 cron jobs defined; add time, Redis memory per job, idle CPU, per-tick cost.

    python benchmarks/scale.py [--jobs 100000] [--idle 30] [--json]

On a throwaway redis-server:

1. builds N cron jobs spread over the day (`M H * * *`) and adds them through the public API
   (`DistributeSchedule.put_jobs`), and reports the time (building and validating included)
   and the Redis memory per job (INFO used_memory);
2. starts a real `distsched scheduler` process and measures its CPU over `--idle` seconds
   (jobs keep coming due about every 86400/N seconds: this is the realistic idle);
3. in-process, times the leader's fire pass (`Scheduler.fire_due`) with 10 jobs due while
   N exist, with 10 due while only 10 exist, and with 10,000 due (in passes of 500).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _common import deployment, parser, proc_cpu_seconds, run_storages


async def add_jobs(url: str, n: int) -> tuple[float, float]:
    """Seconds to build (and validate) N jobs, and to store them with put_jobs."""
    from distsched import DistributeSchedule
    from distsched.model import build_job

    app = DistributeSchedule(url)
    await app.storage()
    try:
        start = time.perf_counter()
        jobs = []
        for i in range(n):
            minute_of_day = i * 1440 // n
            jobs.append(build_job(f"cron-{i}", cron=f"{minute_of_day % 60} {minute_of_day // 60} * * *", target="noop"))
        built = time.perf_counter()
        await app.put_jobs(jobs)
        return built - start, time.perf_counter() - built
    finally:
        await app.engine.close()


async def tick_times(url: str, due_counts: tuple[int, ...]) -> dict[str, float]:
    """Milliseconds of the leader's fire pass(es) for jobs that are already due."""
    from distsched import DistributeSchedule
    from distsched.app.scheduler import Scheduler
    from distsched.model import build_job

    app = DistributeSchedule(url)
    storage = await app.storage()
    election = await app.engine.open_election()
    scheduler = Scheduler(storage=storage, election=election, balancers=app.engine.balancer, events=app.engine.events,
                          config=app.config)
    fence = None
    out: dict[str, float] = {}
    try:
        for count in due_counts:
            now = storage.clock()
            past = now - 5.0
            for first in range(0, count, 32):
                await asyncio.gather(*(storage.jobs.add(build_job(f"due-{count}-{i}", every="1h", target="noop",
                                                                   misfire="fire-once"), next_fire_at=past)
                                       for i in range(first, min(count, first + 32))))
            # the lease is taken (again: a new term) after the set-up, which may outlast its TTL
            fence = await election.acquire("bench-leader")
            assert fence is not None
            start = time.perf_counter()
            while await scheduler.fire_due(fence, now):
                pass
            out[str(count)] = (time.perf_counter() - start) * 1000
        return out
    finally:
        if fence is not None:
            await election.release(fence)
        await app.engine.close()


def store_bytes(dep: Any) -> int:
    """Redis: used_memory; PostgreSQL: the size of the schema's jobs table with its indexes."""
    if dep.url.startswith("redis"):
        return int(dep.store.client().info("memory")["used_memory"])

    async def size() -> int:
        import asyncpg

        conn = await asyncpg.connect(dep.store.url)
        try:
            return int(await conn.fetchval("SELECT coalesce(pg_total_relation_size('scale.jobs'), 0)"))
        finally:
            await conn.close()

    try:
        return asyncio.run(size())
    except Exception:  # the schema does not exist before the first open
        return 0


def measure(args, storage: str) -> tuple[dict, str, bool]:
    with deployment("scale", storage=storage) as dep:
        before = store_bytes(dep)
        build_seconds, store_seconds = asyncio.run(add_jobs(dep.url, args.jobs))
        add_seconds = build_seconds + store_seconds
        per_job = (store_bytes(dep) - before) / args.jobs
        leader = dep.spawn("scheduler", "-v", "scheduler", "--storage", dep.url)
        dep.wait_for(lambda: "leading with term" in dep.log("scheduler") or leader.poll() is not None, 30,
                     "the scheduler to lead", interval=0.1)
        time.sleep(2.0)  # past start-up
        cpu0, t0 = proc_cpu_seconds(leader.pid), time.monotonic()
        time.sleep(args.idle)
        cpu = (proc_cpu_seconds(leader.pid) - cpu0) / (time.monotonic() - t0) * 100
        dep.stop("scheduler")
        big = asyncio.run(tick_times(dep.url, (10, 10_000)))
    with deployment("small", storage=storage) as small:
        alone = asyncio.run(tick_times(small.url, (10,)))
    figures = {
        "jobs": args.jobs, "add_seconds": round(add_seconds, 2), "jobs_per_s": round(args.jobs / add_seconds),
        "build_seconds": round(build_seconds, 2), "store_seconds": round(store_seconds, 2),
        "storage": storage, "bytes_per_job": round(per_job), "leader_idle_cpu_percent": round(cpu, 2),
        "tick_ms_10_due_of_many": round(big["10"], 2), "tick_ms_10_due_of_10": round(alone["10"], 2),
        "tick_ms_10000_due": round(big["10000"], 1),
    }
    line = (f"scale: {args.jobs} cron jobs added in {figures['add_seconds']} s (built {figures['build_seconds']} s, "
            f"stored {figures['store_seconds']} s); {figures['bytes_per_job']} B of "
            f"{'Redis memory' if storage == 'redis' else 'jobs table and indexes'} per job; idle leader CPU {figures['leader_idle_cpu_percent']} % over {args.idle:g} s; "
            f"fire pass with 10 due: {figures['tick_ms_10_due_of_many']} ms among {args.jobs} jobs vs "
            f"{figures['tick_ms_10_due_of_10']} ms among 10; 10,000 due: {figures['tick_ms_10000_due']} ms")
    if storage == "redis":
        figures["redis_bytes_per_job"] = figures["bytes_per_job"]
    return figures, line, False


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=100_000, help="cron jobs (default 100000)")
    p.add_argument("--idle", type=float, default=30.0, help="seconds of leader CPU measured (default 30)")
    run_storages(p.parse_args(), measure)


if __name__ == "__main__":
    main()
