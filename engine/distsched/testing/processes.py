"""Real processes for multi-process tests, benchmarks and the chaos harness.

>>> from distsched.testing.redis_server import RedisServer
>>> with Deployment(RedisServer(), url_options={"namespace": "mp"}) as dep:
...     dep.write("my_tasks.py", "from distsched import task\\n...")
...     dep.spawn("s1", "scheduler", "--storage", dep.url)
...     worker = dep.spawn("w1", "worker", "--storage", dep.url, "--import", "my_tasks")
...     dep.wait_for(dep.leader, 15, "a leader")      # polls; on timeout raises WaitTimeout with the logs
...     worker.kill()                                  # kill -9 (then restart: worker.start())
...     dep.stop("s1")                                 # SIGTERM, then SIGKILL after the timeout

* :class:`StoreServer` - the protocol of a throwaway store server a :class:`Deployment` runs
  against. :class:`~distsched.testing.redis_server.RedisServer` implements it; a PostgreSQL
  test server implements the same members to stand where Redis stands.
* :class:`ChildProcess` - one child process with its output in a log file.
* :class:`NodeProcess` - one ``python -m distsched ...`` role (scheduler, worker, ...),
  started again as a new generation with its own log.
* :class:`Deployment` - a store server, a directory and the node processes run against it.
* :func:`wait_until` / :func:`wait_until_async` - poll a predicate until it is truthy or a
  deadline passes (:class:`WaitTimeout`); :func:`percentile` - the nearest-rank percentile.

Only processes started here are ever signalled, each by its own pid; a process a test
forgot to stop is killed when the interpreter exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from ..facade import DistributeSchedule
    from ..ports import StorageBackend

T = TypeVar("T")
_live: set[ChildProcess] = set()


# -- waiting and figures ---------------------------------------------------------------------
class WaitTimeout(AssertionError):
    """A condition polled by :func:`wait_until` did not hold before its deadline (an
    AssertionError, so a test reports it as a failed expectation)."""


def wait_until(predicate: Callable[[], T | None], timeout: float, *, what: str = "a condition",
               interval: float = 0.05, detail: Callable[[], str] | None = None) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value, and return
    that value; raise :class:`WaitTimeout` naming ``what`` (plus ``detail()``, e.g. log tails)
    when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout}s waiting for {what}" + (f"\n{detail()}" if detail else ""))


async def wait_until_async(predicate: Callable[[], Awaitable[T | None]], timeout: float, *, what: str = "a condition",
                           interval: float = 0.05) -> T:
    """:func:`wait_until` for an async predicate (awaited; the loop sleeps with ``asyncio.sleep``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0..100) of ``values``; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- store servers ---------------------------------------------------------------------------
@runtime_checkable
class StoreServer(Protocol):
    """The store-server protocol: a throwaway database server a :class:`Deployment` starts,
    hands to its processes as a storage URL, and stops (or crashes) at will.

    :class:`distsched.testing.redis_server.RedisServer` implements it; a PostgreSQL test
    server implements the same members so that it can stand where Redis stands. A third-party
    storage plugin's own test server fits it too.
    """

    @property
    def running(self) -> bool:
        """True while the server process is alive."""

    def start(self) -> StoreServer:
        """Start the server (a no-op when it runs) and return once it answers."""

    def stop(self) -> None:
        """Stop the server gracefully and remove what it stored."""

    def kill(self) -> None:
        """Kill the server (SIGKILL, a crash); what it persisted stays for :meth:`restart`."""

    def restart(self) -> StoreServer:
        """Start the server again on the same address (after :meth:`kill` or :meth:`stop`)."""

    def url_for(self, **options: Any) -> str:
        """A distsched storage URL of this server with these URL options (``namespace=...``,
        or whatever the store's plugin reads)."""

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's own log (for failure messages)."""


S = TypeVar("S", bound=StoreServer)


# -- processes -------------------------------------------------------------------------------
class ChildProcess:
    """A child process started here, its stdout and stderr appended to ``log``, in a session of
    its own (a Ctrl-C in the terminal does not reach it); only ever signalled by its pid."""

    def __init__(self, argv: Sequence[str], log: Path, *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.argv = [str(a) for a in argv]
        self.log = log
        #: True once :meth:`stop` had to kill the process after its timeout.
        self.forced = False
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=cwd, env=None if env is None else dict(env), start_new_session=True)
        _live.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def alive(self) -> bool:
        return self.popen.poll() is None

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (``subprocess.TimeoutExpired`` after ``timeout``); its return code."""
        code = self.popen.wait(timeout)
        _live.discard(self)
        return code

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` if the process still runs."""
        if self.alive():
            os.kill(self.popen.pid, sig)

    def kill(self) -> int:
        """SIGKILL (a crash) and reap; the return code."""
        self.send_signal(signal.SIGKILL)
        return self.wait(10)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL (``forced`` becomes True); the
        return code."""
        self.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.forced = True
            return self.kill()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - only when a run forgot to stop one
    for child in list(_live):
        with contextlib.suppress(Exception):
            child.kill()


class NodeProcess:
    """One ``python -m distsched ARGS`` role of a :class:`Deployment` (a scheduler, a worker...).

    Each :meth:`start` runs a new generation (``gen`` 1, 2, ...) logging to
    ``log_dir / log_name.format(name=..., gen=...)``; ``pids`` lists every generation's pid.
    The environment is this one plus ``PYTHONUNBUFFERED=1`` and ``env``, without
    ``DISTSCHED_STORAGE`` (each process is given its store explicitly). Subclasses may
    override :meth:`command` and :meth:`environment` to vary them per generation.
    """

    def __init__(self, name: str, args: Sequence[str] = (), *, directory: Path, log_dir: Path | None = None,
                 env: Mapping[str, str] | None = None, log_name: str = "{name}.log") -> None:
        self.name = name
        self.args = [str(a) for a in args]
        self.directory = directory
        self.log_dir = log_dir or directory
        self.env = dict(env or {})
        self.log_name = log_name
        self.gen = 0
        self.child: ChildProcess | None = None
        self.pids: list[int] = []
        #: True while SIGSTOPped by :meth:`pause`.
        self.paused = False

    def command(self) -> list[str]:
        return [sys.executable, "-m", "distsched", *self.args]

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("DISTSCHED_STORAGE", None)
        return env

    @property
    def log_path(self) -> Path:
        """The log of the current generation."""
        return self.log_dir / self.log_name.format(name=self.name, gen=max(self.gen, 1))

    def start(self) -> NodeProcess:
        """Start a new generation (the previous one must have exited or been killed)."""
        self.gen += 1
        self.log_path.write_bytes(b"")
        self.child = ChildProcess(self.command(), self.log_path, cwd=self.directory, env=self.environment())
        self.pids.append(self.child.pid)
        self.paused = False
        return self

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    @property
    def returncode(self) -> int | None:
        return self.child.returncode if self.child is not None else None

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    def poll(self) -> int | None:
        return self.child.poll() if self.child is not None else None

    def wait(self, timeout: float | None = None) -> int:
        assert self.child is not None, f"{self.name} was never started"
        return self.child.wait(timeout)

    def send_signal(self, sig: int) -> None:
        if self.child is not None:
            self.child.send_signal(sig)

    def kill(self) -> int | None:
        """kill -9 and reap (a crash); the return code."""
        self.paused = False
        return self.child.kill() if self.child is not None else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a graceful stop: workers drain), then SIGKILL after ``timeout`` seconds."""
        if self.child is None:
            return None
        if self.paused:
            self.resume()
        return self.child.stop(timeout)

    def pause(self) -> None:
        """SIGSTOP: the process freezes with its connections open (a GC pause, a VM stall)."""
        self.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self.send_signal(signal.SIGCONT)
        self.paused = False

    def log_text(self) -> str:
        """The current generation's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Deployment(Generic[S]):
    """A :class:`StoreServer`, a working directory and the distsched processes run against it.

    ``url_options`` are added to the store's URL (``url``), e.g. ``{"namespace": "bench"}``;
    ``env`` is added to every process's environment. Processes run in ``dir`` (a new temp dir
    unless ``directory`` is given; it is kept, with the logs) and log to ``log_dir`` (default
    ``dir``). :meth:`start` (or ``with``) starts the store; :meth:`close` kills what still
    runs and stops the store.
    """

    def __init__(self, store: S, *, directory: Path | None = None, prefix: str = "distsched-",
                 url_options: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 log_dir: Path | None = None) -> None:
        self.store = store
        self.dir = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix=prefix))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir or self.dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.url_options = dict(url_options or {})
        self.env = dict(env or {})
        self.procs: dict[str, NodeProcess] = {}
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Deployment[S]:
        """Start the store (unless it runs) and set ``url``."""
        if not self.store.running:
            self.store.start()
        self.url = self.store.url_for(**self.url_options)
        return self

    def __enter__(self) -> Deployment[S]:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """kill -9 every process still running, then stop the store."""
        self.kill_all()
        self.store.stop()

    def kill_all(self) -> None:
        """kill -9 every process still running; the store stays (a shared one is not this
        deployment's to stop)."""
        for proc in self.procs.values():
            if proc.alive():
                proc.kill()

    # -- processes ------------------------------------------------------------------------
    def write(self, name: str, text: str) -> Path:
        """Write a file (a tasks module, a jobs file) into the working directory."""
        path = self.dir / name
        path.write_text(text)
        return path

    def add(self, proc: NodeProcess) -> NodeProcess:
        """Register a process (not started) under its name."""
        self.procs[proc.name] = proc
        return proc

    def node(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> NodeProcess:
        """A ``python -m distsched ARGS`` process registered as ``name``, not started."""
        return self.add(NodeProcess(name, args, directory=self.dir, log_dir=self.log_dir,
                                    env={**self.env, **(env or {})}))

    def spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> NodeProcess:
        """Start ``python -m distsched ARGS`` as ``name`` (logging to ``<name>.log``)."""
        return self.node(name, *args, env=env).start()

    def log(self, name: str) -> str:
        return self.procs[name].log_text()

    def logs_tail(self, chars: int = 2000) -> str:
        """The end of every process's current log and of the store's, for failure messages."""
        parts = [f"--- {name}\n{proc.log_text()[-chars:]}" for name, proc in self.procs.items()]
        return "\n".join([f"logs in {self.log_dir}", *parts, f"--- store\n{self.store.log_tail()}"])

    def stop(self, name: str, timeout: float = 30.0) -> int | None:
        """Stop one process gracefully (SIGTERM, then SIGKILL after ``timeout``)."""
        return self.procs[name].stop(timeout)

    def stop_all(self, procs: Iterable[NodeProcess] | None = None,
                 timeout: float = 30.0) -> dict[NodeProcess, int | None]:
        """SIGTERM every running process (of ``procs``, default all) at once so that they
        drain in parallel, then wait for each up to ``timeout`` seconds. The exit code by
        process; None for one still running then, which is killed."""
        running = [p for p in (self.procs.values() if procs is None else procs) if p.alive()]
        for p in running:
            if p.paused:
                p.resume()
            p.send_signal(signal.SIGTERM)
        codes: dict[NodeProcess, int | None] = {}
        for p in running:
            try:
                codes[p] = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[p] = None
        return codes

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
        """:func:`wait_until`, whose :class:`WaitTimeout` carries the tail of every log."""
        return wait_until(predicate, timeout, what=what, interval=interval, detail=self.logs_tail)

    # -- the store through the public API --------------------------------------------------
    def call(self, fn: Callable[[DistributeSchedule, StorageBackend], Awaitable[T]]) -> T:
        """Run ``await fn(app, storage)`` with a fresh :class:`~distsched.DistributeSchedule`
        on ``url`` (in a new event loop), closing it afterwards."""
        from ..facade import DistributeSchedule

        async def main() -> T:
            app = DistributeSchedule(self.url)
            try:
                return await fn(app, await app.storage())
            finally:
                await app.engine.close()

        return asyncio.run(main())

    def leader(self) -> str | None:
        """The node id holding the scheduler lease now, or None."""

        async def current(app: DistributeSchedule, storage: StorageBackend) -> str | None:
            fence = await (await app.engine.open_election()).current()
            return fence.node_id if fence else None

        return self.call(current)


__all__ = ["ChildProcess", "Deployment", "NodeProcess", "StoreServer", "WaitTimeout", "percentile", "wait_until",
           "wait_until_async"]
