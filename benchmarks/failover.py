"""Failover: leader kill -9 and SIGTERM handoffs while jobs fire every second.

    python benchmarks/failover.py [--kills 10] [--handoffs 10] [--lease-ttl 3] [--json]

Three `distsched scheduler` processes and one worker on a throwaway redis-server; 10 jobs
fire every second (misfire fire-all, so a missed slot would show). Each round finds the
leader, kills it (`kill -9`) or stops it (SIGTERM: it releases its lease), measures the time
until another node holds the lease, and restarts the stopped node. At the end every slot of
the run must have exactly one task: missed and doubled slots are counted.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from _common import deployment, parser, rounded, run_storages

from distsched.testing import all_tasks
from distsched.testing.processes import Deployment, percentile

TASKS = '''
from distsched import task

@task
async def noop():
    return None
'''


def slot_figures(dep: Deployment[Any], start: float, end: float, jobs: int) -> tuple[int, int]:
    async def tasks(app, storage):
        return [t for i in range(jobs) for t in await all_tasks(storage, job=f"j{i}")]

    found = dep.call(tasks)
    seen = {(t.job, round(t.slot)) for t in found if start <= t.slot < end}
    expected = {(f"j{i}", s) for i in range(jobs) for s in range(int(start), int(end))}
    doubled = sum(1 for t in found if start <= t.slot < end and t.dispatches > 1 + t.redeliveries)
    return len(expected - seen), doubled


def measure(args, storage: str) -> tuple[dict, str, bool]:
    renew = args.lease_ttl / 3
    with deployment(storage=storage) as dep:
        dep.write("bench_tasks.py", TASKS)
        jobs = dep.write("jobs.toml", "\n".join(
            f'[[jobs]]\nname = "j{i}"\nevery = "1s"\ntarget = "noop"\nmisfire = "fire-all"\nmisfire_grace = "30s"\n'
            for i in range(args.jobs)))

        def scheduler(name: str) -> None:
            dep.spawn(name, "scheduler", "--storage", dep.url, "--jobs", str(jobs), "--node-id", name,
                      "--lease-ttl", str(args.lease_ttl), "--renew-interval", f"{renew:.3f}")

        for name in ("s1", "s2", "s3"):
            scheduler(name)
        dep.spawn("worker", "worker", "--storage", dep.url, "--import", "bench_tasks")
        dep.wait_for(dep.leader, 30, "a leader", interval=0.05)
        start = float(int(time.time()) + 1)
        takeovers: dict[str, list[float]] = {"kill": [], "term": []}
        for kind in ["kill"] * args.kills + ["term"] * args.handoffs:
            old = dep.wait_for(dep.leader, 30, "a leader", interval=0.02)
            assert old is not None
            proc = dep.procs[old]
            t0 = time.monotonic()
            if kind == "kill":
                proc.kill()
            else:
                proc.send_signal(signal.SIGTERM)
            def other_leader(old: str = old) -> str | None:
                name = dep.leader()
                return name if name and name != old else None

            new = dep.wait_for(other_leader, args.lease_ttl * 3 + 10, "a new leader", interval=0.01)
            takeovers[kind].append(time.monotonic() - t0)
            proc.wait(timeout=30)
            scheduler(old)
            time.sleep(1.0)  # let the new leader fire a slot before the next round
            assert new != old
        end = float(int(time.time()) - 2)
        time.sleep(3.0)
        missed, doubled = slot_figures(dep, start, end, args.jobs)
    figures = {
        "storage": storage, "lease_ttl": args.lease_ttl, "kills": args.kills, "handoffs": args.handoffs,
        "kill_takeover_p50_s": rounded(percentile(takeovers["kill"], 50), 3),
        "kill_takeover_max_s": round(max(takeovers["kill"]), 3) if takeovers["kill"] else None,
        "handoff_p50_s": rounded(percentile(takeovers["term"], 50), 3),
        "handoff_max_s": round(max(takeovers["term"]), 3) if takeovers["term"] else None,
        "slots": int(end - start) * args.jobs, "missed": missed, "doubled": doubled,
    }
    line = (f"failover: {args.kills} x kill -9 -> takeover p50 {figures['kill_takeover_p50_s']} s, max "
            f"{figures['kill_takeover_max_s']} s (lease TTL {args.lease_ttl:g} s); {args.handoffs} x SIGTERM -> "
            f"handoff p50 {figures['handoff_p50_s']} s, max {figures['handoff_max_s']} s; "
            f"{figures['slots']} slots, missed {missed}, doubled {doubled}")
    return figures, line, bool(missed or doubled)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10, help="leader kill -9 rounds (default 10)")
    p.add_argument("--handoffs", type=int, default=10, help="leader SIGTERM rounds (default 10)")
    p.add_argument("--lease-ttl", type=float, default=3.0, help="lease TTL in seconds (default 3)")
    p.add_argument("--jobs", type=int, default=10, help="jobs firing every second (default 10)")
    run_storages(p.parse_args(), measure)


if __name__ == "__main__":
    main()
