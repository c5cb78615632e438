"""HTTP executor benchmark: HTTP jobs through `distsched run` vs. direct httpx calls.

    python benchmarks/http_bench.py [-n 2000] [--paced 200] [--concurrency 16] [--json]

Starts a small asyncio HTTP/1.1 server (a separate process on a free loopback port), then:

1. direct: N GET requests with one httpx.AsyncClient, `concurrency` at a time (req/s), and
   `paced` sequential requests (their median is the direct request latency);
2. distsched burst: N one-shot `http` jobs all due at the same instant, run by a real
   `distsched run` process (memory://, worker concurrency = `concurrency`): req/s;
3. distsched paced: `paced` jobs 20 ms apart (never queued): for each, the time from its
   slot to its recorded result minus the direct request latency is what the engine adds
   (p50, p99; the task log has millisecond resolution).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from distsched.testing.processes import percentile

ROOT = Path(__file__).resolve().parent.parent
SERVER = r"""
import asyncio
BODY = b'{"ok":true}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:") and int(line.split(b":")[1]):
                    await reader.readexactly(int(line.split(b":")[1]))
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""
def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3})\s+(\S+)\s+attempt\s+\d+\s+(\S+)")


async def direct(url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=limits) as client:
        await client.get(url)  # warm the pool
        remaining = iter(range(n))

        async def worker() -> None:
            for _ in remaining:
                t0 = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def through_distsched(url: str, slots: list[float], concurrency: int) -> tuple[list[float], int]:
    """Run one `at` job per slot through `distsched run`; returns (finish - slot) per job."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [f"[worker]\nconcurrency = {concurrency}\ncapacity = {max(64, concurrency * 8)}\n"]
        # A warm-up job 2 s before the first slot pays the executor's one-time start-up (httpx
        # import, TLS context) so that the measured jobs see a running worker.
        warm = datetime.fromtimestamp(min(slots) - 2, timezone.utc).isoformat()
        jobs.append(f'[[jobs]]\nname = "warmup"\nat = "{warm}"\nexecutor = "http"\ntarget = "{url}"\n')
        for i, slot in enumerate(slots):
            at = datetime.fromtimestamp(slot, timezone.utc).isoformat()
            jobs.append(f'[[jobs]]\nname = "h{i}"\nat = "{at}"\nexecutor = "http"\ntarget = "{url}"\ntimeout = "10s"\n')
        path = Path(tmp) / "jobs.toml"
        path.write_text("\n".join(jobs))
        duration = max(slots) - time.time() + 5 + len(slots) / 100
        proc = subprocess.run([sys.executable, "-m", "distsched", "run", str(path), "--duration", f"{duration:.1f}"],
                              capture_output=True, text=True, cwd=ROOT, timeout=duration + 60)
        if proc.returncode != 0:
            raise SystemExit(f"distsched run failed:\n{proc.stderr}")
        latencies: list[float] = []
        succeeded = 0
        for line in proc.stdout.splitlines():
            m = LINE.match(line)
            if not m or m.group(2) == "warmup":
                continue
            succeeded += m.group(3) == "succeeded"
            slot = slots[int(m.group(2)[1:])]
            day = datetime.fromtimestamp(slot, timezone.utc).date()
            finished = datetime.strptime(f"{day} {m.group(1)}", "%Y-%m-%d %H:%M:%S.%f")
            latencies.append(finished.replace(tzinfo=timezone.utc).timestamp() - slot)
        return latencies, succeeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="jobs in the burst (default 2000)")
    parser.add_argument("--paced", type=int, default=200, help="jobs in the paced run that measures latency (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel requests (default 16)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/ok"
        direct_total, _ = asyncio.run(direct(url, args.n, args.concurrency))
        _, sequential = asyncio.run(direct(url, args.paced, 1))
        start = float(int(time.time() + 4))
        burst, ok_burst = through_distsched(url, [start] * args.n, args.concurrency)
        start = float(int(time.time() + 4))
        paced, ok_paced = through_distsched(url, [start + 0.02 * i for i in range(args.paced)], args.concurrency)
    finally:
        server.kill()
    base = statistics.median(sequential)
    added = [max(0.0, x - base) for x in paced]
    figures = {
        "n": args.n, "paced": args.paced, "concurrency": args.concurrency,
        "direct_rps": round(args.n / direct_total, 1), "direct_latency_p50_ms": round(base * 1000, 2),
        "distsched_rps": round(args.n / max(burst), 1) if burst else None,
        "burst_succeeded": ok_burst, "paced_succeeded": ok_paced,
        "added_p50_ms": ms(percentile(added, 50)), "added_p99_ms": ms(percentile(added, 99)),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"http: direct httpx {figures['direct_rps']} req/s, distsched run {figures['distsched_rps']} req/s "
              f"({ok_burst}/{args.n} succeeded, all due at once); the engine adds p50 {figures['added_p50_ms']} ms, "
              f"p99 {figures['added_p99_ms']} ms per request ({ok_paced}/{args.paced} paced jobs; direct request "
              f"{figures['direct_latency_p50_ms']} ms)")
    if ok_burst != args.n or ok_paced != args.paced:
        sys.exit(1)


if __name__ == "__main__":
    main()
