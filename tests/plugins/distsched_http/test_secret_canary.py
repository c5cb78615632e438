"""Secret canaries end to end (issue 16.4): a unique secret in the worker's environment,
used in a header, the URL's userinfo and its query string, through a real scheduler and
worker on a real redis-server, against a real HTTP server that echoes what it receives.
The canary (plain, percent-encoded or base64) must appear nowhere: not in the results
(value, meta, error), not in any log record at DEBUG, not in any Redis value, not in the
output of ``distsched status``."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from urllib.parse import quote

from distsched.config import WorkerConfig


def _redis_texts(client) -> list[bytes]:
    """Every key and every value stored on the server, read type by type (DUMP compresses)."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key).decode()
        if kind == "none":  # expired (an op reply cache lives 60 s) or deleted since the SCAN
            continue
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                out += [field, value]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "zset":
            out += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _id, fields in client.xrange(key):
                for field, value in fields.items():
                    out += [field, value]
        else:  # pragma: no cover - the store writes no other types
            raise AssertionError(f"unexpected Redis type {kind} for {key!r}")
    return out


async def test_a_secret_canary_appears_nowhere(server, refused_url, redis_server, distsched_app, distsched_cli,
                                             monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("DISTSCHED_CANARY", canary)
    forms = {canary, quote(canary, safe=""), base64.b64encode(f"user:{canary}".encode()).decode()}
    url = redis_server.url_for(namespace=f"t{uuid.uuid4().hex[:12]}")
    app = await distsched_app(url, worker=WorkerConfig(name="canary", settings={"secrets": ["DISTSCHED_CANARY"]}))

    ref = "${DISTSCHED_CANARY}"
    submitted = {
        "header": (server.url("/echo-headers"), {"headers": {"Authorization": f"Bearer {ref}"}}),
        "userinfo": (server.url("/echo-headers").replace("://", f"://user:{ref}@"), {}),
        "query": (server.url(f"/echo-headers?key={ref}"), {}),
        "failing": (server.url(f"/status/500?key={ref}"), {}),
        "unreachable": (refused_url + f"?key={ref}", {}),
    }
    ids = {name: await app.submit(target, executor="http", options=options, timeout=5.0)
           for name, (target, options) in submitted.items()}
    results = {name: await app.result(task_id, timeout=20) for name, task_id in ids.items()}

    # The server did receive the secret in each form (the test would prove nothing otherwise).
    seen = [r["headers"].get("Authorization", "") + " " + r["target"] for r in server.requests]
    assert any(f"Bearer {canary}" in s for s in seen)
    assert any(s.startswith("Basic ") for s in seen)
    assert any(f"key={canary}" in s for s in seen)
    assert results["header"].ok and results["header"].value["headers"]["Authorization"] == "Bearer ***"
    assert results["userinfo"].value["headers"]["Authorization"] == "Basic ***"
    assert results["failing"].error_type == "HTTPStatus"
    assert results["unreachable"].error_type == "ConnectionError"
    assert "httpx" in caplog.text  # httpx's request line was logged (scrubbed)

    status = await asyncio.to_thread(distsched_cli, "status", "--storage", url)  # the CLI runs its own loop
    assert status.exit_code == 0, status.output
    raw = _redis_texts(redis_server.client(decode_responses=False))
    tasks = [await app.wait(task_id, timeout=5) for task_id in ids.values()]
    for form in forms:
        for name, result in results.items():
            assert form not in repr(result), (name, result)
        assert form not in repr(tasks)
        assert form not in caplog.text
        assert all(form not in record.getMessage() for record in caplog.records)
        assert all(form.encode() not in value for value in raw)
        assert form not in status.output
