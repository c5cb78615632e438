"""Response bodies against a real server on 127.0.0.1: what a result can hold, bodies that
are not strict JSON, and bodies that cannot be decoded. Found by an exploratory probe."""

from __future__ import annotations

import logging

import pytest

from distsched.app.worker import _checked
from distsched.config import WorkerConfig
from distsched.model import TaskSpec, ValidationError
from distsched.model.result import MAX_RESULT_BYTES
from distsched.plugin.registry import FunctionRegistry
from distsched.ports import ExecutorContext
from distsched_http.options import validate_http, validate_rpc

MIB = 1024 * 1024


def storable(outcome, executor: str = "http"):
    """The worker's own check of what an executor returns (value and meta storable JSON)."""
    checked = _checked(outcome, executor)
    assert checked is outcome, checked
    return outcome


def rpc_task(task_factory, server, method, **spec):
    return task_factory(server.url("/rpc"), executor="rpc", options={"method": method, **spec.pop("options", {})},
                        **spec)


# -- what a result can hold ------------------------------------------------------------------
async def test_a_response_within_body_limit_is_stored(server, distsched_app):
    """300 KB with body_limit 1 MiB failed: the body was stored twice (value and the meta
    excerpt) and meta holds at most 256 KiB. A 400 KB JSON-RPC error ``data`` failed the same
    way, as a PluginError that was never retried."""
    app = await distsched_app(worker=WorkerConfig(name="bodies"))
    big_json = await app.submit(server.url("/sized?n=300000"), executor="http", options={"body_limit": MIB})
    big_text = await app.submit(server.url("/sized?n=600000&type=text"), executor="http",
                                options={"body_limit": MIB})
    big_result = await app.submit(server.url("/rpc"), 400_000, executor="rpc", options={"method": "big_result"})
    big_data = await app.submit(server.url("/rpc"), 400_000, executor="rpc", options={"method": "big_data"},
                                retry={"max_attempts": 2, "backoff": "fixed", "delay": "10ms"})

    result = await app.result(big_json, timeout=20)
    assert result.outcome == "succeeded", result.error
    assert result.value == {"data": "x" * (300_000 - 12)}
    assert result.meta["body_excerpt"] == '{"data": "' + "x" * (4096 - 10)  # an excerpt, not the body again
    assert result.meta["truncated"] is False

    result = await app.result(big_text, timeout=20)
    assert result.outcome == "succeeded", result.error
    assert result.value == "x" * 600_000

    result = await app.result(big_result, timeout=20)
    assert result.outcome == "succeeded", result.error
    assert result.value == "r" * 400_000

    result = await app.result(big_data, timeout=20)
    assert result.error_type == "RPCError" and result.error == "JSON-RPC error -32000: big", result
    assert result.meta["data_excerpt"] == '"' + "d" * 1023
    assert "data" not in result.meta
    assert result.attempt_id.endswith("#2")  # -32000 is retryable: it was retried


async def test_a_body_whose_json_is_larger_than_a_result_is_cut(server, make_executor, task_factory):
    """1 MiB of control characters is 6 MiB of JSON: within body_limit, it used to fail the
    attempt; it is now cut where a result ends, and marked truncated."""
    outcome = await make_executor().run(task_factory(server.url("/sized?n=1048576&type=text&fill=%01"),
                                                     options={"body_limit": MIB}))
    storable(outcome)
    assert outcome.ok and outcome.meta["truncated"] is True, outcome.meta
    assert set(outcome.value) == {"\x01"}
    assert MAX_RESULT_BYTES - 6 < 6 * len(outcome.value) + 2 <= MAX_RESULT_BYTES
    assert outcome.meta["body_excerpt"] == "\x01" * 4096


@pytest.mark.parametrize("limit", [MIB + 1, 4 * MIB, 16 * MIB])
def test_a_body_limit_larger_than_a_result_is_refused(limit, plugin_manager):
    """A body_limit of 4 MiB was accepted, and a 2 MB body then failed the attempt."""
    for validate, executor, options in ((validate_http, "http", {}), (validate_rpc, "rpc", {"method": "m"})):
        spec = TaskSpec(executor=executor, target="http://127.0.0.1/x", options={**options, "body_limit": limit})
        with pytest.raises(ValidationError) as caught:
            validate(spec)
        assert caught.value.field == "options.body_limit"
        assert f"between 0 and {MIB}, not {limit}" in caught.value.reason
        assert "a result holds at most 1048576 bytes" in caught.value.reason
    with pytest.raises(ValueError, match="http_body_limit must be a number of bytes between 0 and 1048576"):
        plugin_manager.executors.get("http").factory(
            ExecutorContext(functions=FunctionRegistry(), settings={"http_body_limit": limit}))


# -- bodies that are not strict JSON ---------------------------------------------------------
async def test_a_json_body_python_cannot_parse_is_text(server, make_executor, task_factory, caplog):
    """Nested 30000 deep, Python's parser raised RecursionError: a retryable failure with a
    WARNING traceback per attempt. NaN was parsed, and the result could not be stored."""
    caplog.set_level(logging.WARNING)
    executor = make_executor()
    deep = storable(await executor.run(task_factory(server.url("/deep"))))
    assert deep.ok, deep
    assert deep.value == "[" * 30000 + "]" * 30000
    nan = storable(await executor.run(task_factory(server.url("/nan"))))
    assert nan.ok and nan.value == '{"a": NaN}', nan
    assert caplog.records == []


@pytest.mark.parametrize(("method", "why"), [("nested", "the body is not JSON"), ("nan", "the body is not JSON")])
async def test_an_rpc_reply_python_cannot_parse_is_malformed(server, make_executor, task_factory, caplog,
                                                             method, why):
    caplog.set_level(logging.WARNING)
    outcome = storable(await make_executor("rpc").run(rpc_task(task_factory, server, method)), "rpc")
    assert outcome.error_type == "MalformedResponse" and outcome.retryable is False, outcome
    assert outcome.error == f"malformed JSON-RPC response: {why}"
    assert caplog.records == []


# -- bodies that cannot be decoded -----------------------------------------------------------
async def test_a_503_is_retryable_whatever_its_content_encoding(server, make_executor, task_factory):
    """A 503 with ``Content-Encoding: br`` was a MalformedResponse, not retryable, its status
    and Retry-After lost: the decoder refused before the status was looked at."""
    for executor, task in (
        ("http", task_factory(server.url("/unavailable-br"))),
        ("rpc", rpc_task(task_factory, server, "unavailable_br")),
    ):
        outcome = storable(await make_executor(executor).run(task), executor)
        assert outcome.error_type == "HTTPStatus" and outcome.retryable is True, outcome
        assert outcome.error == "HTTP 503 Service Unavailable"
        assert outcome.retry_after == 7
        assert outcome.meta["status"] == 503
        assert "'br' is not supported" in outcome.meta["body_error"]
        assert outcome.meta["body_excerpt"] == ""
