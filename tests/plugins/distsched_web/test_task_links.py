"""What the dashboard and /api/v1 say of a task beyond its state, against a real server (and
a real redis-server): a task submitted for later is "scheduled for <time> (in ...)", not a
plain pending one (``not_before`` / ``scheduled_for`` in every task row); a task that waits
says why (the facade's why-waiting, HTML-escaped); a retry and the task it retries link to
each other (``retry_of`` / ``retried_as``), and the page offers a retry for every task the
API retries; an ``at`` long past is accepted with a ``warnings`` line."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .conftest import TOKEN
from .test_api import AUTH, wait_for


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage(request) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_server").url_for(namespace=f"tasklinks{id(request)}")


def state_cell(html: str, task_id: str) -> str:
    """The text of the state cell of ``task_id``'s row on the tasks page."""
    row = re.search(rf'<a href="/tasks/{re.escape(task_id)}">{re.escape(task_id)}</a>.*?</tr>', html, re.S)
    assert row, f"a row for {task_id}"
    cell = re.search(r'<td class="state-[a-z_]+">(.*?)</td>', row.group(0), re.S)
    assert cell
    return re.sub(r"<[^>]+>", "", cell.group(1))


def test_a_task_for_later_is_shown_scheduled(web_server, storage):
    server = web_server(storage, token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        before = time.time()
        later = http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2], "task_id": "later", "delay": "5m"})
        assert later.status_code == 201, later.text
        body = later.json()
        assert body["warnings"] == [] and body["scheduled_for"] == body["not_before"] >= before + 300
        assert body["scheduled_for_iso"] == body["not_before_iso"] and re.fullmatch(r"5m00s|4m5\ds", body["scheduled_in"])
        now = http.post("/api/v1/tasks", json={"target": "add", "args": [1, 1], "task_id": "now"}).json()
        assert now["scheduled_for"] is None and now["scheduled_in"] is None and now["warnings"] == []
        wait_for(lambda: http.get("/api/v1/tasks/now").json()["state"] == "succeeded", what="the task due now")

        rows = {r["id"]: r for r in http.get("/api/v1/tasks").json()["items"]}
        assert rows["later"]["state"] == "pending" and rows["later"]["scheduled_for"] == body["not_before"]
        assert rows["later"]["not_before"] == body["not_before"] and rows["now"]["scheduled_for"] is None
        listing = http.get("/tasks").text
        cell = state_cell(listing, "later")
        assert re.fullmatch(rf"pending \(scheduled for {re.escape(body['not_before_iso'])}, in (5m00|4m5\d)s\)",
                            cell), cell
        assert state_cell(listing, "now") == "succeeded"
        page = http.get("/tasks/later").text
        assert re.search(rf'<p id="task-due">scheduled for {re.escape(body["not_before_iso"])} \(in (5m00|4m5\d)s\)',
                         page), page
        assert 'id="task-due"' not in http.get("/tasks/now").text


def test_the_task_page_says_why_a_task_waits_escaped(web_server, storage):
    # unroutable_wait: a task no worker may run waits for one (with 0, it goes to any, which fails it)
    server = web_server(storage, token=TOKEN, config={"unroutable_wait": 600})
    target = "<b>nobody_offers</b>"
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        task = http.post("/api/v1/tasks", json={"target": target, "task_id": "stuck"}).json()
        said = f"none of the 1 live worker(s) offers function '{target}'"
        # (until its worker registered: "no live worker is registered")
        wait_for(lambda: said in (http.get("/api/v1/tasks/stuck").json()["waiting"] or ""),
                 what="the why-waiting of a task no worker offers")
        assert task["state"] == "pending"
        page = http.get("/tasks/stuck").text
        shown = re.search(r'<p class="warn" id="task-waiting">why it waits: (.*?)</p>', page, re.S)
        assert shown and "&#39;&lt;b&gt;nobody_offers&lt;/b&gt;&#39;" in shown.group(1), page
        assert target not in page  # nowhere raw (the spec is escaped too)
        # a task that does not wait says nothing
        done = http.post("/api/v1/tasks", json={"target": "add", "args": [2, 2], "task_id": "done"}).json()
        assert done["id"] == "done"
        wait_for(lambda: http.get("/api/v1/tasks/done").json()["state"] == "succeeded", what="add")
        assert http.get("/api/v1/tasks/done").json()["waiting"] is None
        assert 'id="task-waiting"' not in http.get("/tasks/done").text


def test_a_retry_and_the_task_it_retries_link_to_each_other(web_server, storage):
    server = web_server(storage, token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        http.post("/api/v1/tasks", json={"target": "boom", "task_id": "ops/boom"})
        wait_for(lambda: http.get("/api/v1/tasks/ops/boom").json()["state"] == "failed", what="boom to fail")
        retried = http.post("/api/v1/tasks/ops/boom/retry")
        assert retried.status_code == 201, retried.text
        body = retried.json()
        assert body["retry_task_id"] == "ops/boom.retry-1" and body["task"]["retry_of"] == "ops/boom"
        assert body["task"]["spec"]["retry_of"] == "ops/boom" and body["task"]["retried_as"] == []
        old = http.get("/api/v1/tasks/ops/boom").json()
        assert old["retried_as"] == ["ops/boom.retry-1"] and old["retry_of"] is None

        page = http.get("/tasks/ops/boom").text
        assert ('<p id="task-retried-as">retried as <a href="/tasks/ops%2Fboom.retry-1">ops/boom.retry-1</a></p>'
                in page), page
        new_page = http.get("/tasks/ops/boom.retry-1").text
        assert '<p id="task-retry-of">retry of <a href="/tasks/ops%2Fboom">ops/boom</a></p>' in new_page, new_page

        # the page offers a retry for every task the API retries: a succeeded one too
        http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2], "task_id": "fine"})
        wait_for(lambda: http.get("/api/v1/tasks/fine").json()["state"] == "succeeded", what="add")
        assert 'href="/tasks/fine/retry"' in http.get("/tasks/fine").text
        assert http.get("/tasks/fine/retry").status_code == 200
        assert http.post("/api/v1/tasks/fine/retry").json()["retry_task_id"] == "fine.retry-1"


def test_an_at_long_past_is_accepted_with_a_warning(web_server):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        response = http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2], "task_id": "epoch", "at": 0})
        assert response.status_code == 201, response.text
        (said,) = response.json()["warnings"]
        assert said.startswith("at: 1970-01-01T00:00:00Z is ") and "in the past: the task is due at once" in said
        wait_for(lambda: http.get("/api/v1/tasks/epoch").json()["state"] == "succeeded", what="it to run at once")
        recent = http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2], "at": time.time() - 5})
        assert recent.status_code == 201 and recent.json()["warnings"] == []


def test_openapi_documents_the_new_fields():
    from distsched_web.openapi import openapi_document

    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    row = schemas["TaskRow"]
    assert {"not_before", "not_before_iso", "scheduled_for", "scheduled_for_iso", "scheduled_in"} <= set(row["required"])
    task = schemas["Task"]["allOf"][1]
    assert {"waiting", "retry_of", "retried_as"} <= set(task["required"])
    submitted = doc["paths"]["/api/v1/tasks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert submitted["allOf"][0] == {"$ref": "#/components/schemas/Task"}
    assert submitted["allOf"][1]["properties"]["warnings"]["items"] == {"type": "string"}
