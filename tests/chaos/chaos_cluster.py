"""The chaos harness's deployment: one throwaway ``redis-server`` (AOF ``appendfsync
always``; or a PostgreSQL cluster with ``storage="postgres"``, see chaos_pg), the scheduler and worker processes (a :class:`distsched.testing.processes.Deployment`
of :class:`Proc`), the files written into the run directory (the observer plugin, the task
functions, the jobs file, the test-only mutants) and the timings every process runs with.

Only processes started here are ever signalled, by their own pid; all traffic is on 127.0.0.1.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from chaos_proxy import LOOPBACK, Proxy

from distsched.testing.processes import Deployment, NodeProcess
from distsched.testing.redis_server import RedisServer

NAMESPACE = "chaos"

# Short timings so faults resolve fast (the CLI options of `distsched scheduler` / `worker`).
LEASE_TTL = 2.0
RENEW_INTERVAL = 0.5
HEARTBEAT_TTL = 2.0
HEARTBEAT_INTERVAL = 0.3
#: EngineConfig.timeout_grace (not a CLI option; the engine default).
TIMEOUT_GRACE = 5.0

SCHEDULERS = ("s1", "s2", "s3")
WORKERS = ("w1", "w2", "w3", "w4")
#: The process whose Redis connection goes through the proxy (the network-cut target).
PROXIED = "s1"
#: The worker whose Redis connection goes through a proxy of its own (the worker-cut target).
PROXIED_WORKER = "w1"
#: libfaketime (Debian package ``faketime``): preloaded into the nodes of a clock-skew profile;
#: under the multiarch directory of the machine (x86_64-linux-gnu, aarch64-linux-gnu, ...).
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))),
                   "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
JOBS = 20
WORKER_CONCURRENCY = 8


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
    # CLOCK_MONOTONIC is one clock for every process of the machine and libfaketime leaves it
    # alone: the offline check maps it to Redis's time (run.json "mono_to_server").
    data["mono"] = time.monotonic()
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
_scripts.library.cache_clear()
''',
    # The store's clock made the node's own wall clock (time.time()) instead of Redis's time
    # advanced by the monotonic clock. For checking the clock-skew profile: a node whose wall
    # clock is stepped must then fire slots early or late, or be declared dead.
    "wall-clock": '''\
"""Test-only mutation loaded by the chaos harness (--mutate wall-clock) into every node: the
Redis store's clock() is the local wall clock. Never load this outside the harness."""
import time as _time

import distsched_redis.storage as _storage

_storage.RedisStorage.clock = lambda self: _time.time()
''',
    # The leader never finds a worker silent: a worker cut off from Redis is never reaped, and
    # what it held is not re-dispatched. For checking the worker-cut property of faults2.
    "no-reap": '''\
"""Test-only mutation loaded by the chaos harness (--mutate no-reap) into the schedulers: every
worker counts as alive whatever its heartbeat's age. Never load this outside the harness."""
from distsched.model.worker import Worker

Worker.is_alive = lambda self, now, ttl=0.0: True
''',
}
#: Mutants loaded into the workers too (the others only into the schedulers).
WORKER_MUTANTS = ("wall-clock",)

#: Written into the run directory of a clock-skew profile and imported at interpreter start
#: (``sitecustomize``) by the processes run under libfaketime only: libfaketime 0.9.10 with
#: ``FAKETIME_DONT_FAKE_MONOTONIC=1`` breaks ``clock_nanosleep(CLOCK_MONOTONIC,
#: TIMER_ABSTIME)`` (EINVAL: wolfcw/libfaketime#426), which Python 3.11's ``time.sleep`` uses;
#: this ``time.sleep`` waits in ``select`` instead (monotonic, not faked). Nothing else changes.
SITECUSTOMIZE = '''\
"""chaos harness: time.sleep without clock_nanosleep under libfaketime (wolfcw/libfaketime#426)."""
import os

if os.environ.get("CHAOS_FAKETIME"):
    import select as _select
    import time as _time

    def _sleep(seconds):
        end = _time.monotonic() + seconds
        while True:
            left = end - _time.monotonic()
            if left <= 0:
                return
            _select.select([], [], [], left)

    _time.sleep = _sleep
'''


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


# -- processes -----------------------------------------------------------------------------
class Proc(NodeProcess):
    """One distsched process (a scheduler or a worker); restarted as a new generation, with
    its own node id and log (``logs/<name>-g<gen>.log``)."""

    def __init__(self, cluster: Cluster, name: str, role: str) -> None:
        super().__init__(name, directory=cluster.dir, log_dir=cluster.log_dir, env=cluster.env,
                         log_name="{name}-g{gen}.log")
        self.cluster = cluster
        self.role = role
        #: True while the harness wants it running: the supervisor restarts a process that
        #: should run and exited on its own.
        self.should_run = False

    @property
    def node_id(self) -> str:
        return f"{self.name}-g{self.gen}"

    def command(self) -> list[str]:
        c = self.cluster
        url = c.url_of(self.name)
        head = [sys.executable, "-m", "distsched", "-v", "-p", "chaos_observer"]
        if c.storage == "redis" and (self.role == "scheduler" and c.mutant
                                     or self.role == "worker" and c.mutant in WORKER_MUTANTS):
            head += ["-p", "chaos_mutant"]
        if self.role == "scheduler":
            return head + ["scheduler", "--storage", url, "--jobs", str(c.dir / "jobs.toml"),
                           "--node-id", self.node_id, "--lease-ttl", str(LEASE_TTL),
                           "--renew-interval", str(RENEW_INTERVAL), "--heartbeat-ttl", str(HEARTBEAT_TTL)]
        return head + ["worker", "--storage", url, "--name", self.name, "--import", "chaos_tasks",
                       "--concurrency", str(WORKER_CONCURRENCY), "--heartbeat-interval", str(HEARTBEAT_INTERVAL)]

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), "CHAOS_PROC": f"{self.name}-g{self.gen}"}
        if self.cluster.faketime:
            # The wall clock (CLOCK_REALTIME) is this file's offset from the real one, re-read
            # at most once a second; the monotonic clock is not faked.
            env.update({"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.cluster.skew_file(self.name)),
                        "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                        "CHAOS_FAKETIME": "1"})
        return env

    def start(self) -> Proc:
        super().start()
        self.should_run = True
        self.cluster.proc_log.write({"t": now(), "event": "start", "proc": self.name, "gen": self.gen, "pid": self.pid,
                                     "node_id": self.node_id if self.role == "scheduler" else None})
        return self

    def kill9(self) -> None:
        self.should_run = False
        self.kill()


def store_server(storage: str, appendfsync: str = "always") -> Any:
    """The throwaway store server of a run: ``redis`` (AOF, ``appendfsync`` always unless a
    profile says otherwise) or ``postgres`` (a cluster of its own, see chaos_pg)."""
    if storage == "postgres":
        from chaos_pg import SETTINGS

        from distsched.testing.postgres_server import PostgresServer

        return PostgresServer(settings=SETTINGS)
    return RedisServer(appendonly=True, appendfsync=appendfsync,
                       config={"maxmemory-policy": "noeviction", "enable-debug-command": "local"})


class Cluster(Deployment[Any]):
    """The run directory, the store (Redis, or PostgreSQL with ``storage="postgres"``), one
    proxy per scheduler (and one for worker ``w1``) and the processes."""

    def __init__(self, run_dir: Path, mutant: str | None = None, storage: str = "redis", *,
                 appendfsync: str = "always", faketime: bool = False) -> None:
        pythonpath = os.pathsep.join(p for p in (str(run_dir), os.environ.get("PYTHONPATH", "")) if p)
        super().__init__(store_server(storage, appendfsync),
                         directory=run_dir, log_dir=run_dir / "logs", url_options={"namespace": NAMESPACE},
                         env={"CHAOS_DIR": str(run_dir), "PYTHONPATH": pythonpath})
        self.storage = storage
        self.mutant = mutant
        self.appendfsync = appendfsync
        #: Every node runs under libfaketime, its wall clock offset by ``skew/<name>`` (+0 s
        #: until a clock-skew fault steps it).
        self.faketime = faketime
        if faketime:
            if not os.path.exists(LIBFAKETIME):
                raise SystemExit(f"{LIBFAKETIME} is missing: install the Debian package faketime")
            (run_dir / "skew").mkdir(parents=True, exist_ok=True)
            (run_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        # On PostgreSQL the fence is checked in the database: the mutant is applied there
        # (chaos_pg.MUTANT_SQL), not loaded into the schedulers.
        if mutant and storage == "redis":
            (run_dir / "chaos_mutant.py").write_text(MUTANTS[mutant])
        for sub in ("history", "logs", "exec"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        (run_dir / "chaos_observer.py").write_text(OBSERVER)
        (run_dir / "chaos_tasks.py").write_text(TASKS)
        (run_dir / "jobs.toml").write_text(jobs_toml())
        self.proc_log = JsonlWriter(run_dir / "procs.jsonl")
        #: One proxy per scheduler; only PROXIED's is cut.
        self.proxies: dict[str, Proxy] = {}
        self.procs: dict[str, Proc] = {}  # type: ignore[assignment]

    def skew_file(self, name: str) -> Path:
        path = self.dir / "skew" / name
        if not path.exists():
            path.write_text("+0\n")
        return path

    def set_skew(self, name: str, seconds: float) -> None:
        """Step the wall clock of ``name`` (all its generations) to real time + ``seconds``;
        libfaketime reads the file again within a second."""
        tmp = self.dir / "skew" / f".{name}.tmp"
        tmp.write_text(f"{seconds:+.0f}s\n" if seconds else "+0\n")
        os.replace(tmp, self.dir / "skew" / name)

    async def start_proxies(self) -> None:
        proxy_class = Proxy
        if self.storage == "postgres":
            from chaos_pg import PgProxy

            proxy_class = PgProxy
        for name in (*SCHEDULERS, PROXIED_WORKER):
            proxy = proxy_class(self.store.port)
            await proxy.start()
            self.proxies[name] = proxy

    def url_of(self, name: str) -> str:
        proxy = self.proxies.get(name)
        if proxy is not None and self.storage == "postgres":
            return self.url.replace(f"@{LOOPBACK}:{self.store.port}/", f"@{LOOPBACK}:{proxy.port}/")
        return self.url if proxy is None else f"redis://{LOOPBACK}:{proxy.port}/0?namespace={NAMESPACE}"

    @property
    def proxy(self) -> Proxy:
        return self.proxies[PROXIED]

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
        return self.store.client(socket_timeout=timeout, socket_connect_timeout=2.0)
