"""PostgreSQL drivers: asyncpg (the plugin's) against psycopg 3 on the plugin's own calls.

    python benchmarks/pg_drivers.py [-n 3000] [--json]      (needs: pip install 'psycopg[binary]')

On a throwaway database (schema created by the plugin's migrations), each driver, one
connection, in turn: ``n`` single-task submissions (one function call with a JSON parameter,
the shape of every port write), ``n`` reads of one task by id (a prepared SELECT returning a
row), bulk submissions of 1,000 tasks, and reads of 1,000 task rows. Prints the calls per
second of each and the ratio. A measurement for choosing the driver, not a test.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from _common import parser

from distsched.testing import make_task
from distsched.testing.postgres_server import PostgresDatabase, server_answers


async def _prepare(url: str) -> None:
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(url)
    await store.close()


def _params(prefix: str, n: int, size: int = 1) -> list[str]:
    from distsched_postgres import codec

    return [codec.tasks_param([make_task(f"{prefix}{i}-{k}") for k in range(size)]) for i in range(n)]


async def bench_asyncpg(dsn: str, schema: str, n: int) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    out = {}
    try:
        out["submit_1_per_s"] = await _timed(n, [conn.fetchval("SELECT ds_submit($1::json, 60)", p)
                                                 for p in _params("a", n)], sequential=True)
        ids = [f"a{i}-0" for i in range(n)]
        out["get_1_per_s"] = await _timed(n, [conn.fetchrow("SELECT * FROM tasks WHERE id = $1", i) for i in ids],
                                          sequential=True)
        bulk = _params("ab", 10, 1000)
        out["submit_1000_per_s"] = await _timed(10, [conn.fetchval("SELECT ds_submit($1::json, 60)", p) for p in bulk],
                                                sequential=True)
        out["read_1000_per_s"] = await _timed(20, [conn.fetch("SELECT * FROM tasks ORDER BY id LIMIT 1000")
                                                   for _ in range(20)], sequential=True)
    finally:
        await conn.close()
    return out


async def bench_psycopg(dsn: str, schema: str, n: int) -> dict[str, float]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, options=f"-c search_path={schema}",
                                                 prepare_threshold=0)
    out = {}

    async def one(sql: str, args: Any, fetch: str) -> Any:
        cur = await conn.execute(sql, args)
        return await (cur.fetchone() if fetch == "one" else cur.fetchall())

    try:
        out["submit_1_per_s"] = await _timed(n, [one("SELECT ds_submit(%s::json, 60)", (p,), "one")
                                                 for p in _params("p", n)], sequential=True)
        ids = [f"p{i}-0" for i in range(n)]
        out["get_1_per_s"] = await _timed(n, [one("SELECT * FROM tasks WHERE id = %s", (i,), "one") for i in ids],
                                          sequential=True)
        bulk = _params("pb", 10, 1000)
        out["submit_1000_per_s"] = await _timed(10, [one("SELECT ds_submit(%s::json, 60)", (p,), "one") for p in bulk],
                                                sequential=True)
        out["read_1000_per_s"] = await _timed(20, [one("SELECT * FROM tasks ORDER BY id LIMIT 1000", (), "all")
                                                   for _ in range(20)], sequential=True)
    finally:
        await conn.close()
    return out


async def _timed(n: int, calls: list[Any], *, sequential: bool) -> float:
    start = time.perf_counter()
    for call in calls:
        await call
    return round(n / (time.perf_counter() - start), 1)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=3000, help="single calls per kind (default 3000)")
    args = p.parse_args()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        sys.exit("psycopg is not installed: pip install 'psycopg[binary]'")
    reason = server_answers()
    if reason is not None:
        sys.exit(reason)
    with PostgresDatabase() as db:
        figures: dict[str, Any] = {}
        for name, bench in (("asyncpg", bench_asyncpg), ("psycopg", bench_psycopg)):
            schema = f"drv_{name}"
            asyncio.run(_prepare(db.url_for(schema=schema)))
            figures[name] = asyncio.run(bench(db.url, schema, args.n))
    ratio = {k: round(figures["asyncpg"][k] / figures["psycopg"][k], 2) for k in figures["asyncpg"]}
    figures["asyncpg_to_psycopg"] = ratio
    line = "; ".join(f"{k}: asyncpg {figures['asyncpg'][k]}/s, psycopg {figures['psycopg'][k]}/s (x{ratio[k]})"
                     for k in ratio)
    if args.json:
        import json

        print(json.dumps(figures))
    else:
        print("pg drivers: " + line)


if __name__ == "__main__":
    main()
