"""The Redis backend on a real Redis 6.2 (``$DISTSCHED_TEST_REDIS6``, built by ``.ci/redis6``):
no function library (``FUNCTION`` is Redis 7's), so every store call is a script, called with
``EVALSHA`` on the lean connection and loaded again when the server lost it; out of memory,
6.2 refuses a script at its first write, and the store raises the error Redis 7 gives."""

from __future__ import annotations

import pytest
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from distsched.model import Task, TaskSpec, TaskState, Worker
from distsched.testing.redis_server import RedisServer, redis_server_binary
from distsched_redis.scripts import NAMES

pytestmark = pytest.mark.redis

#: What a refused write says, on Redis 6.2 and 7 alike (the start of redis-py's message).
OOM_TEXT = "command not allowed when used memory > 'maxmemory'."


def task(task_id: str, now: float = 1.0) -> Task:
    return Task(id=task_id, spec=TaskSpec(target="f"), created_at=now)


def test_the_server_is_redis_6_2_without_functions(private_server6) -> None:
    """What the other tests here rely on: the binary is 6.2, and it has no FUNCTION command."""
    assert private_server6.version[:2] == (6, 2)
    client = private_server6.client()
    try:
        assert client.info("server")["redis_version"].startswith("6.2.")
        with pytest.raises(ResponseError, match="unknown command"):
            client.execute_command("FUNCTION", "LIST")
    finally:
        client.close()


async def test_the_store_calls_its_scripts_with_evalsha_on_the_lean_connection(
        open_storage, private_server6, command_calls, five_calls) -> None:
    """Opening loaded no library (the server refused FUNCTION LOAD); submit, ready, dispatch,
    get_many and save are one EVALSHA each, sent on the lean connection: the client whose
    last command is EVALSHA is the lean one, and no other. Counted by the server itself
    (INFO commandstats) on a server nothing else talks to."""
    from distsched_redis.election import RedisElection

    s = await open_storage(private_server6.url_for(namespace="six"))
    assert s.lean is not None, "a plain redis:// store has a lean connection"
    assert all(s.scripts.function(getattr(s.scripts, name)) is None for name in NAMES), "no library function"
    fence = await RedisElection(s).acquire("leader-1")
    assert fence is not None
    await s.workers.register(Worker(id="w1", concurrency=2, started_at=s.clock()))
    lean_id = int(await s.lean.execute("CLIENT", "ID"))
    client = private_server6.client()
    try:
        before = command_calls(client)
        await five_calls(s, fence, [task(f"t{i}") for i in range(50)])
        after = command_calls(client)
        assert (after["evalsha"] - before["evalsha"], after["fcall"], after["function"]) == (5, 0, 0)
        last = {int(c["id"]): c["cmd"] for c in client.client_list() if c["name"] == "distsched"}
        assert last[lean_id] == "evalsha", last
        assert [i for i, cmd in last.items() if cmd == "evalsha"] == [lean_id], f"only the lean one: {last}"
    finally:
        client.close()
    assert await s.tasks.counts() == {"cancelled": 50}


async def test_a_call_loads_its_script_again_after_a_flush_and_a_restart(
        open_storage, private_server6, command_calls) -> None:
    """A script the server no longer knows (SCRIPT FLUSH; a restart of a Redis that keeps
    nothing on disk) answers NOSCRIPT: the call loads it (SCRIPT LOAD) and runs once."""
    s = await open_storage(private_server6.url_for(namespace="noscript"))
    assert await s.tasks.submit([task("a")]) == [True]
    client = private_server6.client()
    try:
        client.script_flush()
        before, errors0 = command_calls(client), client.info("errorstats")
        assert await s.tasks.submit([task("b")]) == [True]
        after, errors = command_calls(client), client.info("errorstats")
        assert (after["script"] - before["script"], after["evalsha"] - before["evalsha"]) == (1, 2), \
            "one NOSCRIPT, one SCRIPT LOAD, one EVALSHA that ran"
        assert errors["errorstat_NOSCRIPT"]["count"] - errors0.get("errorstat_NOSCRIPT", {}).get("count", 0) == 1
        assert await s.tasks.counts() == {"pending": 2}, "the retried call ran once"
    finally:
        client.close()

    private_server6.kill()  # kill -9: the scripts and the data are gone, the connections cut
    private_server6.restart()
    assert await s.tasks.submit([task("c")]) == [True]
    assert await s.tasks.counts() == {"pending": 1}
    assert [t.id for t in await s.tasks.ready(1e12, 10)] == ["c"]


async def test_out_of_memory_a_refused_submit_writes_nothing(open_storage, private_server6) -> None:
    """test_tasks.py's out-of-memory test on 6.2: reads (counts) and memory-freeing
    housekeeping go on; a submit is refused - not before it ran, as a FCALL is on 7, but at
    its first write (the call fails) - and nothing is half-written. The store raises the
    OutOfMemoryError Redis 7 gives, not the generic error 6.2 wraps around it."""
    s = await open_storage(private_server6.url_for(namespace="oom"))
    client = private_server6.client()
    try:
        assert await s.tasks.submit([task("a")]) == [True]
        client.config_set("maxmemory", "1")  # below what is used: out of memory at once
        try:
            stats0 = client.info("commandstats")["cmdstat_evalsha"]
            assert await s.tasks.counts() == {"pending": 1}
            with pytest.raises(OutOfMemoryError) as refused:
                await s.tasks.submit([task("b")])
            assert str(refused.value).startswith(OOM_TEXT) and "script: " in str(refused.value)
            assert "Error running script" in str(refused.value.__cause__), "6.2's own error is the cause"
            assert await s.housekeeping(100) == 0
            stats = client.info("commandstats")["cmdstat_evalsha"]
            # counts, submit (failed), prune, the jobs' due check (no job lost its entry: it
            # writes nothing), its walk of the configs (which writes nothing), the history
            # backfill (failed at its first write: it only adds, and is tried again at the next
            # pass)
            assert {k: stats[k] - stats0[k] for k in ("calls", "rejected_calls", "failed_calls")} == {
                "calls": 6, "rejected_calls": 0, "failed_calls": 2}
        finally:
            client.config_set("maxmemory", "0")
        assert await s.tasks.get("b") is None, "the refused submit wrote nothing"
        assert await s.tasks.submit([task("b")]) == [True]
        assert await s.tasks.counts() == {"pending": 2}
    finally:
        client.close()


@pytest.mark.parametrize("version", ["6.2", "7"])
def test_the_cli_says_out_of_memory_alike_on_redis_6_2_and_7(request, distsched_cli, version) -> None:
    """`distsched tasks submit` on a Redis out of memory: the same one line on both versions
    (6.2 alone said "ResponseError: Error running script (call to f_...): ... -OOM ...")."""
    if version == "7":
        if redis_server_binary() is None:
            pytest.skip("redis-server is not on PATH (install it: apt-get install redis-server)")
        server = RedisServer()
    else:
        server = RedisServer(binary=request.getfixturevalue("redis6_binary"))
    with server:
        assert server.version[0] == (6 if version == "6.2" else 7), server.version
        url = server.url_for(namespace="cli")
        client = server.client()
        try:
            assert distsched_cli("tasks", "submit", "f", "--storage", url).exit_code == 0
            client.config_set("maxmemory", "1")
            refused = distsched_cli("tasks", "submit", "f", "--storage", url)
        finally:
            client.close()
    assert refused.exit_code == 1
    assert f"Error: OutOfMemoryError: {OOM_TEXT} script: " in refused.output, refused.output
    assert "Error running script" not in refused.output


async def test_a_replica_refuses_a_write_as_readonly(open_storage, redis6_binary) -> None:
    """The other refusal 6.2 wraps: a write on a read-only replica raises ReadOnlyError (as on
    7), while reads answer."""
    with RedisServer(binary=redis6_binary) as master, \
            RedisServer(binary=redis6_binary, config=[("replicaof", master.host, str(master.port))]) as replica:
        s = await open_storage(replica.url_for(namespace="ro"))
        with pytest.raises(ReadOnlyError, match="read only replica"):
            await s.tasks.submit([task("a")])
        assert await s.tasks.counts() == {}


@pytest.mark.parametrize("lean", ["true", "false"])
async def test_a_deployment_runs_tasks_on_redis_6(distsched_app, redis6_server, namespace, lean) -> None:
    """End to end on 6.2: a scheduler and a worker (BLMOVE, the scripts) run tasks to success,
    one of them after a failed first attempt and its retry - on the lean connection, and
    through redis-py's client alone (``lean=false``: its script objects, its BLMOVE)."""
    tries: list[int] = []

    def flaky(x: int) -> int:
        tries.append(x)
        if len(tries) == 1:
            raise ValueError("first attempt fails")
        return x

    app = await distsched_app(redis6_server.url_for(namespace=namespace, lean=lean),
                              functions={"double": lambda x: 2 * x, "flaky": flaky})
    ids = [await app.submit("double", i) for i in range(5)]
    retried = await app.submit("flaky", 7, retry={"max_attempts": 2, "delay": 0})
    assert [(await app.result(i, timeout=15)).value for i in ids] == [0, 2, 4, 6, 8]
    task = await app.wait(retried, timeout=15)
    assert (task.state, task.result.value if task.result else None, tries) == (TaskState.SUCCEEDED, 7, [7, 7])
    assert ((await app.storage()).lean is not None) == (lean == "true")
