"""`POST /api/v1/tasks` with `delay` / `at`: a one-off task for later, stored at once (pending,
its `not_before` the time it is due; the task page says it), run when due, refused naming the
field when the time is bad - and the OpenAPI document says so."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest

from .conftest import TOKEN
from .test_api import AUTH, error_of, wait_for


def test_a_task_for_later_is_pending_until_its_time_then_runs(web_server):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        later = http.post("/api/v1/tasks", json={"target": "add", "args": [2, 3], "task_id": "later", "delay": "1h"})
        assert later.status_code == 201, later.text
        task = later.json()
        assert task["state"] == "pending" and task["not_before"] == task["created_at"] + 3600
        page = http.get("/tasks/later")
        assert page.status_code == 200 and 'id="task-due"' in page.text and task["not_before_iso"] in page.text
        assert http.post("/api/v1/tasks", json={"target": "add", "task_id": "now", "args": [1, 1]}).status_code == 201
        wait_for(lambda: http.get("/api/v1/tasks/now").json()["state"] == "succeeded", what="the task due now")
        assert 'id="task-due"' not in http.get("/tasks/now").text
        assert http.get("/api/v1/tasks/later").json()["state"] == "pending"

        at = time.time() + 1.0
        soon = http.post("/api/v1/tasks", json={"target": "add", "args": [4, 5], "task_id": "soon",
                                                "at": datetime.fromtimestamp(at, timezone.utc).isoformat()})
        assert soon.status_code == 201 and soon.json()["not_before"] == pytest.approx(at, abs=1e-3)
        done = wait_for(lambda: (t := http.get("/api/v1/tasks/soon").json())["state"] == "succeeded" and t,
                        what="the task due in 1 s")
        assert done["attempts"][0]["value"] == 9 and done["attempts"][0]["started_at"] >= done["not_before"]


@pytest.mark.parametrize("extra, field, words", [
    ({"delay": -1}, "delay", "0 or more"),
    ({"delay": "soon"}, "delay", "duration"),
    ({"delay": True}, "delay", "duration"),
    ({"delay": [5]}, "delay", "duration"),
    ({"delay": "400d"}, "delay", "366 days"),
    ({"at": "2030-01-01T09:00:00"}, "at", "no time zone"),
    ({"at": "someday"}, "at", "ISO-8601"),
    ({"at": {"when": 1}}, "at", "ISO-8601"),
    ({"at": 1_700_000_000_000}, "at", "366 days"),
    ({"delay": 5, "at": "2030-01-01T00:00:00Z"}, "at", "not both"),
])
def test_a_bad_time_is_refused_naming_the_field(web_server, extra, field, words):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        response = http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2], "task_id": "bad", **extra})
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["field"] == field and words in error["reason"], error
        assert http.get("/api/v1/tasks/bad").status_code == 404


def test_openapi_documents_delay_and_at(web_server):
    server = web_server()
    with httpx.Client(base_url=server.url) as http:
        doc = http.get("/api/v1/openapi.json").json()
    body = doc["paths"]["/api/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"delay", "at"} <= set(body["properties"])
    assert "366 days" in body["properties"]["delay"]["description"]
