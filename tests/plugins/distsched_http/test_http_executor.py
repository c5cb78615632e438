"""The ``http`` executor against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest

from distsched.model import RetryPolicy, TaskResult, TaskState
from distsched.plugin.manager import PluginManager
from distsched.plugin.registry import FunctionRegistry
from distsched.ports import Executor, ExecutorContext


def test_plugin_provides_both_executors():
    pm = PluginManager()
    info = pm.plugins["http"]
    assert info.error is None
    assert info.dist == "distsched"
    assert info.provides["executor"] == ["http", "rpc"]
    assert pm.executors.get("http").description
    assert pm.executors.get("rpc").description


async def test_both_executors_share_one_client(server, make_executor, task_factory):
    context = ExecutorContext(functions=FunctionRegistry(), concurrency=2, settings={})
    http = make_executor("http", context)
    rpc = make_executor("rpc", context)
    assert isinstance(http, Executor) and isinstance(rpc, Executor)
    first = await http.run(task_factory(server.url("/ok")))
    second = await rpc.run(task_factory(server.url("/rpc"), executor="rpc", args=[1, 2], options={"method": "add"}))
    assert first.ok and second.ok
    # The same keep-alive connection served both: one client, one pool.
    clients = [r["client"] for r in server.requests]
    assert clients[0] == clients[1]
    # A second worker (another context) gets its own client.
    other = make_executor("http", ExecutorContext(functions=FunctionRegistry(), concurrency=2))
    assert (await other.run(task_factory(server.url("/ok")))).ok
    assert server.requests[-1]["client"] != clients[0]
    # Closing one executor leaves the other working; closing is idempotent.
    await http.close()
    await http.close()
    assert (await rpc.run(task_factory(server.url("/rpc"), executor="rpc", args=[2, 2], options={"method": "add"}))).value == 4


async def test_success(server, make_executor, task_factory):
    executor = make_executor()
    outcome = await executor.run(task_factory(server.url("/ok")))
    assert outcome.ok
    assert outcome.value == {"ok": True}
    assert outcome.meta["status"] == 200
    assert outcome.meta["truncated"] is False
    assert outcome.meta["body_excerpt"] == '{"ok": true}'
    assert outcome.meta["latency_ms"] >= 0
    assert server.requests[0]["method"] == "GET"


async def test_text_body_is_the_value(server, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(server.url("/text")))
    assert outcome.ok and outcome.value == "hello"


async def test_idempotency_key_and_options(server, make_executor, task_factory):
    executor = make_executor()
    task = task_factory(
        server.url("/echo-headers"),
        options={"json": {"a": 1}, "headers": {"X-Test": "yes"}, "query": {"q": "a b"}},
    )
    outcome = await executor.run(task)
    assert outcome.ok, outcome
    seen = outcome.value
    assert seen["method"] == "POST"
    assert seen["headers"]["Idempotency-Key"] == task.attempt_id == "t1#1"
    assert seen["headers"]["X-Test"] == "yes"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["target"] == "/echo-headers?q=a+b"
    assert seen["body"] == '{"a":1}'
    # A key the user set is kept.
    task = task_factory(server.url("/echo-headers"), options={"method": "put", "body": "raw",
                                                                "headers": {"idempotency-key": "mine"}})
    seen = (await executor.run(task)).value
    assert seen["method"] == "PUT" and seen["body"] == "raw"
    assert seen["headers"]["idempotency-key"] == "mine"
    assert "Idempotency-Key" not in seen["headers"]


async def test_query_option_is_added_to_the_urls_query(server, make_executor, task_factory, monkeypatch):
    """Found by an exploratory probe: ``query`` replaced the URL's query string (httpx's
    ``params=``), so ``key=${TOK}&fixed=1`` was never sent. The URL's query is kept byte for
    byte; a name in both is sent once, with the option's value."""
    monkeypatch.setenv("DISTSCHED_TEST_TOK", "t0k/en+1")
    executor = make_executor(secrets=["DISTSCHED_TEST_TOK"])
    target = server.url("/echo-headers?key=${DISTSCHED_TEST_TOK}&sig=a%2Fb%2B&page=1&fixed=1")
    outcome = await executor.run(task_factory(target, options={"query": {"page": "2", "extra": "a b", "n": [1, 2]}}))
    assert outcome.ok, outcome
    assert server.requests[0]["target"] == "/echo-headers?key=t0k/en+1&sig=a%2Fb%2B&fixed=1&page=2&extra=a+b&n=1&n=2"
    outcome = await executor.run(task_factory(server.url("/echo-headers?a=1"), options={"params": {}}))
    assert server.requests[1]["target"] == "/echo-headers?a=1"


async def test_500_then_success(server, make_executor, task_factory):
    executor = make_executor()
    first = await executor.run(task_factory(server.url("/flaky")))
    assert not first.ok
    assert first.error_type == "HTTPStatus"
    assert first.retryable is True
    assert first.meta["status"] == 500
    assert first.meta["body_excerpt"] == "try again"
    assert first.error.startswith("HTTP 500")
    second = await executor.run(task_factory(server.url("/flaky")))
    assert second.ok and second.value == {"ok": True, "calls": 2}


async def test_429_retry_after(server, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(server.url("/ratelimit")))
    assert not outcome.ok
    assert outcome.error_type == "HTTPStatus"
    assert outcome.retryable is True
    assert outcome.retry_after == 2
    assert outcome.meta["status"] == 429
    policy = RetryPolicy(max_attempts=3, delay=10, max_delay=60)
    assert policy.delay_after(1, retry_after=outcome.retry_after) == 2
    # Through the model, as the leader applies it: the task waits 2 s, not 10.
    task = task_factory(server.url("/ratelimit"), retry=policy)
    task.start(task.attempt_id, 100.0)
    result = TaskResult.from_outcome(outcome, task_id=task.id, attempt_id=task.attempt_id,
                                     started_at=100.0, finished_at=100.5)
    assert task.finish(result, 100.5) is TaskState.RETRYING
    assert task.not_before == 102.5


async def test_503_retry_after_http_date(server, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(server.url("/unavailable")))
    assert outcome.error_type == "HTTPStatus" and outcome.retryable
    assert 25 <= outcome.retry_after <= 31


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (409, False), (429, True),
     (500, True), (502, True), (503, True)],
)
async def test_status_classes(server, make_executor, task_factory, status, retryable):
    outcome = await make_executor().run(task_factory(server.url(f"/status/{status}")))
    assert not outcome.ok
    assert outcome.error_type == "HTTPStatus"
    assert outcome.retryable is retryable
    assert outcome.meta["status"] == status
    assert outcome.retry_after is None


async def test_404_not_retryable(server, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(server.url("/missing")))
    assert not outcome.ok and outcome.retryable is False and outcome.meta["status"] == 404


async def test_success_codes(server, make_executor, task_factory):
    executor = make_executor()
    outcome = await executor.run(task_factory(server.url("/missing"), options={"success_codes": ["2xx", 404]}))
    assert outcome.ok and outcome.value == "not found"
    outcome = await executor.run(task_factory(server.url("/ok"), options={"success_codes": ["201"]}))
    assert not outcome.ok and outcome.retryable is False


async def test_timeout_under_the_workers_wait_for(server, make_executor, task_factory):
    executor = make_executor()
    task = task_factory(server.url("/slow"), timeout=0.3)
    start = time.monotonic()
    try:
        outcome = await asyncio.wait_for(executor.run(task), task.spec.timeout)
    except asyncio.TimeoutError:
        outcome = None  # the worker records a timed_out result itself
    else:
        assert outcome.error_type == "Timeout" and outcome.retryable
    assert time.monotonic() - start < 2.0
    # The cancelled request released its connection: the pool still serves requests.
    assert (await executor.run(task_factory(server.url("/ok")))).ok


async def test_timeout_of_httpx_alone(server, make_executor, task_factory):
    task = task_factory(server.url("/slow"), timeout=0.3)
    start = time.monotonic()
    outcome = await make_executor().run(task)
    assert time.monotonic() - start < 2.0
    assert not outcome.ok
    assert outcome.error_type == "Timeout"
    assert outcome.retryable is True
    assert "timed out after 0.3s" in outcome.error


async def test_connection_refused(refused_url, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(refused_url))
    assert not outcome.ok
    assert outcome.error_type == "ConnectionError"
    assert outcome.retryable is True
    assert "latency_ms" in outcome.meta


async def test_a_connect_error_names_the_target_host_not_its_path_query_or_credentials(refused_url, make_executor,
                                                                                        task_factory):
    """`tasks show` read `ConnectionError: ConnectError: All connection attempts failed`:
    two type names and no target. The error names the host and port it could not connect
    to (never the path, query or credentials) and httpx's exception after the reason."""
    host_port = refused_url.split("//", 1)[1].split("/", 1)[0]
    target = refused_url.replace("//", "//svc:pw-Xq9@").replace("/ok", "/hook-path?token=Tk-Zz8")
    outcome = await make_executor().run(task_factory(target))
    assert outcome.error_type == "ConnectionError" and outcome.retryable is True
    assert outcome.error == f"cannot connect to {host_port}: All connection attempts failed (ConnectError)", outcome
    for hidden in ("pw-Xq9", "svc", "hook-path", "Tk-Zz8"):
        assert hidden not in outcome.error
    rpc = await make_executor("rpc").run(task_factory(target, options={"method": "ping"}))
    assert rpc.error == outcome.error, rpc


async def test_huge_body_is_cut_not_buffered(server, make_executor, task_factory):
    executor = make_executor(http_body_limit=1000)
    start = time.monotonic()
    outcome = await executor.run(task_factory(server.url("/huge")))
    elapsed = time.monotonic() - start
    assert outcome.ok
    assert outcome.meta["truncated"] is True
    assert len(outcome.meta["body_excerpt"]) <= 1000
    assert outcome.meta["body_excerpt"] == "x" * 1000
    # Truncated JSON is not parsed: the value is the excerpt.
    assert outcome.value == "x" * 1000
    assert elapsed < 5
    # The server learns the client hung up long before 20 MB.
    assert await asyncio.to_thread(server.huge_done.wait, 10)
    assert server.huge_sent < 20 * 1024 * 1024 // 2


async def test_body_limit_option(server, make_executor, task_factory):
    outcome = await make_executor().run(task_factory(server.url("/text"), options={"body_limit": 3}))
    assert outcome.ok
    assert outcome.meta["truncated"] is True
    assert outcome.value == outcome.meta["body_excerpt"] == "hel"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"method": 5}, "method"),
        ({"json": {}, "body": "x"}, "exclusive"),
        ({"body": {"a": 1}}, "body"),
        ({"headers": ["a"]}, "headers"),
        ({"success_codes": ["2yy"]}, "2yy"),
        ({"follow_redirects": "yes"}, "follow_redirects"),
        ({"body_limit": -1}, "body_limit"),
        ({"header": {"a": "b"}}, "unknown option"),
        ({"query": {"a": 1}, "params": {"b": 2}}, "query"),
    ],
)
async def test_bad_options_are_config_errors(server, make_executor, task_factory, options, fragment):
    outcome = await make_executor().run(task_factory(server.url("/ok"), options=options))
    assert not outcome.ok
    assert outcome.error_type == "ConfigError"
    assert outcome.retryable is False
    assert fragment in outcome.error
    assert server.requests == []


def test_bad_settings_fail_at_build_time(plugin_manager):
    factory = plugin_manager.executors.get("http").factory
    for settings in ({"http_allow": "127.0.0.1"}, {"http_allow": ["127.0.0.1:80"]}, {"http_body_limit": "1k"}):
        with pytest.raises(ValueError):
            factory(ExecutorContext(functions=FunctionRegistry(), settings=settings))


async def test_redirect_not_followed_by_default(server, make_executor, task_factory):
    target = server.url("/ok")
    outcome = await make_executor().run(task_factory(server.url(f"/redirect?to={target}")))
    assert not outcome.ok
    assert outcome.error_type == "HTTPStatus"
    assert outcome.retryable is False
    assert outcome.meta["status"] == 302
    assert outcome.meta["location"] == target
    assert server.paths() == ["/redirect"]


async def test_redirect_followed_within_the_allow_list(server, make_executor, task_factory):
    executor = make_executor(http_allow=["127.0.0.1"])
    task = task_factory(server.url(f"/redirect?to={server.url('/ok')}"), options={"follow_redirects": True})
    outcome = await executor.run(task)
    assert outcome.ok, outcome
    assert outcome.value == {"ok": True}
    assert outcome.meta["redirects"] == 1
    assert server.paths() == ["/redirect", "/ok"]


async def test_redirect_to_a_disallowed_host_is_refused(server, make_executor, task_factory):
    executor = make_executor(http_allow=["127.0.0.1"])
    outside = server.url("/ok", host="localhost")
    task = task_factory(server.url(f"/redirect?to={outside}"), options={"follow_redirects": True})
    outcome = await executor.run(task)
    assert not outcome.ok
    assert outcome.error_type == "Forbidden"
    assert outcome.retryable is False
    assert "'localhost'" in outcome.error
    assert server.paths() == ["/redirect"]


async def test_redirect_to_another_scheme_is_refused(server, make_executor, task_factory):
    task = task_factory(server.url("/redirect?to=file:///etc/passwd"), options={"follow_redirects": True})
    outcome = await make_executor().run(task)
    assert outcome.error_type == "Forbidden"
    assert "'file'" in outcome.error
