"""Fire lag: 50 jobs firing every second for 30 s; 1 scheduler + 2 worker processes on Redis.

    python benchmarks/lag.py [--jobs 50] [--duration 30] [--json]

Fire lag = the moment a worker starts the slot's task minus the slot time. The workers
load a small observer plugin (`distsched -p`) that appends every `attempt.started` event to
a file; the slot comes from the task id (`<job>@<slot ms>`). Missed = slots in the run's
window without a task that started; duplicated = slots started more than once.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from _common import Deployment, parser, percentile, run_storages

OBSERVER = '''
import json, os
from distsched import hookimpl

_out = open(os.path.join(os.environ["BENCH_DIR"], f"events-{os.getpid()}.jsonl"), "a", buffering=1)

@hookimpl
def distsched_event(event):
    if event.kind == "attempt.started":
        _out.write(json.dumps({"task_id": event.task_id, "at": event.at, "attempt": event.attempt_id}) + "\\n")
'''

TASKS = '''
from distsched import task

@task
async def noop():
    return None
'''


def measure(args, storage: str) -> tuple[dict, str, bool]:
    with Deployment(storage=storage) as dep:
        dep.write("bench_observer.py", OBSERVER)
        dep.write("bench_tasks.py", TASKS)
        jobs = dep.write("jobs.toml", "\n".join(
            f'[[jobs]]\nname = "j{i}"\nevery = "1s"\ntarget = "noop"\ntimeout = "5s"\n' for i in range(args.jobs)))
        env = {"BENCH_DIR": str(dep.dir)}
        for i in (1, 2):
            dep.start(f"worker{i}", "-p", "bench_observer", "worker", "--storage", dep.url, "--import", "bench_tasks",
                      "--concurrency", "64",
                      env=env)
        dep.start("scheduler", "scheduler", "--storage", dep.url, "--jobs", str(jobs), env=env)
        # Measure whole seconds, after a warm-up second.
        dep.wait_for(lambda: any(path.stat().st_size for path in dep.dir.glob("events-*.jsonl")), 30, "a first run")
        start = float(int(time.time()) + 2)
        end = start + args.duration
        time.sleep(max(0.0, end - time.time()) + 1.5)
        for name in ("scheduler", "worker1", "worker2"):
            dep.stop(name)
        started: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for path in dep.dir.glob("events-*.jsonl"):
            for line in path.read_text().splitlines():
                event = json.loads(line)
                started[event["task_id"]].append((event["at"], event["attempt"]))
    lags, duplicated = [], 0
    seen: set[str] = set()
    for task_id, starts in started.items():
        slot = int(task_id.rsplit("@", 1)[1]) / 1000
        if not start <= slot < end:
            continue
        seen.add(task_id)
        duplicated += len({attempt for _, attempt in starts}) - 1
        lags.append((min(at for at, _ in starts) - slot) * 1000)
    expected = {f"j{i}@{int(s * 1000)}" for i in range(args.jobs) for s in range(int(start), int(end))}
    missed = len(expected - seen)
    figures = {
        "storage": storage, "jobs": args.jobs, "seconds": args.duration, "slots": len(expected),
        "lag_p50_ms": round(percentile(lags, 50), 2), "lag_p99_ms": round(percentile(lags, 99), 2),
        "lag_max_ms": round(max(lags), 2) if lags else None, "missed": missed, "duplicated": duplicated,
    }
    line = (f"lag: {args.jobs} jobs every 1s for {args.duration:g}s ({len(expected)} slots): fire lag p50 "
            f"{figures['lag_p50_ms']} ms, p99 {figures['lag_p99_ms']} ms, max {figures['lag_max_ms']} ms; "
            f"missed {missed}, duplicated {duplicated}")
    return figures, line, bool(missed or duplicated)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=50, help="jobs, each firing every second (default 50)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of firing measured (default 30)")
    run_storages(p.parse_args(), measure)


if __name__ == "__main__":
    main()
