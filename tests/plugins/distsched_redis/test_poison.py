"""Poison isolation (issue 16.2): one bad record never stops the deployment.

Each reproduction writes a bad record straight into Redis (as a broken client, a bad
migration or an attacker with credentials could) while a healthy job fires every 0.3 s on a
scheduler + worker. The healthy job must keep firing, the leader must keep its term (no
crash loop), and the bad record must be moved aside (quarantined with its reason, its bytes
kept) or, for a task its balancer fails on, cancelled with the reason. A fuzz test writes
random bytes into every kind of record and checks the same.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from typing import Any

import pytest

from distsched.config import WorkerConfig
from distsched.model import Task, TaskSpec
from distsched.testing import poison
from distsched.testing.processes import wait_until_async

pytestmark = pytest.mark.redis

HEALTHY_EVERY = 0.3


def noop(*args: Any, **kwargs: Any) -> str:
    return "ok"


@pytest.fixture
def ns() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(redis_server):
    client = redis_server.client(decode_responses=False)
    yield client
    client.close()


async def _start(distsched_app, redis_server, ns, functions=None, **kw):
    app = await distsched_app(redis_server.url_for(namespace=ns), functions={"noop": noop, **(functions or {})},
                              worker=WorkerConfig(name="w", concurrency=4), heartbeat_interval=0.2, **kw)
    await app.add_job("healthy", every=f"{HEALTHY_EVERY}s", target="noop")
    return app


async def _later_task(app, task_id: str, **spec: Any) -> None:
    """A stored pending task that no pass dispatches for an hour (a record to corrupt)."""
    storage = await app.storage()
    now = storage.clock()
    await storage.tasks.submit([Task(id=task_id, spec=TaskSpec(target="noop", **spec), created_at=now,
                                     not_before=now + 3600)])


async def test_tasks_whose_stored_args_are_not_a_list_are_quarantined(distsched_app, redis_server, ns, raw):
    """Tasks whose stored spec has args that are not a list (5, true, a text, a table):
    kept as they were, the leader's write of such a task failed at every pass ('int' object
    is not iterable: a crash loop, nothing dispatched or fired any more), and so did the
    task's page. Reading such a task now moves it aside."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    cases = {"odd-int": 5, "odd-text": "abc", "odd-table": {"a": 1}, "odd-bool": True}
    for task_id, args in cases.items():
        await _later_task(app, task_id)
        spec = json.loads(raw.hget(p + "t:" + task_id, "sp"))
        raw.hset(p + "t:" + task_id, "sp", json.dumps({**spec, "args": args}))
        raw.zadd(p + "ready", {task_id: 1})
    for task_id in cases:
        entry = await poison.quarantined(app, "task", task_id)
        assert "its spec's args are not a list" in entry.reason, entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


#: Values of the wrong type for a stored spec's fields; each field gets every one of them.
SPEC_VALUES = [None, True, -1, 1e12, "x", "", [], {}, [1], {"a": 1}, 1.5]
SPEC_FIELDS = ["executor", "target", "kwargs", "options", "timeout", "retry", "balancer", "balance_key",
               "retry.max_attempts", "retry.backoff", "retry.delay", "retry.jitter"]


async def test_ready_tasks_whose_stored_spec_has_values_of_the_wrong_type_stop_nothing(distsched_app, redis_server,
                                                                                       ns, raw, caplog):
    """Ready tasks whose stored spec field holds a value of another type than the engine
    writes, one task per field and value: a target or balancer that was a list, a timeout of
    null crash-looped the leader (a list as a dict key, now + None: 'leader loop failed' at
    every pass, nothing fired). Each such task is moved aside when read, or run and failed
    by the worker's check saying why; the healthy job keeps firing under one term."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    for field in SPEC_FIELDS:
        for i, value in enumerate(SPEC_VALUES):
            task_id = f"odd-{field}-{i}"
            await _later_task(app, task_id)
            spec = json.loads(raw.hget(p + "t:" + task_id, "sp"))
            if field.startswith("retry."):
                spec["retry"] = {**spec["retry"], field[len("retry."):]: value}
            else:
                spec[field] = value
            raw.hset(p + "t:" + task_id, "sp", json.dumps(spec))
            raw.zadd(p + "ready", {task_id: 1})
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
    assert not [r for r in caplog.records if "leader loop failed" in r.getMessage()]


#: A ready task's JSON (``d``) fields the leader reads, with values of another type: a job
#: that is not text (true, -1, 1e12, a list...) or, for a job's task, a serial limit that is
#: text or a table failed the leader's dispatch at every pass (a crash loop).
TASK_JSON_CASES = {"job-true": ("job", True), "job-number": ("job", -1), "job-list": ("job", [1]),
                   "job-table": ("job", {"a": 1}), "reason-list": ("reason", [1]),
                   "serial-text": ("serial_limit", "x"), "serial-list": ("serial_limit", [1]),
                   "serial-zero": ("serial_limit", 0)}


async def test_ready_tasks_whose_stored_json_has_a_field_of_the_wrong_type_are_quarantined(distsched_app,
                                                                                         redis_server, ns, raw,
                                                                                         caplog):
    """Ready tasks whose JSON record holds a job, reason or serial limit of another type than
    the engine writes (the serial limit beside a job name, as a job's task has): each is
    moved aside when read, naming the field; the healthy job keeps firing under one term."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    for task_id, (field, value) in TASK_JSON_CASES.items():
        await _later_task(app, task_id)
        data = json.loads(raw.hget(p + "t:" + task_id, "d"))
        data.update({"job": "healthy", field: value} if field == "serial_limit" else {field: value})
        raw.hset(p + "t:" + task_id, "d", json.dumps(data))
        raw.zadd(p + "ready", {task_id: 1})
    for task_id, (field, _) in TASK_JSON_CASES.items():
        entry = await poison.quarantined(app, "task", task_id)
        assert f"its {field} is not" in entry.reason, entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
    assert not [r for r in caplog.records if "leader loop failed" in r.getMessage()]


async def test_a_job_whose_config_is_not_json_is_quarantined(distsched_app, redis_server, ns, raw):
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    raw.hset(p + "jobs", "poison", b"{not json\xff")
    raw.hset(p + "jst", "poison", b"1|1|||1|x")
    raw.zadd(p + "due", {"poison": 1})
    raw.zadd(p + "jn", {"poison": 0})  # as a jobs.page of a writer indexes every name
    entry = await poison.quarantined(app, "job", "poison")
    assert b"poison" not in raw.hkeys(p + "jobs")
    assert raw.hget(p + "qd:job:poison", "config") == b"{not json\xff", "the bytes are kept"
    assert entry.reason
    # it left the name index too: a name there without its job made every reader's page
    # read all the names (the index's size no longer matched the jobs')
    assert raw.zscore(p + "jn", "poison") is None
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_garbage_worker_entry_is_quarantined(distsched_app, redis_server, ns, raw):
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    raw.hset(p + "workers", "ghost", b"\x00\x01garbage")
    raw.zadd(p + "hb", {"ghost": time.time()})
    await poison.quarantined(app, "worker", "ghost")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_ready_task_with_a_garbage_spec_is_quarantined(distsched_app, redis_server, ns, raw):
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    await _later_task(app, "bad-task")
    raw.hset(p + "t:bad-task", "sp", b"\xfe\xfe")
    raw.zadd(p + "ready", {"bad-task": 1})
    await poison.quarantined(app, "task", "bad-task")
    assert raw.zscore(p + "ready", "bad-task") is None
    assert raw.hget(p + "qd:task:bad-task", "sp") == b"\xfe\xfe", "the bytes are kept"
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("garbage", [b"many", b"nan", b"1.5"])
async def test_a_count_that_is_not_a_number_is_quarantined(distsched_app, redis_server, ns, raw, garbage):
    """Pending and dispatched change with every healthy task (a script's write moves the
    count aside); nothing changes retrying, so only a read of the counts finds it. "nan"
    and "1.5" are numbers to Lua and not counts: the quarantine refused to move them, and
    every read of the counts asked again."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    raw.hset(p + "cnt", "pending", garbage)
    raw.hset(p + "cnt", "dispatched", b"lots")
    raw.hset(p + "cnt", "retrying", garbage)
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
    counts = await (await app.storage()).tasks.counts()
    assert all(isinstance(v, int) for v in counts.values())
    assert {b"count:pending", b"count:dispatched", b"count:retrying"} <= set(raw.hkeys(p + "qr"))
    assert raw.hget(p + "qd:count:retrying", "value") == garbage, "the bytes are kept"
    assert raw.hget(p + "cnt", "retrying") is None


async def test_a_balancer_failing_on_one_task_cancels_that_task_only(distsched_app, redis_server, ns, raw):
    """A job stored with an integer balance_key (what the loader accepted before the key was
    checked) is quarantined when read; the pending task it left behind crashed every leader
    pass in consistent-hash: now that task alone is cancelled, with the reason."""
    app = await _start(distsched_app, redis_server, ns)
    events: list[Any] = []
    app.listeners.append(events.append)
    p = "{" + ns + "}:"
    spec = {"executor": "local", "target": "noop", "args": [], "kwargs": {}, "options": {}, "timeout": 5,
            "retry": {}, "balancer": "consistent-hash", "balance_key": 5}
    raw.hset(p + "jobs", "hashed", json.dumps({"spec": spec, "trigger": None}))
    raw.hset(p + "jst", "hashed", "1|1|||1|")
    raw.zadd(p + "due", {"hashed": 1})
    await poison.quarantined(app, "job", "hashed")
    await _later_task(app, "hashed@1", balancer="consistent-hash")
    raw.hset(p + "t:hashed@1", "sp", json.dumps(spec))  # the task the job left behind
    raw.zadd(p + "ready", {"hashed@1": 1})
    task = await app.wait("hashed@1", timeout=10)
    assert task.state.value == "cancelled"
    assert "balancer 'consistent-hash' from plugin 'balancers'" in (task.reason or "")
    assert "failed on this task" in (task.reason or "")

    async def evented():
        return any(e.kind == "record.quarantined" and e.key == "hashed@1" and e.action == "cancelled"
                   for e in events)

    await wait_until_async(evented, 10, what="the record.quarantined event")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("broken", [{"v": "NaN-ish"}, {"v": "1", "to": "nan"}], ids=["version", "timeout-nan"])
async def test_pull_takes_the_entries_behind_a_task_it_cannot_read(distsched_app, redis_server, ns, raw, broken):
    """Five tasks queued behind one whose version is not a number, or whose stored timeout
    is "nan" (a number to Lua, whose deadline Redis refuses as a score: the whole pull
    failed half-way, the tasks taken with it written running, their deadlines never
    indexed, and the worker never told), all start at once; the broken one is moved aside."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    worker_id = app.engine.worker.id
    await _later_task(app, "broken")
    raw.hset(p + "t:broken", mapping={"s": "dispatched", "w": worker_id, "n": "1", **broken})
    raw.rpush(p + "q:" + worker_id, "broken#1")
    ids = [await app.submit("noop", i) for i in range(5)]
    for task_id in ids:
        assert (await app.wait(task_id, timeout=10)).state.value == "succeeded"
    await poison.quarantined(app, "task", "broken")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_ready_task_whose_created_at_is_nan_is_dispatched_whole(distsched_app, redis_server, ns, raw):
    """A ready task whose stored created_at is "nan" failed the leader's dispatch half-way:
    every task of the batch written dispatched, none pushed to its worker's queue nor given
    a deadline (stuck for ever), and the same failure at every pass. It is scored by its
    update time, as a created_at that is not a number already was, and runs."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    storage = await app.storage()
    p = "{" + ns + "}:"
    await _later_task(app, "nan-created")
    key = p + "t:nan-created"
    d = json.loads(raw.hget(key, "d"))
    d["not_before"] = d["created_at"]  # due now
    raw.hset(key, mapping={"c": b"nan", "d": json.dumps(d)})
    raw.zadd(p + "ready", {"nan-created": 1})
    assert (await app.wait("nan-created", timeout=10)).state.value == "succeeded"

    async def nothing_assigned() -> bool:
        counts = await storage.tasks.counts()
        return counts.get("running", 0) == 0 and counts.get("dispatched", 0) == 0

    await wait_until_async(nothing_assigned, 10, what="no task counted as running or dispatched")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_tasks_dispatched_long_before_their_time_do_not_hold_the_workers_slots(distsched_app, redis_server,
                                                                                     ns, raw):
    """Five tasks due in an hour, put in the ready index as due now (a broken index entry):
    the worker held an execution slot for each until its not_before - its four slots for an
    hour, and the healthy job stopped. No leader dispatches more than fire_ahead (60 s at
    most) ahead, so the worker refuses them at once, naming why."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    early = [f"early-{i}" for i in range(5)]
    for task_id in early:
        await _later_task(app, task_id)
        raw.zadd(p + "ready", {task_id: 1})
    for task_id in early:
        task = await app.wait(task_id, timeout=10)
        assert task.state.value == "failed" and task.result.error_type == "InvalidTask"
        assert "before its not_before" in task.result.error, task.result.error
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("index", ["ready", "dl"])
async def test_a_finished_task_misfiled_in_an_index_of_waiting_tasks_leaves_it(distsched_app, redis_server, ns,
                                                                               raw, index):
    """A finished task's id in the index of ready tasks: the leader read it as a task to
    dispatch, its model refused the move, and every pass failed on it - a crash loop. In
    the index of deadlines it was read again at every pass, for ever. The read now drops
    the misfiled entry."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    done = await app.submit("noop")
    assert (await app.wait(done, timeout=10)).state.value == "succeeded"
    raw.zadd(p + index, {done: 1})

    async def dropped() -> bool:
        return raw.zscore(p + index, done) is None

    await wait_until_async(dropped, 10, what=f"the misfiled entry to leave {index}")
    assert (await (await app.storage()).tasks.get(done)).state.value == "succeeded"
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_minute_figure_that_is_not_an_integer_starts_again(distsched_app, redis_server, ns, raw, caplog):
    """The minute's count of finished tasks (the dashboard's throughput) holding a value that
    is not an integer failed every script that finished a task, after the task's writes and
    before its reply (a warning and a retry per report, all that minute). The figure now
    starts again; the tasks finish as usual."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    minute = int(raw.time()[0]) // 60
    for m in (minute, minute + 1):  # the test may cross a minute
        raw.hset(p + f"tp:{m}", mapping={"succeeded": b"lots", "failed": b"1.5"})
    ids = [await app.submit("noop", i) for i in range(5)]
    for task_id in ids:
        assert (await app.wait(task_id, timeout=10)).state.value == "succeeded"
    assert "not an integer" not in caplog.text, "a script failed on the figure"
    figures = [raw.hget(p + f"tp:{m}", "succeeded") for m in (minute, minute + 1)]
    assert any(f.isdigit() for f in figures), figures  # started again where tasks finished
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("term", [b"nan", b"inf", b"-inf", b"many"])
async def test_a_stored_term_that_is_not_a_finite_number_does_not_stop_the_election(distsched_app, redis_server,
                                                                                     ns, raw, term):
    """The last term (``term``) is read by every lease acquisition. "nan" and "inf" are
    numbers to Lua: the new term came out "nan" or "inf", a token no node could parse, and
    no leader was ever elected again. A term that is not a finite number now counts as none:
    the new one is the server time in microseconds, as after a store that lost it."""
    p = "{" + ns + "}:"
    raw.set(p + "term", term)
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    assert int(raw.get(p + "term")) > 10**15  # microseconds since 1970
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("expiry", ["none", "a day"])
async def test_a_lease_that_would_never_lapse_is_given_an_expiry(distsched_app, redis_server, ns, raw, expiry):
    """A lease key without a TTL (DUMP/RESTORE with a TTL of 0 drops it) or with one longer
    than any node takes, held by a node that is gone: it never lapsed, and no node could
    lead again. A node campaigning gives it its own TTL; it then lapses and a node leads."""
    p = "{" + ns + "}:"
    raw.set(p + "lease", "ghost-node|5", px=86_400_000 if expiry == "a day" else None)
    raw.set(p + "term", "5")
    app = await _start(distsched_app, redis_server, ns, lease_ttl=1.0, renew_interval=0.3)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run under a new leader")
    election = await app.engine.open_election()
    assert (await election.current()).node_id != "ghost-node"
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("stored", ["1e300", "9007199254740993"])
async def test_a_stored_term_past_the_exact_integers_counts_as_none(distsched_app, redis_server, ns, raw, stored):
    """Lua's numbers are doubles: from 2^53 on, a stored term + 1 is the same number, so every
    acquisition from then on gave the same term (1e300 printed as 301 digits) - terms no
    longer rose, and a node that lost the lease and took it again held its old token, under
    which its writes of the lost term would pass the fence. Such a term counts as none now,
    as a "nan" one does: the next term is the server's time in microseconds, and they rise
    again from there."""
    raw.set("{" + ns + "}:term", stored)
    app = await distsched_app(redis_server.url_for(namespace=ns), scheduler=False, worker=False)
    election = await app.engine.open_election()
    first = await election.acquire("node-a")
    await election.release(first)
    second = await election.acquire("node-a")
    assert first.term < 2**53 and first.term < second.term < 2**53


@pytest.mark.parametrize("stored", ["2147483646", "2147483647", "99999999999999999999", "-5"])
async def test_a_job_whose_version_is_past_the_end_of_its_numbers_is_updated_to_version_1(distsched_app, redis_server,
                                                                                         ns, raw, stored):
    """A job's stored version is read as any integer. Updating one past 10^14 - 1 made the
    script write the next as a Lua number does ("1e+20"): the update raised int()'s error to
    the caller (the dashboard's HTTP 500) and the next read moved the job aside - it fired
    no more. From 2^31 - 1 on (PostgreSQL's integer, the narrowest column a store keeps a
    version in), and below 1, the next version is 1 on both stores; the job stays, and is
    updated again."""
    app = await _start(distsched_app, redis_server, ns)
    await app.add_job("j", every="1h", target="noop")
    p = ("{" + ns + "}:").encode()
    state = raw.hget(p + b"jst", b"j").split(b"|")
    raw.hset(p + b"jst", b"j", b"|".join([stored.encode(), *state[1:]]))
    assert (await app.get_job("j")).version == int(stored)
    expected = poison.next_job_version(int(stored))
    assert (await app.update_job("j", every="2h")).version == expected
    assert (await app.get_job("j")).version == expected
    assert (await app.update_job("j", every="3h")).version == poison.next_job_version(expected)
    assert await (await app.storage()).quarantine.list_quarantined() == []
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_jobs_holding_a_time_no_date_can_show_are_quarantined(distsched_app, redis_server, ns, raw):
    """"nan" as a job's next fire time (float() reads it): the job never came due again, and
    the job list showed it as if scheduled. A time of 1e12 (year 33658) in its state or its
    trigger made ``jobs list`` and the dashboard's jobs pages fail whole ("year 33658 is out
    of range"). Reading such a job now moves it aside."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    cases = {"next-nan": ("next_fire_at", "nan"), "next-far": ("next_fire_at", "1e12"), "at-far": ("at", 1e12),
             "anchor-far": ("anchor", 1e12)}
    for name, (field, value) in cases.items():
        await app.add_job(name, every="1h", target="noop")
        if field == "next_fire_at":
            fields = raw.hget(p + "jst", name).decode().split("|")
            fields[1] = value
            raw.hset(p + "jst", name, "|".join(fields))
        else:
            config = json.loads(raw.hget(p + "jobs", name))
            config["trigger"] = {"kind": "at", "at": value} if field == "at" else {**config["trigger"], "anchor": value}
            raw.hset(p + "jobs", name, json.dumps(config))
    assert not set(cases) & {c.name for c in await (await app.storage()).jobs.list_jobs()}
    for name, (field, _) in cases.items():
        entry = await poison.quarantined(app, "job", name)
        assert entry.reason.startswith(f"ValidationError: {field}: must be a time from year 1 to 9999"), entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_job_whose_state_flags_the_scripts_do_not_fire_by_is_quarantined(distsched_app, redis_server, ns,
                                                                                raw):
    """The scripts fire a job whose schedule state's paused field is ``0`` and enabled field
    ``1``, nothing else; the reader took every paused field but ``1`` for "not paused" and
    did not read the enabled field. A due job whose state said ``x`` there, or ``0`` for a
    job its config says is enabled, or that the scripts cannot parse (8 fields), was listed
    as scheduled and never fired, and held the leader's next due time in the past: its pass
    ran without pause (12,000 Redis commands a second instead of 200). Each is now put
    aside when read, naming the field, and leaves the due index."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    cases = {"paused-x": (3, "x", "paused"), "paused-empty": (3, "", "paused"), "enabled-x": (4, "x", "enabled"),
             "enabled-off": (4, "0", "enabled"), "fields-8": (None, "|extra|more", "schedule state")}
    for name, (index, value, _) in cases.items():
        await app.add_job(name, every="1h", target="noop")
        fields = raw.hget(p + "jst", name).decode().split("|")
        if index is None:
            fields[-1] += value
        else:
            fields[index] = value
        raw.hset(p + "jst", name, "|".join(fields))
        raw.zadd(p + "due", {name: time.time() - 1})  # due now: the leader's next read meets it
    for name, (_, _, field) in cases.items():
        entry = await poison.quarantined(app, "job", name)
        assert entry.reason.startswith(f"ValidationError: {field}: "), entry.reason
        assert raw.zscore(p + "due", name) is None
    assert not set(cases) & {c.name for c in await (await app.storage()).jobs.list_jobs()}
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_workers_whose_record_holds_a_field_of_the_wrong_type_are_quarantined(distsched_app, redis_server, ns,
                                                                                  raw):
    """Worker records copied from the live one with one field changed, heartbeating. Reading
    them moves them aside, naming the field; the leader goes on."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10,
                           what="the healthy job's first run (the worker is registered)")
    p = "{" + ns + "}:"
    record = json.loads(raw.hget(p + "workers", app.engine.worker.id))
    for ghost, (field, value) in poison.WORKER_CASES.items():
        raw.hset(p + "workers", ghost, json.dumps({**record, "id": ghost, field: value}))

    async def beat() -> None:  # the ghosts stay alive and fresh, as a worker does
        now = raw.time()
        raw.zadd(p + "hb", {ghost: now[0] + now[1] / 1e6 for ghost in poison.WORKER_CASES})

    await poison.ghost_workers_are_quarantined(app, beat, every=HEALTHY_EVERY)


async def test_a_lease_record_that_cannot_be_read_leaves_the_status_up_and_is_written_again(distsched_app, redis_server,
                                                                                          ns, raw):
    """{ns}:leaseinfo is the status's record of the lease (the lease key decides who leads).
    A term that is not a number made ``status`` - and the dashboard's overview and workers
    pages - fail ("invalid literal for int()"); an acquisition time of NaN (the overview's
    HTTP 500: no date, no JSON number) or a holder gone stayed so until the next takeover
    (a renewal wrote two fields), an expiry of inf until the next renewal. The status now
    shows no lease while the record cannot be read, and the holder's next renewal writes it
    whole. Each breakage in turn."""
    app = await _start(distsched_app, redis_server, ns, lease_ttl=1.5, renew_interval=0.3)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    fence = await (await app.engine.open_election()).current()
    p = "{" + ns + "}:"

    async def written_again() -> bool:
        leader = (await app.status()).leader
        return leader is not None and (leader.node_id, leader.term) == (fence.node_id, fence.term) \
            and math.isfinite(leader.acquired_at) and leader.lease_age < 3600 and 0 < leader.expires_in <= 2

    for field, value in (("t", "x"), ("a", "nan"), ("e", "inf"), ("h", None)):
        if value is None:
            raw.hdel(p + "leaseinfo", field)
        else:
            raw.hset(p + "leaseinfo", field, value)
        await app.status()  # answers, whatever it shows of the lease meanwhile
        await wait_until_async(written_again, 10, what=f"the lease record written whole after {field} = {value!r}")
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_quarantine_entries_whose_time_is_not_a_number_are_listed_as_unreadable(distsched_app, redis_server, ns,
                                                                                      raw):
    """A quarantine entry (``qr``) whose time is "nan" was listed with a NaN time, which no
    JSON document holds: the dashboard's ``/api/v1/overview`` failed (HTTP 500). Such an
    entry is listed as unreadable, at time 0, like one that is not JSON."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    for at in ("nan", "inf", "x"):
        raw.hset(p + "qr", f"task:odd-{at}", json.dumps({"kind": "task", "id": f"odd-{at}", "reason": "r", "at": at}))
    entries = (await app.status()).quarantine
    assert sorted((e.kind, e.key, e.reason, e.at) for e in entries) == [
        ("task", f"odd-{at}", "(unreadable quarantine entry)", 0.0) for at in ("inf", "nan", "x")]
    json.dumps((await app.status()).to_dict(), allow_nan=False)


async def test_throughput_figures_that_are_not_counts_are_left_out_of_the_read(distsched_app, redis_server, ns, raw):
    """A minute's figure of finished tasks (``{ns}:tp:<minute>``) that is not a count made
    ``tasks.throughput`` - and so the dashboard's overview - fail ("invalid literal for
    int()"). It is left out of the read; the others are read."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    minute = int(raw.time()[0]) // 60
    figures = {"failed": b"1.5", "timed_out": b"x", "skipped": b"nan", "retrying": b""}
    raw.hset(p + f"tp:{minute}", mapping={**figures, "cancelled": b"7"})
    buckets = {b.minute: b.counts for b in await app.throughput(2)}
    assert not set(figures) & set(buckets[minute * 60.0]) and buckets[minute * 60.0]["cancelled"] == 7
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_jobs_whose_stored_spec_has_a_field_of_the_wrong_type_are_quarantined(distsched_app, redis_server, ns,
                                                                                    raw):
    """A job config whose spec holds a retry policy that is not one ("x": the spec took
    it as it was) made the job's page and API fail (HTTP 500: 'str' has no to_dict), and
    the leader's firing of the job failed at every pass: a crash loop, no job fired any
    more. Reading such a job now moves it aside; the rest goes on. (Args that are not a
    list were refused already.) The same for a config whose ``enabled`` is not true or
    false: a stored "false" was true to every reader (the pages said enabled)."""
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    cases = {"retry-text": ("retry", "x"), "retry-null": ("retry", None), "retry-list": ("retry", [1]),
             "args-table": ("args", {"a": 1}), "enabled-text": ("enabled", "false"), "enabled-one": ("enabled", 1)}
    for name in cases:
        await app.add_job(name, every="0.3s", target="noop")
    for name in cases:
        await wait_until_async(lambda name=name: poison.succeeded(app, name), 10, what=f"the first run of {name}")
    for name, (field, value) in cases.items():
        config = json.loads(raw.hget(p + "jobs", name))
        (config if field == "enabled" else config["spec"])[field] = value
        raw.hset(p + "jobs", name, json.dumps(config))
    for name, (field, _) in cases.items():
        entry = await poison.quarantined(app, "job", name)
        assert f"ValidationError: {field}: must be" in entry.reason, entry.reason
    assert not set(cases) & {c.name for c in await (await app.storage()).jobs.list_jobs()}
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_scheduler_records_whose_json_names_another_id_are_listed_under_their_key(distsched_app, redis_server,
                                                                                        ns, raw):
    """A scheduler node's JSON carries its id too, and the list took it from there: an id
    that is not a string (a list) failed the sort of the nodes, and so ``status``, the
    dashboard's overview and workers pages ('<' not supported between str and list); a
    copy of another node's record listed that node twice. The key names the node."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    [live] = raw.hkeys(p + "sched")
    record = json.loads(raw.hget(p + "sched", live))
    ghosts = {"ghost-list": ["a", "list"], "ghost-number": 7, "ghost-null": None, "ghost-copy": "someone-else"}
    for key, node_id in ghosts.items():
        raw.hset(p + "sched", key, json.dumps({**record, "id": node_id}))
        raw.zadd(p + "shb", {key: 0})
        raw.hset(p + "srole", key, "standby")
    status = await app.status()
    assert sorted(n.id for n in status.schedulers) == sorted([live.decode(), *ghosts])
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


def _fails(*args: Any) -> None:
    raise RuntimeError("no")


async def test_tasks_whose_result_has_a_field_of_the_wrong_type_are_quarantined(distsched_app, redis_server, ns, raw):
    """A finished task's stored result (``r``) with an error that is a number made the
    task's page fail (HTTP 500: its length is taken); other fields of another type than the
    engine writes, likewise or later. Reading such a task now moves it aside."""
    app = await _start(distsched_app, redis_server, ns, functions={"fails": _fails})
    p = "{" + ns + "}:"
    cases = [("error", -1), ("outcome", "maybe"), ("started_at", "x"), ("meta", [1]), ("retryable", "yes"),
             ("attempt_id", None)]
    ids = [await poison.failed_twice(app) for _ in cases]
    for task_id, (field, value) in zip(ids, cases):
        result = json.loads(raw.hget(p + "t:" + task_id, "r"))
        raw.hset(p + "t:" + task_id, "r", json.dumps({**result, field: value}))
    storage = await app.storage()
    for task_id, (field, _) in zip(ids, cases):
        assert await storage.tasks.get(task_id) is None
        entry = await poison.quarantined(app, "task", task_id)
        assert f"its result's {field} is not" in entry.reason, entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_attempt_records_that_cannot_be_read_are_left_out_of_the_history(distsched_app, redis_server, ns, raw):
    """An attempt record (``ta:<id>``) with a start time that is a table made the task's
    page fail (HTTP 500: the duration is a subtraction); one that is not JSON (a NaN
    literal, cut bytes) failed the whole detail. Such a record is left out of the task's
    history (a warning); the others and the task are shown."""
    app = await _start(distsched_app, redis_server, ns, functions={"fails": _fails})
    p = "{" + ns + "}:"
    cases = [("started_at", {"a": 1}), ("number", "1"), ("error", -1), ("finished_at", 1e12), ("truncated", None),
             ("outcome", None)]
    ids = [await poison.failed_twice(app) for _ in cases]
    for task_id, (field, value) in zip(ids, cases):
        worker, _, text = raw.lindex(p + "ta:" + task_id, 0).decode().partition("\x1f")
        raw.lset(p + "ta:" + task_id, 0, worker + "\x1f" + json.dumps({**json.loads(text), field: value}))
        raw.rpush(p + "ta:" + task_id, worker + "\x1f" + '{"number": NaN, "outcome": "fa')
    for task_id in ids:
        detail = await app.task_detail(task_id)
        assert [a.number for a in detail.attempts] == [2] and detail.task.state.value == "failed"
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_a_worker_record_copied_from_another_is_listed_under_its_own_key(distsched_app, redis_server, ns, raw):
    """A worker record whose JSON is another worker's, id included (copied, as a restore
    or a hand edit might): it was listed as that worker - twice the same id, one of them
    with the copy's heartbeat. The key names the worker."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10,
                           what="the healthy job's first run (the worker is registered)")
    p = "{" + ns + "}:"
    live = app.engine.worker.id
    raw.hset(p + "workers", "ghost", raw.hget(p + "workers", live))
    raw.zadd(p + "hb", {"ghost": 0})  # stopped: the leader sends it nothing
    workers = {w.id: w for w in await (await app.storage()).workers.list_workers()}
    assert sorted(workers) == sorted([live, "ghost"])
    assert workers["ghost"].last_heartbeat == 0 and workers[live].last_heartbeat > 0
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("heartbeat", ["inf", "a day ahead"])
async def test_a_worker_whose_heartbeat_is_far_ahead_gets_no_task(distsched_app, redis_server, ns, raw, heartbeat):
    """A worker record copied from a live one, its heartbeat +inf or a day ahead: it looked
    alive for ever - never reaped, and given tasks that no one ran until they timed out. A
    heartbeat more than a TTL ahead of the store's clock is no sign of life."""
    app = await _start(distsched_app, redis_server, ns)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    p = "{" + ns + "}:"
    record = json.loads(raw.hget(p + "workers", app.engine.worker.id))
    record["id"] = "ghost"
    raw.hset(p + "workers", "ghost", json.dumps(record))
    raw.zadd(p + "hb", {"ghost": float("inf") if heartbeat == "inf" else raw.time()[0] + 86400})
    ids = [await app.submit("noop", i) for i in range(12)]
    for task_id in ids:
        task = await app.wait(task_id, timeout=10)
        assert task.state.value == "succeeded" and task.worker_id != "ghost"
    storage = await app.storage()
    assert (await storage.tasks.query(worker="ghost")).tasks == ()
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


@pytest.mark.parametrize("garbage", [b"yesterday", b"nan"])
async def test_a_running_task_whose_created_at_is_not_a_number_finishes_whole(distsched_app, redis_server, ns, raw,
                                                                              garbage):
    """A success whose task's stored created_at (the history index's score) is not a number
    failed the worker's report half-way: the task written succeeded, its counts and the
    indexes after it never (a `running` counted for ever). The script now leaves such a
    success to the leader, whose own path finishes the task and writes the record whole.
    "nan" is a number to Lua's tonumber, and not a score to Redis."""
    gate = asyncio.Event()

    async def held() -> str:
        await gate.wait()
        return "done"

    app = await _start(distsched_app, redis_server, ns, functions={"held": held})
    storage = await app.storage()
    p = "{" + ns + "}:"
    task_id = await app.submit("held")

    async def running() -> bool:
        task = await storage.tasks.get(task_id)
        return task is not None and task.state.value == "running"

    await wait_until_async(running, 10, what="the held task to run")
    raw.hset(p + "t:" + task_id, "c", garbage)
    gate.set()
    assert (await app.wait(task_id, timeout=10)).state.value == "succeeded"

    async def nothing_running() -> bool:  # the healthy job's tasks take a millisecond
        counts = await storage.tasks.counts()
        return counts.get("running", 0) == 0 and counts.get("dispatched", 0) == 0

    await wait_until_async(nothing_running, 10, what="no task counted as running or dispatched")
    assert float(raw.hget(p + "t:" + task_id, "c")) > 0, "the record was written whole again"
    assert task_id in [t.id for t in (await storage.tasks.query(state="succeeded", limit=200)).tasks]
    await poison.keeps_firing(app, every=HEALTHY_EVERY)


async def test_fuzz_random_bytes_in_every_kind_of_record(distsched_app, redis_server, ns, raw):
    """Seeded: victims of every kind get random bytes in random fields, round after round;
    the healthy job (never a victim) keeps firing under one leader term."""
    rng = random.Random(1604)
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    for i in range(6):
        await app.add_job(f"victim-{i}", every="0.4s", target="noop")
    victims = [f"victim-task-{i}" for i in range(10)]
    for victim in victims:
        await _later_task(app, victim)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")

    def junk() -> bytes:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))

    task_fields = ["s", "v", "sp", "d", "u", "w", "n", "sa", "da", "fa", "r", "to", "j"]
    kinds = ["job", "jst", "task", "worker", "count", "queue", "result"]
    for _round in range(8):
        for _ in range(6):
            kind = rng.choice(kinds)
            if kind == "job":
                raw.hset(p + "jobs", f"victim-{rng.randrange(6)}", junk())
            elif kind == "jst":
                raw.hset(p + "jst", f"victim-{rng.randrange(6)}", junk())
            elif kind == "task":
                victim = rng.choice(victims)
                raw.hset(p + "t:" + victim, rng.choice(task_fields), junk())
                raw.zadd(p + "ready", {victim: 1})
            elif kind == "worker":
                ghost = f"fuzz-{rng.randrange(3)}"
                raw.hset(p + "workers", ghost, junk())
                raw.zadd(p + "hb", {ghost: time.time()})
            elif kind == "count":
                raw.hset(p + "cnt", rng.choice(["pending", "dispatched", "running", "retrying"]), junk())
            elif kind == "queue":
                for key in raw.keys(p + "q:*"):
                    raw.rpush(key, junk())
            else:
                raw.rpush(p + "results", junk())
        await poison.keeps_firing(app, every=HEALTHY_EVERY, seconds=1.2)
    storage = await app.storage()
    assert isinstance(await storage.tasks.counts(), dict)  # the status view still works
    assert await storage.quarantine.count() > 0


#: What a number check might take for a number: Lua's tonumber takes all but the last four.
NUMBERISH = [b"nan", b"-nan", b"inf", b"-inf", b"1e999", b"-1", b"0", b"1.5", b"9" * 30, b"0x10", b" 7",
             b"1e-400", b"", b"-", b"1,5", b"\xff"]


@pytest.mark.parametrize("seed", [7, 1604])
async def test_fuzz_numberish_values_in_every_field_that_holds_a_number(distsched_app, redis_server, ns, raw, seed):
    """Seeded: the stored fields the scripts read as numbers (a task's version, times,
    timeout, attempt; a job's schedule state; the counts; the term) get values a number
    check may take for numbers ("nan", "inf", "1e999", "0x10"...), round after round; the
    healthy job keeps firing under one leader term and the status still reads."""
    rng = random.Random(seed)
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    for i in range(4):
        await app.add_job(f"victim-{i}", every="0.4s", target="noop")
    victims = [f"victim-task-{i}" for i in range(8)]
    for victim in victims:
        await _later_task(app, victim)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    worker_id = app.engine.worker.id
    task_fields = ["v", "u", "n", "sa", "da", "fa", "to", "c"]
    for _round in range(6):
        for _ in range(8):
            value = rng.choice(NUMBERISH)
            kind = rng.choice(["task", "queued", "jst", "count"])
            victim = rng.choice(victims)
            if kind == "task":
                raw.hset(p + "t:" + victim, rng.choice(task_fields), value)
                raw.zadd(p + "ready", {victim: 1})
            elif kind == "queued":  # dispatched to the live worker, with a broken number
                raw.hset(p + "t:" + victim, mapping={"s": "dispatched", "w": worker_id, "n": "1",
                                                     rng.choice(task_fields): value})
                raw.rpush(p + "q:" + worker_id, victim + "#1")
            elif kind == "jst":
                fields = ["1", "1", "", "0", "1", ""]
                fields[rng.randrange(4)] = value.decode("latin-1")
                raw.hset(p + "jst", f"victim-{rng.randrange(4)}", "|".join(fields).encode("latin-1"))
            else:
                raw.hset(p + "cnt", rng.choice(["pending", "dispatched", "running", "retrying"]), value)
        await poison.keeps_firing(app, every=HEALTHY_EVERY, seconds=1.2)
    storage = await app.storage()
    counts = await storage.tasks.counts()
    assert all(isinstance(v, int) and v >= 0 for v in counts.values()), counts


#: Integers a number check takes, out of any range the engine writes, or with stray text.
INTLIKE = [b"-1", b"-999999999999", b"99999999999999999999999", b"0", b"1e3", b"+5", b" 3", b"3 "]


@pytest.mark.parametrize("seed", [1, 3])
async def test_fuzz_out_of_range_values_in_task_records(distsched_app, redis_server, ns, raw, seed):
    """Seeded: a task's version and attempt number get integers out of range or with stray
    text, and the fields of its JSON (attempt, redeliveries, times) values of the wrong
    type or size (-1, 10**30, 1e300, "x", null), waiting and queued, round after round; the
    healthy job keeps firing under one leader term. (A null created_at was taken as a task
    time, and the leader's write of it failed at every pass.)"""
    rng = random.Random(seed)
    app = await _start(distsched_app, redis_server, ns)
    p = "{" + ns + "}:"
    victims = [f"victim-task-{i}" for i in range(8)]
    for victim in victims:
        await _later_task(app, victim)
    await wait_until_async(lambda: poison.succeeded(app), 10, what="the healthy job's first run")
    worker_id = app.engine.worker.id
    for _round in range(5):
        for _ in range(8):
            value = rng.choice(INTLIKE)
            victim = rng.choice(victims)
            kind = rng.choice(["task", "queued", "json"])
            field = rng.choice(["v", "n"])
            if kind == "task":
                raw.hset(p + "t:" + victim, field, value)
                raw.zadd(p + "ready", {victim: 1})
            elif kind == "queued":
                raw.hset(p + "t:" + victim, mapping={"s": "dispatched", "w": worker_id, "n": "1", field: value})
                raw.rpush(p + "q:" + worker_id, victim + "#" + (value.decode().strip() if field == "n" else "1"))
            else:
                text = raw.hget(p + "t:" + victim, "d")
                if text is None:  # quarantined already
                    continue
                data = json.loads(text)
                data[rng.choice(["attempt", "redeliveries", "not_before", "created_at"])] = rng.choice(
                    [-1, 10**30, 0, 1e300, "x", None])
                raw.hset(p + "t:" + victim, "d", json.dumps(data))
                raw.zadd(p + "ready", {victim: 1})
        await poison.keeps_firing(app, every=HEALTHY_EVERY, seconds=1.2)
