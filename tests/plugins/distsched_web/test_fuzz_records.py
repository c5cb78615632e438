"""Seeded: stored records of every kind get fields of the wrong type or range, written
straight into Redis (as a broken client, a bad migration or an attacker with credentials
could), round after round, while the engine runs; every page and every API read of the
dashboard still answers - a bad record is moved aside, left out or shown as it is, never an
HTTP 500 for a whole page. (This fuzz found, each fixed and tested where it belongs: a lease
record or a throughput figure that failed the status; a job's retry, a task's args, target,
balancer or timeout that crash-looped the leader; a scheduler id that failed the sort of
the nodes; a result or attempt record that failed a task's page.)"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .test_api import wait_for

pytestmark = pytest.mark.redis

JOBS = {"every2": {"every": "2s", "target": "add", "args": [1, 2]},
        "failing": {"every": "3s", "target": "boom", "retry": {"max_attempts": 2, "delay": "0.1s"}},
        "once": {"at": "2030-01-01T00:00:00Z", "target": "add", "args": [1, 1]}}
#: Text a number check might take for a number, or not.
TEXTS = ["nan", "inf", "-inf", "1e999", "-1", "0", "1.5", "9" * 30, "0x10", " 7", "", "x", "é", "1e12", "-1e12",
         "253402300800", "null", "[]", "{}", "true"]
#: JSON values of every type and some sizes (NaN is written as the literal Python's json takes).
VALUES: list[Any] = [None, True, -1, 0, 1e12, -1e12, 1e308, 2**63, "x", "", [], {}, [1, 2], {"a": 1}, 1.5, "1e12",
                     "nan", float("nan")]


def _dump(value: Any) -> str:
    return json.dumps(value)  # NaN as the literal NaN: not JSON, as a broken writer would write it


def set_a_field(rng: random.Random, data: dict[str, Any]) -> None:
    """The fuzz's change of a JSON record: one of its fields, chosen by ``rng``, gets one of
    :data:`VALUES`."""
    data[rng.choice(sorted(data))] = rng.choice(VALUES)


def read_every_page_while_corrupting(server: Any, corrupt: Callable[[list[str]], None], caplog: Any) -> None:
    """The fuzz on ``server`` (the dashboard over a running engine): a few tasks run to their
    end, then eight rounds of six ``corrupt(task_ids)`` each, after each round every page and
    API read of the dashboard, none of which may answer 500; at the end the engine's log must
    show no failed pass of the leader and no failed observer of its events."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ids = [server.call(lambda app: app.submit("add", 1, 2)) for _ in range(4)]
        ids += [server.call(lambda app: app.submit("boom", retry={"max_attempts": 2, "delay": "0.1s"}))
                for _ in range(3)]
        wait_for(lambda: all(http.get(f"/api/v1/tasks/{t}").json().get("state") in ("succeeded", "failed")
                             for t in ids), what="the tasks to finish")
        paths = ["/", "/jobs", "/tasks", "/workers", "/api/v1/overview", "/api/v1/jobs", "/api/v1/tasks",
                 "/api/v1/workers", "/metrics"]
        for name in JOBS:
            paths += [f"/jobs/{name}", f"/api/v1/jobs/{name}", f"/api/v1/jobs/{name}/history",
                      f"/jobs/{name}/pause"]
        for state in ("pending", "running", "succeeded", "failed", "retrying"):
            paths += [f"/tasks?state={state}", f"/api/v1/tasks?state={state}"]
        for task_id in ids:
            paths += [f"/tasks/{task_id}", f"/api/v1/tasks/{task_id}"]
        for round_ in range(8):
            for _ in range(6):
                corrupt(ids)
            for path in paths:
                status = http.get(path).status_code
                assert status < 500, f"round {round_}: GET {path} answered {status}"
    failed = [r.getMessage() for r in caplog.records if "leader loop failed" in r.getMessage()
              or "event observer" in r.getMessage()]
    assert not failed, failed


def _corrupt(rng: random.Random, raw: Any, p: str, ids: list[str]) -> None:
    kind = rng.choice(["task", "taskjson", "attempt", "job", "jst", "jlast", "worker", "hb", "lease", "sched", "tp",
                       "blk", "qr", "cnt"])
    if kind == "task" and raw.exists(p + "t:" + (tid := rng.choice(ids))):
        raw.hset(p + "t:" + tid, rng.choice(["s", "v", "w", "n", "u", "sa", "da", "fa", "to", "j", "c"]),
                 rng.choice(TEXTS))
    elif kind == "taskjson":
        tid, field = rng.choice(ids), rng.choice(["d", "sp", "r"])
        text = raw.hget(p + "t:" + tid, field)
        data = json.loads(text) if text else None
        if isinstance(data, dict) and data:
            set_a_field(rng, data)
            raw.hset(p + "t:" + tid, field, _dump(data))
    elif kind == "attempt":
        tid = rng.choice(ids)
        entries = raw.lrange(p + "ta:" + tid, 0, -1)
        if entries:
            i = rng.randrange(len(entries))
            worker, _, text = entries[i].partition("\x1f")
            data = json.loads(text)
            set_a_field(rng, data)
            raw.lset(p + "ta:" + tid, i, worker + "\x1f" + _dump(data))
    elif kind == "job":
        name = rng.choice(sorted(JOBS))
        text = raw.hget(p + "jobs", name)
        if text:
            data = json.loads(text)
            part = rng.choice(["trigger", "spec", "misfire", "overlap", None])
            target = data.get(part) if part else data
            if isinstance(target, dict) and target:
                set_a_field(rng, target)
                raw.hset(p + "jobs", name, _dump(data))
    elif kind in ("jst", "jlast"):
        name = rng.choice(sorted(JOBS))
        text = raw.hget(p + kind, name)
        if text:
            fields = text.split("|")
            fields[rng.randrange(len(fields))] = rng.choice(TEXTS)
            raw.hset(p + kind, name, "|".join(fields))
    elif kind == "worker":
        workers = sorted(w for w in raw.hkeys(p + "workers") if not w.startswith("fz-"))
        if workers:
            data = json.loads(raw.hget(p + "workers", workers[0]))
            set_a_field(rng, data)
            raw.hset(p + "workers", "fz-w", _dump(data))
            raw.zadd(p + "hb", {"fz-w": 0})
    elif kind == "hb" and raw.hexists(p + "workers", "fz-w"):
        raw.zadd(p + "hb", {"fz-w": rng.choice([1e12, -1e12, 1e300, float("inf"), float("-inf")])})
    elif kind == "lease":
        raw.hset(p + "leaseinfo", rng.choice(["h", "t", "a", "r", "e"]), rng.choice(TEXTS))
    elif kind == "sched":
        nodes = sorted(n for n in raw.hkeys(p + "sched") if n != "fz-s")
        if nodes:
            data = json.loads(raw.hget(p + "sched", nodes[0]))
            set_a_field(rng, data)
            raw.hset(p + "sched", "fz-s", _dump(data))
            raw.zadd(p + "shb", {"fz-s": 0})
            raw.hset(p + "srole", "fz-s", "standby")
    elif kind == "tp":
        minutes = sorted(raw.keys(p + "tp:*"))
        if minutes:
            raw.hset(rng.choice(minutes), rng.choice(["succeeded", "failed"]), rng.choice(TEXTS))
    elif kind == "blk":
        workers = sorted(raw.hkeys(p + "workers"))
        if workers:
            raw.hset(p + "blk", rng.choice(workers), rng.choice(TEXTS))
    elif kind == "qr":
        raw.hset(p + "qr", f"task:q{rng.randrange(3)}", _dump(rng.choice(
            [*VALUES, {"kind": "task", "id": "q1", "reason": 5, "at": "x"}, {"kind": [], "id": {}, "at": "nan"}])))
    elif kind == "cnt":
        raw.hset(p + "cnt", rng.choice(["pending", "running", "bogus"]), rng.choice(TEXTS))


@pytest.mark.parametrize("seed", [4, 6])
def test_every_page_answers_whatever_the_stored_records_hold(web_server, redis_server, seed, caplog):
    rng = random.Random(seed)
    ns = f"fz{uuid.uuid4().hex[:8]}"
    server = web_server(storage=redis_server.url_for(namespace=ns), jobs=JOBS)
    p = "{" + ns + "}:"
    raw = redis_server.client()
    try:
        read_every_page_while_corrupting(server, lambda ids: _corrupt(rng, raw, p, ids), caplog)
    finally:
        raw.close()
