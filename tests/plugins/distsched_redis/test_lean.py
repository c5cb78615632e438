"""The lean pipelined connection of the hot calls (plugins/distsched_redis/lean.py), against a
real redis-server: pipelining, replies and errors as redis-py gives them, the handshake,
timeouts, lost connections, the reply cap, cancelled callers and a new event loop."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    InvalidResponse,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from distsched_redis.lean import BlockingClients, LeanClient
from distsched_redis.storage import _retry


def lean(server, *, retry=None, **kwargs) -> LeanClient:
    kwargs.setdefault("max_reply", 256 * 1024 * 1024)
    return LeanClient(server.host, server.port, retry=retry or _retry(), **kwargs)


async def test_concurrent_calls_are_pipelined_and_answered_in_order(private_server) -> None:
    client = lean(private_server)
    try:
        replies = await asyncio.gather(*(client.execute("ECHO", f"m{i}") for i in range(500)))
        assert replies == [f"m{i}" for i in range(500)]
        # one connection for all of them (besides the INFO reader's own)
        info = private_server.client()
        try:
            names = [c["name"] for c in info.client_list()]
        finally:
            info.close()
        assert names.count("distsched") == 1, names
        due, ready = await client.pipeline(("ZRANGE", "nothing", 0, 0, "WITHSCORES"), ("PING",))
        assert (due, ready) == ([], "PONG")
    finally:
        await client.aclose()


async def test_replies_decode_like_redis_py_and_errors_raise_its_classes(private_server) -> None:
    client = lean(private_server)
    try:
        odd = "caf\u00e9 \udcff"  # a byte that is not UTF-8 comes and goes as a lone surrogate
        assert await client.execute("SET", "k", odd) == "OK"
        assert await client.execute("GET", "k") == odd
        assert await client.execute("INCRBY", "n", 5) == 5
        with pytest.raises(NoScriptError):
            await client.execute("EVALSHA", "0" * 40, 0)
        with pytest.raises(ResponseError, match="wrong number of arguments"):
            await client.execute("GET")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await client.pipeline(("PING",), ("LPUSH", "k", "x"))
        assert await client.execute("PING") == "PONG"  # an error reply leaves the connection usable
    finally:
        await client.aclose()


async def test_evalsha_loads_a_script_the_server_does_not_know(private_server) -> None:
    class Script:  # what redis-py's registered script gives the store: sha and source
        script = "return ARGV[1] .. KEYS[1]"
        sha = "0" * 40

    client = lean(private_server)
    try:
        assert await client.evalsha(Script, ["k"], ["a"]) == "ak"
        assert Script.sha != "0" * 40
        await client.execute("SCRIPT", "FLUSH")  # as after a restart
        assert await client.evalsha(Script, ["k2"], ["b"]) == "bk2"
    finally:
        await client.aclose()


async def test_the_handshake_authenticates_selects_and_names(make_server) -> None:
    server = make_server(users={"app": "s3cret"}, default_user=False)
    client = lean(server, username="app", password="s3cret", db=3)
    try:
        info = await client.execute("CLIENT", "INFO")
        assert "db=3" in info and "name=distsched" in info and "user=app" in info
    finally:
        await client.aclose()
    wrong = lean(server, username="app", password="nope", retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(AuthenticationError):
            await wrong.execute("PING")
    finally:
        await wrong.aclose()


@pytest.mark.timing
async def test_a_call_unanswered_for_the_socket_timeout_fails_with_timeout_error() -> None:
    """A server that accepts and never answers (a blackholed Redis): the call fails after
    socket_timeout (checked every quarter of it), not never."""
    async def silent(reader, writer) -> None:
        await reader.read(1 << 20)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = LeanClient("127.0.0.1", port, socket_timeout=0.4, max_reply=1 << 20, retry=Retry(NoBackoff(), 0))
    try:
        start = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.execute("PING")  # the handshake (CLIENT SETNAME) gets no answer
        elapsed = time.monotonic() - start
        assert elapsed < 3.0 + 0.5, elapsed  # bounded by the connect timeout (3 s) at most
    finally:
        await client.aclose()
        server.close()


@pytest.mark.timing
async def test_a_reply_late_after_connecting_times_out_within_the_bound(private_server) -> None:
    """Connected, then a call that the server holds longer than socket_timeout (a blocking
    command is the stand-in for a stalled server): TimeoutError after 0.4-0.6 s, and the next
    call connects again."""
    client = lean(private_server, socket_timeout=0.4, retry=Retry(NoBackoff(), 0))
    try:
        assert await client.execute("PING") == "PONG"
        start = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.execute("BLPOP", "never", 5)
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 0.4 * 1.25 + 0.3, elapsed
        assert await client.execute("PING") == "PONG"
    finally:
        await client.aclose()


async def test_a_killed_connection_is_retried_on_a_new_one(private_server) -> None:
    client = lean(private_server)
    admin = private_server.client()
    try:
        assert await client.execute("PING") == "PONG"
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        assert await client.execute("SET", "after", "1") == "OK"  # retried after a reconnect
        assert admin.get("after") == "1"
    finally:
        admin.close()
        await client.aclose()


async def test_a_reply_larger_than_max_reply_is_refused(private_server) -> None:
    admin = private_server.client()
    admin.set("big", "x" * (2 * 1024 * 1024))
    admin.close()
    client = lean(private_server, max_reply=1024 * 1024)
    try:
        with pytest.raises(InvalidResponse, match="max_reply"):
            await client.execute("GET", "big")
        assert await client.execute("STRLEN", "big") == 2 * 1024 * 1024  # a new connection
    finally:
        await client.aclose()


async def test_a_cancelled_caller_leaves_the_connection_in_step(private_server) -> None:
    client = lean(private_server)
    try:
        assert await client.execute("PING") == "PONG"
        slow = asyncio.ensure_future(client.execute("BLPOP", "empty", 0.3))
        await asyncio.sleep(0)  # sent
        after = asyncio.ensure_future(client.execute("ECHO", "next"))
        slow.cancel()
        assert await after == "next"  # the BLPOP's nil is read and dropped first
        assert await client.execute("ECHO", "again") == "again"
    finally:
        await client.aclose()


def test_a_client_used_from_a_new_event_loop_connects_again(private_server) -> None:
    client = lean(private_server)
    assert asyncio.run(client.execute("ECHO", "one")) == "one"
    assert asyncio.run(client.execute("ECHO", "two")) == "two"
    asyncio.run(client.aclose())


async def test_the_store_uses_it_on_redis_urls_only_unless_lean_false(open_storage, private_server) -> None:
    on = await open_storage(private_server.url_for(namespace="on"))
    off = await open_storage(private_server.url_for(namespace="off"), lean="false")
    assert on.lean is not None and off.lean is None
    for store in (on, off):
        assert await store.tasks.counts() == {}


async def test_a_unix_socket_url_takes_the_lean_connection_through_the_socket(open_storage, private_server) -> None:
    store = await open_storage(private_server.url_for(unix=True, db=2, namespace="unix"))
    assert store.lean is not None and store.lean.path == private_server.socket_path
    assert await store.tasks.counts() == {}
    info = await store.lean.execute("CLIENT", "INFO")
    assert "db=2" in info and "laddr=" + private_server.socket_path in info  # not a TCP connection
    redis_py = await store.client.execute_command("CLIENT", "INFO")  # and redis-py's client too
    assert "db=2" in redis_py and "laddr=" + private_server.socket_path in redis_py


async def test_a_missing_socket_fails_with_an_error_naming_it(tmp_path) -> None:
    path = str(tmp_path / "nothing.sock")
    client = LeanClient("", 0, path=path, max_reply=1 << 20, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(RedisConnectionError, match=f"Error connecting to {path}"):
            await client.execute("PING")
    finally:
        await client.aclose()


async def test_blocking_calls_each_take_a_connection_of_their_own(private_server) -> None:
    """Two workers' BLMOVE in one process must not wait for each other, nor hold up the
    pipelined connection; a cancelled blocking call's connection is closed, not reused."""
    made: list[LeanClient] = []

    def make() -> LeanClient:
        made.append(lean(private_server))
        return made[-1]

    blocking, hot = BlockingClients(make), lean(private_server)
    try:
        a = asyncio.ensure_future(blocking.execute("BLPOP", "qa", 5))
        b = asyncio.ensure_future(blocking.execute("BLPOP", "qb", 5))
        assert await hot.execute("LPUSH", "qb", "x") == 1  # not held up by the blocked calls
        assert await asyncio.wait_for(b, 2) == ["qb", "x"]
        assert not a.done()
        await hot.execute("LPUSH", "qa", "y")
        assert await asyncio.wait_for(a, 2) == ["qa", "y"]
        assert len(made) == 2
        assert await blocking.execute("BLPOP", "qa", 0.05) is None  # an idle one is reused
        assert len(made) == 2
        c = asyncio.ensure_future(blocking.execute("BLPOP", "qc", 5))
        await asyncio.sleep(0.05)
        c.cancel()
        with pytest.raises(asyncio.CancelledError):
            await c
        # the cancelled call's connection is closed: Redis stops blocking it (polled, deadline 5 s)
        deadline = time.monotonic() + 5
        while "blocked_clients:0" not in await hot.execute("INFO", "clients"):
            assert time.monotonic() < deadline, "the cancelled BLPOP's connection still blocks"
            await asyncio.sleep(0.01)
        await hot.execute("LPUSH", "qc", "z")
        await hot.execute("LPUSH", "qc", "w")
        assert await blocking.execute("BLPOP", "qc", 1) == ["qc", "w"]
        assert await hot.execute("LLEN", "qc") == 1
    finally:
        await blocking.aclose()
        await hot.aclose()


async def test_fcall_loads_the_library_the_server_does_not_know(private_server) -> None:
    library = ("#!lua name=lean_test\n"
               "redis.register_function('lean_test_echo', function(keys, argv) return argv[1] .. keys[1] end)")
    client = lean(private_server)
    try:
        assert await client.fcall("lean_test_echo", ["k"], ["a"], library) == "ak"  # loads it
        await client.execute("FUNCTION", "FLUSH")  # as after a restart of a Redis without persistence
        assert await client.fcall("lean_test_echo", ["k2"], ["b"], library) == "bk2"
        with pytest.raises(ResponseError, match="attempt to concatenate"):  # other errors are raised
            await client.fcall("lean_test_echo", ["k"], [], library)
    finally:
        await client.aclose()
