"""What a call costs on a cluster of the test's own that logs every statement and every plan
(``log_statement``, ``auto_explain`` with nested statements and the rows each plan node
read): a store call is one statement (the pool does not reset the session after each), and
the plans a connection cached while the tasks table was small read a few rows once it has
grown: the keyed functions never scan it whole, and the leader's housekeeping has the
grown table analyzed, so that every plan is made again for its size."""

import re
from pathlib import Path

import pytest

from distsched.model import TaskResult
from distsched.testing import make_task, make_worker
from distsched.testing.postgres_server import PostgresServer, postgres_bindir
from distsched.testing.processes import wait_until_async

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL server binaries are not installed")]

#: The functions that read or write tasks, jobs or results by key: each runs with these
#: settings (migration 0014), which a migration replacing one must restate.
KEYED = ("ds_cancel", "ds_create", "ds_dispatch_slim", "ds_fire", "ds_get_tasks", "ds_job_add", "ds_job_pause",
         "ds_job_update", "ds_pull", "ds_prune", "ds_put_aside", "ds_ready", "ds_reap", "ds_report", "ds_save",
         "ds_settle", "ds_submit", "ds_write")
SETTINGS = ["enable_seqscan=off", "jit=off"]
#: Most rows a plan node may read in the test below (each call touches one or two tasks;
#: the table holds more than 20,000).
FEW = 50


@pytest.fixture(scope="module")
def server():
    server = PostgresServer(settings={
        "autovacuum": "off",  # no ANALYZE of its own: the plans cached early stay cached
        "log_statement": "all",
        "session_preload_libraries": "auto_explain",
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_analyze": "on",  # the rows each plan node read
    }).start()
    yield server
    server.stop()


def _log_since(log: Path, mark: int) -> str:
    with log.open("rb") as f:
        f.seek(mark)
        return f.read().decode("utf-8", "replace")


async def test_a_store_call_is_one_statement(server) -> None:
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(server.url_for(schema="calls", pool_size="2"))
    try:
        await store.tasks.submit([make_task("a")])
        mark = server.log.stat().st_size
        for _ in range(5):
            assert (await store.tasks.get("a")) is not None
        logged = _log_since(server.log, mark)
    finally:
        await store.close()
    statements = re.findall(r"LOG:  (?:statement|execute [^:]*): (.*)", logged)
    assert len(statements) == 5, statements
    assert all(s.startswith("SELECT id, job, slot") for s in statements), statements


async def test_every_keyed_function_runs_with_sequential_scans_off(server) -> None:
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(server.url_for(schema="config"))
    try:
        rows = await store.pool.fetch(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname = ANY ($1)", list(KEYED))
    finally:
        await store.close()
    assert {r["proname"]: r["proconfig"] for r in rows} == {name: SETTINGS for name in KEYED}


async def test_plans_cached_while_the_table_was_small_use_the_index_once_it_has_grown(server) -> None:
    from distsched_postgres.election import PostgresElection
    from distsched_postgres.storage import PostgresStorage

    # one connection (calls one after another reuse it): every call below plans on it, and
    # from the sixth on PL/pgSQL keeps a
    # generic plan, made here while the tasks table holds a few rows
    store = await PostgresStorage.open(server.url_for(schema="plans", pool_size="2"))
    try:
        fence = await PostgresElection(store).acquire("n1")
        assert fence is not None
        await store.workers.register(make_worker("w1", now=store.clock()))

        async def task_cycle(i: int) -> None:
            """Submit two tasks; dispatch, pull, report and settle one; cancel the other."""
            assert await store.tasks.submit([make_task(f"r{i}"), make_task(f"c{i}")]) == [True, True]
            run, cancel = await store.tasks.get_many([f"r{i}", f"c{i}"])
            assert run is not None and cancel is not None
            run.dispatch("w1", store.clock())
            assert await store.tasks.dispatch(fence, [run]) == [True]
            [pulled] = await store.queues.pull("w1", 10, 1.0)
            await store.queues.report("w1", [TaskResult(task_id=pulled.id, attempt_id=pulled.attempt_id,
                                                        outcome="succeeded", started_at=0.0, finished_at=0.0,
                                                        worker_id="w1")])
            assert (await store.results.settle(fence, 10)).settled == 1
            cancel.cancel("not needed", store.clock())
            assert await store.tasks.save(fence, [cancel]) == [True]
            await store.housekeeping(10)

        for i in range(8):
            await task_cycle(i)
        for chunk in range(20):  # the table grows; autovacuum is off
            await store.tasks.submit([make_task(f"g{chunk}-{k}") for k in range(1000)])
        # the leader's next housekeeping pass sees it and has it analyzed: every plan is made again
        await store.housekeeping(10)
        await wait_until_async(lambda: store.pool.fetchval("SELECT analyze_count FROM pg_stat_user_tables "
                                                           "WHERE relid = 'tasks'::regclass"),
                               10, what="the ANALYZE of the grown tasks table", interval=0.02)
        mark = server.log.stat().st_size
        for i in range(8, 11):
            await task_cycle(i)
        logged = _log_since(server.log, mark)
    finally:
        await store.close()
    assert "ds_dispatch_slim" in logged and "tasks_pkey" in logged, "the plans were logged"
    plans = logged.split("LOG:  duration:")
    ours = [plan for plan in plans if re.search(r" on (tasks|results|jobs|attempts)\b", plan)]
    wide = [plan for plan in ours if any(int(n) > FEW for n in re.findall(
        r"(?:actual time=\S+ rows=|Rows Removed by (?:Filter|Index Recheck|Join Filter): )(\d+)", plan))]
    assert not wide, f"{len(wide)} plans read more than {FEW} rows of a node; the first:\n{wide[0]}"
    assert "JIT:" not in logged, "no plan was compiled"
    prunes = [plan for plan in plans if "SKIP LOCKED" in plan and "expires_at <" in plan]
    assert len(prunes) == 3, "each housekeeping call was logged"
    assert all("Index Cond: (expires_at <" in plan for plan in prunes), \
        f"retention pruning reads every retained task (its bound is no index condition):\n{prunes[0]}"
