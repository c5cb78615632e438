"""What a task logged, on the dashboard: ``/api/v1/tasks/{id}`` has it (``log``: the last
attempt's id and text, secrets masked; null when nothing was captured) and the task page
shows it in a ``<pre>`` block as text - a logged ``<script>`` is escaped, in the HTML and in
a real Chromium."""

from __future__ import annotations

import logging
import os

import httpx
import pytest

from .test_api import wait_for

log = logging.getLogger("tasks.web_log_test")
log.setLevel(logging.INFO)
MARKUP = "<script>document.title='pwned'</script><b>bold</b>"


def logs_markup() -> str:
    log.info("rendered %s", MARKUP)
    log.warning("calling https://svc:hunter2@internal.example/x")
    return "ok"


def _finished(server, http: httpx.Client, target: str) -> tuple[str, dict]:
    task_id = server.call(lambda app: app.submit(target))
    task = wait_for(lambda: (lambda t: t if t["state"] == "succeeded" else None)(
        http.get(f"/api/v1/tasks/{task_id}").json()), what="the task")
    return task_id, task


def test_the_api_and_the_task_page_show_the_log_as_text(web_server):
    server = web_server(functions={"logs_markup": logs_markup})
    with httpx.Client(base_url=server.url) as http:
        task_id, task = _finished(server, http, "logs_markup")
        assert task["log"]["attempt_id"] == f"{task_id}#1"
        first, second = task["log"]["text"].splitlines()
        assert first.endswith(f" INFO tasks.web_log_test: rendered {MARKUP}")
        assert second.endswith(" WARNING tasks.web_log_test: calling https://svc:***@internal.example/x")
        page = http.get(f"/tasks/{task_id}").text
        assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
        assert MARKUP not in page and "hunter2" not in page
        assert '<pre class="log" id="task-log">' in page


def test_a_task_without_a_log_has_none(web_server):
    server = web_server()
    with httpx.Client(base_url=server.url) as http:
        task_id = server.call(lambda app: app.submit("add", 1, 2))
        task = wait_for(lambda: (lambda t: t if t["state"] == "succeeded" else None)(
            http.get(f"/api/v1/tasks/{task_id}").json()), what="the task")
        assert task["log"] is None
        assert 'id="task-log"' not in http.get(f"/tasks/{task_id}").text


def test_the_task_page_in_chromium_shows_the_markup_as_text(web_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    from .test_browser import ARGS, CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    server = web_server(functions={"logs_markup": logs_markup})
    with httpx.Client(base_url=server.url) as http:
        task_id, _ = _finished(server, http, "logs_markup")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/tasks/{task_id}")
            shown = page.locator("#task-log")
            assert shown.count() == 1  # (the page has loaded: goto waits for it)
            assert MARKUP in shown.inner_text(timeout=2000)  # as text
            assert shown.locator("script").count() == 0 and shown.locator("b").count() == 0
            assert page.title() != "pwned"
        finally:
            browser.close()
