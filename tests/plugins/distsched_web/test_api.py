"""The REST API against a real server: reads, changes with the token, errors as JSON."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from distsched import hookimpl

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOBS = {"every2": {"every": "2s", "target": "add", "args": [1, 2]},
        "failing": {"every": "1h", "target": "boom", "retry": {"max_attempts": 2, "delay": "0.1s"}}}


def wait_for(check: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in response.text
    return body["error"]


def test_read_only_without_token(web_server):
    server = web_server(jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        overview = http.get("/api/v1/overview").json()
        assert overview["leader"]["node_id"] == server.app.config.node_id
        assert len(overview["workers"]) == 1
        assert {j["name"] for j in http.get("/api/v1/jobs").json()["items"]} == {"every2", "failing"}
        for call in (lambda: http.post("/api/v1/jobs/every2/pause"),
                     lambda: http.post("/api/v1/jobs/every2/pause", headers=AUTH),
                     lambda: http.delete("/api/v1/jobs/every2", headers=AUTH),
                     lambda: http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2]}, headers=AUTH)):
            response = call()
            assert response.status_code == 403
            assert error_of(response)["code"] == "read_only"
        assert http.get("/api/v1/jobs/every2").json()["paused"] is False


def test_mutating_calls_need_the_bearer_token(web_server):
    server = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
            response = http.post("/api/v1/jobs/every2/pause", headers=headers)
            assert response.status_code == 401
            assert error_of(response)["field"] == "Authorization"
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/api/v1/jobs/every2").json()["paused"] is False
        assert http.post("/api/v1/jobs/every2/pause", headers=AUTH).json() == {"job": "every2", "paused": True}
        assert http.get("/api/v1/jobs/every2").json()["paused"] is True
        assert http.post("/api/v1/jobs/every2/resume", headers=AUTH).status_code == 200
        assert http.get("/api/v1/jobs/every2").json()["paused"] is False
        assert TOKEN not in http.get("/api/v1/overview").text


def test_jobs_create_update_remove(web_server):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        created = http.post("/api/v1/jobs", json={"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Paris",
                                                  "target": "add", "args": [1, 2], "timeout": "10m",
                                                  "retry": {"max_attempts": 3, "delay": "30s"}})
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["trigger"] == "at 02:30 (cron '30 2 * * *', Europe/Paris)" and job["version"] == 1
        assert len(job["upcoming"]) == 10 and job["upcoming"][0]["local"].endswith(("+01:00", "+02:00"))
        assert job["spec"]["timeout"] == 600 and job["spec"]["retry"]["max_attempts"] == 3
        again = http.post("/api/v1/jobs", json={"name": "nightly", "every": "1m", "target": "add"})
        assert again.status_code == 409
        updated = http.put("/api/v1/jobs/nightly", json={"every": "1m", "target": "add"})
        assert updated.status_code == 200 and updated.json()["version"] == 2
        assert updated.json()["trigger"] == "every 1m"
        assert http.put("/api/v1/jobs/fresh", json={"every": "5s", "target": "add"}).status_code == 201
        assert http.delete("/api/v1/jobs/nightly").json() == {"removed": "nightly"}
        assert http.get("/api/v1/jobs/nightly").status_code == 404
        assert http.delete("/api/v1/jobs/nightly").status_code == 404
        assert [j["name"] for j in http.get("/api/v1/jobs").json()["items"]] == ["fresh"]


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"name": "x", "every": "soon", "target": "add"}, "every", 400),
    ({"name": "x", "cron": "61 * * * *", "target": "add"}, "cron", 400),
    ({"name": "x", "target": "add"}, "cron/every/at", 400),
    ({"name": "x", "every": "1s", "target": "add", "colour": "red"}, "colour", 400),
    ({"name": "x", "every": "1s", "target": "add", "retry": {"max_attempts": 0}}, "retry.max_attempts", 400),
    ({"name": "x", "every": "1s", "target": "add", "timeout": [1]}, "timeout", 400),
    ({"every": "1s", "target": "add"}, "name", 400),
    ({"name": "x", "every": "1s", "executor": "teleport"}, None, 400),
])
def test_bad_jobs_are_refused_naming_the_field(web_server, body, field, status):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        response = http.post("/api/v1/jobs", json=body)
        assert response.status_code == status, response.text
        error = error_of(response)
        assert error["field"] == field and error["reason"]
        assert http.get("/api/v1/jobs").json()["items"] == []  # nothing half-written


def test_bad_bodies_and_parameters(web_server):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        for content, field in ((b"{not json", "body"), (b"[1, 2]", "body"), (b"", "body")):
            response = http.post("/api/v1/jobs", content=content, headers={"content-type": "application/json"})
            assert response.status_code == 400 and error_of(response)["field"] == field
        big = http.post("/api/v1/tasks", content=b"[" + b"1," * 600_000 + b"1]")
        assert big.status_code == 413 and error_of(big)["code"] == "too_large"
        for query, field in (("state=lost", "state"), ("limit=0", "limit"), ("limit=x", "limit"),
                             ("cursor=not-a-cursor", "cursor"), ("cursor=", "cursor")):
            response = http.get(f"/api/v1/tasks?{query}")
            assert response.status_code == 400 and error_of(response)["field"] == field
        missing = http.get("/api/v1/no/such/thing")
        assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
        assert http.get("/api/v1/tasks/nope").status_code == 404
        submit = http.post("/api/v1/tasks", json={"args": [1]})
        assert submit.status_code == 400 and error_of(submit)["field"] == "target"


def test_submit_and_read_tasks(web_server):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        ok = http.post("/api/v1/tasks", json={"target": "add", "args": [2, 3], "task_id": "sum-1"})
        assert ok.status_code == 201 and ok.json()["id"] == "sum-1"
        bad = http.post("/api/v1/tasks", json={"target": "boom", "retry": {"max_attempts": 2, "delay": 0.05}})
        bad_id = bad.json()["id"]
        done = wait_for(lambda: (t := http.get("/api/v1/tasks/sum-1").json())["state"] == "succeeded" and t,
                        what="sum-1 to succeed")
        assert done["attempts"][0]["value"] == 5 and done["attempts"][0]["outcome"] == "succeeded"
        failed = wait_for(lambda: (t := http.get(f"/api/v1/tasks/{bad_id}").json())["state"] == "failed" and t,
                          what="boom to fail")
        assert failed["attempt"] == 2 and [a["attempt"] for a in failed["attempts"]] == [1, 2]
        assert all("boom: the upstream said no" in a["error"] for a in failed["attempts"])
        assert failed["attempts"][0]["retry_at"] is not None and failed["attempts"][1]["retry_at"] is None
        assert failed["retry"]["schedule"] == [{"after_attempt": 1, "delay": 0.05}]
        only_failed = http.get("/api/v1/tasks?state=failed").json()["items"]
        assert [t["id"] for t in only_failed] == [bad_id]
        page1 = http.get("/api/v1/tasks?limit=1").json()
        page2 = http.get("/api/v1/tasks", params={"limit": 1, "cursor": page1["next_cursor"]}).json()
        assert page1["next_cursor"] and page2["next_cursor"] is None
        assert [page1["items"][0]["id"], page2["items"][0]["id"]] == [bad_id, "sum-1"]  # newest first


def test_trigger_shows_in_the_job_history_newest_first(web_server):
    server = web_server(token=TOKEN, jobs={"failing": JOBS["failing"]})
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        first = http.post("/api/v1/jobs/failing/trigger").json()["task_id"]
        wait_for(lambda: http.get(f"/api/v1/tasks/{first}").json()["state"] == "failed", what="first run")
        second = http.post("/api/v1/jobs/failing/trigger").json()["task_id"]
        wait_for(lambda: http.get(f"/api/v1/tasks/{second}").json()["state"] == "failed", what="second run")
        history = http.get("/api/v1/jobs/failing/history").json()
        assert [t["id"] for t in history["items"]] == [second, first]
        assert all(t["error"] and "upstream said no" in t["error"] for t in history["items"])
        job = http.get("/api/v1/jobs").json()["items"][0]
        assert job["last_state"] == "failed" and job["last_task"] == second
        failures = http.get("/api/v1/overview").json()["failures"]
        assert [t["id"] for t in failures] == [second, first], "the overview: newest failure first"
        assert http.get("/api/v1/jobs/nope/history").status_code == 404


def test_a_slots_history_row_shows_when_its_attempt_ran(web_server):
    """A slot is dispatched ahead (fire_ahead) and its worker takes it before its time, then
    holds it: the row's start and duration are the attempt's own, not when the worker took
    it (before the slot) or when the leader recorded the outcome."""
    server = web_server(jobs={"every2": JOBS["every2"]})
    with httpx.Client(base_url=server.url) as http:

        def ran_ahead() -> tuple[dict[str, Any], dict[str, Any]] | None:
            # a slot that succeeded and was dispatched ahead, as the test means (a leader
            # slowed down by a loaded machine may dispatch one late)
            for row in http.get("/api/v1/jobs/every2/history").json()["items"]:
                if row["state"] == "succeeded":
                    detail = http.get(f"/api/v1/tasks/{row['id']}").json()
                    if detail["dispatched_at"] < row["slot"]:
                        return row, detail
            return None

        row, detail = wait_for(ran_ahead, timeout=30, what="a slot of every2 dispatched ahead to succeed")
        attempt = detail["attempts"][-1]
        assert row["started_at"] >= row["slot"], row
        assert (row["started_at"], row["finished_at"]) == (attempt["started_at"], attempt["finished_at"])
        assert row["duration"] == round(attempt["finished_at"] - attempt["started_at"], 6)


def test_secrets_stay_out_of_pages_and_api(web_server):
    server = web_server(token=TOKEN, jobs={
        "call": {"every": "1h", "executor": "http", "target": "https://user:hunter2@example.invalid/hook",
                 "options": {"headers": {"Authorization": "Bearer s3cr3t-value"},
                             "json": {"password": "pw-s3cr3t"}}}})  # (an unknown option is refused at add)
    with httpx.Client(base_url=server.url) as http:
        for path in ("/api/v1/jobs", "/api/v1/jobs/call", "/jobs", "/jobs/call", "/", "/api/v1/overview"):
            text = http.get(path).text
            assert "hunter2" not in text and "s3cr3t" not in text and TOKEN not in text, path
        assert "user:***@example.invalid" in http.get("/api/v1/jobs/call").text


class ExtraRoutes:
    """A third-party plugin adding a page and an API route to the dashboard."""

    @hookimpl
    def distsched_web_routes(self, app):
        from starlette.responses import HTMLResponse, JSONResponse
        from starlette.routing import Route

        async def count(request):
            store = await app.storage()
            return JSONResponse({"jobs": len((await store.jobs.page(None, 100)).jobs)})

        async def page(request):
            return HTMLResponse("<h1>Extra page</h1>")

        return [Route("/api/v1/x/count", count), Route("/extra", page, name="Extra")]


def test_a_plugin_adds_a_page_and_an_api_route(web_server):
    server = web_server(jobs=JOBS, plugins=(("extra-routes", ExtraRoutes()),))
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/api/v1/x/count").json() == {"jobs": 2}
        assert http.get("/extra").text == "<h1>Extra page</h1>"
        assert '<a href="/extra">Extra</a>' in http.get("/").text


def test_a_plugins_routes_follow_the_read_rule_on_a_non_loopback_bind(web_server, monkeypatch):
    """On a non-loopback bind a plugin's page wants a login and its API route the bearer
    token, as the dashboard's own do: they answered anyone (the job count here)."""
    from distsched_web import auth

    monkeypatch.setattr(auth, "is_loopback", lambda host: False)
    server = web_server(token=TOKEN, jobs=JOBS, plugins=(("extra-routes", ExtraRoutes()),))
    with httpx.Client(base_url=server.url) as http:
        refused = http.get("/api/v1/x/count")
        assert refused.status_code == 401 and "jobs" not in refused.json(), refused.text
        page = http.get("/extra")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fextra"
        assert http.get("/api/v1/x/count", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"jobs": 2}
        from .test_pages import login

        login(http)
        assert http.get("/extra").text == "<h1>Extra page</h1>"


@pytest.mark.redis
def test_quarantine_lists_every_record_moved_aside(web_server, redis_server):
    """``GET /api/v1/quarantine``: every record the store moved aside (the overview shows the
    newest five), newest first, as ``distsched quarantine list`` does; a bad limit is a 400."""
    import uuid

    ns = f"quar{uuid.uuid4().hex[:8]}"
    server = web_server(storage=redis_server.url_for(namespace=ns), jobs=JOBS)
    raw = redis_server.client()
    try:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/api/v1/quarantine").json() == {"items": [], "limit": 100}
            for i in range(7):
                server.call(lambda app, i=i: app.add_job(f"bad{i}", every="1h", target="add"))
                raw.hset("{" + ns + "}:jobs", f"bad{i}", "{not json")
            http.get("/api/v1/jobs?limit=200")  # the read that meets them moves them aside
            items = wait_for(lambda: (got := http.get("/api/v1/quarantine").json()["items"]) and len(got) == 7
                             and got, what="seven jobs moved aside")
            assert sorted(i["key"] for i in items) == [f"bad{i}" for i in range(7)]
            assert all(i["kind"] == "job" and i["reason"] and i["at_iso"] for i in items)
            assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True), "newest first"
            assert len(http.get("/api/v1/overview").json()["quarantine"]) == 5
            assert len(http.get("/api/v1/quarantine?limit=2").json()["items"]) == 2
            bad = http.get("/api/v1/quarantine?limit=0")
            assert bad.status_code == 400 and error_of(bad)["field"] == "limit"
    finally:
        raw.close()


@pytest.mark.redis
def test_a_quarantine_reason_hides_the_passwords_of_urls(web_server, redis_server):
    """A stored job whose field holds a storage URL is moved aside with a reason quoting the
    value: /api/v1/quarantine and the overview showed its password, as task errors do not."""
    import json
    import uuid

    ns = f"qurl{uuid.uuid4().hex[:8]}"
    server = web_server(storage=redis_server.url_for(namespace=ns))
    raw = redis_server.client()
    secret = "Pw-" + uuid.uuid4().hex
    try:
        with httpx.Client(base_url=server.url) as http:
            server.call(lambda app: app.add_job("leaky", every="1h", target="add"))
            key = "{" + ns + "}:jobs"
            config = json.loads(raw.hget(key, "leaky"))
            config["spec"]["timeout"] = f"redis://admin:{secret}@db.internal:6379/0"
            raw.hset(key, "leaky", json.dumps(config))
            http.get("/api/v1/jobs")  # the read that meets it moves it aside
            items = wait_for(lambda: http.get("/api/v1/quarantine").json()["items"], what="the job moved aside")
            assert [i["key"] for i in items] == ["leaky"]
            assert "timeout" in items[0]["reason"] and "redis://admin:***@db.internal" in items[0]["reason"]
            for path in ("/api/v1/quarantine", "/api/v1/overview", "/"):
                text = http.get(path).text
                assert secret not in text and "admin:***@db.internal" in text, path
    finally:
        raw.close()


def _nested(depth: int) -> str:
    """``depth`` levels of arrays, as a JSON text."""
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [101, 5_000])
def test_a_body_nested_too_deep_is_a_400_naming_the_body(web_server, caplog, depth):
    """A body nested about 1,000 levels deep or more was a 500 and a logged traceback
    (RecursionError in json.loads); 100 levels is the limit, the same whatever the stack."""
    server = web_server(token=TOKEN)
    args = _nested(depth - 1)  # the body's object is the first level
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        for method, path, body in (
                ("PUT", "/api/v1/jobs/deep", f'{{"every": "1h", "target": "add", "args": {args}}}'),
                ("POST", "/api/v1/jobs", f'{{"name": "deep", "every": "1h", "target": "add", "args": {args}}}'),
                ("POST", "/api/v1/tasks", f'{{"target": "add", "args": {args}}}')):
            response = http.request(method, path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, (path, response.text)
            error = error_of(response)
            assert error == {"code": "invalid", "field": "body",
                             "reason": "nested deeper than 100 levels of arrays and objects"}, path
        assert http.get("/api/v1/jobs").json()["items"] == [] and http.get("/api/v1/tasks").json()["items"] == []
        # 100 levels are taken
        ok = http.post("/api/v1/tasks", content=f'{{"target": "add", "args": {_nested(99)}}}')
        assert ok.status_code == 201, ok.text
    assert "unexpected error" not in caplog.text and "RecursionError" not in caplog.text


def test_workers_say_their_executors_and_functions(web_server):
    """Each worker object of /api/v1/workers and /api/v1/overview carries what the worker
    advertised - its executors and the functions its local executor runs, the whole lists -
    by which the leader routes its tasks. A record of an earlier version says neither: []."""
    from distsched.testing import make_worker

    server = web_server(jobs=JOBS)
    many = [f"report_{i:03d}" for i in range(120)]

    async def register(app: Any) -> None:
        storage = await app.storage()
        await storage.workers.register(make_worker("older", now=storage.clock()))
        await storage.workers.register(make_worker("busy", now=storage.clock(), executors=("cmd", "local"),
                                                   functions=tuple(many)))

    with httpx.Client(base_url=server.url) as http:
        own = wait_for(lambda: http.get("/api/v1/workers").json()["items"], what="the worker")[0]["id"]
        server.call(register)
        workers = {w["id"]: w for w in http.get("/api/v1/workers").json()["items"]}
        overview = {w["id"]: w for w in http.get("/api/v1/overview").json()["workers"]}
    for listed in (workers, overview):
        assert {name: (w["executors"], w["functions"]) for name, w in listed.items()} == {
            own: (list(server.app.engine.plugins.executors.names()), ["add", "boom"]),
            "older": ([], []), "busy": (["cmd", "local"], many)}
    # the OpenAPI document says so, for both (test_openapi checks the responses against it)
    from distsched_web.openapi import openapi_document

    document = openapi_document()
    schemas = document["components"]["schemas"]
    overview_workers = schemas["Overview"]["properties"]["workers"]["items"]
    for schema in (schemas["Worker"], schemas[overview_workers["$ref"].rsplit("/", 1)[1]]):
        assert {"executors", "functions"} <= set(schema["required"])
        assert schema["properties"]["executors"]["items"] == {"type": "string"}
