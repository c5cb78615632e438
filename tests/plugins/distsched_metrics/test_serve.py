"""`/metrics` beside an in-process engine (memory://), scraped over real HTTP."""

from __future__ import annotations

import asyncio
import re
import socket
import uuid

import httpx
import pytest

from distsched import DistributeSchedule
from distsched.model import TaskState
from distsched.plugin.errors import PluginError
from distsched.testing.redis_server import RedisServer, free_port, redis_server_binary


def _app(address: str | None) -> DistributeSchedule:
    app = DistributeSchedule(f"memory://metrics-{uuid.uuid4().hex}", serve={"metrics": address} if address else {})

    @app.task
    def ok():
        return 1

    @app.task
    def boom():
        raise RuntimeError("no")

    return app


async def _poll(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate}")
        await asyncio.sleep(0.05)


async def test_counters_move_as_tasks_run_fail_and_retry(scrape):
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    app = _app(f"127.0.0.1:{port}")
    async with app.running():
        server = app.engine.servers["metrics"]
        assert server.url == url
        before = await asyncio.to_thread(scrape, url)
        assert before.total("distsched_tasks_finished_total") == 0
        await app.add_job("tick", every="0.2s", target="ok")
        failing = await app.submit("boom", retry={"max_attempts": 2, "delay": 0.01, "backoff": "fixed"})
        await app.wait(failing, timeout=10)
        s = await _poll(lambda: (s := scrape(url)).get_value("distsched_tasks_finished_total", job="tick",
                                                              outcome="succeeded") >= 2 and s)
        assert s.get_value("distsched_tasks_finished_total", job="_none", outcome="failed") == 1
        assert s.get_value("distsched_retries_total", job="_none", outcome="failed") == 1
        assert s.get_value("distsched_attempts_total", job="_none", outcome="failed") == 2
        assert s.get_value("distsched_attempts_total", job="tick", outcome="succeeded") >= 2
        assert s.get_value("distsched_fire_lag_seconds_count") >= 2
        assert s.get_value("distsched_run_duration_seconds_count", job="tick") >= 2
        assert s.get_value("distsched_leader") == 1 and s.get_value("distsched_leader_term") >= 1
        assert s.get_value("distsched_workers_alive") == 1
        assert s.total("distsched_worker_queue_depth") >= 0
        assert s.get_value("distsched_tasks_dispatched_total") >= 4
        assert s.get_value("process_cpu_seconds_total") > 0
    # stopped: the port is closed and the observer is gone
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2.0)
    assert not app.engine.events.active


async def test_a_port_in_use_is_an_error_naming_the_plugin():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = _app(f"127.0.0.1:{port}")
        with pytest.raises(PluginError, match=r"plugin 'metrics'.*could not serve metrics on 127\.0\.0\.1:\d+: OSError"):
            await app.start()
        await app.stop()
    assert not app.engine.events.active


def test_port_zero_picks_a_free_port(scrape):
    async def main():
        app = _app("127.0.0.1:0")
        async with app.running():
            server = app.engine.servers["metrics"]
            assert server.port > 0
            return await asyncio.to_thread(scrape, server.url)

    samples = asyncio.run(main())
    assert ("distsched_leader", frozenset()) in samples


async def asgi_get(asgi) -> tuple[int, str]:
    """One GET /metrics through an ASGI app, called as an ASGI server calls it."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await asgi({"type": "http", "method": "GET", "path": "/metrics", "query_string": b"", "headers": []},
               receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    return sent[0]["status"], body


async def test_the_asgi_app_the_web_server_mounts():
    from distsched_metrics import asgi_app, observer_for

    app = _app(None)  # no --metrics
    async with app.running():
        assert not app.engine.servers
        asgi = asgi_app(app.engine)  # registers the observer on first use
        only_engine = asgi_app(app.engine, store=False)
        assert observer_for(app.engine) is observer_for(app.engine)
        task_id = await app.submit("ok")
        await app.result(task_id, timeout=5)
        deadline = asyncio.get_running_loop().time() + 10
        want = 'distsched_tasks_finished_total{job="_none",outcome="succeeded"} 1.0'
        while True:
            status, body = await asgi_get(asgi)
            assert status == 200
            if want in body:
                break
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.05)
        # the store's own figures, read at the scrape
        assert "distsched_store_up 1.0" in body
        assert 'distsched_store_tasks{state="succeeded"} 1.0' in body
        # all 9 states, 0 where none (the store's counts leave those out; the series were missing)
        states = re.findall(r'^distsched_store_tasks\{state="(\w+)"\} (\S+)$', body, re.M)
        assert [s for s, _ in states] == [s.value for s in TaskState]
        assert dict(states)["pending"] == dict(states)["running"] == dict(states)["skipped"] == "0.0"
        assert "distsched_store_workers_alive 1.0" in body
        assert "distsched_store_leader_term 1.0" in body
        assert body.count("distsched_store_worker_queue_depth{worker=") == 1
        status, body = await asgi_get(only_engine)
        assert status == 200 and want in body and "distsched_store" not in body


@pytest.mark.redis
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")
async def test_a_store_that_does_not_answer_is_a_gauge_not_an_error():
    from distsched_metrics import asgi_app

    with RedisServer() as redis:
        app = DistributeSchedule(redis.url)
        try:
            asgi = asgi_app(app.engine)
            status, body = await asgi_get(asgi)
            assert status == 200 and "distsched_store_up 1.0" in body
            assert "distsched_store_workers_alive 0.0" in body
            redis.kill()
            status, body = await asyncio.wait_for(asgi_get(asgi), 60)
            assert status == 200 and "distsched_store_up 0.0" in body
            assert "distsched_store_tasks" not in body
            assert "distsched_fire_lag_seconds_count 0.0" in body  # the engine's metrics still answer
        finally:
            await app.engine.close()


async def test_the_job_label_limit_comes_from_the_environment(monkeypatch):
    from distsched_metrics import observer_for

    monkeypatch.setenv("DISTSCHED_METRICS_MAX_JOBS", "1")
    app = _app("127.0.0.1:0")
    async with app.running():
        observer = observer_for(app.engine)
        assert observer.max_jobs == 1
        assert observer.job("a") == "a" and observer.job("b") == "_other"
    monkeypatch.setenv("DISTSCHED_METRICS_MAX_JOBS", "many")
    app = _app("127.0.0.1:0")
    with pytest.raises(PluginError, match="DISTSCHED_METRICS_MAX_JOBS.*must be an integer >= 0, not 'many'"):
        await app.start()
    await app.stop()
    assert not app.engine.events.active and not app.engine.servers
