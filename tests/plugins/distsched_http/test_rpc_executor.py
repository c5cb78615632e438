"""The ``rpc`` (JSON-RPC 2.0 over HTTP) executor against a real server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest


def rpc_task(task_factory, server, method=None, **spec):
    options = dict(spec.pop("options", {}))
    if method is not None:
        options["method"] = method
    return task_factory(server.url("/rpc"), executor="rpc", options=options, **spec)


async def test_call_with_positional_args(server, make_executor, task_factory):
    outcome = await make_executor("rpc").run(rpc_task(task_factory, server, "add", args=[2, 3]))
    assert outcome.ok, outcome
    assert outcome.value == 5
    assert outcome.meta["status"] == 200
    sent = json.loads(server.requests[0]["body"])
    assert sent["jsonrpc"] == "2.0"
    assert sent["method"] == "add"
    assert sent["params"] == [2, 3]
    assert sent["id"] == outcome.meta["rpc_id"]
    assert server.requests[0]["method"] == "POST"
    assert server.requests[0]["headers"]["Content-Type"] == "application/json"
    assert server.requests[0]["headers"]["Idempotency-Key"] == "t1#1"


async def test_params_from_kwargs_and_options(server, make_executor, task_factory):
    executor = make_executor("rpc")
    outcome = await executor.run(rpc_task(task_factory, server, "add", kwargs={"a": 1, "b": 2}))
    assert outcome.value == 3
    outcome = await executor.run(rpc_task(task_factory, server, "add", args=[100], options={"params": [4, 5]}))
    assert outcome.value == 9
    bodies = [json.loads(r["body"]) for r in server.requests]
    assert bodies[0]["params"] == {"a": 1, "b": 2}
    assert bodies[1]["params"] == [4, 5]
    assert bodies[0]["id"] != bodies[1]["id"]


async def test_no_params_are_omitted(server, make_executor, task_factory):
    await make_executor("rpc").run(rpc_task(task_factory, server, "nothing"))
    assert "params" not in json.loads(server.requests[0]["body"])


async def test_error_object(server, make_executor, task_factory):
    outcome = await make_executor("rpc").run(rpc_task(task_factory, server, "fail"))
    assert not outcome.ok
    assert outcome.error_type == "RPCError"
    assert outcome.meta["code"] == -32000
    assert outcome.meta["message"] == "boom"
    assert "-32000" in outcome.error and "boom" in outcome.error
    assert outcome.retryable is True


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(-32700, False), (-32600, False), (-32601, False), (-32602, False), (-32603, True),
     (-32000, True), (-32099, True), (-32100, False), (42, False)],
)
async def test_error_codes(server, make_executor, task_factory, code, retryable):
    task = rpc_task(task_factory, server, "error", kwargs={"code": code, "message": "m", "data": [1]})
    outcome = await make_executor("rpc").run(task)
    assert outcome.error_type == "RPCError"
    assert outcome.retryable is retryable
    assert outcome.meta["code"] == code
    assert outcome.meta["data"] == [1]


@pytest.mark.parametrize("method", ["garbage", "wrong_id", "both", "no_version", "neither"])
async def test_malformed_response(server, make_executor, task_factory, method):
    outcome = await make_executor("rpc").run(rpc_task(task_factory, server, method))
    assert not outcome.ok
    assert outcome.error_type == "MalformedResponse"
    assert outcome.retryable is False
    assert outcome.error.startswith("malformed JSON-RPC response")
    assert outcome.meta["status"] == 200
    assert "body_excerpt" in outcome.meta


async def test_http_failure_is_classified_like_http(server, make_executor, task_factory):
    outcome = await make_executor("rpc").run(rpc_task(task_factory, server, "http500"))
    assert outcome.error_type == "HTTPStatus"
    assert outcome.retryable is True
    assert outcome.meta["status"] == 500
    assert outcome.meta["code"] == -32603
    assert "internal" in outcome.error


async def test_connection_refused(refused_url, make_executor, task_factory):
    task = task_factory(refused_url, executor="rpc", options={"method": "add"})
    outcome = await make_executor("rpc").run(task)
    assert outcome.error_type == "ConnectionError" and outcome.retryable


async def test_missing_method_is_a_config_error(server, make_executor, task_factory):
    outcome = await make_executor("rpc").run(rpc_task(task_factory, server))
    assert outcome.error_type == "ConfigError"
    assert outcome.retryable is False
    assert "options.method is required" in outcome.error
    assert server.requests == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"options": {"params": "x"}}, "params"),
        ({"args": [1], "kwargs": {"a": 1}}, "not both"),
        ({"options": {"json": {}}}, "unknown option"),
    ],
)
async def test_bad_options(server, make_executor, task_factory, spec, fragment):
    outcome = await make_executor("rpc").run(rpc_task(task_factory, server, "add", **spec))
    assert outcome.error_type == "ConfigError" and fragment in outcome.error
    assert server.requests == []


async def test_response_over_the_limit_is_malformed(server, make_executor, task_factory):
    task = rpc_task(task_factory, server, "add", args=[1, 2], options={"body_limit": 10})
    outcome = await make_executor("rpc").run(task)
    assert outcome.error_type == "MalformedResponse"
    assert "body_limit" in outcome.error
