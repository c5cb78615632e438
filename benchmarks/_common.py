"""Shared pieces of the benchmarks: a throwaway store (Redis, or a PostgreSQL database), real
distsched processes, figures."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


STORAGES = ("redis", "postgres")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--storage", choices=(*STORAGES, "both"), default="redis",
                   help="the store: a throwaway redis-server, a throwaway database on the PostgreSQL server at "
                        "$DISTSCHED_TEST_POSTGRES (default postgres@127.0.0.1:5432), or both in the same run "
                        "(default redis)")
    return p


def run_storages(args: argparse.Namespace, measure: Callable[[Any, str], tuple[dict[str, Any], str, bool]]) -> None:
    """Run ``measure(args, storage)`` on the storage(s) asked for and print the figures: one
    line (or JSON object) per storage; ``--storage both`` prints them side by side (JSON:
    ``{"redis": {...}, "postgres": {...}}``). Exits 1 when a run failed its checks."""
    storages = list(STORAGES) if args.storage == "both" else [args.storage]
    results = {storage: measure(args, storage) for storage in storages}
    failed = any(bad for _, _, bad in results.values())
    if len(storages) == 1:
        figures, line, _ = results[storages[0]]
        report(figures, line, args.json)
    elif args.json:
        print(json.dumps({storage: figures for storage, (figures, _, _) in results.items()}), flush=True)
    else:
        for storage, (_, line, _) in results.items():
            print(f"[{storage}] {line}", flush=True)
    if failed:
        sys.exit(1)


def report(figures: dict[str, Any], line: str, as_json: bool) -> None:
    print(json.dumps(figures) if as_json else line, flush=True)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Deployment:
    """A throwaway store - a redis-server, or a database of its own on the PostgreSQL server
    (created here, dropped at the end) - and the distsched processes run against it."""

    def __init__(self, namespace: str = "bench", storage: str = "redis") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="distsched-bench-"))
        self.storage = storage
        self.redis: Any = None
        self.database: Any = None
        if storage == "postgres":
            from distsched.testing.postgres_server import PostgresDatabase, server_answers

            reason = server_answers()
            if reason is not None:
                raise SystemExit(reason)
            self.database = PostgresDatabase().create()
            self.url = self.database.url_for(schema=namespace)
        else:
            from distsched.testing.redis_server import RedisServer

            self.redis = RedisServer(config={"maxmemory-policy": "noeviction"}).start()
            self.url = f"{self.redis.url}?namespace={namespace}"
        self.procs: dict[str, subprocess.Popen] = {}

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "distsched", *args], cwd=self.dir, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text()

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise SystemExit(f"timed out after {timeout}s waiting for {what}; logs in {self.dir}")

    def stop(self, name: str, timeout: float = 30.0) -> int | None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()
        if self.database is not None:
            self.database.drop()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
