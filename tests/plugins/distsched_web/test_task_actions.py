"""Cancel and retry a task from the REST API and the task page, against a real server (and
a real redis-server): the same rules as the job actions - the bearer token for the API,
a login and the CSRF token for a page, 403 ``read_only`` without a token - and the task
shown masked as the task page shows it."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import httpx
import pytest

from .conftest import TOKEN
from .test_api import AUTH, JOBS, error_of, wait_for
from .test_pages import csrf_of, login

SECRET = "hunter2-do-not-show"


def slow_function() -> tuple[Any, threading.Event]:
    """A function that sleeps until it is stopped, and the event it sets when it is."""
    stopped = threading.Event()

    async def slow(seconds: float, **options: Any) -> float:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return seconds

    return slow, stopped


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage(request) -> str:
    if request.param == "memory":
        return "memory://"
    redis_server = request.getfixturevalue("redis_server")
    return redis_server.url_for(namespace=f"taskactions{id(request)}")


def state_of(http: httpx.Client, task_id: str) -> str:
    return http.get(f"/api/v1/tasks/{task_id}").json()["state"]


def test_cancel_a_running_task_and_retry_it_over_the_api(web_server, storage):
    slow, stopped = slow_function()
    server = web_server(storage, token=TOKEN, jobs={"failing": JOBS["failing"]}, functions={"slow": slow})
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        # an id with a slash: the action is the last part of the path
        submitted = http.post("/api/v1/tasks", json={"target": "slow", "args": [30],
                                                     "kwargs": {"password": SECRET}, "task_id": "ops/slow-1"})
        assert submitted.status_code == 201, submitted.text
        wait_for(lambda: state_of(http, "ops/slow-1") == "running", what="the slow task to run")
        worker = http.get("/api/v1/tasks/ops/slow-1").json()["worker_id"]
        # a running task cannot be retried: it has not finished
        early = http.post("/api/v1/tasks/ops/slow-1/retry")
        assert early.status_code == 409, early.text
        assert "is running: only a finished task can be retried" in error_of(early)["reason"]

        cancelled = http.post("/api/v1/tasks/ops/slow-1/cancel")
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["task_id"] == "ops/slow-1" and body["was_running_on"] == worker and worker
        assert body["task"]["state"] == "cancelled" and body["task"]["reason"] == "cancelled through the REST API"
        assert SECRET not in cancelled.text and body["task"]["spec"]["kwargs"]["password"] == "***"
        # its worker stops the running attempt within one heartbeat (0.2 s here)
        wait_for(stopped.is_set, timeout=5, what="the worker to stop the cancelled attempt")
        assert state_of(http, "ops/slow-1") == "cancelled"

        again = http.post("/api/v1/tasks/ops/slow-1/cancel")
        assert again.status_code == 409
        error = error_of(again)
        assert error["code"] == "conflict"
        assert error["reason"] == ("task 'ops/slow-1' already finished (cancelled): only a task that has not "
                                   "finished can be cancelled")

        retried = http.post("/api/v1/tasks/ops/slow-1/retry")
        assert retried.status_code == 201, retried.text
        new = retried.json()
        assert new["task_id"] == "ops/slow-1" and new["retry_task_id"] != "ops/slow-1"
        assert new["task"]["id"] == new["retry_task_id"] and SECRET not in retried.text
        assert new["task"]["spec"]["target"] == "slow" and new["task"]["spec"]["args"] == [30]
        assert state_of(http, "ops/slow-1") == "cancelled"  # the old one stays as it was
        assert http.post(f"/api/v1/tasks/{new['retry_task_id']}/cancel").status_code == 200

        # a job's failed task: retried as a new task of its job, in its history
        failed = http.post("/api/v1/jobs/failing/trigger").json()["task_id"]
        wait_for(lambda: state_of(http, failed) == "failed", what="the job's task to fail")
        again_id = http.post(f"/api/v1/tasks/{failed}/retry").json()["retry_task_id"]
        assert again_id == f"{failed}.retry-1" and failed.startswith("failing@")
        wait_for(lambda: state_of(http, again_id) == "failed", what="the retry to run (and fail)")
        assert again_id in [t["id"] for t in http.get("/api/v1/jobs/failing/history").json()["items"]]

        for action in ("cancel", "retry"):
            missing = http.post(f"/api/v1/tasks/nope/{action}")
            assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
        # GET of an id ending in /cancel is still that task (none here): not the action
        assert http.get("/api/v1/tasks/ops/slow-1/cancel").status_code == 404


def test_task_actions_need_the_token_and_a_writable_dashboard(web_server):
    read_only = web_server(engine=False)
    task_id = read_only.call(lambda app: app.submit("add", 1, 2))
    with httpx.Client(base_url=read_only.url) as http:
        for action in ("cancel", "retry"):
            for headers in ({}, AUTH):
                response = http.post(f"/api/v1/tasks/{task_id}/{action}", headers=headers)
                assert response.status_code == 403 and error_of(response)["code"] == "read_only"
        assert state_of(http, task_id) == "pending"
        assert f'/tasks/{task_id}/cancel"' not in http.get(f"/tasks/{task_id}").text
        # a task whose own id ends in /cancel: its page, not a confirmation page of another
        odd = read_only.call(lambda app: app.submit("add", 1, 2, task_id="odd/cancel"))
        page = http.get(f"/tasks/{odd}")
        assert page.status_code == 200 and "Task odd/cancel" in page.text and "Attempts" in page.text
    writable = web_server(token=TOKEN, engine=False)
    task_id = writable.call(lambda app: app.submit("add", 1, 2))
    with httpx.Client(base_url=writable.url) as http:
        for action in ("cancel", "retry"):
            for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
                response = http.post(f"/api/v1/tasks/{task_id}/{action}", headers=headers)
                assert response.status_code == 401 and error_of(response)["field"] == "Authorization"
        assert state_of(http, task_id) == "pending"


def flash(html: str) -> str:
    match = re.search(r'<p class="flash" id="flash">(.*?)</p>', html, re.S)
    assert match, "the page has a flash line"
    return re.sub(r"<[^>]+>", "", match.group(1))


def test_cancel_and_retry_from_the_task_page(web_server):
    slow, stopped = slow_function()
    server = web_server(token=TOKEN, functions={"slow": slow})
    with httpx.Client(base_url=server.url) as http:
        task_id = http.post("/api/v1/tasks", headers=AUTH,
                            json={"target": "slow", "args": [30], "kwargs": {"api_key": SECRET}}).json()["id"]
        wait_for(lambda: state_of(http, task_id) == "running", what="the slow task to run")
        worker = http.get(f"/api/v1/tasks/{task_id}").json()["worker_id"]
        page = http.get(f"/tasks/{task_id}").text
        assert f'href="/tasks/{task_id}/cancel"' in page and f'/tasks/{task_id}/retry"' not in page
        confirm = http.get(f"/tasks/{task_id}/cancel")
        assert confirm.status_code == 200 and f"Cancel task {task_id}?" in confirm.text
        assert "its worker stops it within one heartbeat" in confirm.text
        assert SECRET not in confirm.text and "***" in confirm.text
        csrf = csrf_of(confirm.text)
        # not logged in: sent to the login page, nothing changes
        refused = http.post(f"/tasks/{task_id}/cancel", data={"csrf": csrf})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
        login(http)
        forged = http.post(f"/tasks/{task_id}/cancel", data={})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert state_of(http, task_id) == "running"
        done = http.post(f"/tasks/{task_id}/cancel", data={"csrf": csrf})
        assert done.status_code == 303 and done.headers["location"].startswith(f"/tasks/{task_id}?")
        after = http.get(done.headers["location"]).text
        assert flash(after) == f"cancelled (it was running on {worker}: its worker stops it within one heartbeat)"
        wait_for(stopped.is_set, timeout=5, what="the worker to stop the cancelled attempt")
        assert state_of(http, task_id) == "cancelled"
        assert f'/tasks/{task_id}/cancel"' not in after and f'href="/tasks/{task_id}/retry"' in after
        # a finished task's cancel page says so and offers no button
        finished = http.get(f"/tasks/{task_id}/cancel")
        assert finished.status_code == 409 and "already finished (cancelled)" in finished.text
        assert 'id="confirm"' not in finished.text

        confirm = http.get(f"/tasks/{task_id}/retry")
        assert confirm.status_code == 200 and f"Retry task {task_id}?" in confirm.text
        assert SECRET not in confirm.text
        retried = http.post(f"/tasks/{task_id}/retry", data={"csrf": csrf_of(confirm.text)})
        assert retried.status_code == 303
        after = http.get(retried.headers["location"]).text
        new_id = re.search(r'<a id="retried" href="/tasks/([^"]+)">', after).group(1)
        assert flash(after) == f"retried as task {new_id}" and new_id != task_id
        assert http.get(f"/api/v1/tasks/{new_id}").json()["spec"]["target"] == "slow"
        assert http.post(f"/api/v1/tasks/{new_id}/cancel", headers=AUTH).status_code == 200
        # the confirm page of an unknown task is a 404
        assert http.get("/tasks/nope/cancel").status_code == 404


def test_the_openapi_document_has_the_task_actions():
    from distsched_web.openapi import openapi_document

    paths = openapi_document()["paths"]
    for action, created in (("cancel", "200"), ("retry", "201")):
        post = paths[f"/api/v1/tasks/{{task_id}}/{action}"]["post"]
        assert post["security"] == [{"bearer": []}] and {created, "401", "403", "404", "409"} <= set(post["responses"])
