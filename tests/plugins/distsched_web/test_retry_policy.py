"""The dashboard and the REST API show a job's and a task's retry policy with its new fields
(intervals, retry_on, dont_retry_on), and take them in a submission; a bad one is a 400
naming the field."""

from __future__ import annotations

import httpx

from .conftest import TOKEN
from .test_api import AUTH, error_of, wait_for

RETRY = {"max_attempts": 3, "intervals": ["0.1s", 0.2], "retry_on": ["RuntimeError"], "dont_retry_on": ["KeyError"]}
WORDS = "3 attempts, waits 0.1s, 0.2s (the last repeats); retried only on RuntimeError; never on KeyError"


def test_the_job_and_task_pages_show_the_policy_and_the_api_takes_it(web_server):
    server = web_server(jobs={"hourly": {"every": "1h", "target": "boom", "retry": RETRY}}, token=None)
    with httpx.Client(base_url=server.url) as http:
        job = http.get("/api/v1/jobs/hourly").json()
        assert job["retry_words"] == WORDS
        assert job["spec"]["retry"]["intervals"] == [0.1, 0.2] and job["spec"]["retry"]["retry_on"] == ["RuntimeError"]
        assert f"retry: {WORDS}" in http.get("/jobs/hourly").text

        task_id = server.call(lambda app: app.submit("boom", retry=RETRY))
        wait_for(lambda: http.get(f"/api/v1/tasks/{task_id}").json()["state"] == "failed", what="the task")
        task = http.get(f"/api/v1/tasks/{task_id}").json()
        assert task["attempt"] == 3 and task["retry"]["words"] == WORDS
        assert [r["delay"] for r in task["retry"]["schedule"]] == [0.1, 0.2]
        assert WORDS in http.get(f"/tasks/{task_id}").text


def test_a_submission_with_a_bad_policy_is_refused_naming_the_field(web_server):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        bad = http.post("/api/v1/tasks", json={"target": "add", "args": [1, 2],
                                               "retry": {"max_attempts": 3, "intervals": [1], "delay": 2}})
        assert bad.status_code == 400, bad.text
        error = error_of(bad)
        assert error["field"] == "retry.intervals" and "cannot be combined with retry.delay" in error["reason"], error
