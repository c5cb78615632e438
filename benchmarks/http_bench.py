"""HTTP executor benchmark: N HTTP jobs through `distsched run` vs. direct httpx calls.

    python benchmarks/http_bench.py [-n 1000] [--concurrency 16] [--json]

Starts a local HTTP server (a separate process on a free loopback port), then:

1. direct:   N GET requests with one httpx.AsyncClient, `concurrency` at a time;
2. distsched: a jobs file of N one-shot `http` jobs all due at the same instant, run by a
   real `distsched run` process (memory://, worker concurrency = `concurrency`).

Prints requests per second for both, and the latency the engine adds: for each task,
(finish time - its slot time) minus the median direct request latency, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b'{"ok":true}'
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


async def direct(url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=limits) as client:
        await client.get(url)  # warm up the pool
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3})\s+(\S+)\s+attempt\s+\d+\s+(\S+)")


def through_distsched(url: str, n: int, concurrency: int) -> tuple[float, list[float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        slot = time.time() + 4.0
        slot = float(int(slot))  # whole second: the `at` slot is exact
        at = datetime.fromtimestamp(slot, timezone.utc).isoformat()
        jobs = [f'[worker]\nconcurrency = {concurrency}\ncapacity = {max(64, concurrency * 8)}\n']
        for i in range(n):
            jobs.append(f'[[jobs]]\nname = "h{i}"\nat = "{at}"\nexecutor = "http"\ntarget = "{url}"\ntimeout = "10s"\n')
        path = Path(tmp) / "jobs.toml"
        path.write_text("\n".join(jobs))
        proc = subprocess.run([sys.executable, "-m", "distsched", "run", str(path), "--duration", str(slot - time.time() + 6)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"distsched run failed:\n{proc.stderr}")
        day = datetime.fromtimestamp(slot, timezone.utc).date()
        finishes = []
        succeeded = 0
        for line in proc.stdout.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            succeeded += m.group(3) == "succeeded"
            t = datetime.strptime(f"{day} {m.group(1)}", "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
            finishes.append(t - slot)
        return (max(finishes) if finishes else float("nan")), finishes, succeeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="requests / jobs (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel requests (default 16)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/ok"
        d_total, d_lat = asyncio.run(direct(url, args.n, args.concurrency))
        e_total, e_lat, ok = through_distsched(url, args.n, args.concurrency)
    finally:
        server.kill()
    base = statistics.median(d_lat)
    added = [max(0.0, x - base) for x in e_lat]
    figures = {
        "n": args.n, "concurrency": args.concurrency,
        "direct_rps": round(args.n / d_total, 1), "direct_p50_ms": round(base * 1000, 2),
        "direct_p99_ms": round(pct(d_lat, 99) * 1000, 2),
        "distsched_rps": round(args.n / e_total, 1) if e_total == e_total else None,
        "distsched_succeeded": ok,
        "added_p50_ms": round(pct(added, 50) * 1000, 1), "added_p99_ms": round(pct(added, 99) * 1000, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"http: direct {figures['direct_rps']} req/s (p50 {figures['direct_p50_ms']} ms); "
              f"distsched run {figures['distsched_rps']} req/s, {ok}/{args.n} succeeded; "
              f"latency added by the engine p50 {figures['added_p50_ms']} ms, p99 {figures['added_p99_ms']} ms "
              f"(slot to recorded result, all {args.n} due at once)")
    if ok != args.n:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
