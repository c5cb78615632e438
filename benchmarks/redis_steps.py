"""Redis steps: the server's microseconds of each step of a task's path, in batches of K.

    python benchmarks/redis_steps.py [--batch 1 --batch 500] [--tasks 4000] [--split] [--json]

Starts its own redis-server and drives one task's path through the Redis storage in this
process, K tasks a step: submit, the leader's read of ready tasks, dispatch, the worker's
take (pull), the worker's report that settles its own successes, the leader's settle. Each
step runs once with the scripts as functions of the library (``FCALL``, the lean
connection's way on Redis 7+) and once as scripts (``EVALSHA``, storage option
``lean=false``), in separate namespaces of the same server, alternating, so the two are
compared in the same minutes.

Figures come from the server's slow log with a threshold of 0 (every command, with its
duration, is logged; a command a script runs is counted in its script's duration): per
step, the server's microseconds per task of its script call, and the calls per task. The
client's time is not counted. What it shows is where Redis's CPU goes on a task's path - the
fixed cost of each call (K=1) against the cost per task (K=500).

``--split`` also reads the server's ``INFO commandstats`` before and after each step and
splits each step's time (as functions only) into the commands its script ran (each one's
own time, per task) and the script's own: running its Lua, and calling each command from
Lua (building its arguments, looking it up, reading its reply back into Lua).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections import defaultdict
from typing import Any

from _common import commandstats, parser, run_storages

from distsched.model import Task, TaskResult, TaskSpec, Worker
from distsched.testing.redis_server import RedisServer

STEPS = ("submit", "ready", "dispatch", "pull", "report", "settle")
#: script/function name -> step (the report of a worker without a signing key settles its
#: own successes; ``task_read`` is the leader's read of ready tasks)
SCRIPT_STEP = {"submit": "submit", "task_read": "ready", "dispatch": "dispatch", "pull": "pull",
               "report": "report", "settle": "settle"}


async def drive(url: str, k: int, rounds: int, split: Any = None, client: Any = None) -> None:
    """``rounds`` times: K tasks through every step. With ``split`` (a dict), the server's
    commands of each step, from ``client``'s ``INFO commandstats`` around it, are added up in
    ``split[step][command] = [calls, microseconds]``."""
    from distsched_redis.election import RedisElection
    from distsched_redis.storage import RedisStorage

    store = await RedisStorage.open(url)
    try:
        # a lease longer than any run (a slow machine's K=1 run of 4,000 tasks takes over 10 s);
        # nothing renews it here
        fence = await RedisElection(store, ttl=3600.0, renew_interval=60.0).acquire("leader")
        assert fence is not None
        await store.workers.register(Worker(id="w1", started_at=store.clock(), concurrency=k, capacity=100 * k))
        spec = TaskSpec(target="noop", args=(1,))

        async def step(name: str, call: Any) -> Any:
            if split is None:
                return await call
            before = commandstats(client)
            out = await call
            for command, (calls, usec) in commandstats(client).items():
                calls0, usec0 = before.get(command, (0, 0))
                if calls != calls0:
                    split[name][command][0] += calls - calls0
                    split[name][command][1] += usec - usec0
            return out

        for _ in range(rounds):
            await step("submit", store.tasks.submit([Task(id=uuid.uuid4().hex, spec=spec, created_at=store.clock())
                                                     for _ in range(k)]))
            ready = await step("ready", store.tasks.ready(store.clock() + 1, k))
            for task in ready:
                task.dispatch("w1", store.clock())
            assert all(await step("dispatch", store.tasks.dispatch(fence, ready)))
            taken = await step("pull", store.queues.pull("w1", k, 0.01))
            assert len(taken) == k, f"took {len(taken)} of {k}"
            await step("report", store.queues.report("w1", [
                TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="succeeded", started_at=1.0,
                           finished_at=2.0, worker_id="w1") for t in taken], settle=True))
            await step("settle", store.results.settle(fence, k))
    finally:
        await store.close()


def slowlog_by_step(client: Any, shas: dict[str, str]) -> dict[str, list[int]]:
    """{(how, step): [calls, microseconds]} of the script calls in the slow log, then reset it."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in client.slowlog_get(-1):
        command = entry["command"]
        if isinstance(command, bytes):
            command = command.decode("utf-8", "replace")
        words = command.split(" ", 2)
        if len(words) < 2:
            continue
        verb, name = words[0].upper(), words[1]
        if verb == "FCALL":
            match = re.match(r"distsched_[0-9a-f]+_(\w+)$", name)
            script = match.group(1) if match else None
        elif verb == "EVALSHA":
            script = shas.get(name)
        else:
            continue
        step = SCRIPT_STEP.get(script or "")
        if step is not None:
            slot = out[f"{verb.lower()} {step}"]
            slot[0] += 1
            slot[1] += int(entry["duration"])
    client.slowlog_reset()
    return out


def measure(args: Any, storage: str) -> tuple[dict[str, Any], str, bool]:
    from distsched_redis import scripts

    shas = {hashlib.sha1(scripts.source(name).encode()).hexdigest(): name for name in scripts.NAMES}
    figures: dict[str, Any] = {"batches": {}}
    lines = []
    with RedisServer(config={"maxmemory-policy": "noeviction", "slowlog-log-slower-than": "0",
                             "slowlog-max-len": "1000000"}) as server:
        client = server.client()
        try:
            for k in args.batch:
                rounds = max(1, args.tasks // k)
                totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
                split: Any = defaultdict(lambda: defaultdict(lambda: [0, 0])) if args.split else None
                for rep in range(args.reps):
                    for how, lean in (("fcall", "true"), ("evalsha", "false")):
                        client.slowlog_reset()
                        asyncio.run(drive(server.url_for(namespace=f"steps{k}{how}{rep}", lean=lean), k, rounds,
                                          split if how == "fcall" else None, client))
                        for key, (calls, usec) in slowlog_by_step(client, shas).items():
                            totals[key][0] += calls
                            totals[key][1] += usec
                n = rounds * k * args.reps
                batch: dict[str, Any] = {}
                for how in ("fcall", "evalsha"):
                    per = {step: round(totals[f"{how} {step}"][1] / n, 2) for step in STEPS}
                    batch[how] = {"us_per_task": per, "us_per_task_all": round(sum(per.values()), 1),
                                  "calls_per_task": round(sum(totals[f"{how} {s}"][0] for s in STEPS) / n, 3)}
                if split is not None:
                    batch["fcall"]["split"] = split_figures(split, n)
                figures["batches"][str(k)] = batch
                for how in ("fcall", "evalsha"):
                    b = batch[how]
                    lines.append(f"redis steps K={k} {how}: " + ", ".join(
                        f"{s} {v}" for s, v in b["us_per_task"].items())
                        + f" = {b['us_per_task_all']} us of Redis per task ({b['calls_per_task']} calls per task)")
                if split is not None:
                    lines.append(f"redis steps K={k} fcall, split: " + "; ".join(
                        f"{step} {f['script_us'] + f['commands_us']:.1f} = script {f['script_us']} + commands "
                        f"{f['commands_us']} ("
                        + ", ".join(f"{c} {calls}x{us}" for c, (calls, us) in list(f["commands"].items())[:3]) + ")"
                        for step, f in batch["fcall"]["split"].items()))
        finally:
            client.close()
    return figures, "\n".join(lines), False


def split_figures(split: dict[str, dict[str, list[int]]], n: int) -> dict[str, Any]:
    """Per step, from the commandstats added up by :func:`drive`: the script's own
    microseconds per task (its FCALL's time less its commands'), its commands' microseconds
    per task, and each command's calls per task and microseconds per call, the costliest
    first."""
    out = {}
    for step in STEPS:
        commands = {c: v for c, v in split[step].items() if c != "fcall"}
        nested = sum(usec for _, usec in commands.values())
        out[step] = {"script_us": round((split[step]["fcall"][1] - nested) / n, 1),
                     "commands_us": round(nested / n, 1),
                     "commands": {c: [round(calls / n, 2), round(usec / calls, 2)]
                                  for c, (calls, usec) in sorted(commands.items(), key=lambda kv: -kv[1][1])}}
    return out


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, action="append", help="tasks per step (repeatable; default 1 and 500)")
    p.add_argument("--tasks", type=int, default=4000, help="tasks per batch size and way (default 4000)")
    p.add_argument("--reps", type=int, default=2, help="alternations of the two ways (default 2)")
    p.add_argument("--split", action="store_true",
                   help="also split each step's time (functions) into its script's own and its commands', "
                        "from INFO commandstats around each step")
    args = p.parse_args()
    args.batch = args.batch or [1, 500]
    if args.storage != "redis":
        raise SystemExit("redis_steps.py measures the Redis storage only")
    run_storages(args, measure)


if __name__ == "__main__":
    main()
