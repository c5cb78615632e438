"""Shared pieces of the benchmarks: figures and their report. The deployment (a throwaway
Redis and real distsched processes) and ``percentile`` come from ``distsched.testing.processes``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from distsched.testing.processes import Deployment
from distsched.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return p


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


def deployment(namespace: str = "bench") -> Deployment[RedisServer]:
    """A throwaway redis-server (``noeviction``) for the distsched processes of a benchmark;
    ``with deployment() as dep:`` starts it, ``dep.spawn(name, *args)`` starts a process."""
    return Deployment(RedisServer(config={"maxmemory-policy": "noeviction"}), prefix="distsched-bench-",
                      url_options={"namespace": namespace})


def rounded(value: float | None, digits: int) -> float | None:
    """``round(value, digits)``, None for None (a percentile of no values)."""
    return None if value is None else round(value, digits)

