"""Poison isolation on PostgreSQL: a row whose JSON was written by something else than
distsched (a broken client, a bad migration, someone with credentials) is moved aside - out
of its table, its row kept in ``quarantine`` with the reason - while a healthy job keeps
firing under the same leader term (the Redis plugin's test_poison scenarios)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import attrs
import pytest

from distsched.config import WorkerConfig
from distsched.model import Task, TaskSpec, VersionConflict
from distsched.testing import poison
from distsched.testing.processes import wait_until_async

pytestmark = pytest.mark.postgres

HEALTHY_EVERY = 0.3


def noop(*args: Any, **kwargs: Any) -> str:
    return "ok"


def _fails(*args: Any) -> None:
    raise RuntimeError("no")


async def _start(distsched_app, pg_url):
    app = await distsched_app(pg_url, functions={"noop": noop, "fails": _fails},
                              worker=WorkerConfig(name="w", concurrency=4),
                              heartbeat_interval=0.2)
    await app.add_job("healthy", every=f"{HEALTHY_EVERY}s", target="noop")
    return app


async def _sql(app, sql: str, *args: Any) -> Any:
    storage = await app.storage()
    return await storage.pool.fetchval(sql, *args)


async def _kept(app, kind: str, key: str) -> dict[str, Any]:
    return json.loads(await _sql(app, "SELECT data FROM quarantine WHERE kind = $1 AND key = $2", kind, key))


async def test_a_job_whose_config_is_not_json_is_quarantined(distsched_app, pg_url):
    app = await _start(distsched_app, pg_url)
    await _sql(app, "INSERT INTO jobs (name, config, version, enabled, next_fire_at) "
                    "VALUES ('poison', '{not json', 1, true, 1)")
    entry = await poison.quarantined(app, "job", "poison")
    assert entry.reason and await _sql(app, "SELECT count(*) FROM jobs WHERE name = 'poison'") == 0
    assert (await _kept(app, "job", "poison"))["config"] == "{not json", "the row is kept"
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
    assert await (await app.storage()).quarantine.count() == 1


async def test_a_garbage_worker_row_is_quarantined(distsched_app, pg_url):
    app = await _start(distsched_app, pg_url)
    await _sql(app, "INSERT INTO workers (id, data, heartbeat) VALUES ('ghost', '[1, 2', ds_now())")
    await poison.quarantined(app, "worker", "ghost")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_jobs_whose_stored_spec_has_a_retry_that_is_not_a_policy_are_quarantined(distsched_app, pg_url):
    """A job config whose spec holds a retry policy that is not one ("x": the spec took it
    as it was): the leader's firing of the job failed at every pass - a crash loop, no job
    fired any more - and the job's page failed. Reading such a job now moves it aside."""
    app = await _start(distsched_app, pg_url)
    cases = {"retry-text": '"x"', "retry-null": "null", "retry-list": "[1]"}
    for name, retry in cases.items():
        await app.add_job(name, every="0.3s", target="noop")
        await _sql(app, f"UPDATE jobs SET config = jsonb_set(config::jsonb, '{{spec,retry}}', '{retry}')::text "
                        "WHERE name = $1", name)
    for name in cases:
        entry = await poison.quarantined(app, "job", name)
        assert "retry: must be a retry policy" in entry.reason, entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_tasks_whose_stored_spec_the_leader_cannot_use_are_quarantined(distsched_app, pg_url, caplog):
    """Tasks whose stored spec has args that are not a list (5, true, a text), a target or
    balancer that is a list, or a timeout of null: kept as they were, the leader's dispatch
    or write of such a task failed at every pass (list(5), a list as a dict key, now + None:
    a crash loop, nothing fired), and so did the task's page. Reading such a task now moves
    it aside."""
    app = await _start(distsched_app, pg_url)
    storage = await app.storage()
    cases = {"args-int": ("args", "5"), "args-bool": ("args", "true"), "args-text": ("args", '"abc"'),
             "target-list": ("target", '["f"]'), "balancer-list": ("balancer", '["x"]'), "timeout-null": ("timeout", "null")}
    now = storage.clock()
    await storage.tasks.submit([Task(id=task_id, spec=TaskSpec(target="noop"), created_at=now, not_before=now + 3600)
                                for task_id in cases])
    for task_id, (field, value) in cases.items():
        await _sql(app, f"UPDATE tasks SET spec = jsonb_set(spec::jsonb, '{{{field}}}', '{value}')::text, "
                        "not_before = 1 WHERE id = $1", task_id)
    for task_id, (field, _) in cases.items():
        entry = await poison.quarantined(app, "task", task_id)
        assert f"its spec's {field} {'are' if field == 'args' else 'is'} not" in entry.reason, entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
    assert not [r for r in caplog.records if "leader loop failed" in r.getMessage()]


async def test_quarantine_entries_whose_time_is_not_finite_are_listed_at_time_0(distsched_app, pg_url):
    """A quarantine row whose time is NaN or infinite (float8 takes both) was listed with
    that time, which no JSON document holds: the dashboard's ``/api/v1/overview`` failed
    (HTTP 500)."""
    app = await distsched_app(pg_url, scheduler=False, worker=False)
    for at in ("NaN", "infinity"):
        await _sql(app, f"INSERT INTO quarantine (kind, key, reason, at) VALUES ('task', 'odd-{at}', 'r', '{at}')")
    entries = (await app.status()).quarantine
    assert sorted((e.kind, e.key, e.at) for e in entries) == [("task", "odd-NaN", 0.0), ("task", "odd-infinity", 0.0)]
    json.dumps((await app.status()).to_dict(), allow_nan=False)


async def test_tasks_whose_result_has_a_field_of_the_wrong_type_are_quarantined(distsched_app, pg_url):
    """A finished task's stored result with an error that is a number made the task's page
    fail (HTTP 500: its length is taken); other fields of another type than the engine
    writes, likewise or later. Reading such a task now moves it aside."""
    app = await _start(distsched_app, pg_url)
    cases = [("error", "-1"), ("outcome", '"maybe"'), ("started_at", '"x"'), ("meta", "[1]")]
    ids = [await poison.failed_twice(app) for _ in cases]
    for task_id, (field, value) in zip(ids, cases):
        await _sql(app, f"UPDATE tasks SET result = jsonb_set(result::jsonb, '{{{field}}}', '{value}')::text "
                        "WHERE id = $1", task_id)
    storage = await app.storage()
    for task_id, (field, _) in zip(ids, cases):
        assert await storage.tasks.get(task_id) is None
        entry = await poison.quarantined(app, "task", task_id)
        assert f"its result's {field} is not" in entry.reason, entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_attempt_records_that_cannot_be_read_are_left_out_of_the_history(distsched_app, pg_url):
    """An attempt row with a start time that is a table made the task's page fail (HTTP
    500: the duration is a subtraction); one that is not JSON failed the whole detail. Such
    a row is left out of the task's history (a warning); the others and the task are shown."""
    app = await _start(distsched_app, pg_url)
    cases = [("started_at", '{"a": 1}'), ("number", '"1"'), ("error", "-1"), ("finished_at", "1e12")]
    ids = [await poison.failed_twice(app) for _ in cases]
    for task_id, (field, value) in zip(ids, cases):
        await _sql(app, f"UPDATE attempts SET data = jsonb_set(data::jsonb, '{{{field}}}', '{value}')::text "
                        "WHERE task_id = $1", task_id)
        await _sql(app, "INSERT INTO attempts (task_id, worker_id, data) VALUES ($1, NULL, '{\"number\": NaN')",
                   task_id)
    for task_id in ids:
        detail = await app.task_detail(task_id)
        assert [a.number for a in detail.attempts] == [2] and detail.task.state.value == "failed"
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_worker_row_copied_from_another_is_listed_under_its_own_id(distsched_app, pg_url):
    """A worker row whose data is another worker's, id included (copied, as a restore or a
    hand edit might): it was listed as that worker - twice the same id, one of them with the
    copy's heartbeat. The id column names the worker."""
    app = await _start(distsched_app, pg_url)
    await wait_until_async(lambda: poison.succeeded(app), 10,
                           what="the healthy job's first run (the worker is registered)")
    live = app.engine.worker.id
    await _sql(app, "INSERT INTO workers (id, data, heartbeat) SELECT 'ghost', data, 0 FROM workers WHERE id = $1", live)
    workers = {w.id: w for w in await (await app.storage()).workers.list_workers()}
    assert sorted(workers) == sorted([live, "ghost"])
    assert workers["ghost"].last_heartbeat == 0 and workers[live].last_heartbeat > 0
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("heartbeat", ["'infinity'::float8", "ds_now() + 86400"])
async def test_a_worker_whose_heartbeat_is_far_ahead_gets_no_task(distsched_app, pg_url, heartbeat):
    """A worker row copied from a live one, its heartbeat +infinity or a day ahead (float8
    takes both): it looked alive for ever - never reaped, and given tasks that no one ran
    until they timed out. A heartbeat more than a TTL ahead of the store's clock is no sign
    of life (the Redis plugin's test of the same)."""
    app = await _start(distsched_app, pg_url)
    await wait_until_async(lambda: poison.succeeded(app), 10,
                           what="the healthy job's first run (the worker is registered)")
    await _sql(app, "INSERT INTO workers (id, data, heartbeat) SELECT 'ghost', jsonb_set(data::jsonb, '{id}', "
                    f"'\"ghost\"')::text, {heartbeat} FROM workers WHERE id = $1", app.engine.worker.id)
    ids = [await app.submit("noop", i) for i in range(12)]
    for task_id in ids:
        task = await app.wait(task_id, timeout=10)
        assert task.state.value == "succeeded" and task.worker_id != "ghost"
    storage = await app.storage()
    assert (await storage.tasks.query(worker="ghost")).tasks == ()
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_ready_task_with_a_garbage_spec_is_quarantined(distsched_app, pg_url):
    app = await _start(distsched_app, pg_url)
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id="bad-task", spec=TaskSpec(target="noop"), created_at=now, not_before=now + 3600)])
    await _sql(app, "UPDATE tasks SET spec = '\"just a string\"', not_before = 1 WHERE id = 'bad-task'")
    await poison.quarantined(app, "task", "bad-task")
    assert await _sql(app, "SELECT count(*) FROM tasks WHERE id = 'bad-task'") == 0
    assert (await _kept(app, "task", "bad-task"))["spec"] == '"just a string"'
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_broken_row_does_not_fail_a_read(postgres_database, schema):
    """Straight through the port: the read leaves the bad row out and goes on."""
    from distsched.testing import make_task
    from distsched_postgres.storage import PostgresStorage

    store = await PostgresStorage.open(postgres_database.url_for(schema=schema))
    try:
        await store.tasks.submit([make_task("good"), make_task("bad")])
        await store.pool.execute("UPDATE tasks SET state = 'exploded' WHERE id = 'bad'")
        assert [t.id if t else None for t in await store.tasks.get_many(["good", "bad"])] == ["good", None]
        assert [(q.kind, q.key) for q in await store.quarantine.list_quarantined()] == [("task", "bad")]
        assert "KeyError" in (await store.quarantine.list_quarantined())[0].reason
    finally:
        await store.close()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_a_queued_task_whose_time_is_not_finite_is_quarantined(distsched_app, pg_url, value):
    """A task queued to the worker with a not_before of NaN (float8 takes it): the worker
    refused it, and the leader's write of its failure (the task JSON, NaN as null) broke the
    column's NOT NULL at every pass - a crash loop. Reading it back now refuses the time."""
    app = await _start(distsched_app, pg_url)
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id="odd-time", spec=TaskSpec(target="noop"), created_at=now,
                                     not_before=now + 3600)])
    await _sql(app, "UPDATE tasks SET not_before = $1::float8, state = 'dispatched', worker_id = $2, "
                    "dispatched_at = ds_now(), dispatches = 1 WHERE id = 'odd-time'", value, app.engine.worker.id)
    entry = await poison.quarantined(app, "task", "odd-time")
    assert "not_before is not a finite number" in entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("column", ["version", "dispatches"])
async def test_a_task_whose_counter_is_at_the_integer_limit_is_quarantined(distsched_app, pg_url, column):
    """A ready task's version (or dispatch count) at 2^31 - 1, PostgreSQL's integer limit: the
    leader's dispatch of it failed at every pass (version + 1, or the next dispatch count,
    out of range), and no task was dispatched any more. Reading it now moves it aside."""
    app = await _start(distsched_app, pg_url)
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id="odd", spec=TaskSpec(target="noop"), created_at=now, not_before=now + 0.5)])
    await _sql(app, f"UPDATE tasks SET {column} = 2147483647 WHERE id = 'odd'")
    entry = await poison.quarantined(app, "task", "odd")
    assert f"{column} is not an integer" in entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("stored", [2147483646, 2147483647, -5])
async def test_a_job_whose_version_is_at_the_integer_limit_is_updated_to_version_1(distsched_app, pg_url, stored):
    """A job's version at 2^31 - 1, the limit of its column: updating the job raised
    asyncpg's "value out of range" to the caller (the dashboard's HTTP 500), and the job could
    never be changed again. Below 1 (-5): every update was refused as a conflict with a
    version the job does not have. The next version is 1 then, as on Redis; the job is
    updated again."""
    app = await _start(distsched_app, pg_url)
    await app.add_job("j", every="1h", target="noop")
    await _sql(app, "UPDATE jobs SET version = $1 WHERE name = 'j'", stored)
    assert (await app.get_job("j")).version == stored
    expected = poison.next_job_version(stored)
    assert (await app.update_job("j", every="2h")).version == expected
    assert (await app.get_job("j")).version == expected
    assert (await app.update_job("j", every="3h")).version == poison.next_job_version(expected)
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("stored", [0, -5, -2147483648])
async def test_an_update_racing_a_version_below_1_is_a_conflict(distsched_app, pg_url, stored):
    """An update based on a version the job no longer has, while the stored one is below 1
    (written by hand meanwhile): the conflict came back as the stored version negated, which
    is 0 or more - read as "not found" (0), as a success with version 5 while nothing was
    written (-5), or "integer out of range" (-2^31). It is a conflict now, and the stored row
    is left as it is."""
    app = await _start(distsched_app, pg_url)
    await app.add_job("j", every="1h", target="noop")
    read = await app.get_job("j")  # version 1
    await _sql(app, "UPDATE jobs SET version = $1 WHERE name = 'j'", stored)
    storage = await app.storage()
    with pytest.raises(VersionConflict, match=r"^job 'j': update based on version 1, but the stored version is "
                                              r"below 1; reload the job and apply the change again$"):
        await storage.jobs.update(attrs.evolve(read, description="changed"), next_fire_at=None)
    assert await _sql(app, "SELECT version FROM jobs WHERE name = 'j'") == stored
    assert (await app.get_job("j")).description == ""  # nothing written
    assert (await app.update_job("j", every="3h")).version == 1  # updated from what is stored
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("expiry", ["infinity", "a day"])
async def test_a_lease_that_would_never_lapse_can_be_taken(distsched_app, pg_url, expiry):
    """The lease row held by a node that is gone, with an expiry of 'infinity' (timestamptz
    takes it) or a day ahead - longer than any node takes one: it never lapsed, and no node
    could lead again. Such a lease can now be taken."""
    idle = await distsched_app(pg_url, scheduler=False, worker=False)  # the schema, nothing running
    until = "'infinity'" if expiry == "infinity" else "clock_timestamp() + interval '1 day'"
    await _sql(idle, f"UPDATE lease SET holder = 'ghost-node', last_holder = 'ghost-node', term = term + 5, "
                     f"expires_at = {until} WHERE id = 1")
    app = await _start(distsched_app, pg_url)
    election = await app.engine.open_election()
    deadline = time.monotonic() + 10
    while (await election.current()) is None or (await election.current()).node_id == "ghost-node":
        assert time.monotonic() < deadline, "no node took the lease"
        await asyncio.sleep(0.05)
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_lease_whose_times_no_date_can_show_leaves_the_status_up_and_is_written_again(distsched_app,
                                                                                            pg_url, caplog):
    """The lease row's times are timestamptz, which take '-infinity' and 'infinity': the
    status carried them as infinite ages and times, and the dashboard's overview failed
    (HTTP 500: no JSON number; ``status --json`` printed Infinity). Such a lease shows as no
    lease (with a warning) until a node takes it or its holder's renewal writes the row
    whole - the renewal wrote two of its times, and an acquisition time of -infinity stayed
    for the whole term."""
    idle = await distsched_app(pg_url, scheduler=False, worker=False)  # the schema, nothing running
    await _sql(idle, "UPDATE lease SET holder = 'ghost-node', last_holder = 'ghost-node', term = term + 5, "
                     "acquired_at = '-infinity', renewed_at = '-infinity', expires_at = 'infinity' WHERE id = 1")
    status = await idle.status()
    assert status.leader is None
    json.dumps(status.to_dict(), allow_nan=False)
    assert "has a time no date can show" in caplog.text
    app = await distsched_app(pg_url, functions={"noop": noop}, worker=WorkerConfig(name="w", concurrency=4),
                              heartbeat_interval=0.2, lease_ttl=1.5, renew_interval=0.3)
    await app.add_job("healthy", every=f"{HEALTHY_EVERY}s", target="noop")

    async def shown(term: int | None = None) -> bool:
        leader = (await app.status()).leader
        return leader is not None and leader.node_id != "ghost-node" and (term is None or leader.term == term) \
            and leader.lease_age < 3600 and 0 < leader.expires_in <= 2

    await wait_until_async(shown, 10, what="the lease taken from the ghost and shown")
    term = (await app.status()).leader.term
    await _sql(app, "UPDATE lease SET acquired_at = '-infinity' WHERE id = 1")
    json.dumps((await app.status()).to_dict(), allow_nan=False)  # no lease shown meanwhile, or the renewed one
    await wait_until_async(lambda: shown(term), 10, what="the acquisition time written again by the renewal")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_term_at_the_limit_of_its_column_starts_again(election, storage):
    """The lease's term is a bigint, and each acquisition adds one: a row with a term of
    2^63 - 1 (written by hand, or restored from elsewhere) failed every acquisition with
    "bigint out of range" - no node could ever lead again. At the limit the next term is 1;
    they rise again from there (the fence compares holder and term: the old term's holder
    is refused)."""
    await storage.pool.execute("UPDATE lease SET term = 9223372036854775807 WHERE id = 1")
    first = await election.acquire("node-a")
    assert first is not None and first.term == 1
    await election.release(first)
    second = await election.acquire("node-a")
    assert second.term == 2


async def test_a_task_time_no_date_can_show_is_quarantined_when_read(storage):
    """A task's created_at of 1e12 (year 33658; float8 takes it): ``distsched tasks show``
    ended in a traceback ("year 33658 is out of range"). It is moved aside when read."""
    from distsched.testing import make_task

    await storage.tasks.submit([make_task("good"), make_task("odd")])
    await storage.pool.execute("UPDATE tasks SET created_at = 1e12 WHERE id = 'odd'")
    assert [t.id for t in (await storage.tasks.query()).tasks] == ["good"]
    [entry] = await storage.quarantine.list_quarantined()
    assert (entry.kind, entry.key) == ("task", "odd") and "not a time from year 1 to 9999" in entry.reason


async def test_a_task_at_the_version_limit_leaves_the_pull_and_the_settle_alone(storage, fence):
    """ds_pull and ds_settle change rows they do not decode: a dispatched task whose version is
    2^31 - 1 failed every pull of its worker (version + 1 out of range) - the worker ran
    nothing until the leader's deadline check moved the task aside - and a running one failed
    the settle of its result. The pull now takes the worker's other tasks, the settle drops
    the result as stale."""
    from distsched.model import TaskResult
    from distsched.testing import make_task, make_worker

    await storage.workers.register(make_worker("w1", now=storage.clock()))
    await storage.tasks.submit([make_task(i) for i in ("a", "b", "c")])
    tasks = await storage.tasks.get_many(["a", "b", "c"])
    for task in tasks:
        task.dispatch("w1", storage.clock())
    assert await storage.tasks.dispatch(fence, tasks) == [True] * 3
    await storage.pool.execute("UPDATE tasks SET version = 2147483647 WHERE id = 'a'")
    pulled = await storage.queues.pull("w1", 10, 0.1)
    assert sorted(t.id for t in pulled) == ["b", "c"]
    await storage.pool.execute("UPDATE tasks SET version = 2147483647 WHERE id = 'b'")
    await storage.queues.report("w1", [TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="succeeded",
                                                  started_at=0.0, finished_at=0.0, worker_id="w1") for t in pulled])
    settled = await storage.results.settle(fence, 10)
    assert (settled.settled, settled.stale) == (1, 1)
    assert (await storage.tasks.get("c")).state.value == "succeeded"


async def test_a_minute_count_at_the_integer_limit_saturates(distsched_app, pg_url):
    """A minute's count of finished tasks at 2^31 - 1 (the column's limit), this minute and
    the next: every write that finished a task in it failed ("integer out of range"), the
    leader's settle at every pass - no task finished for the rest of the minute, nor in a
    minute written ahead. The count now stops at the limit."""
    app = await _start(distsched_app, pg_url)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    await _sql(app, "INSERT INTO throughput (minute, state, n) SELECT floor(ds_now() / 60)::bigint + m, s, 2147483647 "
                    "FROM generate_series(0, 1) m, unnest(ARRAY['succeeded', 'failed']) s "
                    "ON CONFLICT (minute, state) DO UPDATE SET n = excluded.n")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
    assert await _sql(app, "SELECT n FROM throughput WHERE state = 'succeeded' "
                           "AND minute = floor(ds_now() / 60)::bigint") == 2147483647


async def test_jobs_holding_a_time_no_date_can_show_are_quarantined(distsched_app, pg_url):
    """NaN sorts after every time in PostgreSQL: a job whose next_fire_at is NaN never came
    due again, and the job list showed it as if scheduled. A time of 1e12 (year 33658) in
    its state or its trigger made ``jobs list`` and the dashboard's jobs pages fail whole
    ("year 33658 is out of range"). Reading such a job now moves it aside."""
    app = await _start(distsched_app, pg_url)
    cases = {
        "next-nan": ("next_fire_at", "next_fire_at = 'NaN'::float8"),
        "next-far": ("next_fire_at", "next_fire_at = 1e12"),
        "at-far": ("at", """config = jsonb_set(config::jsonb, '{trigger}', '{"kind": "at", "at": 1e12}')::text"""),
        "anchor-far": ("anchor", "config = jsonb_set(config::jsonb, '{trigger,anchor}', '1e12')::text"),
    }
    for name, (_, change) in cases.items():
        await app.add_job(name, every="1h", target="noop")
        await _sql(app, f"UPDATE jobs SET {change} WHERE name = $1", name)
    assert not set(cases) & {c.name for c in await (await app.storage()).jobs.list_jobs()}
    for name, (field, _) in cases.items():
        entry = await poison.quarantined(app, "job", name)
        assert entry.reason.startswith(f"ValidationError: {field}: must be a time from year 1 to 9999"), entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_workers_whose_record_holds_a_field_of_the_wrong_type_are_quarantined(distsched_app, pg_url):
    """Worker rows copied from the live one with one field changed, heartbeating (``data`` is
    JSON text; PostgreSQL's decode did not check it). Reading them now moves them aside,
    naming the field; the leader goes on."""
    app = await _start(distsched_app, pg_url)
    await wait_until_async(lambda: poison.succeeded(app), 10,
                           what="the healthy job's first run (the worker is registered)")
    storage = await app.storage()
    for ghost, (field, value) in poison.WORKER_CASES.items():
        await _sql(app, "INSERT INTO workers (id, data, heartbeat) SELECT $2, jsonb_set(jsonb_set(data::jsonb, "
                        "'{id}', to_jsonb($2::text)), ARRAY[$3], $4::jsonb)::text, ds_now() FROM workers WHERE id = $1",
                   app.engine.worker.id, ghost, field, json.dumps(value))

    async def beat() -> None:  # the ghosts stay alive and fresh, as a worker does
        await storage.pool.execute("UPDATE workers SET heartbeat = ds_now() WHERE id LIKE 'ghost-%'")

    await poison.ghost_workers_are_quarantined(app, beat, every=HEALTHY_EVERY)


#: float8 takes them all; NaN sorts above every number in PostgreSQL.
NUMBERISH = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, -1.0, 0.0]


@pytest.mark.parametrize("seed", [7, 1604])
async def test_fuzz_numberish_values_in_every_time_column(distsched_app, pg_url, seed):
    """Seeded (the Redis plugin's number-like fuzz): NaN, +-Infinity and huge times in the
    time columns of waiting and queued tasks and of jobs, round after round; the healthy
    job keeps firing under one leader term and the counts still read."""
    import random

    rng = random.Random(seed)
    app = await _start(distsched_app, pg_url)
    storage = await app.storage()
    now = storage.clock()
    victims = [f"victim-task-{i}" for i in range(8)]
    await storage.tasks.submit([Task(id=v, spec=TaskSpec(target="noop"), created_at=now, not_before=now + 3600)
                                for v in victims])
    for i in range(4):
        await app.add_job(f"victim-{i}", every="0.4s", target="noop")
    worker_id = app.engine.worker.id
    task_columns = ["not_before", "created_at", "updated_at", "timeout", "dispatched_at", "started_at", "expires_at"]
    for _round in range(6):
        for _ in range(8):
            value = rng.choice(NUMBERISH)
            victim = rng.choice(victims)
            kind = rng.choice(["task", "queued", "job"])
            if kind == "task":
                column = rng.choice(task_columns)
                await _sql(app, f"UPDATE tasks SET {column} = $1::float8, state = 'pending' WHERE id = $2",
                           value, victim)
            elif kind == "queued":
                column = rng.choice([c for c in task_columns if c != "dispatched_at"])
                await _sql(app, f"UPDATE tasks SET {column} = $1::float8, state = 'dispatched', worker_id = $2, "
                                "dispatched_at = coalesce(dispatched_at, ds_now()) WHERE id = $3",
                           value, worker_id, victim)
            else:
                column = rng.choice(["next_fire_at", "last_slot"])
                await _sql(app, f"UPDATE jobs SET {column} = $1::float8 WHERE name = $2", value,
                           f"victim-{rng.randrange(4)}")
        await poison.keeps_firing(app, every=HEALTHY_EVERY, seconds=2.0)
    counts = await storage.tasks.counts()
    assert all(isinstance(v, int) and v >= 0 for v in counts.values()), counts
