"""Peers: huey, taskiq and dramatiq beside distsched's single mode, on this machine, in the same minutes.

    python benchmarks/peers.py [-n 20000] [--runs 3] [--peers huey,taskiq,dramatiq,skeleton,skeleton-asyncio]
        [--venv DIR] [--transport tcp|unix] [--json]

Issue 13 sets its single-mode targets as multiples of the fastest peer "measured here", and
this VM's speed moves from one session (and minute) to the next: a figure means something only
beside the peers' figures of the same minutes. Per run, alternating, each on a redis-server of
its own:

- **distsched**: ``throughput.py``'s single mode (1 scheduler + 2 worker processes; a
  sequential ``await app.submit("noop", i)``), enqueue only and end to end;
- **huey** (``RedisHuey``, no result store): enqueue only, N sequential ``noop(i)`` calls
  (huey's client is synchronous redis-py); end to end, one ``huey_consumer -k process -w 2``
  (a consumer process and two worker processes);
- **taskiq** (``taskiq-redis``'s ``ListQueueBroker``): enqueue only, N sequential
  ``await noop.kiq(i)``; end to end, one ``taskiq worker --workers 2``;
- **dramatiq** (``RedisBroker``, its default middleware): enqueue only, N sequential
  ``noop.send(i)`` (synchronous redis-py, as huey); end to end, one ``dramatiq
  --processes 2`` (two worker processes of dramatiq's default 8 threads each);
- **skeleton** and **skeleton-asyncio**, not peers but a bound: distsched's own process
  layout with nothing kept (``SKELETON_APP``). A sequential producer ``LPUSH``es one JSON
  task per round trip (synchronous redis-py, as huey's and dramatiq's producers); a leader
  process pops the ready list in batches of up to 100 (``BLMPOP``), decodes each task,
  deals them in turn to the two workers' own lists in one pipeline, and pops and decodes
  the workers' results; two worker processes pop their own list in batches of up to 100,
  run each task (its ``INCR``) and push the batch's results in one ``LPUSH``. The leader
  and workers use redis-py's blocking client (``skeleton``) or its asyncio client
  (``skeleton-asyncio``, as distsched's processes). No task state, history, fencing,
  signing, retry, timeout or concurrency within a worker: what a design that puts a
  leader between the producer and the workers and reports back to it (design.md) costs
  at least here, in Python with redis-py. distsched's ratio to each is printed beside the
  ratio to the fastest peer (neither counts as a peer), and their CPU per task by process
  (producer, leader, each worker, redis-server).

A peer's task does one Redis write (``INCR``) by which the benchmark sees it ran; the end to
end time runs from the first enqueue until the counter reads N (polled every 2 ms). The peers
keep no task state, history or results: a peer's task is about 3 Redis commands, a distsched
task about 24 (docs/performance.md); distsched's task does the same write (``throughput.py``'s
``--task-write on``). Printed: the median run of each, with the CPU microseconds per task of
all its processes in the end-to-end run (a peer: the producer, the consumer and every process
under it, redis-server; distsched: the submitter, the scheduler, both workers, redis-server),
and distsched's ratio to the fastest peer, enqueue only and end to end. ``--transport unix``:
every system, its producer, consumers and tasks reach redis-server through its Unix socket
(distsched ``redis+unix://``, the peers redis-py's ``unix://``) instead of loopback TCP.

The peers are installed, pinned (``PINS``), into a virtual environment of their own
(``--venv``, default ``~/.cache/distsched-bench/peers-<hash of the pins>``, made on first use
with pip: it needs the package index once), never into distsched's. Exits 3 when that
install fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

from _common import median_run, parser, report

from distsched.testing.redis_server import RedisServer

#: The peers' packages, pinned: the figures of docs/performance.md were taken with these.
PINS = ("huey==3.5.4", "taskiq==0.13.0", "taskiq-redis==1.2.4", "dramatiq==2.2.1", "redis==8.2.0",
        "hiredis==3.5.0")
PEERS = ("huey", "taskiq", "dramatiq")
#: Run like peers, compared with apart: the bound of a leader-in-the-path layout (above).
SKELETONS = ("skeleton", "skeleton-asyncio")
#: The exit status when the peers cannot be installed (no package index, say).
NO_PEERS = 3

HUEY_APP = '''
import os
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ["PEER_REDIS_URL"], results=False)


@huey.task()
def noop(i):
    huey.storage.conn.incr("done")
'''

TASKIQ_APP = '''
import os
import redis.asyncio as aioredis
from taskiq_redis import ListQueueBroker

URL = os.environ["PEER_REDIS_URL"]
broker = ListQueueBroker(URL)
_conn = None


@broker.task
async def noop(i):
    global _conn
    if _conn is None:
        _conn = aioredis.Redis.from_url(URL)
    await _conn.incr("done")
'''

DRAMATIQ_APP = '''
import os
import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["PEER_REDIS_URL"]
dramatiq.set_broker(RedisBroker(url=URL))
_conn = redis.Redis.from_url(URL)


@dramatiq.actor
def noop(i):
    _conn.incr("done")
'''

SKELETON_APP = '''
"""The skeleton's consumer: one leader and two worker processes (peers.py's docstring), with
redis-py's blocking client, or with its asyncio client given ``asyncio``. Writes the
processes' pids by role to ``skeleton.pids``."""
import asyncio
import json
import multiprocessing
import os
import signal
import sys

import redis
import redis.asyncio

URL = os.environ["PEER_REDIS_URL"]
WORKERS = 2


def deal(items, queues, turn):
    """The tasks read (a leader reads a task to choose its worker) and dealt in turn."""
    dealt = [[] for _ in queues]
    for raw in items:
        json.loads(raw)
        dealt[turn].append(raw)
        turn = (turn + 1) % WORKERS
    return [(queue, batch) for queue, batch in zip(queues, dealt) if batch], turn


def leader():
    r = redis.Redis.from_url(URL)
    queues, turn = [f"w:{k}" for k in range(WORKERS)], 0
    while True:
        got = r.blmpop(1, 2, "ready", "results", direction="RIGHT", count=100)
        if not got:
            continue
        key, items = got
        if key == b"results":
            for raw in items:
                json.loads(raw)  # each outcome read; nothing is kept
            continue
        batches, turn = deal(items, queues, turn)
        pipe = r.pipeline(transaction=False)
        for queue, batch in batches:
            pipe.lpush(queue, *batch)
        pipe.execute()


def worker(k):
    r = redis.Redis.from_url(URL)
    own = redis.Redis.from_url(URL)  # the task's own connection, as a peer's task has
    while True:
        got = r.blmpop(1, 1, f"w:{k}", direction="RIGHT", count=100)
        if not got:
            continue
        results = []
        for raw in got[1]:
            task = json.loads(raw)
            own.incr("done")  # the task
            results.append(json.dumps({"id": task["id"], "ok": True}))
        r.lpush("results", *results)


async def aleader():
    r = redis.asyncio.Redis.from_url(URL)
    queues, turn = [f"w:{k}" for k in range(WORKERS)], 0
    while True:
        got = await r.blmpop(1, 2, "ready", "results", direction="RIGHT", count=100)
        if not got:
            continue
        key, items = got
        if key == b"results":
            for raw in items:
                json.loads(raw)
            continue
        batches, turn = deal(items, queues, turn)
        pipe = r.pipeline(transaction=False)
        for queue, batch in batches:
            pipe.lpush(queue, *batch)
        await pipe.execute()


async def aworker(k):
    r = redis.asyncio.Redis.from_url(URL)
    own = redis.asyncio.Redis.from_url(URL)
    while True:
        got = await r.blmpop(1, 1, f"w:{k}", direction="RIGHT", count=100)
        if not got:
            continue
        results = []
        for raw in got[1]:
            task = json.loads(raw)
            await own.incr("done")
            results.append(json.dumps({"id": task["id"], "ok": True}))
        await r.lpush("results", *results)


if __name__ == "__main__":
    if sys.argv[1:] == ["asyncio"]:
        roles = [("leader", lambda: asyncio.run(aleader()))]
        roles += [(f"worker{k + 1}", lambda k=k: asyncio.run(aworker(k))) for k in range(WORKERS)]
    else:
        roles = [("leader", leader)] + [(f"worker{k + 1}", lambda k=k: worker(k)) for k in range(WORKERS)]
    fork = multiprocessing.get_context("fork")  # the roles are closures: not picklable
    procs = {name: fork.Process(target=run, daemon=True) for name, run in roles}
    for proc in procs.values():
        proc.start()
    with open("skeleton.pids", "w") as f:
        json.dump({name: proc.pid for name, proc in procs.items()}, f)
    # SIGTERM: exit, and multiprocessing ends the daemonic children (they keep the default)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for proc in procs.values():
        proc.join()
'''

#: Run in the peers' environment: ``driver.py <peer> <n>`` prints one JSON object.
DRIVER = '''
import asyncio, json, os, subprocess, sys, time
import redis

peer, n = sys.argv[1], int(sys.argv[2])
r = redis.Redis.from_url(os.environ["PEER_REDIS_URL"])
CONSUMER = {
    "huey": [sys.executable, "-m", "huey.bin.huey_consumer", "huey_app.huey", "-k", "process", "-w", "2"],
    "taskiq": [sys.executable, "-m", "taskiq", "worker", "taskiq_app:broker", "--workers", "2"],
    "dramatiq": [sys.executable, "-m", "dramatiq", "dramatiq_app", "--processes", "2"],
    "skeleton": [sys.executable, "skeleton_app.py"],
    "skeleton-asyncio": [sys.executable, "skeleton_app.py", "asyncio"],
}[peer]


def tree_cpu(root):
    """CPU seconds (user + system) of ``root`` and every process under it (Linux /proc)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            parent[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += parent.get(pid, (0, 0.0))[1]
        todo += [child for child, (ppid, _) in parent.items() if ppid == pid]
    return total


def running(pid, deadline):
    """Whether ``pid`` still runs (a zombie does not) at ``deadline``, polled every 10 ms."""
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:  # gone
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.01)


def redis_cpu():
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def wait_done(deadline):
    while int(r.get("done") or 0) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{peer}: {int(r.get('done') or 0)} of {n} tasks ran within the time allowed")
        time.sleep(0.002)


def start_consumer():
    r.flushall()
    proc = subprocess.Popen(CONSUMER, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


async def main():
    if peer == "huey":
        from huey_app import noop
        async def submit(i):
            noop(i)
    elif peer == "dramatiq":
        from dramatiq_app import noop
        async def submit(i):
            noop.send(i)
    elif peer.startswith("skeleton"):
        import uuid
        async def submit(i):
            r.lpush("ready", json.dumps({"id": uuid.uuid4().hex, "function": "noop", "args": [i]}))
    else:
        from taskiq_app import broker, noop
        await broker.startup()
        async def submit(i):
            await noop.kiq(i)
    r.flushall()
    await submit(-1)  # warm: the connection
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(n):
        await submit(i)
    enqueue = n / (time.perf_counter() - start)
    enqueue_cpu = (time.process_time() - cpu0) / n * 1e6
    proc = start_consumer()
    roles = {"consumer": proc.pid}
    try:
        # ready: a warm-up task has run (the consumer and its workers are up)
        await submit(-1)
        deadline = time.monotonic() + 30
        while int(r.get("done") or 0) < 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{peer}: the consumer did not start")
            time.sleep(0.01)
        r.set("done", 0)
        # the consumer's processes: the skeleton's by role, a peer's as one tree
        if peer.startswith("skeleton"):
            with open("skeleton.pids") as f:
                roles = json.load(f)
        cpu0 = (time.process_time(), *(tree_cpu(pid) for pid in roles.values()), redis_cpu())
        start = time.perf_counter()
        for i in range(n):
            await submit(i)
        wait_done(time.monotonic() + 120)
        end_to_end = n / (time.perf_counter() - start)
        cpu1 = (time.process_time(), *(tree_cpu(pid) for pid in roles.values()), redis_cpu())
        names = ("producer", *roles, "redis")
        cpu = {name: round((b - a) / n * 1e6) for name, a, b in zip(names, cpu0, cpu1)}
    finally:
        proc.terminate()
        proc.wait(10)
    # the consumer's own processes end with it (a leftover would load the next system's run)
    left = [pid for pid in roles.values() if pid != proc.pid and running(pid, time.monotonic() + 5)]
    for pid in left:
        os.kill(pid, 9)
    print(json.dumps({"enqueue_per_s": round(enqueue, 1), "enqueue_cpu_us_per_submit": round(enqueue_cpu, 1),
                      "tasks_per_s": round(end_to_end, 1), "cpu_us_per_task": cpu,
                      "cpu_us_per_task_all": sum(cpu.values()), "left_running": len(left)}))


asyncio.run(main())
'''


def peers_python(where: Path | None) -> Path:
    """The Python of the peers' environment, made (and the PINS installed) on first use."""
    tag = hashlib.sha256(" ".join(PINS).encode()).hexdigest()[:12]
    home = where or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distsched-bench" / f"peers-{tag}"
    python = home / "bin" / "python"
    stamp = home / "pins.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return python
    print(f"installing the peers into {home} ({', '.join(PINS)})", file=sys.stderr, flush=True)
    venv.create(home, with_pip=True, clear=True)
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"peers: could not install {', '.join(PINS)} into {home}:\n{proc.stderr.strip()[-2000:]}",
              file=sys.stderr)
        sys.exit(NO_PEERS)
    stamp.write_text("\n".join(PINS))
    return python


def peer_run(python: Path, peer: str, n: int, transport: str = "tcp") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="distsched-peers-") as tmp, RedisServer() as server:
        Path(tmp, "huey_app.py").write_text(HUEY_APP)
        Path(tmp, "taskiq_app.py").write_text(TASKIQ_APP)
        Path(tmp, "dramatiq_app.py").write_text(DRAMATIQ_APP)
        Path(tmp, "skeleton_app.py").write_text(SKELETON_APP)
        Path(tmp, "driver.py").write_text(DRIVER)
        url = f"unix://{server.socket_path}" if transport == "unix" else server.url  # (redis-py's URL forms)
        env = {**os.environ, "PEER_REDIS_URL": url, "PYTHONPATH": tmp}
        proc = subprocess.run([str(python), "driver.py", peer, str(n)], cwd=tmp, env=env, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"peers: {peer} failed:\n{proc.stdout}{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the median run by end-to-end rate, with every run's rates."""
    figures = dict(median_run(runs))
    figures["runs"] = [r["tasks_per_s"] for r in runs]
    figures["enqueue_runs"] = [r["enqueue_per_s"] for r in runs]
    figures["enqueue_median"] = statistics.median(figures["enqueue_runs"])
    figures["left_running"] = sum(r.get("left_running", 0) for r in runs)  # killed after their run
    return figures


def ratio(figures: dict[str, Any], figure: str, other: str) -> float:
    """distsched's ``figure`` over ``other``'s."""
    return round(figures["distsched"][figure] / figures[other][figure], 2)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=20_000, help="tasks per run and system (default 20000)")
    p.add_argument("--runs", type=int, default=3, help="runs of each, alternated; the median is reported (default 3)")
    p.add_argument("--peers", default=",".join((*PEERS, *SKELETONS)),
                   help=f"which peers, comma-separated, and the skeletons (distsched's layout with nothing kept, "
                        f"blocking or asyncio client: the module's docstring) (default {','.join((*PEERS, *SKELETONS))})")
    p.add_argument("--venv", type=Path, default=None,
                   help="the peers' virtual environment (default ~/.cache/distsched-bench/peers-<hash of the pins>)")
    import throughput  # the same single mode as throughput.py

    throughput.add_transport(p)
    args = p.parse_args()
    throughput.TRANSPORT = args.transport
    peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = [name for name in peers if name not in (*PEERS, *SKELETONS)]
    if unknown or not peers:
        p.error(f"--peers: {', '.join(unknown) or 'none given'}: the peers are {', '.join(PEERS)}, and "
                f"{' and '.join(SKELETONS)}")
    if args.storage != "redis":
        p.error("--storage: the peers run on Redis only")
    python = peers_python(args.venv)
    runs: dict[str, list[dict[str, Any]]] = {"distsched": [], **{name: [] for name in peers}}
    for _ in range(args.runs):
        own_run = throughput.one_run(args.n, "single")
        own_run["cpu_us_per_task_all"] = sum(own_run["cpu_us_per_task"].values())
        runs["distsched"].append(own_run)
        for name in peers:
            runs[name].append(peer_run(python, name, args.n, args.transport))
    own = runs["distsched"]
    if any(r["lost"] or r["duplicated"] for r in own):
        report({"distsched": own}, f"distsched lost or duplicated tasks: {own}", args.json)
        sys.exit(1)
    figures: dict[str, Any] = {"n": args.n, "pins": list(PINS), "transport": args.transport}
    for name, got in runs.items():
        m = summary(got)
        figures[name] = {k: m[k] for k in ("tasks_per_s", "runs", "enqueue_median", "enqueue_runs",
                                           "cpu_us_per_task_all", "cpu_us_per_task", "left_running")}
    real_peers = [name for name in peers if name not in SKELETONS]
    tail = ""
    if real_peers:
        fastest = max(real_peers, key=lambda name: figures[name]["tasks_per_s"])
        fastest_enqueue = max(real_peers, key=lambda name: figures[name]["enqueue_median"])
        figures["fastest_peer"] = fastest
        figures["ratio_to_fastest_peer"] = ratio(figures, "tasks_per_s", fastest)
        figures["enqueue_ratio_to_fastest_peer"] = ratio(figures, "enqueue_median", fastest_enqueue)
        tail += (f"\ndistsched / fastest peer: end to end {figures['ratio_to_fastest_peer']} ({fastest}), "
                 f"enqueue only {figures['enqueue_ratio_to_fastest_peer']} ({fastest_enqueue})")
    for name in (skeleton for skeleton in SKELETONS if skeleton in peers):
        figures[f"ratio_to_{name}"] = ratio(figures, "tasks_per_s", name)
        figures[f"enqueue_ratio_to_{name}"] = ratio(figures, "enqueue_median", name)
        tail += (f"\ndistsched / {name}: end to end {figures[f'ratio_to_{name}']}, "
                 f"enqueue only {figures[f'enqueue_ratio_to_{name}']}")
    figures["lost"] = sum(r["lost"] for r in own)
    figures["duplicated"] = sum(r["duplicated"] for r in own)
    line = "\n".join(
        f"peers {name}: {figures[name]['tasks_per_s']} tasks/s end to end (runs {figures[name]['runs']}); "
        f"enqueue only {figures[name]['enqueue_median']}/s (runs {figures[name]['enqueue_runs']}); "
        f"CPU {figures[name]['cpu_us_per_task_all']} us per task in all processes "
        f"({', '.join(f'{k} {v}' for k, v in figures[name]['cpu_us_per_task'].items())})"
        + (f"; {figures[name]['left_running']} of its processes outlived their consumer (killed)"
           if figures[name]["left_running"] else "")
        for name in runs)
    line += f"{tail}\ndistsched lost {figures['lost']}, duplicated {figures['duplicated']}"
    report(figures, line, args.json)


if __name__ == "__main__":
    main()
