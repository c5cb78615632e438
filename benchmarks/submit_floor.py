"""Submit floor: what one sequential submit costs, layer by layer, beside the floor of a Python
Redis client on this machine.

    python benchmarks/submit_floor.py [-n 10000] [--reps 3] [--json]

Starts its own redis-server and, in one process, times N sequential calls of each layer, the
layers alternated rep by rep so that all of them see the same minutes of a machine whose speed
moves:

- ``sync LPUSH``: redis-py's blocking client, one ``LPUSH`` per call (what huey's and
  dramatiq's producers do);
- ``asyncio LPUSH``: redis-py's asyncio client, one ``LPUSH`` per call (taskiq's, arq's);
- ``lean LPUSH``: distsched's lean connection (plugins/distsched_redis/lean.py), one ``LPUSH``
  per call: the floor of one round trip from an asyncio program here;
- ``lean submit``: the storage's call of the submit function with a task string built before
  the clock starts (the function, the op key, the connection; no Python model work);
- ``store submit``: ``storage.tasks.submit([task])`` of a ``Task`` built before the clock
  starts (adds encoding the task string);
- ``app submit``: ``await app.submit("noop", i)``, the facade as a web handler calls it (adds
  building and checking the ``TaskSpec`` and the ``Task``, the id).

Printed per layer (the median rep): wall-clock microseconds per call, the calling process's
CPU microseconds per call, redis-server's CPU microseconds per call (``INFO cpu``) and Redis
commands per call (``INFO commandstats``, every command a script ran included). The
difference between two rows is what that layer adds. A sequential submitter cannot submit
faster than one call of its layer's wall clock; 8,000 submits/s is 125 us per call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _common import parser, run_storages

from distsched.testing.redis_server import RedisServer

LAYERS = ("sync LPUSH", "asyncio LPUSH", "lean LPUSH", "lean submit", "store submit", "app submit")


def snapshot(client: Any) -> tuple[int, float]:
    """(commands run so far, INFO itself excepted; redis-server's CPU seconds so far)."""
    info = client.info("cpu", "commandstats")
    calls = sum(int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_") and k != "cmdstat_info")
    return calls, float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def per_call(before: tuple[int, float], after: tuple[int, float], wall: float, own: float, n: int) -> dict[str, float]:
    return {"wall_us": wall / n * 1e6, "client_cpu_us": own / n * 1e6,
            "redis_cpu_us": (after[1] - before[1]) / n * 1e6, "commands": (after[0] - before[0]) / n}


def timed(client: Any, n: int, body: Callable[[], Any]) -> dict[str, float]:
    """``body()`` (which makes n calls) timed, per call."""
    before = snapshot(client)
    own0, start = time.process_time(), time.perf_counter()
    body()
    wall, own = time.perf_counter() - start, time.process_time() - own0
    return per_call(before, snapshot(client), wall, own, n)


async def async_layers(url: str, port: int, n: int, client: Any) -> dict[str, dict[str, float]]:
    """The asyncio layers, each timed over n calls, in this order."""
    import redis.asyncio as aredis

    from distsched import DistributeSchedule
    from distsched.model import Task, TaskSpec
    from distsched_redis.codec import task_args

    out: dict[str, dict[str, float]] = {}
    app = DistributeSchedule(url)
    store: Any = await app.storage()
    aclient = aredis.Redis(port=port)
    try:
        await app.submit("noop", -1)  # warm: the connection, the library, the first-call imports
        await aclient.ping()

        async def measure(layer: str, make: Callable[[int], Awaitable[Any]]) -> None:
            before = snapshot(client)
            own0, start = time.process_time(), time.perf_counter()
            for i in range(n):
                await make(i)
            wall, own = time.perf_counter() - start, time.process_time() - own0
            out[layer] = per_call(before, snapshot(client), wall, own, n)

        await measure("asyncio LPUSH", lambda i: aclient.lpush("floor:a", i))
        assert store.lean is not None, "the lean connection is off"
        await measure("lean LPUSH", lambda i: store.lean.execute("LPUSH", "floor:l", i))
        spec = TaskSpec(target="noop", args=(1,))
        prebuilt = [task_args(Task(id=uuid.uuid4().hex, spec=spec, created_at=store.clock()), 0) for _ in range(n)]
        await measure("lean submit", lambda i: store.run(store.scripts.submit, [store.retention, prebuilt[i]]))
        tasks = [Task(id=uuid.uuid4().hex, spec=spec, created_at=store.clock()) for _ in range(n)]
        await measure("store submit", lambda i: store.tasks.submit([tasks[i]]))
        await measure("app submit", lambda i: app.submit("noop", i))
        return out
    finally:
        await aclient.aclose()
        await app.engine.close()


def measure(args: Any, storage: str) -> tuple[dict[str, Any], str, bool]:
    if storage != "redis":
        raise SystemExit("submit_floor.py measures the Redis client layers: --storage redis only")
    import redis

    n = args.n
    reps: dict[str, list[dict[str, float]]] = {layer: [] for layer in LAYERS}
    with RedisServer(config={"maxmemory-policy": "noeviction"}) as server:
        port = server.port
        assert port is not None, "the server has not started"
        client = server.client()
        sync = redis.Redis(port=port)
        try:
            for rep in range(args.reps):
                reps["sync LPUSH"].append(timed(client, n, lambda: [sync.lpush("floor:s", i) for i in range(n)]))
                for layer, got in asyncio.run(
                        async_layers(server.url_for(namespace=f"floor{rep}"), port, n, client)).items():
                    reps[layer].append(got)
                client.delete("floor:s", "floor:a", "floor:l")
        finally:
            sync.close()
            client.close()
    figures: dict[str, Any] = {"n": n, "reps": args.reps, "layers": {}}
    lines = []
    for layer in LAYERS:
        runs = sorted(reps[layer], key=lambda f: f["wall_us"])
        mid = runs[len(runs) // 2]
        figures["layers"][layer] = {k: round(v, 2) for k, v in mid.items()} | {
            "wall_us_all": [round(r["wall_us"], 1) for r in reps[layer]]}
        lines.append(f"submit floor {layer:13s}: {mid['wall_us']:7.1f} us wall ({1e6 / mid['wall_us']:8.0f}/s), "
                     f"client CPU {mid['client_cpu_us']:6.1f} us, redis CPU {mid['redis_cpu_us']:5.1f} us, "
                     f"{mid['commands']:4.1f} Redis commands per call "
                     f"(wall over reps: {', '.join(str(round(r['wall_us'])) for r in reps[layer])})")
    return figures, "\n".join(lines), False


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=10000, help="calls per layer and rep (default 10000)")
    p.add_argument("--reps", type=int, default=3, help="reps of every layer, alternated (default 3)")
    args = p.parse_args()
    run_storages(args, measure)


if __name__ == "__main__":
    main()
