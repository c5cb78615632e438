"""Chaos harness for distsched on Redis (issue 7, "Reliability under faults").

One run = one throwaway ``redis-server`` (AOF ``appendfsync always``), 3 ``distsched scheduler``
and 4 ``distsched worker`` processes (real subprocesses), a workload (20 jobs firing every
second with ``misfire = "fire-all"`` plus a stream of one-off tasks submitted in bulk through
``DistributeSchedule.submit_many``), and a seeded schedule of faults:

* ``kill -9`` of the current leader and of workers, each restarted after a short delay;
* ``SIGSTOP`` of the leader and of a worker for longer than their TTLs, then ``SIGCONT``;
* Redis ``SHUTDOWN NOSAVE`` / ``kill -9`` then restart on the same port, and ``DEBUG SLEEP``;
* a network cut between scheduler ``s1`` and Redis through a TCP proxy of ours (modes
  ``drop``: reset every connection and refuse new ones; ``blackhole``: hold every byte until
  the cut heals, like a partition that TCP rides out; ``delay``: add latency each way).

Every scheduler reaches Redis through its own proxy (only ``s1``'s is ever cut; the others
just pass bytes), so the harness can count the writes the store refused as ``FENCED`` on the
wire - including those a paused or partitioned ex-leader sent and no longer waited for.

Every process loads an observer plugin (``-p chaos_observer``, written into the run
directory) whose ``distsched_event`` hook appends each event as one JSON line to a per-process
history file. After the faults the harness quiesces (faults stop, jobs are paused, every task
must become terminal), snapshots the store, stops everything with SIGTERM and then checks the
history, the logs and the snapshot **offline** (:func:`check`), printing one line per property.

Only processes started here are ever signalled, by their own pid; all traffic is on 127.0.0.1.
Entry point: ``python tests/chaos/run.py --profile smoke|soak [--seed N] [--json]``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
NAMESPACE = "chaos"

# Short timings so faults resolve fast (the CLI options of `distsched scheduler` / `worker`).
LEASE_TTL = 2.0
RENEW_INTERVAL = 0.5
HEARTBEAT_TTL = 2.0
HEARTBEAT_INTERVAL = 0.3
#: EngineConfig.timeout_grace (not a CLI option; the engine default).
TIMEOUT_GRACE = 5.0
#: The leader's housekeeping (reap, timeouts) period: min(heartbeat_interval, 1 s), where the
#: scheduler CLI sets heartbeat_interval = min(2, heartbeat_ttl / 3).
LEADER_PASS = min(min(2.0, HEARTBEAT_TTL / 3), 1.0)
TAKEOVER_BOUND = LEASE_TTL + RENEW_INTERVAL + 1.0
REDISPATCH_BOUND = HEARTBEAT_TTL + 1.0 + LEADER_PASS
#: A Redis fault is recovered when a task is dispatched again within this many seconds.
RECOVERY_BOUND = 15.0
#: Tolerance between the server-time clocks of two processes (each measures the offset once a
#: minute; see RedisStorage.clock).
CLOCK_TOLERANCE = 0.25

SCHEDULERS = ("s1", "s2", "s3")
WORKERS = ("w1", "w2", "w3", "w4")
#: The process whose Redis connection goes through the proxy (the network-cut target).
PROXIED = "s1"
JOBS = 20
#: Stream tasks submitted at once right before a leader pause or a cut (see Run._busy_leader).
BURST = 400
WORKER_CONCURRENCY = 8


# -- profiles ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    name: str
    #: Seconds of fault injection (faults start after the warm-up, are sequential, and a fault
    #: that would end past the window is not started).
    window: float
    #: One-off tasks submitted (a stream over the window).
    tasks: int
    #: Fault counts by kind; the order is shuffled by the seed (the first cut stays first).
    faults: dict[str, int]
    #: Longest wait for everything to become terminal after the faults.
    quiesce: float
    warmup: float = 4.0
    #: Fractions of the stream that hang past a short timeout / run long (to be caught by
    #: kills and pauses) - the rest take 0-50 ms.
    hang_fraction: float = 0.015
    block_fraction: float = 0.005
    slow_fraction: float = 0.04


PROFILES = {
    "smoke": Profile(
        name="smoke", window=72.0, tasks=2400, quiesce=45.0,
        faults={"cut-blackhole": 1, "cut-delay": 1, "leader-kill": 2, "worker-kill": 2, "leader-stop": 1,
                "leader-zombie": 1, "worker-stop": 1, "redis-kill": 1, "redis-shutdown": 1, "redis-sleep": 1},
    ),
    "soak": Profile(
        name="soak", window=450.0, tasks=12000, quiesce=90.0,
        faults={"cut-blackhole": 3, "cut-drop": 2, "cut-delay": 2, "leader-kill": 10, "worker-kill": 12,
                "leader-stop": 6, "leader-zombie": 4, "worker-stop": 6, "redis-kill": 4, "redis-shutdown": 3,
                "redis-sleep": 3},
    ),
    # A short run of zombie-leader pauses only: with --mutate no-fence it checks that the
    # harness itself catches a leader write accepted from a superseded term.
    "fence-check": Profile(name="fence-check", window=16.0, tasks=300, quiesce=15.0, warmup=2.0,
                           faults={"leader-zombie": 2}),
}


# -- files written into the run directory -------------------------------------------------
OBSERVER = '''\
"""distsched observer plugin written by the chaos harness: one JSON line per event."""
import json
import os
import threading
import time

from distsched import hookimpl

_NAME = os.environ.get("CHAOS_PROC", "?")
_PATH = os.path.join(os.environ["CHAOS_DIR"], "history", f"{_NAME}-{os.getpid()}.jsonl")
_FILE = open(_PATH, "a", buffering=1, encoding="utf-8")
_LOCK = threading.Lock()


@hookimpl
def distsched_event(event):
    data = event.to_dict()
    data["proc"] = _NAME
    data["pid"] = os.getpid()
    data["wall"] = time.time()
    line = json.dumps(data, default=str) + "\\n"
    with _LOCK:
        _FILE.write(line)
        _FILE.flush()
'''

TASKS = '''\
"""Task functions of the chaos workload (imported by the workers with --import chaos_tasks)."""
import asyncio
import os
import random
import threading
import time

from distsched import task

_PATH = os.path.join(os.environ["CHAOS_DIR"], "exec", f"{os.environ.get('CHAOS_PROC', 'x')}-{os.getpid()}.log")
_FILE = open(_PATH, "a", buffering=1, encoding="utf-8")
_LOCK = threading.Lock()


def _log(mark, tag):
    with _LOCK:
        _FILE.write(f"{mark} {tag} {time.time():.6f}\\n")
        _FILE.flush()


@task
def chaos_work(tag, ms):
    """The stream's task: records its execution, then takes `ms` milliseconds."""
    _log("S", tag)
    time.sleep(ms / 1000.0)
    _log("F", tag)
    return tag


@task
def chaos_tick(job):
    """The jobs' task: 0-20 ms."""
    time.sleep(random.random() * 0.02)
    return job


@task
async def chaos_hang(seconds):
    """Hangs far past its timeout (cancellable: the worker's wait_for cancels it)."""
    await asyncio.sleep(seconds)


@task
def chaos_block(seconds):
    """Blocks a thread past its timeout (not cancellable: the thread finishes later)."""
    time.sleep(seconds)
'''


MUTANTS = {
    # The fence check removed from every leader write (fire, save, dispatch, settle, reap); lease
    # renewal still checks the lease. For checking the harness itself: it must catch this.
    "no-fence": '''\
"""Test-only mutation loaded by the chaos harness (--mutate no-fence) into the schedulers:
the leader-write scripts lose their fence check. Never load this outside the harness."""
import distsched_redis.scripts as _scripts

_original = _scripts._read
_FENCE = "if not fence_ok(ARGV[2]) then return fenced_reply() end"


def _read(rel):
    text = _original(rel)
    if rel in ("dispatch.lua", "fire.lua", "save.lua", "settle.lua", "reap.lua"):
        assert _FENCE in text, rel
        text = text.replace(_FENCE, "-- (fence removed by the chaos mutant)")
    return text


_scripts._read = _read
_scripts.source.cache_clear()
''',
}


def jobs_toml() -> str:
    out = ['[worker]\nimports = ["chaos_tasks"]\n']
    for i in range(JOBS):
        out.append(textwrap.dedent(f'''
            [[jobs]]
            name = "tick-{i:02d}"
            every = "1s"
            target = "chaos_tick"
            args = ["tick-{i:02d}"]
            timeout = "10s"
            misfire = "fire-all"
        '''))
    return "".join(out)


# -- small helpers -------------------------------------------------------------------------
def now() -> float:
    return time.time()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def fmt(value: float | None, unit: str = "s") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSONL file; a torn last line (kill -9 mid-write) is skipped."""
    out = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# -- the TCP proxy -------------------------------------------------------------------------
def resp_end(buf: bytearray, pos: int = 0) -> int:
    """Offset just past the RESP2/RESP3 value starting at ``pos``; -1 when incomplete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return -1
    kind = buf[pos:pos + 1]
    if kind in (b"+", b"-", b":", b",", b"#", b"_", b"("):
        return nl + 2
    n = int(buf[pos + 1:nl])
    if kind in (b"$", b"=", b"!"):
        end = nl + 2 + n + 2 if n >= 0 else nl + 2
        return end if end <= len(buf) else -1
    if kind in (b"*", b"~", b">", b"%", b"|"):
        p = nl + 2
        for _ in range(max(0, n) * (2 if kind in (b"%", b"|") else 1)):
            p = resp_end(buf, p)
            if p < 0:
                return -1
        return p
    raise ValueError(f"not RESP: {bytes(buf[pos:pos + 20])!r}")


def resp_head(buf: bytearray, end: int, count: int) -> list[bytes]:
    """The first ``count`` bulk strings of the array ``buf[:end]`` (fewer if it is not one)."""
    out: list[bytes] = []
    if buf[:1] != b"*":
        return out
    p = buf.find(b"\r\n") + 2
    while len(out) < count and p < end and buf[p:p + 1] == b"$":
        nl = buf.find(b"\r\n", p)
        n = int(buf[p + 1:nl])
        out.append(bytes(buf[nl + 2:nl + 2 + n]))
        p = nl + 2 + n + 2
    return out


class WireLog:
    """Pairs each client command with its reply (RESP is in order per connection) and records
    every fenced leader write - ``EVALSHA <sha> 1 <ns>:op:<id> <ns> <node|term> ...`` - with
    its outcome (``OK`` accepted, ``FENCED`` refused) and the time Redis answered."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.c_buf = bytearray()
        self.s_buf = bytearray()
        self.pending: deque[str | None] = deque()
        self.broken = False

    def client(self, chunk: bytes) -> None:
        self._guard(self._client, chunk)

    def server(self, chunk: bytes) -> None:
        self._guard(self._server, chunk)

    def _guard(self, parse: Any, chunk: bytes) -> None:
        if self.broken:
            return
        try:
            parse(chunk)
        except Exception:  # never let the log break the forwarding
            self.broken = True
            self.proxy.unparsed += 1

    def _client(self, chunk: bytes) -> None:
        self.c_buf += chunk
        while self.c_buf:
            end = resp_end(self.c_buf)
            if end < 0:
                return
            head = resp_head(self.c_buf, end, 6)
            token = None
            if len(head) == 6 and head[0].upper() == b"EVALSHA" and head[2] == b"1" and b":op:" in head[3] \
                    and b"|" in head[5]:
                token = head[5].decode("utf-8", "replace")
            self.pending.append(token)
            del self.c_buf[:end]

    def _server(self, chunk: bytes) -> None:
        self.s_buf += chunk
        while self.s_buf:
            end = resp_end(self.s_buf)
            if end < 0:
                return
            token = self.pending.popleft() if self.pending else None
            if token is not None:
                head = resp_head(self.s_buf, end, 1)
                outcome = head[0].decode() if head else bytes(self.s_buf[:min(end, 40)]).decode("utf-8", "replace")
                self.proxy.writes.append((now(), token, outcome))
                if outcome == "FENCED":
                    self.proxy.fenced.append(now())
            del self.s_buf[:end]


class Proxy:
    """A loopback TCP proxy in front of Redis for one process.

    Modes: ``pass``; ``drop`` (reset every connection, refuse new ones); ``blackhole`` (hold
    every byte, in both directions, until the mode changes - a partition that TCP rides out;
    new connections are accepted but not connected upstream meanwhile); ``delay`` (each chunk
    is forwarded ``delay`` seconds after it arrived, in order, each way).

    It also logs every fenced leader write passing through (:class:`WireLog`): its token
    (node and term) and whether the store accepted it or refused it as FENCED - seen on the
    wire even when the client stopped waiting for the reply.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.mode = "pass"
        self.delay = 0.0
        self.fenced: list[float] = []
        #: (time Redis answered, "node|term", "OK" / "FENCED" / error) per fenced leader write
        self.writes: list[tuple[float, str, str]] = []
        self.unparsed = 0
        self.connections = 0
        self.refused = 0
        self.reset = 0
        self._changed = asyncio.Event()
        self._conns: set[_ProxyConn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._hold_marker: bytes | None = None
        self.hold_caught = asyncio.Event()
        self._hold_release = asyncio.Event()
        self.held: list[float] = []

    def arm_hold(self, marker: bytes) -> asyncio.Event:
        """Hold (do not forward) the next client chunk that contains ``marker`` until
        :meth:`release_hold`: one request stuck in the network. Returns an event set once one
        is held."""
        self._hold_marker = marker
        self.hold_caught = asyncio.Event()
        self._hold_release = asyncio.Event()
        return self.hold_caught

    def release_hold(self) -> None:
        self._hold_marker = None
        self._hold_release.set()

    async def _maybe_hold(self, chunk: bytes) -> None:
        marker = self._hold_marker
        if marker is None or marker not in chunk:
            return
        self._hold_marker = None
        self.held.append(now())
        release = self._hold_release
        self.hold_caught.set()
        await release.wait()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        assert mode in ("pass", "drop", "blackhole", "delay"), mode
        self.mode, self.delay = mode, delay
        if mode == "drop":
            for conn in list(self._conns):
                conn.abort()
                self.reset += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_change(self, timeout: float | None = None) -> None:
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "drop":
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        conn = _ProxyConn(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)

    async def close(self) -> None:
        for conn in list(self._conns):
            conn.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def stats(self) -> dict[str, Any]:
        return {"port": self.port, "connections": self.connections, "refused": self.refused,
                "reset": self.reset, "fenced_replies": len(self.fenced), "fenced_at": self.fenced,
                "leader_writes": self.writes, "unparsed_connections": self.unparsed}


class _ProxyConn:
    def __init__(self, proxy: Proxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.c_reader, self.c_writer = reader, writer
        self.u_reader: asyncio.StreamReader | None = None
        self.u_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        for w in (self.c_writer, self.u_writer):
            if w is not None:
                w.transport.abort()
        for t in self.tasks:
            t.cancel()

    async def _release(self, received: float) -> None:
        """Wait until a chunk that arrived at ``received`` may go on, per the current mode."""
        proxy = self.proxy
        while True:
            if proxy.mode == "blackhole":
                await proxy.wait_change()
                continue
            if proxy.mode == "delay":
                due = received + proxy.delay - time.monotonic()
                if due > 0:
                    await proxy.wait_change(due)
                    continue
            return

    async def run(self) -> None:
        c2s: deque[tuple[float, bytes | None]] = deque()
        s2c: deque[tuple[float, bytes | None]] = deque()
        c2s_ready, s2c_ready = asyncio.Event(), asyncio.Event()
        self.wire = WireLog(self.proxy)
        reader_c = asyncio.create_task(self._read(self.c_reader, c2s, c2s_ready, parse=self.wire.client))
        self.tasks.append(reader_c)
        try:
            # Connect upstream only when the network lets the SYN through.
            await self._release(time.monotonic())
            if self.aborted:
                return
            try:
                self.u_reader, self.u_writer = await asyncio.open_connection(LOOPBACK, self.proxy.upstream_port)
            except OSError:
                self.abort()
                return
            reader_s = asyncio.create_task(self._read(self.u_reader, s2c, s2c_ready, parse=self.wire.server))
            to_s = asyncio.create_task(self._write(c2s, c2s_ready, self.u_writer, upstream=True))
            to_c = asyncio.create_task(self._write(s2c, s2c_ready, self.c_writer))
            self.tasks += [reader_s, to_s, to_c]
            # Until both directions are closed (each side half-closes the other), or one
            # side went away and the other has had time to answer what it held.
            await asyncio.wait({to_s, to_c}, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait({to_s, to_c, reader_s}, timeout=30)
        except asyncio.CancelledError:
            pass
        finally:
            for t in self.tasks:
                t.cancel()
            for w in (self.c_writer, self.u_writer):
                if w is not None:
                    w.transport.abort() if self.aborted else w.close()

    async def _read(self, reader: asyncio.StreamReader, queue: deque, ready: asyncio.Event, *,
                    parse: Any = None) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                if chunk and parse is not None:
                    # Replies are logged as Redis sends them: the outcome happened at the
                    # store, whether or not the client still waits for this reply.
                    parse(chunk)
                queue.append((time.monotonic(), chunk or None))
                ready.set()
                if not chunk:
                    return
        except (ConnectionError, OSError):
            queue.append((time.monotonic(), None))
            ready.set()

    async def _write(self, queue: deque, ready: asyncio.Event, writer: asyncio.StreamWriter, *,
                     upstream: bool = False) -> None:
        try:
            while True:
                while not queue:
                    ready.clear()
                    await ready.wait()
                received, chunk = queue[0]
                await self._release(received)
                if upstream and chunk is not None:
                    await self.proxy._maybe_hold(chunk)
                queue.popleft()
                if chunk is None:
                    # Half-close: the peer still gets (and answers) what was sent before.
                    if writer.can_write_eof():
                        writer.write_eof()
                    else:
                        writer.close()
                    return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            return


# -- processes -----------------------------------------------------------------------------
class Proc:
    """One distsched process (a scheduler or a worker); restarted as a new generation."""

    def __init__(self, cluster: Cluster, name: str, role: str) -> None:
        self.cluster = cluster
        self.name = name
        self.role = role
        self.gen = 0
        self.popen: subprocess.Popen | None = None
        self.should_run = False
        self.stopped = False  # SIGSTOPped by us
        self.pids: list[int] = []

    @property
    def node_id(self) -> str:
        return f"{self.name}-g{self.gen}"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def args(self) -> list[str]:
        c = self.cluster
        url = c.url_of(self.name)
        head = [sys.executable, "-m", "distsched", "-v", "-p", "chaos_observer"]
        if self.role == "scheduler" and c.mutant:
            head += ["-p", "chaos_mutant"]
        if self.role == "scheduler":
            return head + ["scheduler", "--storage", url, "--jobs", str(c.dir / "jobs.toml"),
                           "--node-id", self.node_id, "--lease-ttl", str(LEASE_TTL),
                           "--renew-interval", str(RENEW_INTERVAL), "--heartbeat-ttl", str(HEARTBEAT_TTL)]
        return head + ["worker", "--storage", url, "--name", self.name, "--import", "chaos_tasks",
                       "--concurrency", str(WORKER_CONCURRENCY), "--heartbeat-interval", str(HEARTBEAT_INTERVAL)]

    def start(self) -> None:
        self.gen += 1
        c = self.cluster
        log = open(c.dir / "logs" / f"{self.name}-g{self.gen}.log", "w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CHAOS_DIR": str(c.dir), "CHAOS_PROC": f"{self.name}-g{self.gen}",
               "PYTHONPATH": os.pathsep.join(p for p in (str(c.dir), os.environ.get("PYTHONPATH", "")) if p)}
        env.pop("DISTSCHED_STORAGE", None)
        self.popen = subprocess.Popen(self.args(), cwd=c.dir, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        self.pids.append(self.popen.pid)
        self.should_run = True
        self.stopped = False
        c.proc_log.write({"t": now(), "event": "start", "proc": self.name, "gen": self.gen, "pid": self.popen.pid,
                          "node_id": self.node_id if self.role == "scheduler" else None})

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)  # type: ignore[union-attr]

    def kill9(self) -> None:
        self.should_run = False
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
        if self.popen is not None:
            self.popen.wait(10)
        self.stopped = False

    def sigstop(self) -> None:
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self) -> None:
        self.signal(signal.SIGCONT)
        self.stopped = False


class Cluster:
    def __init__(self, run_dir: Path, mutant: str | None = None) -> None:
        self.dir = run_dir
        self.mutant = mutant
        if mutant:
            (run_dir / "chaos_mutant.py").write_text(MUTANTS[mutant])
        for sub in ("history", "logs", "exec"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        (run_dir / "chaos_observer.py").write_text(OBSERVER)
        (run_dir / "chaos_tasks.py").write_text(TASKS)
        (run_dir / "jobs.toml").write_text(jobs_toml())
        self.proc_log = JsonlWriter(run_dir / "procs.jsonl")
        self.redis: Any = None
        #: One proxy per scheduler; only PROXIED's is cut.
        self.proxies: dict[str, Proxy] = {}
        self.procs: dict[str, Proc] = {}
        self.url = ""

    def start_redis(self) -> None:
        from distsched.testing.redis_server import RedisServer

        self.redis = RedisServer(appendonly=True, appendfsync="always",
                                 config={"maxmemory-policy": "noeviction", "enable-debug-command": "local"})
        self.redis.start()
        self.url = self.redis.url_for(namespace=NAMESPACE)

    async def start_proxies(self) -> None:
        for name in SCHEDULERS:
            proxy = Proxy(self.redis.port)
            await proxy.start()
            self.proxies[name] = proxy

    def url_of(self, name: str) -> str:
        proxy = self.proxies.get(name)
        return self.url if proxy is None else f"redis://{LOOPBACK}:{proxy.port}/0?namespace={NAMESPACE}"

    @property
    def proxy(self) -> Proxy:
        return self.proxies[PROXIED]

    def add(self, name: str, role: str) -> Proc:
        proc = Proc(self, name, role)
        self.procs[name] = proc
        return proc

    def by_node(self, node_id: str | None) -> Proc | None:
        if not node_id:
            return None
        name = node_id.split("-g", 1)[0]
        proc = self.procs.get(name)
        return proc if proc is not None and proc.node_id == node_id else None

    def by_pid(self, pid: int) -> Proc | None:
        for proc in self.procs.values():
            if proc.pid == pid:
                return proc
        return None

    def redis_client(self, timeout: float = 5.0) -> Any:
        import redis

        return redis.Redis(host=LOOPBACK, port=self.redis.port, socket_timeout=timeout,
                           socket_connect_timeout=2.0, decode_responses=True)


# -- the run -------------------------------------------------------------------------------
@dataclass
class Fault:
    kind: str
    t0: float = 0.0
    t1: float = 0.0
    target: str | None = None
    node_id: str | None = None
    pid: int | None = None
    duration: float = 0.0
    restart_delay: float = 0.0
    t_back: float | None = None
    was_leader: bool | None = None
    mode: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Run:
    def __init__(self, profile: Profile, seed: int, run_dir: Path, *, verbose: bool = True,
                 mutant: str | None = None) -> None:
        self.profile = profile
        self.seed = seed
        self.rng = random.Random(seed)
        self.dir = run_dir
        self.verbose = verbose
        self.cluster = Cluster(run_dir, mutant)
        self.faults_log = JsonlWriter(run_dir / "faults.jsonl")
        self.acked_log = JsonlWriter(run_dir / "acked.jsonl")
        self.supervisor_log = JsonlWriter(run_dir / "supervisor.jsonl")
        self.app: Any = None
        self.election: Any = None
        self.stop_faults = False
        self.submitted = 0
        self.submit_errors = 0
        self.items: list[tuple[str, str, Any]] = []
        self._submit_lock = asyncio.Lock()
        self._submit_app: Any = None
        self.meta: dict[str, Any] = {"profile": asdict(profile), "seed": seed, "dir": str(run_dir), "mutant": mutant,
                                     "timings": {"lease_ttl": LEASE_TTL, "renew_interval": RENEW_INTERVAL,
                                                 "heartbeat_ttl": HEARTBEAT_TTL,
                                                 "heartbeat_interval": HEARTBEAT_INTERVAL,
                                                 "timeout_grace": TIMEOUT_GRACE}}

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # -- store access (the public API) -----------------------------------------------------
    async def open_client(self) -> None:
        from distsched import DistributeSchedule

        self.app = DistributeSchedule(self.cluster.url)
        await self.app.storage()
        self.election = await self.app.engine.open_election()

    async def leader(self) -> str | None:
        try:
            fence = await asyncio.wait_for(self.election.current(), 2.0)
        except Exception:
            return None
        return fence.node_id if fence is not None else None

    async def wait_leader(self, timeout: float, *, other_than: str | None = None) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = await self.leader()
            if node and node != other_than and self.cluster.by_node(node) is not None:
                return node
            await asyncio.sleep(0.1)
        return None

    # -- supervisor: restarts a process that exited on its own (counted: not expected) ------
    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for proc in self.cluster.procs.values():
                if proc.should_run and proc.popen is not None and proc.popen.poll() is not None:
                    rc = proc.popen.returncode
                    log = (self.dir / "logs" / f"{proc.name}-g{proc.gen}.log").read_text(errors="replace")
                    self.supervisor_log.write({"t": now(), "proc": proc.name, "gen": proc.gen, "rc": rc,
                                               "tail": log[-1500:]})
                    self.say(f"{proc.name}-g{proc.gen} exited on its own (rc {rc}); restarting it")
                    await asyncio.sleep(0.5)
                    proc.start()

    # -- workload --------------------------------------------------------------------------
    def workload(self) -> list[tuple[str, str, Any]]:
        from distsched.model import RetryPolicy, TaskSpec

        p = self.profile
        rng = random.Random(self.seed * 7919 + 1)
        out = []
        hang_retry = RetryPolicy(max_attempts=2, backoff="fixed", delay=0.2, jitter=0.0)
        for i in range(p.tasks):
            tid = f"c{self.seed}-{i:06d}"
            r = rng.random()
            if r < p.hang_fraction:
                kind, spec = "hang", TaskSpec(target="chaos_hang", args=(60,), timeout=0.5, retry=hang_retry)
            elif r < p.hang_fraction + p.block_fraction:
                kind, spec = "block", TaskSpec(target="chaos_block", args=(2.0,), timeout=0.5)
            elif r < p.hang_fraction + p.block_fraction + p.slow_fraction:
                kind, spec = "slow", TaskSpec(target="chaos_work", args=(tid, rng.randint(500, 2000)), timeout=30)
            else:
                kind, spec = "work", TaskSpec(target="chaos_work", args=(tid, rng.randint(0, 50)), timeout=30)
            out.append((tid, kind, spec))
        return out

    async def submitter(self, span: float) -> None:
        """Submit the stream in batches (submit_many), at a steady rate over ``span`` seconds;
        a failed batch is retried with the same ids (creation is idempotent) until it is acked."""
        from distsched import DistributeSchedule

        self._submit_app = DistributeSchedule(self.cluster.url)
        items = self.items
        rate = len(items) / span
        t0 = time.monotonic()
        try:
            while self.submitted < len(items):
                due = min(len(items), int(rate * (time.monotonic() - t0)) + 1)
                if due <= self.submitted:
                    await asyncio.sleep(0.25)
                    continue
                if not await self._submit_next(due - self.submitted):
                    await asyncio.sleep(0.5)
        finally:
            try:
                await self._submit_app.engine.close()
            except Exception:
                pass

    async def _submit_next(self, count: int) -> bool:
        """Submit the next ``count`` (at most 500) items of the stream; True when acked."""
        async with self._submit_lock:
            i = self.submitted
            batch = self.items[i:i + min(count, 500)]
            if not batch:
                return True
            try:
                await asyncio.wait_for(self._submit_app.submit_many(
                    [s for _, _, s in batch], task_ids=[t for t, _, _ in batch]), 30.0)
            except Exception as exc:
                self.submit_errors += 1
                if self.submit_errors % 5 == 1:
                    self.say(f"submit failed ({type(exc).__name__}: {exc}); retrying the same ids")
                return False
            acked = now()
            for tid, kind, _ in batch:
                self.acked_log.write({"id": tid, "kind": kind, "acked": acked})
            self.submitted = i + len(batch)
            return True

    async def burst(self, count: int) -> int:
        """Submit the next ``count`` items of the stream at once (they are taken from later in
        the stream, so the total stays the same): the leader is busy when the fault hits."""
        before = self.submitted
        while self.submitted - before < count and self.submitted < len(self.items):
            if not await self._submit_next(count - (self.submitted - before)):
                break
        return self.submitted - before

    # -- faults ----------------------------------------------------------------------------
    def schedule(self) -> list[str]:
        kinds = [k for k, n in self.profile.faults.items() for _ in range(n)]
        self.rng.shuffle(kinds)
        # The first fault is a blackhole cut of s1 while it leads (it is started first).
        if "cut-blackhole" in kinds:
            kinds.remove("cut-blackhole")
            kinds.insert(0, "cut-blackhole")
        return kinds

    def estimate(self, kind: str) -> float:
        return {"leader-kill": 6, "worker-kill": 3.5, "leader-stop": 8, "leader-zombie": 7, "worker-stop": 10,
                "redis-kill": 6,
                "redis-shutdown": 6, "redis-sleep": 7}.get(kind, 9.0)

    async def run_faults(self, started: float) -> list[Fault]:
        """Run the seeded schedule; when it is done before the window closes, run it again
        (reshuffled) until the window closes: every kind in the profile runs at least once."""
        done: list[Fault] = []
        end = started + self.profile.window
        kinds = self.schedule()
        while kinds:
            kind = kinds.pop(0)
            if not kinds and time.monotonic() + 10 < end:
                kinds = self.schedule()
            if self.stop_faults:
                break
            if time.monotonic() + self.estimate(kind) > end:
                if done and len(done) >= sum(self.profile.faults.values()):
                    break
                self.faults_log.write({"kind": kind, "skipped": "window over"})
                continue
            fault = Fault(kind=kind)
            try:
                await getattr(self, "fault_" + kind.replace("-", "_"))(fault)
            except Exception as exc:  # a fault that could not be applied is recorded, not fatal
                fault.note = f"failed: {type(exc).__name__}: {exc}"
                self.say(f"fault {kind} failed: {fault.note}")
            self.faults_log.write(asdict(fault))
            done.append(fault)
            self.say(f"fault {kind} {fault.target or ''} {fault.note}".rstrip())
            # Let it settle: a leader again, then a seeded gap before the next fault.
            await self.wait_leader(20.0)
            if kind.startswith("worker") and fault.pid:
                await self.wait_reaped(fault)
            await asyncio.sleep(self.rng.uniform(1.0, 2.5))
        return done

    async def wait_reaped(self, f: Fault, timeout: float = 15.0) -> None:
        """Poll until the leader has reaped the incarnation(s) the fault hit (so the next fault
        starts after this one's effects)."""
        old = f.extra.get("worker_ids") or []
        if not old:
            return
        storage = await self.app.storage()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ids = {w.id for w in await asyncio.wait_for(storage.workers.list_workers(), 3.0)}
                if not ids & set(old):
                    return
            except Exception:
                pass
            await asyncio.sleep(0.1)
        f.note = (f.note + "; " if f.note else "") + f"not reaped within {timeout:g}s"

    async def _worker_ids(self, pid: int | None) -> list[str]:
        try:
            storage = await self.app.storage()
            return [w.id for w in await asyncio.wait_for(storage.workers.list_workers(), 3.0) if w.pid == pid]
        except Exception:
            return []

    async def _leader_proc(self) -> Proc:
        node = await self.wait_leader(15.0)
        proc = self.cluster.by_node(node)
        if proc is None:
            raise RuntimeError(f"no leader found (current: {node})")
        return proc

    async def fault_leader_kill(self, f: Fault) -> None:
        proc = await self._leader_proc()
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        f.restart_delay = self.rng.uniform(0.5, 2.0)
        f.t0 = now()
        proc.kill9()
        await asyncio.sleep(f.restart_delay)
        proc.start()
        f.t1 = now()
        f.extra["new_node_id"] = proc.node_id

    async def fault_worker_kill(self, f: Fault) -> None:
        proc = self.cluster.procs[self.rng.choice(WORKERS)]
        f.target, f.pid = proc.name, proc.pid
        f.extra["worker_ids"] = await self._worker_ids(proc.pid)
        f.restart_delay = self.rng.uniform(0.5, 2.0)
        f.t0 = now()
        proc.kill9()
        await asyncio.sleep(f.restart_delay)
        proc.start()
        f.t1 = now()

    async def _busy_leader(self, f: Fault) -> None:
        """A burst of the stream, then a short wait: the leader is mid-pass (reading, deciding,
        writing) rather than idle when the fault hits, as a GC pause or a VM stall would be."""
        f.extra["burst"] = await self.burst(BURST)
        await asyncio.sleep(self.rng.uniform(0.1, 0.4))

    async def fault_leader_stop(self, f: Fault) -> None:
        f.duration = self.rng.uniform(LEASE_TTL + 1.5, LEASE_TTL + 4.0)
        await self._busy_leader(f)
        proc = await self._leader_proc()
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        fenced_before = self.fenced_on_wire()
        f.t0 = now()
        proc.sigstop()
        await asyncio.sleep(f.duration)
        proc.sigcont()
        f.t1 = now()
        await asyncio.sleep(0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    async def fault_leader_zombie(self, f: Fault) -> None:
        """The leader pauses (SIGSTOP) with a fenced write in flight: the network holds that
        write until the lease has expired and another node leads, then delivers it; then the
        old leader resumes. Kleppmann's example of why a lease needs a fence: the store must
        refuse the late write (FENCED), and the resumed node must step down on it."""
        proc = await self._leader_proc()
        proxy = self.cluster.proxies[proc.name]
        f.target, f.node_id, f.pid, f.was_leader = proc.name, proc.node_id, proc.pid, True
        f.duration = self.rng.uniform(LEASE_TTL + 1.2, LEASE_TTL + 1.8)
        fenced_before = self.fenced_on_wire()
        # Every fenced leader write (fire, save, dispatch, reap) carries an op-id key first.
        caught = proxy.arm_hold(f"{{{NAMESPACE}}}:op:".encode())
        try:
            await asyncio.wait_for(caught.wait(), 5.0)
        except asyncio.TimeoutError:
            proxy.release_hold()
            f.note = "no leader write seen within 5 s; paused without one in flight"
        proc.sigstop()
        f.t0 = now()
        try:
            await asyncio.sleep(f.duration)
            f.extra["leader_at_release"] = await self.wait_leader(2.0, other_than=proc.node_id)
        finally:
            proxy.release_hold()
            await asyncio.sleep(0.3)  # the FENCED reply reaches the paused process's socket
            proc.sigcont()
        f.t1 = now()
        await asyncio.sleep(0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    async def fault_worker_stop(self, f: Fault) -> None:
        # The worker holding the most tasks (after a burst), so its late results are exercised.
        f.extra["burst"] = await self.burst(BURST // 2)
        await asyncio.sleep(0.3)
        loads: dict[int, int] = {}
        try:
            storage = await self.app.storage()
            for w in await asyncio.wait_for(storage.workers.list_workers(), 3.0):
                loads[w.pid] = loads.get(w.pid, 0) + w.load
        except Exception:
            pass
        candidates = [self.cluster.procs[n] for n in WORKERS]
        self.rng.shuffle(candidates)
        proc = max(candidates, key=lambda p: loads.get(p.pid or -1, 0))
        f.target, f.pid = proc.name, proc.pid
        f.extra["load"] = loads.get(proc.pid or -1, 0)
        f.extra["worker_ids"] = await self._worker_ids(proc.pid)
        # Past the heartbeat TTL (it is reaped) and around/past the client's socket timeout (5 s),
        # so a call in flight is retried by redis-py on resume.
        f.duration = self.rng.uniform(HEARTBEAT_TTL + 2.0, HEARTBEAT_TTL + 6.0)
        f.t0 = now()
        proc.sigstop()
        await asyncio.sleep(f.duration)
        proc.sigcont()
        f.t1 = now()

    async def _redis_back(self, f: Fault) -> None:
        await asyncio.to_thread(self.cluster.redis.restart)
        f.t_back = now()

    async def fault_redis_kill(self, f: Fault) -> None:
        f.target = "redis"
        f.restart_delay = self.rng.uniform(0.5, 2.0)
        f.t0 = now()
        await asyncio.to_thread(self.cluster.redis.kill)
        await asyncio.sleep(f.restart_delay)
        await self._redis_back(f)
        f.t1 = f.t_back or now()

    async def fault_redis_shutdown(self, f: Fault) -> None:
        f.target = "redis"
        f.restart_delay = self.rng.uniform(0.5, 2.0)

        def shutdown() -> None:
            client = self.cluster.redis_client()
            try:
                client.shutdown(nosave=True)
            except Exception:
                pass  # the server closes the connection as it exits
            finally:
                client.close()
            deadline = time.monotonic() + 10
            while self.cluster.redis.running and time.monotonic() < deadline:
                time.sleep(0.02)

        f.t0 = now()
        await asyncio.to_thread(shutdown)
        await asyncio.sleep(f.restart_delay)
        await self._redis_back(f)
        f.t1 = f.t_back or now()

    async def fault_redis_sleep(self, f: Fault) -> None:
        f.target = "redis"
        f.duration = self.rng.uniform(LEASE_TTL + 0.5, LEASE_TTL + 2.0)

        def stall() -> None:
            client = self.cluster.redis_client(timeout=f.duration + 10)
            try:
                client.execute_command("DEBUG", "SLEEP", f"{f.duration:.2f}")
            finally:
                client.close()

        f.t0 = now()
        await asyncio.to_thread(stall)
        f.t_back = f.t1 = now()

    async def _cut(self, f: Fault, mode: str) -> None:
        proxy = self.cluster.proxy
        proc = self.cluster.procs[PROXIED]
        if self.rng.random() < 0.8:
            await self._busy_leader(f)
        node = await self.leader()
        f.target, f.node_id, f.pid, f.mode = proc.name, proc.node_id, proc.pid, mode
        f.was_leader = node == proc.node_id
        f.duration = self.rng.uniform(LEASE_TTL + 2.0, LEASE_TTL + 4.0)
        delay = self.rng.uniform(LEASE_TTL + 0.5, LEASE_TTL + 1.5) if mode == "delay" else 0.0
        f.extra["delay"] = delay
        fenced_before = self.fenced_on_wire()
        f.t0 = now()
        proxy.set_mode(mode, delay)
        await asyncio.sleep(f.duration)
        proxy.set_mode("pass")
        f.t1 = now()
        # Held or delayed bytes drain after the heal; count the refusals they met.
        await asyncio.sleep(max(delay, 0.5) + 0.5)
        f.extra["fenced_replies"] = self.fenced_on_wire() - fenced_before

    def fenced_on_wire(self) -> int:
        return sum(len(p.fenced) for p in self.cluster.proxies.values())

    async def fault_cut_blackhole(self, f: Fault) -> None:
        await self._cut(f, "blackhole")

    async def fault_cut_drop(self, f: Fault) -> None:
        await self._cut(f, "drop")

    async def fault_cut_delay(self, f: Fault) -> None:
        await self._cut(f, "delay")

    # -- quiesce and snapshot --------------------------------------------------------------
    async def restore_all(self) -> None:
        for proxy in self.cluster.proxies.values():
            proxy.set_mode("pass")
        if not self.cluster.redis.running:
            await asyncio.to_thread(self.cluster.redis.restart)
        for proc in self.cluster.procs.values():
            if proc.stopped:
                proc.sigcont()
            if not proc.alive():
                proc.start()

    async def _retry(self, what: str, call: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await asyncio.wait_for(call(), 10.0)
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(0.5)

    async def quiesce(self, submit_task: asyncio.Task[None], deadline: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        t0 = time.monotonic()
        await asyncio.wait({submit_task}, timeout=max(1.0, deadline - time.monotonic()))
        out["submitter_done"] = submit_task.done()
        if not submit_task.done():
            submit_task.cancel()
        app = self.app
        for i in range(JOBS):
            await self._retry("pause job", lambda i=i: app.pause_job(f"tick-{i:02d}"))
        out["jobs_paused_at"] = now()
        storage = await app.storage()
        live = None
        while time.monotonic() < deadline:
            try:
                counts = await asyncio.wait_for(storage.tasks.counts(), 10.0)
            except Exception:
                await asyncio.sleep(0.5)
                continue
            live = {k: v for k, v in counts.items() if k in ("pending", "dispatched", "running", "retrying") and v}
            if not live:
                break
            await asyncio.sleep(0.25)
        out["live_at_end"] = live
        out["quiesce_seconds"] = round(time.monotonic() - t0, 2)
        return out

    async def snapshot(self) -> dict[str, Any]:
        """The final store state (tasks of the stream and of the jobs, counts, workers, lease)."""
        from distsched.testing import all_tasks as _all_tasks

        storage = await self.app.storage()
        acked = [r["id"] for r in read_jsonl(self.dir / "acked.jsonl")]
        found = await self._retry("read tasks", lambda: storage.tasks.get_many(acked), 60)
        tasks: dict[str, Any] = {}
        for tid, task in zip(acked, found):
            tasks[tid] = None if task is None else compact(task)
        jobs: dict[str, Any] = {}
        for i in range(JOBS):
            name = f"tick-{i:02d}"
            listed = await self._retry("list job", lambda name=name: _all_tasks(storage, job=name), 60)
            jobs[name] = [compact(t) for t in listed]
        counts = await self._retry("counts", storage.tasks.counts)
        workers = await self._retry("workers", storage.workers.list_workers)
        fence = await self._retry("lease", self.election.current)
        clock = storage.clock()
        alive = {p.name: p.pid for p in self.cluster.procs.values() if p.role == "worker" and p.alive()}
        return {"now": clock, "tasks": tasks, "jobs": jobs, "counts": counts, "worker_processes": alive,
                "workers": [{"id": w.id, "pid": w.pid, "load": w.load, "heartbeat_age": clock - w.last_heartbeat,
                             "draining": w.draining} for w in workers],
                "lease": None if fence is None else {"node_id": fence.node_id, "term": fence.term}}

    async def stop_all(self) -> dict[str, Any]:
        """SIGTERM every process at once (workers drain), wait, record exit codes."""
        procs = [p for p in self.cluster.procs.values() if p.alive()]
        for p in procs:
            p.should_run = False
            p.signal(signal.SIGTERM)

        def wait_all() -> dict[str, Any]:
            codes = {}
            for p in procs:
                try:
                    codes[p.node_id if p.role == "scheduler" else f"{p.name}-g{p.gen}"] = p.popen.wait(40)
                except subprocess.TimeoutExpired:
                    p.kill9()
                    codes[f"{p.name}-g{p.gen}"] = "killed after 40 s"
            return codes

        return await asyncio.to_thread(wait_all)

    # -- the whole run ---------------------------------------------------------------------
    async def main(self) -> dict[str, Any]:
        p = self.profile
        c = self.cluster
        t_start = now()
        self.meta["started"] = t_start
        await asyncio.to_thread(c.start_redis)
        await c.start_proxies()
        self.meta["redis"] = {"port": c.redis.port, "dir": str(c.redis.dir), "appendonly": "yes",
                              "appendfsync": "always", "maxmemory-policy": "noeviction"}
        self.meta["proxy_ports"] = {n: p.port for n, p in c.proxies.items()}
        await self.open_client()
        # The jobs of the jobs file go in once through the API (the schedulers' --jobs then
        # find them identical), so three schedulers starting at once do not race to add them.
        from distsched.jobs import load_jobs_file

        for job in load_jobs_file(self.dir / "jobs.toml").jobs:
            await self.app.put_job(job, replace=True)
        for name in SCHEDULERS:
            c.add(name, "scheduler")
        for name in WORKERS:
            c.add(name, "worker")
        supervisor = asyncio.create_task(self.supervise())
        c.procs[PROXIED].start()  # s1 first: it leads, and is cut first
        first = await self.wait_leader(30.0)
        self.say(f"leader {first}; starting the other processes")
        for name in SCHEDULERS[1:] + WORKERS:
            c.procs[name].start()
        storage = await self.app.storage()

        async def workers_up() -> bool:
            ws = await storage.workers.list_workers()
            return len({w.pid for w in ws if w.is_alive(storage.clock(), HEARTBEAT_TTL)}) >= len(WORKERS)

        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not await workers_up():
            await asyncio.sleep(0.2)
        self.say(f"{len(c.procs)} processes up on redis port {c.redis.port} (proxies {', '.join(str(p.port) for p in c.proxies.values())}); "
                 f"profile {p.name}, seed {self.seed}")
        self.items = items = self.workload()
        t_faults = time.monotonic() + p.warmup
        submit_task = asyncio.create_task(self.submitter(span=p.window * 0.85 + p.warmup))
        await asyncio.sleep(p.warmup)
        self.meta["faults_started"] = now()
        faults = await self.run_faults(t_faults)
        self.meta["faults_ended"] = now()
        self.meta["faults_run"] = dict(Counter(f.kind for f in faults))
        self.say(f"faults over ({len(faults)}); quiescing (submitted {self.submitted}/{len(items)})")
        await self.restore_all()
        q = await self.quiesce(submit_task, time.monotonic() + p.quiesce)
        self.meta["quiesce"] = q
        self.say(f"quiesced in {q['quiesce_seconds']} s; live tasks left: {q['live_at_end'] or 0}")
        snap = await self.snapshot()
        (self.dir / "final.json").write_text(json.dumps(snap))
        supervisor.cancel()
        self.meta["stopping"] = now()
        self.meta["exit_codes"] = await self.stop_all()
        self.meta["proxies"] = {n: p.stats() for n, p in c.proxies.items()}
        self.meta["submit_errors"] = self.submit_errors
        self.meta["submitted"] = self.submitted
        self.meta["ended"] = now()
        self.meta["wall_seconds"] = round(now() - t_start, 1)
        try:
            await self.app.engine.close()
        except Exception:
            pass
        for proxy in c.proxies.values():
            await proxy.close()
        (self.dir / "run.json").write_text(json.dumps(self.meta, indent=2, default=str))
        return self.meta

    def cleanup(self) -> None:
        for proc in self.cluster.procs.values():
            if proc.alive():
                if proc.stopped:
                    proc.sigcont()
                proc.kill9()
        if self.cluster.redis is not None:
            # keep the AOF out of the run directory: RedisServer.stop() removes its temp dir
            self.cluster.redis.stop()
        for w in (self.faults_log, self.acked_log, self.supervisor_log, self.cluster.proc_log):
            w.close()


def compact(task: Any) -> dict[str, Any]:
    r = task.result
    return {
        "id": task.id, "job": task.job, "slot": task.slot, "state": task.state.value, "attempt": task.attempt,
        "dispatches": task.dispatches, "redeliveries": task.redeliveries, "worker_id": task.worker_id,
        "dispatched_at": task.dispatched_at, "started_at": task.started_at, "finished_at": task.finished_at,
        "timeout": task.spec.timeout, "target": task.spec.target, "reason": task.reason,
        "attempt_id": task.attempt_id, "max_attempts": task.spec.retry.max_attempts,
        "result": None if r is None else {"attempt_id": r.attempt_id, "outcome": r.outcome, "worker_id": r.worker_id,
                                          "started_at": r.started_at, "finished_at": r.finished_at},
    }


# -- the offline check ---------------------------------------------------------------------
def worker_pid(worker_id: str | None) -> int | None:
    """The pid in a worker id ``<name>-<pid>-<random>``."""
    m = re.search(r"-(\d+)-[0-9a-f]+$", worker_id or "")
    return int(m.group(1)) if m else None


@dataclass
class Prop:
    key: str
    ok: bool
    line: str
    #: False: reported, but does not decide the exit status (an observation, not a promise).
    gate: bool = True

    @property
    def label(self) -> str:
        return ("ok" if self.ok else "FAIL") if self.gate else ("info" if self.ok else "note")


STEP_DOWN = re.compile(r"stopped leading term (\d+) \((.*)\)\s*$")


def check(run_dir: Path) -> tuple[dict[str, Any], list[Prop]]:
    """Check a finished run from its files only: history, logs, faults, the final snapshot."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    final = json.loads((run_dir / "final.json").read_text())
    faults = [f for f in read_jsonl(run_dir / "faults.jsonl") if "skipped" not in f]
    acked = read_jsonl(run_dir / "acked.jsonl")
    kinds = {r["id"]: r["kind"] for r in acked}
    sup = read_jsonl(run_dir / "supervisor.jsonl")
    events: list[dict[str, Any]] = []
    files: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((run_dir / "history").glob("*.jsonl")):
        rows = read_jsonl(path)
        files[path.stem] = rows
        events += rows
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_kind[e["kind"]].append(e)
    for rows in by_kind.values():
        rows.sort(key=lambda e: e["at"])
    fig: dict[str, Any] = {"profile": meta["profile"]["name"], "seed": meta["seed"],
                           "wall_seconds": meta.get("wall_seconds"), "faults": meta.get("faults_run", {}),
                           "events": len(events)}
    props: list[Prop] = []
    tasks: dict[str, Any] = final["tasks"]
    job_tasks = [t for rows in final["jobs"].values() for t in rows]
    all_tasks = {t["id"]: t for t in job_tasks}
    all_tasks.update({k: v for k, v in tasks.items() if v is not None})

    # events per task
    dispatched: dict[str, list[dict]] = defaultdict(list)
    for e in by_kind["task.dispatched"]:
        dispatched[e["task_id"]].append(e)
    requeued: dict[str, list[dict]] = defaultdict(list)
    for e in by_kind["task.requeued"]:
        requeued[e["task_id"]].append(e)
    retried: dict[str, list[dict]] = defaultdict(list)
    for e in by_kind["task.retry_scheduled"]:
        retried[e["task_id"]].append(e)

    # 1. slots dispatched twice -----------------------------------------------------------
    def unexplained(t: dict[str, Any]) -> int:
        """Dispatches not explained by crash re-deliveries and retries (store counters and
        the history, whichever saw more)."""
        redeliveries = max(t["redeliveries"], len(requeued.get(t["id"], ())))
        retries = max(t["attempt"] - 1, len(retried.get(t["id"], ())))
        accepted = max(t["dispatches"], len({e["attempt_id"] for e in dispatched.get(t["id"], ())}))
        return max(0, accepted - (redeliveries + retries + 1)) if accepted else 0

    slot_twice = [t["id"] for t in job_tasks if unexplained(t)]
    task_twice = [tid for tid, t in tasks.items() if t is not None and unexplained(t)]
    # The same attempt accepted from two leaders (two task.dispatched with one attempt id).
    same_attempt = 0
    for evs in dispatched.values():
        per_attempt = Counter(e["attempt_id"] for e in evs)
        same_attempt += sum(1 for n in per_attempt.values() if n > 1)
    fig["slots"] = len(job_tasks)
    fig["slots_dispatched_twice"] = len(slot_twice)
    fig["tasks_dispatched_twice"] = len(task_twice)
    fig["attempts_dispatched_twice"] = same_attempt
    props.append(Prop("slots_dispatched_twice", not slot_twice and not same_attempt,
                      f"slots dispatched twice: {len(slot_twice)} of {len(job_tasks)} slots "
                      f"(one-off tasks: {len(task_twice)}; one attempt accepted twice: {same_attempt})"
                      + (f" e.g. {slot_twice[:3]}" if slot_twice else "")))

    # 2. fenced writes refused -------------------------------------------------------------
    reasons: Counter[str] = Counter()
    for path in sorted((run_dir / "logs").glob("s*.log")):
        for line in path.read_text(errors="replace").splitlines():
            m = STEP_DOWN.search(line)
            if m:
                reasons[m.group(2).split(":")[0]] += 1
    lost_reasons = Counter(e["reason"].split(":")[0] for e in by_kind["leader.lost"])
    wire_by = {n: p.get("fenced_replies", 0) for n, p in meta.get("proxies", {}).items()}
    wire = sum(wire_by.values())
    fig["fenced_replies_on_wire_by_scheduler"] = wire_by
    fig["step_downs_by_reason"] = dict(reasons)
    fig["leader_lost_events_by_reason"] = dict(lost_reasons)
    fig["fenced_step_downs"] = reasons.get("fenced", 0)
    fig["fenced_leader_lost_events"] = lost_reasons.get("fenced", 0)
    fig["fenced_replies_on_wire"] = wire
    # Every scheduler talks through a proxy, so the wire count includes the refusals a
    # client saw (and stepped down on) as well as those it no longer waited for.
    refused = max(wire, reasons.get("fenced", 0), lost_reasons.get("fenced", 0))
    fig["fenced_writes_refused"] = refused

    def pause_outcome(f: dict[str, Any]) -> str | None:
        lost = [e for e in by_kind["leader.lost"] if e["node_id"] == f["node_id"] and e["at"] >= f["t0"] - 1]
        return lost[0]["reason"].split(":")[0] if lost else None

    zombies = [f for f in faults if f["kind"] == "leader-zombie"]
    held = [f for f in zombies if not f.get("note")]
    zombie_fenced = sum(1 for f in held if (f.get("extra") or {}).get("fenced_replies", 0) > 0)
    zombie_stepped = sum(1 for f in held if pause_outcome(f) == "fenced")
    plain = [f for f in faults if f["kind"] == "leader-stop"]
    plain_fenced = sum(1 for f in plain if pause_outcome(f) == "fenced")
    plain_wire = sum(1 for f in plain if (f.get("extra") or {}).get("fenced_replies", 0) > 0)
    fig["zombie_pauses"] = {"n": len(zombies), "write_in_flight": len(held), "refused_on_wire": zombie_fenced,
                            "stepped_down_fenced": zombie_stepped}
    fig["plain_pauses"] = {"n": len(plain), "refused_on_wire": plain_wire, "stepped_down_fenced": plain_fenced}
    props.append(Prop("fenced_writes_refused", refused > 0 and zombie_fenced == len(held),
                      f"fenced writes refused: {refused} (leaders stepping down '(fenced)' in logs: "
                      f"{reasons.get('fenced', 0)}, leader.lost reason fenced: {lost_reasons.get('fenced', 0)}, "
                      f"FENCED replies on the wire: {wire}; other step-downs: "
                      + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items()) if k != "fenced") or "none")
                      + f"); leader paused with a write in flight: refused {zombie_fenced}/{len(held)}, stepped down "
                      f"'(fenced)' {zombie_stepped}/{len(held)}; leader paused at a random busy moment: a write refused "
                      f"{plain_wire}/{len(plain)}, stepped down '(fenced)' {plain_fenced}/{len(plain)}"))

    # 3. missing slots ---------------------------------------------------------------------
    missing = 0
    expected_total = 0
    skipped = Counter()
    misaligned = 0
    for rows in final["jobs"].values():
        slots = sorted({round(t["slot"] * 1000) for t in rows if t["slot"] is not None})
        if not slots:
            continue
        expected = (slots[-1] - slots[0]) // 1000 + 1
        expected_total += expected
        missing += expected - len(slots)
        misaligned += sum(1 for s in slots if s % 1000)
        for t in rows:
            if t["state"] == "skipped":
                skipped[t["reason"] or "?"] += 1
    seen_slots = {e["task_id"] for e in by_kind["task.dispatched"] if e.get("job")}
    vanished = len(seen_slots - set(all_tasks))
    outside = missing + sum(skipped.values()) + vanished
    fig["slots_expected"] = expected_total
    fig["slots_missing"] = missing
    fig["slots_skipped"] = dict(skipped)
    fig["slot_tasks_vanished"] = vanished
    fig["slots_misaligned"] = misaligned
    # lateness of a slot: its first start on a worker vs the slot time (the leader fires and
    # dispatches a little ahead; the worker starts the task at its slot)
    first_start: dict[str, float] = {}
    for e in by_kind["attempt.started"]:
        first_start.setdefault(e["task_id"], e["at"])
    lateness = [first_start[t["id"]] - t["slot"] for t in job_tasks if t["id"] in first_start and t["slot"]]
    fig["slot_lateness"] = {"p50": percentile(lateness, 50), "p99": percentile(lateness, 99),
                            "max": max(lateness) if lateness else None, "n": len(lateness)}

    props.append(Prop("missing_slots", outside == 0,
                      f"missing slots outside the misfire policy (fire-all): {outside} of {expected_total} expected "
                      f"(absent {missing}, skipped {sum(skipped.values())}, dispatched then vanished {vanished}); "
                      f"start lateness p50 {fmt(fig['slot_lateness']['p50'])} / p99 {fmt(fig['slot_lateness']['p99'])} / "
                      f"max {fmt(fig['slot_lateness']['max'])}"))
    # 4. takeover after a leader kill -9 ---------------------------------------------------
    elected = by_kind["leader.elected"]

    def takeover(f: dict[str, Any]) -> float | None:
        for e in elected:
            if e["at"] > f["t0"] and e["node_id"] != f["node_id"]:
                return e["at"] - f["t0"]
        return None

    kill_takeovers = [takeover(f) for f in faults if f["kind"] == "leader-kill" and f.get("node_id")]
    stop_takeovers = [takeover(f) for f in faults if f["kind"] == "leader-stop" and f.get("node_id")]
    tk = [x for x in kill_takeovers if x is not None]
    fig["takeover_kill9"] = {"n": len(kill_takeovers), "p50": percentile(tk, 50), "p95": percentile(tk, 95),
                             "max": max(tk) if tk else None, "bound": TAKEOVER_BOUND,
                             "over_bound": sum(1 for x in tk if x > TAKEOVER_BOUND),
                             "no_takeover": sum(1 for x in kill_takeovers if x is None)}
    ts = [x for x in stop_takeovers if x is not None]
    fig["takeover_sigstop"] = {"n": len(stop_takeovers), "p50": percentile(ts, 50), "max": max(ts) if ts else None}
    props.append(Prop("takeover", fig["takeover_kill9"]["over_bound"] == 0
                      and fig["takeover_kill9"]["no_takeover"] == 0,
                      f"takeover after leader kill -9: p50 {fmt(percentile(tk, 50))} / p95 {fmt(percentile(tk, 95))} / "
                      f"max {fmt(max(tk) if tk else None)} over {len(kill_takeovers)} kills (bound lease TTL "
                      f"{LEASE_TTL:g} + renew {RENEW_INTERVAL:g} + 1 = {TAKEOVER_BOUND:g}s; over: "
                      f"{fig['takeover_kill9']['over_bound']}); after leader SIGSTOP: p50 {fmt(percentile(ts, 50))} "
                      f"max {fmt(max(ts) if ts else None)} over {len(stop_takeovers)}"))

    # 5. tasks lost / non-terminal ---------------------------------------------------------
    missing_tasks = [tid for tid, t in tasks.items() if t is None]
    terminal = {"succeeded", "failed", "timed_out", "cancelled", "skipped"}
    nonterminal = [t["id"] for t in all_tasks.values() if t["state"] not in terminal]
    states = Counter(t["state"] for t in tasks.values() if t is not None)
    expected_state = {"work": "succeeded", "slow": "succeeded", "hang": "timed_out", "block": "timed_out"}
    wrong_end = [tid for tid, t in tasks.items() if t is not None and t["state"] in terminal
                 and t["state"] != expected_state[kinds[tid]]]
    slot_states = Counter(t["state"] for t in job_tasks)
    n = len(acked)
    fig["tasks_acked"] = n
    fig["tasks_by_kind"] = dict(Counter(kinds.values()))
    fig["tasks_lost"] = len(missing_tasks) + len(wrong_end)
    fig["tasks_missing_from_store"] = len(missing_tasks)
    fig["tasks_ended_unexpectedly"] = len(wrong_end)
    fig["tasks_by_state"] = dict(states)
    fig["slots_by_state"] = dict(slot_states)
    fig["tasks_non_terminal"] = len(nonterminal)
    props.append(Prop("tasks_lost", not missing_tasks and not wrong_end,
                      f"tasks lost: {len(missing_tasks) + len(wrong_end)} of {n} acked (absent from the store "
                      f"{len(missing_tasks)}, ended other than expected {len(wrong_end)}"
                      + (f" e.g. {[(x, tasks[x]['state'], tasks[x]['reason']) for x in wrong_end[:2]]}" if wrong_end else "")
                      + f"); states: {dict(states)}"))
    props.append(Prop("tasks_non_terminal", not nonterminal,
                      f"tasks left non-terminal: {len(nonterminal)} of {len(all_tasks)} (one-off and slot tasks)"
                      + (f" e.g. {nonterminal[:3]}" if nonterminal else "")))

    # 6. duplicate executions --------------------------------------------------------------
    finished_attempts: dict[str, set[str]] = defaultdict(set)
    started_attempts: Counter[str] = Counter()
    for e in by_kind["attempt.finished"]:
        finished_attempts[e["task_id"]].add(e["attempt_id"])
    for e in by_kind["attempt.started"]:
        started_attempts[e["attempt_id"]] += 1
    execs: Counter[str] = Counter()
    for path in (run_dir / "exec").glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "S":
                execs[parts[1]] += 1
    dup_exec = 0
    dup_unexplained = []
    for tid, attempts in finished_attempts.items():
        if len(attempts) > 1:
            t = all_tasks.get(tid)
            extra = len(attempts) - 1
            if t is None:
                continue
            retries = t["attempt"] - 1
            dup_exec += max(0, extra - retries)
            if extra > retries + t["redeliveries"]:
                dup_unexplained.append(tid)
    ran_twice = {tid: k for tid, k in execs.items() if k > 1}
    exec_unexplained = [tid for tid, k in ran_twice.items()
                        if tid in tasks and tasks[tid] is not None and k > tasks[tid]["dispatches"]]
    same_attempt_started = sum(1 for k in started_attempts.values() if k > 1)
    # An attempt must run only on the worker process it was dispatched to (an incarnation of a
    # worker changes its id, not its pid).
    target = {e["attempt_id"]: e["worker_id"] for e in by_kind["task.dispatched"]}
    foreign = [e for e in by_kind["attempt.started"]
               if e["attempt_id"] in target and worker_pid(e["worker_id"]) != worker_pid(target[e["attempt_id"]])]
    foreign_on_terminal = sum(1 for e in foreign if all_tasks.get(e["task_id"], {}).get("finished_at")
                              and e["at"] > all_tasks[e["task_id"]]["finished_at"])
    fig["attempts_run_by_a_worker_not_dispatched_to"] = len(foreign)
    fig["attempts_run_after_their_task_finished"] = foreign_on_terminal
    fig["duplicate_executions"] = dup_exec
    fig["duplicate_executions_unexplained"] = len(dup_unexplained)
    fig["stream_tasks_run_more_than_once"] = len(ran_twice)
    fig["stream_runs_beyond_dispatches"] = len(exec_unexplained)
    fig["attempts_started_twice"] = same_attempt_started
    props.append(Prop("duplicate_executions", not dup_unexplained and not exec_unexplained and not same_attempt_started
                      and not foreign,
                      f"duplicate executions: {dup_exec} finished attempts beyond the first (all explained by crash "
                      f"re-deliveries: {'yes' if not dup_unexplained else 'NO, ' + str(len(dup_unexplained))}); "
                      f"stream tasks whose function ran more than once: {len(ran_twice)} (more runs than dispatches: "
                      f"{len(exec_unexplained)}); one attempt started twice: {same_attempt_started}; attempts run by a "
                      f"worker they were not dispatched to: {len(foreign)} ({foreign_on_terminal} after their task had "
                      f"already finished)" + (f" e.g. {[(e['attempt_id'], e['worker_id']) for e in foreign[:3]]}"
                                              if foreign else "")))

    # 7. re-dispatch latency after a worker dies -------------------------------------------
    lost_events = by_kind["worker.lost"]

    def worker_ids(pid: int) -> set[str]:
        ids = {e["worker_id"] for e in lost_events if f"-{pid}-" in e["worker_id"]}
        for e in by_kind["attempt.started"]:
            if e.get("pid") == pid:
                ids.add(e["worker_id"])
        return ids

    redispatch: list[float] = []
    detection: list[float] = []
    no_redispatch = 0
    worker_faults = sorted((f for f in faults if f["kind"] in ("worker-kill", "worker-stop") and f.get("pid")),
                           key=lambda f: f["t0"])
    for f in worker_faults:
        ids = worker_ids(f["pid"])
        # requeues caused by this fault: until the next fault of any kind (faults are sequential
        # and the harness waits for the reap before the next one)
        until = min([g["t0"] for g in faults if g.get("t0", 0) > f["t0"]] + [f["t0"] + 30])
        for e in by_kind["task.requeued"]:
            if e.get("worker_id") in ids and f["t0"] <= e["at"] < until:
                detection.append(e["at"] - f["t0"])
                nxt = [d["at"] for d in dispatched.get(e["task_id"], ()) if d["at"] >= e["at"]]
                if nxt:
                    redispatch.append(min(nxt) - f["t0"])
                else:
                    no_redispatch += 1
    over = sum(1 for x in redispatch if x > REDISPATCH_BOUND)
    fig["redispatch"] = {"n": len(redispatch), "p50": percentile(redispatch, 50), "p99": percentile(redispatch, 99),
                         "max": max(redispatch) if redispatch else None, "bound": REDISPATCH_BOUND, "over_bound": over,
                         "without_dispatch_event": no_redispatch,
                         "detection_p50": percentile(detection, 50), "detection_max": max(detection) if detection else None}
    props.append(Prop("redispatch", over == 0,
                      f"re-dispatch after a worker died (kill -9 / SIGSTOP): p50 {fmt(percentile(redispatch, 50))} / "
                      f"p99 {fmt(percentile(redispatch, 99))} / max {fmt(max(redispatch) if redispatch else None)} over "
                      f"{len(redispatch)} tasks (bound heartbeat TTL {HEARTBEAT_TTL:g} + 1 + a leader pass "
                      f"{LEADER_PASS:.2f} = {REDISPATCH_BOUND:.2f}s; over: {over}); detection (requeue) max "
                      f"{fmt(max(detection) if detection else None)}"))

    # Live workers declared dead: a worker.lost that no worker fault (nor the final shutdown)
    # explains - the process was running and not paused.
    stopping = meta.get("stopping") or math.inf
    starts = sorted(f["t0"] for f in faults if f.get("t0"))
    wrongly: list[dict[str, Any]] = []
    for e in lost_events:
        pid = worker_pid(e["worker_id"])
        if e["at"] >= stopping - 1:
            continue
        explained = any(f["pid"] == pid and f["t0"] <= e["at"] < min([g for g in starts if g > f["t0"]] + [f["t0"] + 30])
                        for f in worker_faults)
        if not explained:
            before = [f for f in faults if f.get("t0") and f["t0"] <= e["at"]]
            wrongly.append({"worker_id": e["worker_id"], "requeued": e["requeued"],
                            "after": before[-1]["kind"] if before else None,
                            "seconds_after_fault_end": round(e["at"] - before[-1]["t1"], 2) if before else None})
    fig["live_workers_declared_dead"] = {"n": len(wrongly), "tasks_requeued": sum(w["requeued"] for w in wrongly),
                                         "after": dict(Counter(w["after"] for w in wrongly)), "detail": wrongly}
    props.append(Prop("false_worker_deaths", not wrongly,
                      f"live workers declared dead (not killed or paused): {len(wrongly)}, holding "
                      f"{sum(w['requeued'] for w in wrongly)} task(s) that were requeued and may run twice; after: "
                      + (", ".join(f"{k} {v}" for k, v in sorted(Counter(str(w['after']) for w in wrongly).items()))
                         or "-"), gate=False))

    # 8. zombie worker: stale results --------------------------------------------------------
    stale_accepted = [t["id"] for t in all_tasks.values()
                      if t["result"] is not None and t["result"]["attempt_id"] != t["attempt_id"]]
    current_attempt = {t["id"]: t["attempt_id"] for t in all_tasks.values()}
    late = [e for e in by_kind["attempt.finished"]
            if e["task_id"] in current_attempt and e["attempt_id"] != current_attempt[e["task_id"]]
            and requeued.get(e["task_id"])]
    # The stored result must come from the process the current attempt was dispatched to.
    foreign_results = [t["id"] for t in all_tasks.values()
                       if t["result"] is not None and t["result"]["worker_id"] and t["attempt_id"] in target
                       and worker_pid(t["result"]["worker_id"]) != worker_pid(target[t["attempt_id"]])]
    lost_at = {e["worker_id"]: e["at"] for e in lost_events}
    # A paused worker that resumes may start what it had pulled before the pause (a stale
    # attempt: its result is refused) - at-least-once allows it; counted, not a failure.
    zombie_starts = [e for e in by_kind["attempt.started"]
                     if e["worker_id"] in lost_at and e["at"] > lost_at[e["worker_id"]] + CLOCK_TOLERANCE]
    fig["stale_results_accepted"] = len(stale_accepted)
    fig["results_accepted_from_a_worker_not_dispatched_to"] = len(foreign_results)
    fig["late_results_of_superseded_attempts"] = len(late)
    fig["stale_attempts_started_after_resume"] = len(zombie_starts)
    props.append(Prop("stale_results", not stale_accepted and not foreign_results,
                      f"stale results accepted: {len(stale_accepted) + len(foreign_results)} (of a superseded attempt: "
                      f"{len(stale_accepted)}; from a worker the attempt was not dispatched to: {len(foreign_results)}); "
                      f"late results of superseded attempts reported by paused/killed workers: {len(late)}, all "
                      f"refused; stale attempts a paused worker started after resuming (pulled before the pause): "
                      f"{len(zombie_starts)}"))

    # 9. zombie leader ---------------------------------------------------------------------
    bad_order = 0
    for rows in files.values():
        leading = False
        for e in rows:
            if e["kind"] == "leader.elected":
                leading = True
            elif e["kind"] == "leader.lost":
                leading = False
            elif e["kind"] == "task.dispatched" and not leading:
                bad_order += 1
    # A dispatch whose pass began after a higher term was elected elsewhere.
    terms = sorted((e["at"], e["term"], e["node_id"]) for e in elected)
    zombie_dispatch = 0
    for rows in files.values():
        term = None
        for e in rows:
            if e["kind"] == "leader.elected":
                term = e["term"]
            elif e["kind"] == "task.dispatched" and term is not None:
                if any(t > term and at < e["at"] - CLOCK_TOLERANCE for at, t, _ in terms):
                    zombie_dispatch += 1
    monotonic = all(b[1] > a[1] for a, b in zip(terms, terms[1:]))
    # On the wire: every fenced leader write Redis accepted, with the writer's term; none may
    # land after a higher term was elected.
    wire_writes = [w for p in meta.get("proxies", {}).values() for w in p.get("leader_writes", [])]
    accepted = [(t, tok) for t, tok, outcome in wire_writes if outcome == "OK"]
    stale_accepted_wire = []
    for t, tok in accepted:
        term = int(tok.rsplit("|", 1)[1])
        if any(tt > term and at < t - CLOCK_TOLERANCE for at, tt, _ in terms):
            stale_accepted_wire.append((t, tok))
    fig["wire_leader_writes"] = {"accepted": len(accepted),
                                 "refused": sum(1 for w in wire_writes if w[2] == "FENCED"),
                                 "other": sum(1 for w in wire_writes if w[2] not in ("OK", "FENCED")),
                                 "accepted_from_a_superseded_term": len(stale_accepted_wire),
                                 "unparsed_connections": sum(p.get("unparsed_connections", 0)
                                                             for p in meta.get("proxies", {}).values())}
    fig["elections"] = len(terms)
    fig["terms_strictly_increasing"] = monotonic
    fig["dispatches_outside_a_term"] = bad_order
    fig["dispatches_from_a_superseded_term"] = zombie_dispatch
    props.append(Prop("zombie_leader", bad_order == 0 and zombie_dispatch == 0 and monotonic and not stale_accepted_wire,
                      f"zombie leader: leader writes accepted after a higher term was elected: {len(stale_accepted_wire)} "
                      f"of {len(accepted)} accepted on the wire ({fig['wire_leader_writes']['refused']} refused FENCED); "
                      f"dispatch events from an old term: {zombie_dispatch} (outside any term of the node: {bad_order}); "
                      f"terms strictly increasing over {len(terms)} elections: {'yes' if monotonic else 'NO'}"))

    # 10. timeouts -------------------------------------------------------------------------
    end = final["now"]
    overdue = [t["id"] for t in all_tasks.values() if t["state"] in ("running", "dispatched")
               and end - (t["started_at"] or t["dispatched_at"] or end) > t["timeout"] + TIMEOUT_GRACE]
    hang_ids = [tid for tid, k in kinds.items() if k in ("hang", "block")]
    hang_timed_out = sum(1 for tid in hang_ids if tasks.get(tid) and tasks[tid]["state"] == "timed_out")
    paused = [(f["pid"], f["t0"], f["t1"]) for f in faults if f["kind"] == "worker-stop"]
    overshoot = [e["duration"] - 0.5 for e in by_kind["attempt.finished"]
                 if e.get("outcome") == "timed_out" and kinds.get(e["task_id"]) in ("hang", "block")
                 # an attempt that was SIGSTOPped with its worker overshoots by the pause
                 and not any(pid == e.get("pid") and t0 < e["at"] and t1 > e["at"] - e["duration"]
                             for pid, t0, t1 in paused)]
    leader_timeouts = sum(1 for e in by_kind["task.finished"] + by_kind["task.retry_scheduled"]
                          if (e.get("state") == "timed_out" or e.get("outcome") == "timed_out")
                          and e["task_id"] in kinds and kinds[e["task_id"]] in ("work", "slow"))
    fig["timeouts"] = {"running_past_timeout_and_grace": len(overdue), "hang_tasks": len(hang_ids),
                       "hang_tasks_timed_out": hang_timed_out, "overshoot_p99": percentile(overshoot, 99),
                       "overshoot_max": max(overshoot) if overshoot else None, "worker_timeouts": len(overshoot),
                       "normal_tasks_timed_out": leader_timeouts}
    props.append(Prop("timeouts", not overdue and hang_timed_out == len(hang_ids),
                      f"timeouts: tasks still running past timeout + grace at the end: {len(overdue)}; hanging tasks "
                      f"ended timed_out: {hang_timed_out}/{len(hang_ids)}; worker timeout overshoot p99 "
                      f"{fmt(percentile(overshoot, 99))} max {fmt(max(overshoot) if overshoot else None)}"))

    # 11. recovery after Redis restarts / stalls -------------------------------------------
    recov: list[float] = []
    recov_detail = []
    finished_ev = by_kind["task.finished"]
    for f in faults:
        if f["kind"] not in ("redis-kill", "redis-shutdown", "redis-sleep") or not f.get("t_back"):
            continue
        back = f["t_back"]
        d = next((e["at"] for e in by_kind["task.dispatched"] if e["at"] > back), None)
        fin = next((e["at"] for e in finished_ev if e["at"] > back), None)
        first = min(x for x in (d, fin, math.inf) if x is not None)
        value = None if first is math.inf else first - back
        recov_detail.append({"kind": f["kind"], "first_dispatch": None if d is None else d - back,
                             "first_finish": None if fin is None else fin - back})
        if value is not None:
            recov.append(value)
    n_redis = len(recov_detail)
    not_recovered = n_redis - sum(1 for x in recov if x <= RECOVERY_BOUND)
    manual = len(sup)
    fig["redis_recovery"] = {"n": n_redis, "p50": percentile(recov, 50), "max": max(recov) if recov else None,
                             "detail": recov_detail, "not_recovered": not_recovered}
    fig["unexpected_process_exits"] = manual
    fig["manual_steps"] = manual
    props.append(Prop("redis_recovery", not_recovered == 0 and manual == 0,
                      f"recovery after Redis restarts/stalls: first dispatch or finish p50 {fmt(percentile(recov, 50))} "
                      f"/ max {fmt(max(recov) if recov else None)} after Redis was back, over {n_redis} faults "
                      f"(not recovered within {RECOVERY_BOUND:g}s: {not_recovered}); manual steps: {manual} "
                      f"(processes that exited on their own and had to be restarted)"))

    # 12. network cut of s1 (information + bound on self-demotion) --------------------------
    demotion: list[float] = []
    for f in faults:
        if f["kind"].startswith("cut") and f.get("was_leader"):
            lost = [e["at"] for e in by_kind["leader.lost"] if e["node_id"] == f["node_id"] and e["at"] >= f["t0"]]
            if lost:
                demotion.append(min(lost) - f["t0"])
    cuts = [f for f in faults if f["kind"].startswith("cut")]
    fig["cuts"] = {"n": len(cuts), "of_the_leader": sum(1 for f in cuts if f.get("was_leader")),
                   "self_demotion": demotion,
                   "fenced_replies_per_cut": [f.get("extra", {}).get("fenced_replies") for f in cuts]}
    props.append(Prop("partition", all(x <= LEASE_TTL + RENEW_INTERVAL for x in demotion),
                      f"network cut of {PROXIED} ({', '.join(f['mode'] or '' for f in cuts) or 'none'}): "
                      f"{fig['cuts']['of_the_leader']} of {len(cuts)} cut the leader; it stepped down after "
                      + (", ".join(f"{x:.2f}s" for x in demotion) or "n/a")
                      + f" (bound TTL + renew = {LEASE_TTL + RENEW_INTERVAL:g}s)"))

    # 13. every live worker process is registered and heartbeating at the end ------------
    registered = {w["pid"] for w in final["workers"] if w["heartbeat_age"] <= HEARTBEAT_TTL and not w["draining"]}
    idle = {name: pid for name, pid in final.get("worker_processes", {}).items() if pid not in registered}
    fig["worker_processes_out_of_service"] = idle
    props.append(Prop("workers_in_service", not idle,
                      f"worker processes alive but not registered/heartbeating at the end: {len(idle)} of "
                      f"{len(final.get('worker_processes', {}))}" + (f" {idle}" if idle else "")))

    # 14. clean shutdown -----------------------------------------------------------------
    codes = meta.get("exit_codes", {})
    bad_exit = {k: v for k, v in codes.items() if v != 0}
    fig["exit_codes_not_zero"] = bad_exit
    props.append(Prop("clean_shutdown", not bad_exit,
                      f"SIGTERM shutdown: {len(codes) - len(bad_exit)} of {len(codes)} processes exited 0"
                      + (f"; others: {bad_exit}" if bad_exit else "")))
    fig["ok"] = all(p.ok for p in props if p.gate)
    fig["properties"] = {p.key: p.ok for p in props if p.gate}
    fig["notes"] = {p.key: p.ok for p in props if not p.gate}
    return fig, props


# -- entry point ---------------------------------------------------------------------------
def run(profile: str = "smoke", seed: int | None = None, *, workdir: str | None = None, as_json: bool = False,
        keep: bool = True, verbose: bool = True, mutant: str | None = None) -> tuple[dict[str, Any], list[Prop]]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH")
    prof = PROFILES[profile]
    seed = int(seed if seed is not None else random.SystemRandom().randrange(1, 10**6))
    run_dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"distsched-chaos-{profile}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    harness = Run(prof, seed, run_dir, verbose=verbose, mutant=mutant)
    try:
        asyncio.run(harness.main())
    finally:
        harness.cleanup()
    fig, props = check(run_dir)
    fig["dir"] = str(run_dir)
    fig["command"] = f"python tests/chaos/run.py --profile {profile} --seed {seed}" + (f" --mutate {mutant}" if mutant else "")
    fig["mutant"] = mutant
    out = sys.stderr if as_json else sys.stdout
    print(f"chaos {profile} seed {seed}{' MUTANT ' + mutant if mutant else ''}: {meta_line(run_dir)}", file=out)
    for p in props:
        print(f"  [{p.label}] {p.line}", file=out)
    print(f"  run directory: {run_dir}", file=out)
    if as_json:
        print(json.dumps(fig, default=str))
    if not keep and fig["ok"]:
        shutil.rmtree(run_dir, ignore_errors=True)
    return fig, props


def meta_line(run_dir: Path) -> str:
    meta = json.loads((Path(run_dir) / "run.json").read_text())
    faults = meta.get("faults_run", {})
    return (f"{meta.get('wall_seconds')} s wall clock, {sum(faults.values())} faults "
            f"({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))}), {meta.get('submitted')} tasks submitted")
