"""Fire lag: 50 jobs firing every second for 30 s, idle and then under load; 1 scheduler + 2 workers on Redis.

    python benchmarks/lag.py [--jobs 50] [--duration 30] [--no-load] [--metrics] [--probe] [--json]

Fire lag = the moment a worker starts the slot's task minus the slot time. The workers
load a small observer plugin (`distsched -p`) that appends every `attempt.started` event to
a file; the slot comes from the task id (`<job>@<slot ms>`). Missed = slots in the run's
window without a task that started; duplicated = slots started more than once.

Two windows of ``--duration`` seconds each: first idle (only the jobs), then under load - a
client process submitting one-off tasks one at a time (``await app.submit``, the single
mode of throughput.py; on Redis each does one Redis write of its own, as throughput.py's) for as long as the window lasts, so the leader and both
workers stay busy. Both windows' figures are printed (``--no-load``: the idle one only);
the load's submits/s and how many of its tasks finished are printed with them.

Beside both windows a sleeper process (real-time priority where it may, as root; else
normal) notes every time it woke more than 5 ms late: the machine's own stalls (a VM whose
host did not run it, seen here for 10-50 ms at a time). Printed per window: how many and the
longest, and how many of the slots that started over 10 ms late overlapped one - a late slot
during a stall is the machine's, not the engine's. For each second whose slots started over
10 ms late, each worker's first and last start of that second's slots (ms after the slot)
and how many it started: one worker late while the other was on time means that worker
started late; both late, the leader fired or dispatched late.

With ``--probe`` the scheduler and both workers run a probe in their event loop (a
``sitecustomize`` on their ``PYTHONPATH`` that wraps ``asyncio.run``): a task that sleeps
1 ms in a loop and, whenever the sleep took over 4 ms, notes the wall time, the loop
thread's time running and its time waiting in the kernel's run queue for a core (from
``/proc/self/task/<tid>/schedstat``; Linux). Printed per window and process: those
oversleeps' count and wall, running and queued milliseconds; and for each late second, each
worker's oversleeps between the slot and its first start of the slot's tasks - a loop that
was queued for most of them waited for a core (the machine's cores oversubscribed), one that
ran for most of them was busy, and the rest it was asleep or blocked in a call - a worker's
loop sleeps on purpose before each slot (``distsched.asyncutil.PreciseTimer`` blocks it in
``time.sleep`` for its lead, 10-25 ms, to start the slot's tasks to the sub-millisecond),
so an idle worker shows one such oversleep a second. The probe costs CPU of its own, so its runs' lags are not the
benchmark's figures; its ``sitecustomize`` takes the place of any the environment has.

With ``--metrics`` the workers also serve Prometheus metrics (``--metrics 127.0.0.1:PORT``);
their fire-lag histograms are scraped over HTTP just before and at the end of the measured
window, and the histogram of the window (the difference, summed over both workers) is
compared with the figures above: its count must be the slots measured and the bucket that
holds the 99th percentile must contain the p99 printed (see docs/metrics.md).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _common import (
    TASK_WRITE_CODE,
    TASK_WRITE_ENV,
    deployment,
    parser,
    redis_address,
    redis_kwargs,
    rounded,
    run_storages,
    started_pid,
    task_writes,
)

from distsched.testing.processes import percentile

METRIC = "distsched_fire_lag_seconds"


def scrape_fire_lag(urls: list[str]) -> dict[float, float]:
    """Cumulative fire-lag bucket counts (upper bound in seconds -> count), summed over the
    workers' /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = defaultdict(float)
    for url in urls:
        for family in text_string_to_metric_families(httpx.get(url, timeout=5.0).text):
            for sample in family.samples:
                if sample.name == METRIC + "_bucket":
                    buckets[float(sample.labels["le"])] += sample.value
    return dict(buckets)


def p99_bucket(before: dict[float, float], after: dict[float, float], n: int) -> tuple[float, float, float]:
    """(count in the window, lower and upper bound in ms of the bucket holding the sample
    of rank ``percentile(.., 99)`` uses)."""
    window = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    count = window[-1][1]
    rank = min(n, max(1, math.ceil(0.99 * n)))  # 1-based rank of the nearest-rank p99
    lower = float("-inf")
    for le, cumulative in window:
        if cumulative >= rank:
            return count, lower * 1000, le * 1000
        lower = le
    return count, lower * 1000, float("inf")

PROBE = '''
import asyncio, os, sys, threading, time

if "worker" in sys.argv or "scheduler" in sys.argv:
    _run = asyncio.run

    def _schedstat():
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            running, queued, _ = f.read().split()
        return int(running) / 1e6, int(queued) / 1e6

    async def _probe():
        with open(os.path.join(os.environ["BENCH_DIR"], f"probe-{os.getpid()}.txt"), "a", buffering=1) as out:
            out.write("# probing\\n")  # the probe runs in this process
            while True:
                t0, (r0, q0) = time.time(), _schedstat()
                await asyncio.sleep(0.001)
                t1, (r1, q1) = time.time(), _schedstat()
                if t1 - t0 > 0.004:
                    out.write(f"{t0:.4f} {t1:.4f} {r1 - r0:.2f} {q1 - q0:.2f}\\n")

    def _probed(main, **kwargs):
        async def both():
            probe = asyncio.ensure_future(_probe())
            try:
                return await main
            finally:
                probe.cancel()
        return _run(both(), **kwargs)

    asyncio.run = _probed
'''

OBSERVER = '''
import json, os
from distsched import hookimpl

_out = open(os.path.join(os.environ["BENCH_DIR"], f"events-{os.getpid()}.jsonl"), "a", buffering=1)

@hookimpl
def distsched_event(event):
    if event.kind == "attempt.started":
        _out.write(json.dumps({"task_id": event.task_id, "at": event.at, "attempt": event.attempt_id}) + "\\n")
'''

TASKS = TASK_WRITE_CODE + '''
from distsched import task

@task
async def noop():
    return None

@task
async def load(i):
    await write_once()  # as throughput.py's tasks (issue 13's measurement)
'''

# The load: sequential submits until SIGTERM; prints how many it made and in how many seconds.
LOAD = '''
import asyncio, signal, sys, time
from distsched import DistributeSchedule

async def main():
    app = DistributeSchedule(sys.argv[1])
    await app.storage()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    n, start = 0, time.perf_counter()
    while not stop.is_set():
        await app.submit("load", n)
        n += 1
    print(n, time.perf_counter() - start, flush=True)
    await app.engine.close()

asyncio.run(main())
'''


#: A stall: the sleeper below woke more than this many milliseconds after it asked to.
STALL_MS = 5.0
# The machine's own stalls: a sleeper that asks for 2 ms and notes each wake-up over STALL_MS
# later than that (its start and end, UNIX time), until killed. First line: its priority.
STALL_PROBE = '''
import os, sys, time
ask, stall = 0.002, float(sys.argv[2]) / 1000
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))  # ahead of every process here
    print("real-time", flush=True)
except (AttributeError, OSError):
    print("normal", flush=True)
out = open(sys.argv[1], "w", buffering=1)
last = time.time()
while True:
    time.sleep(ask)
    now = time.time()
    if now - last > ask + stall:
        out.write(f"{last} {now}\\n")
    last = now
'''

@contextmanager
def stall_witness(path: Path) -> Iterator[str]:
    """Run STALL_PROBE, writing to ``path``, for the block; yields its priority."""
    probe = subprocess.Popen([sys.executable, "-c", STALL_PROBE, str(path), str(STALL_MS)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert probe.stdout is not None
        yield probe.stdout.readline().strip()
    finally:
        probe.kill()
        probe.wait(10)


def read_stalls(path: Path) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


LATE_MS = 10.0  # a slot that started later than this is counted, with the stalls it overlapped


def stalls_in(stalls: list[tuple[float, float]], lags_by_slot: dict[float, float], start: float,
              end: float) -> dict:
    """The stalls in [start, end) (count, longest in ms) and the slots over LATE_MS late (how
    many, how many of them overlapped a stall between 10 ms before the slot and its start)."""
    inside = [(a, b) for a, b in stalls if start <= b and a < end]
    late = {slot: lag for slot, lag in lags_by_slot.items() if lag > LATE_MS}
    overlapped = sum(1 for slot, lag in late.items()
                     if any(a < slot + lag / 1000 and b > slot - LATE_MS / 1000 for a, b in inside))
    return {"stalls": len(inside), "stall_max_ms": round(max((b - a) * 1000 for a, b in inside), 1) if inside else 0.0,
            "late_slots": len(late), "late_slots_in_stalls": overlapped}


def read_probe(path: Path) -> list[tuple[float, float, float, float]] | None:
    """A probed loop's oversleeps: (start, end, running ms, queued ms) each; None when the
    probe did not run in that process."""
    if not path.exists():
        return None
    rows = (line.split() for line in path.read_text().splitlines() if not line.startswith("#"))
    return [(float(a), float(b), float(r), float(q)) for a, b, r, q in rows]


def oversleeps(sleeps: list[tuple[float, float, float, float]] | None, start: float, end: float) -> dict | None:
    """The oversleeps that overlap [start, end): how many, and their wall, running and queued
    ms (None: the process was not probed)."""
    if sleeps is None:
        return None
    inside = [x for x in sleeps if x[0] < end and x[1] >= start]
    wall, running, queued = (sum((b - a) * 1000 for a, b, _, _ in inside), sum(x[2] for x in inside),
                             sum(x[3] for x in inside))
    return {"oversleeps": len(inside), "wall_ms": round(wall, 1), "running_ms": round(running, 1),
            "queued_ms": round(queued, 1), "asleep_ms": round(max(0.0, wall - running - queued), 1)}


def probe_window(probes: dict[str, list[tuple[float, float, float, float]] | None], start: float, end: float,
                 late_seconds: list[dict]) -> dict:
    """``--probe``: each process's oversleeps in the window, and on each late second, each
    worker's oversleeps between the slot and its first start of the slot's tasks."""
    for late in late_seconds:
        late["probe"] = {worker: oversleeps(probes.get(worker), late["slot"], late["slot"] + first / 1000)
                         for worker, (first, _, _) in late["workers"].items()}
    return {name: oversleeps(sleeps, start, end) for name, sleeps in probes.items()}


def window(started: dict[str, list[tuple[float, str, str]]], jobs: int, start: float, end: float) -> dict:
    """Fire lag of the slots in [start, end): p50 / p99 / max (ms), missed, duplicated."""
    lags, duplicated = [], 0
    seen: set[str] = set()
    by_slot: dict[float, float] = {}  # slot -> the latest first start of its tasks (ms)
    by_worker: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))  # slot -> worker -> lags
    for task_id, starts in started.items():
        if "@" not in task_id:
            continue  # a load task
        slot = int(task_id.rsplit("@", 1)[1]) / 1000
        if not start <= slot < end:
            continue
        seen.add(task_id)
        duplicated += len({attempt for _, attempt, _ in starts}) - 1
        at, _, worker = min(starts)
        lags.append((at - slot) * 1000)
        by_slot[slot] = max(by_slot.get(slot, lags[-1]), lags[-1])
        by_worker[slot][worker].append(lags[-1])
    late_seconds = [{"slot": slot, "workers": {worker: [round(min(got), 2), round(max(got), 2), len(got)]
                                               for worker, got in sorted(by_worker[slot].items())}}
                    for slot in sorted(by_slot) if by_slot[slot] > LATE_MS]
    expected = {f"j{i}@{int(s * 1000)}" for i in range(jobs) for s in range(int(start), int(end))}
    return {
        "slots": len(expected), "lags": lags,
        "lag_p50_ms": rounded(percentile(lags, 50), 2), "lag_p99_ms": rounded(percentile(lags, 99), 2),
        "lag_max_ms": round(max(lags), 2) if lags else None, "missed": len(expected - seen), "duplicated": duplicated,
        "by_slot": by_slot, "late_seconds": late_seconds,
    }


def measure(args, storage: str) -> tuple[dict, str, bool]:
    metric_urls: list[str] = []
    with deployment(storage=storage) as dep, ExitStack() as witness:
        dep.write("bench_observer.py", OBSERVER)
        dep.write("bench_tasks.py", TASKS)
        jobs = dep.write("jobs.toml", "\n".join(
            f'[[jobs]]\nname = "j{i}"\nevery = "1s"\ntarget = "noop"\ntimeout = "5s"\n' for i in range(args.jobs)))
        env = {"BENCH_DIR": str(dep.dir)}
        if args.probe:
            (dep.dir / "probe").mkdir()
            dep.write("probe/sitecustomize.py", PROBE)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dep.dir / "probe"), os.environ.get("PYTHONPATH")]))
        pids: dict[int, str] = {}  # the workers' and the scheduler's names
        if storage == "redis":  # each load task writes once, as throughput.py's do
            env[TASK_WRITE_ENV] = json.dumps(redis_kwargs(redis_address(dep.store, "tcp")))  # (lag.py: loopback TCP)
        for i in (1, 2):
            metrics: list[str] = []
            if args.metrics:
                from distsched.testing.redis_server import free_port

                port = free_port()
                metrics = ["--metrics", f"127.0.0.1:{port}"]
                metric_urls.append(f"http://127.0.0.1:{port}/metrics")
            proc = dep.spawn(f"worker{i}", "-p", "bench_observer", "worker", "--storage", dep.url, "--import",
                             "bench_tasks", "--concurrency", "64", *metrics, env=env)
            pids[started_pid(proc.pid)] = f"worker{i}"
        scheduler = dep.spawn("scheduler", "scheduler", "--storage", dep.url, "--jobs", str(jobs), env=env)
        pids[started_pid(scheduler.pid)] = "scheduler"
        stall_file = dep.dir / "stalls.txt"
        probe_priority = witness.enter_context(stall_witness(stall_file))
        # Measure whole seconds, after a warm-up second.
        dep.wait_for(lambda: any(path.stat().st_size for path in dep.dir.glob("events-*.jsonl")), 30, "a first run",
                     interval=0.02)
        start = float(int(time.time()) + 2)
        end = start + args.duration
        if metric_urls:  # half-way between slots: the window's scrapes miss no start
            time.sleep(max(0.0, start - 0.5 - time.time()))
            hist_before = scrape_fire_lag(metric_urls)
            time.sleep(max(0.0, end - 0.5 - time.time()))
            hist_after = scrape_fire_lag(metric_urls)
        loaded: dict | None = None
        if args.no_load:  # the idle window only: wait for its end (the loaded branch waits below)
            time.sleep(max(0.0, end - time.time()) + 0.2)
        else:
            time.sleep(max(0.0, end - time.time()) + 0.2)
            load = subprocess.Popen([sys.executable, "-c", LOAD, dep.url], stdout=subprocess.PIPE, text=True)
            assert load.stdout is not None and load.stdout.readline().strip() == "ready"
            load_start = float(int(time.time()) + 2)
            load_end = load_start + args.duration
            time.sleep(max(0.0, load_end - time.time()))
            load.terminate()
            submitted, load_seconds = load.stdout.readline().split()
            load.wait(30)

            async def finished(app, storage) -> int:
                return (await storage.tasks.counts()).get("succeeded", 0)

            done = dep.wait_for(lambda: dep.call(finished) or None, 5, "the counts")
            loaded = {"submitted": int(submitted), "submits_per_s": round(int(submitted) / float(load_seconds), 1),
                      "succeeded_in_all": done, "task_writes": None}
            if storage == "redis":  # the load tasks' own writes (one each)
                loaded["task_writes"] = task_writes(dep.store.port)
        time.sleep(1.5)
        for name in ("scheduler", "worker1", "worker2"):
            dep.stop(name)
        witness.close()
        stalls = read_stalls(stall_file)
        started: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
        names = {f"events-{pid}.jsonl": name for pid, name in pids.items()}  # a worker's observer file
        for path in dep.dir.glob("events-*.jsonl"):
            for line in path.read_text().splitlines():
                event = json.loads(line)
                started[event["task_id"]].append((event["at"], event["attempt"], names.get(path.name, path.name)))
        probes = {name: read_probe(dep.dir / f"probe-{pid}.txt") for pid, name in pids.items()} if args.probe else {}

    def machine(figures: dict) -> str:
        return (f"\n  the machine's stalls in this window ({probe_priority}-priority sleeper woke over {STALL_MS:g} ms late): "
                f"{figures['stalls']}, longest {figures['stall_max_ms']} ms; slots started over {LATE_MS:g} ms late: "
                f"{figures['late_slots']}, {figures['late_slots_in_stalls']} of them during a stall"
                + "".join(f"\n  the second {time.strftime('%H:%M:%S', time.gmtime(late['slot']))}: "
                          + ", ".join(f"{worker} started {n} of its slots {first}-{last} ms late"
                                      + probed(late.get("probe", {}).get(worker), "before its first start, its loop overslept")
                                      for worker, (first, last, n) in late["workers"].items())
                          for late in figures["late_seconds"])
                + ("\n  the loops' oversleeps over 4 ms (--probe): " + ", ".join(
                    f"{name}{probed(got, '')}" for name, got in figures["probe"].items()) if "probe" in figures else ""))

    def probed(got: dict | None, what: str) -> str:
        if not got:
            return ""
        return (f" ({what}{' ' if what else ''}{got['oversleeps']}x, {got['wall_ms']} ms: running "
                f"{got['running_ms']}, queued for a core {got['queued_ms']}, asleep {got['asleep_ms']})")

    idle = window(started, args.jobs, start, end)
    lags = idle.pop("lags")
    idle.update(stalls_in(stalls, idle.pop("by_slot"), start, end))
    if args.probe:
        idle["probe"] = probe_window(probes, start, end, idle["late_seconds"])
    missed, duplicated = idle["missed"], idle["duplicated"]
    figures = {"storage": storage, "jobs": args.jobs, "seconds": args.duration, "stall_probe": probe_priority, **idle}
    line = (f"lag idle: {args.jobs} jobs every 1s for {args.duration:g}s ({idle['slots']} slots): fire lag p50 "
            f"{figures['lag_p50_ms']} ms, p99 {figures['lag_p99_ms']} ms, max {figures['lag_max_ms']} ms; "
            f"missed {missed}, duplicated {duplicated}" + machine(idle))
    if loaded is not None:
        busy = window(started, args.jobs, load_start, load_end)
        busy.pop("lags")
        busy.update(stalls_in(stalls, busy.pop("by_slot"), load_start, load_end))
        if args.probe:
            busy["probe"] = probe_window(probes, load_start, load_end, busy["late_seconds"])
        busy.update(loaded)
        figures["loaded"] = busy
        missed += busy["missed"]
        duplicated += busy["duplicated"]
        writes = "" if busy["task_writes"] is None else f", {busy['task_writes']} task writes"
        line += (f"\nlag under load ({busy['submits_per_s']} single submits/s{writes}, "
                 f"{busy['succeeded_in_all']} tasks succeeded in all by its end): fire lag p50 "
                 f"{busy['lag_p50_ms']} ms, p99 {busy['lag_p99_ms']} ms, max {busy['lag_max_ms']} ms; "
                 f"missed {busy['missed']}, duplicated {busy['duplicated']}" + machine(busy))
    agree = True
    if metric_urls:
        count, low, high = p99_bucket(hist_before, hist_after, len(lags))
        p99 = percentile(lags, 99)
        # the histogram saw the same starts (first attempts) as the observer file
        agree = count == len(lags) and p99 is not None and low - 0.01 < p99 <= high + 0.01
        figures.update(metrics_count=count, metrics_p99_bucket_ms=[low, high], metrics_agree=agree)
        line += (f"\n/metrics: {count:.0f} fire-lag observations in the window, the p99 lies in the bucket "
                 f"({low:g}, {high:g}] ms: {'agrees' if agree else 'DISAGREES'} with p99 {figures['lag_p99_ms']} ms")
    return figures, line, bool(missed or duplicated or not agree)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=50, help="jobs, each firing every second (default 50)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of firing measured (default 30)")
    p.add_argument("--no-load", action="store_true", help="measure the idle window only")
    p.add_argument("--probe", action="store_true",
                   help="probe the scheduler's and workers' event loops: their oversleeps over 4 ms, running or "
                        "queued for a core (the module's docstring); costs CPU of its own")
    p.add_argument("--metrics", action="store_true",
                   help="workers serve /metrics; compare their fire-lag histogram with the figures")
    run_storages(p.parse_args(), measure)


if __name__ == "__main__":
    main()
