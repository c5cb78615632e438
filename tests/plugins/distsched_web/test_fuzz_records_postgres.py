"""The seeded fuzz of ``test_fuzz_records.py`` on PostgreSQL: stored rows of every kind get
values of the wrong range or type, written straight into the deployment's schema with SQL
(as a broken client, a bad migration or someone with credentials could), round after round,
while the engine runs; every page and every API read of the dashboard still answers - never
an HTTP 500 for a whole page.

PostgreSQL's typed columns hold what Redis's text cannot mislead about, and more that no
date can show: ``float8`` takes NaN and the infinities, ``timestamptz`` takes ``'infinity'``
and years up to 294276, an ``integer`` its limits. JSON columns are ``text`` and get values of
every type, as on Redis. A write the schema refuses (NULL into ``NOT NULL``) is skipped.

Beside the pages, the engine's log must show no failed pass of the leader and no failed
observer of its events. (This fuzz found a worker row whose capacity is a list or none, or
whose functions are a number, which crash-looped the leader while it heartbeated - seen here
first as the metrics observer failing on it; fixed and tested in both stores'
``test_poison.py``.)"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import pytest

from .test_fuzz_records import JOBS, TEXTS, _dump, read_every_page_while_corrupting, set_a_field

pytestmark = pytest.mark.postgres

#: float8 values: NaN, the infinities, times no date can show, and plain wrong ones.
F8 = ["'NaN'", "'Infinity'", "'-Infinity'", "1e12", "-1e12", "1e300", "0", "-1", "NULL"]
#: integer and bigint values at and around their limits.
INTS = ["2147483647", "-2147483648", "0", "-1", "NULL"]
#: timestamptz values no date (or a year past 9999) can show.
TSTZ = ["'infinity'", "'-infinity'", "'294276-12-31 23:59:59+00'", "'4713-01-01 00:00:00+00 BC'",
        "'1970-01-01 00:00:00+00'", "'10000-01-01 00:00:00+00'", "clock_timestamp()"]
TASK_F8 = ["slot", "timeout", "created_at", "updated_at", "not_before", "dispatched_at", "started_at", "finished_at",
           "expires_at"]  # (deadline is generated from them)
TASK_INT = ["attempt", "dispatches", "redeliveries", "serial_limit", "version"]
TASK_TEXT = ["state", "worker_id", "reason", "job", "ended", "pull_op"]


def _text(rng: random.Random) -> str:
    value = rng.choice(TEXTS)
    return "'" + value.replace("'", "''") + "'"


def _json(value: Any) -> str:
    return "'" + _dump(value).replace("'", "''") + "'"


async def _execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
        pass  # the schema refuses it: nothing written
    finally:
        await conn.close()


async def _fetch(url: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def _corrupt(rng: random.Random, url: str, schema: str, ids: list[str]) -> None:
    s = f'"{schema}".'
    kind = rng.choice(["task", "taskjson", "attempt", "job", "jobcol", "worker", "hb", "lease", "sched", "tp", "qr"])
    tid = rng.choice(ids).replace("'", "''")
    sql: str | None = None
    if kind == "task":
        column, values = rng.choice([(TASK_F8, F8), (TASK_INT, INTS), (TASK_TEXT, None)])
        col = rng.choice(column)
        sql = f"UPDATE {s}tasks SET {col} = {rng.choice(values) if values else _text(rng)} WHERE id = '{tid}'"
    elif kind == "taskjson":
        col = rng.choice(["spec", "result"])
        rows = asyncio.run(_fetch(url, f"SELECT {col} FROM {s}tasks WHERE id = '{tid}'"))
        data = json.loads(rows[0][0]) if rows and rows[0][0] else None
        if isinstance(data, dict) and data:
            set_a_field(rng, data)
            sql = f"UPDATE {s}tasks SET {col} = {_json(data)} WHERE id = '{tid}'"
    elif kind == "attempt":
        rows = asyncio.run(_fetch(url, f"SELECT n, data FROM {s}attempts WHERE task_id = '{tid}' ORDER BY n LIMIT 1"))
        if rows:
            data = json.loads(rows[0][1])
            set_a_field(rng, data)
            sql = f"UPDATE {s}attempts SET data = {_json(data)} WHERE n = {rows[0][0]}"
    elif kind == "job":
        name = rng.choice(sorted(JOBS))
        rows = asyncio.run(_fetch(url, f"SELECT config FROM {s}jobs WHERE name = '{name}'"))
        if rows:
            data = json.loads(rows[0][0])
            part = rng.choice(["trigger", "spec", "misfire", "overlap", None])
            target = data.get(part) if part else data
            if isinstance(target, dict) and target:
                set_a_field(rng, target)
                sql = f"UPDATE {s}jobs SET config = {_json(data)} WHERE name = '{name}'"
    elif kind == "jobcol":
        name = rng.choice(sorted(JOBS))
        col, value = rng.choice([("next_fire_at", F8), ("last_slot", F8), ("last_outcome_at", F8), ("version", INTS),
                                 ("last_outcome", None), ("last_task", None)])
        sql = f"UPDATE {s}jobs SET {col} = {rng.choice(value) if value else _text(rng)} WHERE name = '{name}'"
    elif kind == "worker":
        rows = asyncio.run(_fetch(url, f"SELECT data FROM {s}workers WHERE id <> 'fz-w' ORDER BY id LIMIT 1"))
        if rows:
            data = json.loads(rows[0][0])
            set_a_field(rng, data)
            sql = (f"INSERT INTO {s}workers (id, data, heartbeat) VALUES ('fz-w', {_json(data)}, 0) "
                   f"ON CONFLICT (id) DO UPDATE SET data = excluded.data")
    elif kind == "hb":
        col, values = rng.choice([("heartbeat", F8), ("blocked", INTS)])
        sql = f"UPDATE {s}workers SET {col} = {rng.choice(values)} WHERE id = 'fz-w'"
    elif kind == "lease":
        col, values = rng.choice([("acquired_at", TSTZ), ("renewed_at", TSTZ), ("expires_at", TSTZ),
                                  ("term", INTS + ["9223372036854775807"]), ("holder", None), ("last_holder", None)])
        sql = f"UPDATE {s}lease SET {col} = {rng.choice(values) if values else _text(rng)} WHERE id = 1"
    elif kind == "sched":
        rows = asyncio.run(_fetch(url, f"SELECT data FROM {s}schedulers WHERE id <> 'fz-s' ORDER BY id LIMIT 1"))
        if rows:
            data = json.loads(rows[0][0])
            set_a_field(rng, data)
            heartbeat = rng.choice(F8)
            sql = (f"INSERT INTO {s}schedulers (id, data, heartbeat, role) VALUES ('fz-s', {_json(data)}, "
                   f"coalesce({heartbeat}, 0::float8), {_text(rng)}) ON CONFLICT (id) DO UPDATE SET data = excluded.data, "
                   f"heartbeat = excluded.heartbeat, role = excluded.role")
    elif kind == "tp":
        sql = (f"UPDATE {s}throughput SET n = {rng.choice(INTS)} WHERE minute = "
               f"(SELECT max(minute) FROM {s}throughput)")
        if rng.random() < 0.5:
            minute = rng.choice(["9223372036854775807", "-9223372036854775808", "0"])
            sql = (f"INSERT INTO {s}throughput (minute, state, n) VALUES ({minute}, {_text(rng)}, "
                   f"{rng.choice(INTS[:-1])}) ON CONFLICT DO NOTHING")
    elif kind == "qr":
        sql = (f"INSERT INTO {s}quarantine (kind, key, reason, at, data) VALUES ({_text(rng)}, "
               f"'q{rng.randrange(3)}', {_text(rng)}, coalesce({rng.choice(F8)}, 0::float8), {_text(rng)}) "
               f"ON CONFLICT DO NOTHING")
    if sql is not None:
        asyncio.run(_execute(url, sql))


@pytest.mark.parametrize("seed", [7, 29])  # 40 seeds pass; these two failed before the worker fix
def test_every_page_answers_whatever_the_stored_rows_hold(web_server, postgres_database, seed, caplog):
    rng = random.Random(seed)
    schema = f"fz_{uuid.uuid4().hex[:8]}"
    server = web_server(storage=postgres_database.url_for(schema=schema), jobs=JOBS)
    url = postgres_database.url
    read_every_page_while_corrupting(server, lambda ids: _corrupt(rng, url, schema, ids), caplog)
