"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) over
a real deployment: a redis-server, 2 schedulers and 2 workers as ``python -m distsched``
processes running examples/jobs.toml, and ``distsched web`` with a token.

Screenshots of every page go to the test's output directory (``tmp_path/screenshots``); with
``DISTSCHED_DOCS_SCREENSHOTS=1`` they also replace docs/img/web-*.png (linked from docs/web.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from distsched.testing.redis_server import free_port

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-token-0123456789abcdef"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def deployment(redis_server, tmp_path) -> Iterator[dict[str, Any]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)")
    url = redis_server.url_for(namespace=f"browser{os.getpid()}")
    jobs = str(ROOT / "examples" / "jobs.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTSCHED_")}
    port = free_port()
    commands = {
        "scheduler-a": ["scheduler", "--storage", url, "--jobs", jobs, "--node-id", "scheduler-a",
                        "--lease-ttl", "3", "--renew-interval", "0.5", "--heartbeat-ttl", "4"],
        "scheduler-b": ["scheduler", "--storage", url, "--jobs", jobs, "--node-id", "scheduler-b",
                        "--lease-ttl", "3", "--renew-interval", "0.5", "--heartbeat-ttl", "4"],
        "worker-1": ["worker", "--storage", url, "--jobs", jobs, "--name", "worker-1", "--heartbeat-interval", "0.5"],
        # with a third-party executor (a -p plugin module): the pages say which worker has it
        "worker-2": ["-p", "browser_cmd_plugin", "worker", "--storage", url, "--jobs", jobs, "--name", "worker-2",
                     "--heartbeat-interval", "0.5"],
        "web": ["web", "--storage", url, "--bind", f"127.0.0.1:{port}"],
    }
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "browser_cmd_plugin.py").write_text(
        "from distsched import hookimpl\n"
        "@hookimpl\n"
        "def distsched_register_executors(registry):\n"
        "    registry.add('cmd', lambda context: None, description='a third-party executor')\n")
    procs: dict[str, subprocess.Popen] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        for name, args in commands.items():
            extra = {"DISTSCHED_WEB_TOKEN": TOKEN} if name == "web" else {}
            if name == "worker-2":
                extra = {"PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))}
            procs[name] = subprocess.Popen([sys.executable, "-m", "distsched", *args], cwd=ROOT,
                                           stdout=(logs / f"{name}.out").open("w"),
                                           stderr=(logs / f"{name}.err").open("w"), env={**env, **extra})
        base = f"http://127.0.0.1:{port}"

        def ready() -> Any:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited: {(logs / f'{name}.err').read_text()}"
            try:
                overview = httpx.get(f"{base}/api/v1/overview", timeout=2).json()
            except httpx.TransportError:
                return None
            alive = [w for w in overview["workers"] if w["state"] == "alive"]
            return overview if overview["leader"] and len(alive) == 2 else None

        overview = wait_for(ready, 30, "a leader and 2 live workers")
        yield {"base": base, "overview": overview, "procs": procs, "logs": logs}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    err = (logs / "web.err").read_text()
    assert TOKEN not in err and "Traceback" not in err, err


def test_dashboard_in_chromium(deployment, tmp_path):
    base = deployment["base"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    docs_img = ROOT / "docs" / "img" if os.environ.get("DISTSCHED_DOCS_SCREENSHOTS") == "1" else None

    def shot(page: Any, name: str) -> None:
        path = shots / f"web-{name}.png"
        page.screenshot(path=str(path), full_page=False)
        assert path.stat().st_size > 1000
        if docs_img is not None:
            docs_img.mkdir(exist_ok=True)
            shutil.copy(path, docs_img / path.name)

    def history(job: str) -> list[dict[str, Any]]:
        return httpx.get(f"{base}/api/v1/jobs/{job}/history?limit=50").json()["items"]

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(15_000)
            # every page loads whole: no console error, no resource answered with an error
            # (a page without an icon made the browser ask for /favicon.ico: a 404 on each)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                    if r.status >= 400 and r.request.resource_type != "fetch" else None)

            # Overview: the leader and both workers.
            page.goto(f"{base}/")
            leader = page.locator("#leader .big").inner_text()
            assert leader in ("scheduler-a", "scheduler-b")
            workers = page.locator("#workers tr.worker")
            sync_api.expect(workers).to_have_count(2)
            names = " ".join(workers.all_inner_texts())
            assert "worker-1" in names and "worker-2" in names
            # what each advertises, by which the leader routes: executors, how many functions
            executors = {row.locator("td").first.inner_text(): row.locator("td").last.inner_text()
                         for row in workers.all()}
            assert sorted(executors.values()) == ["cmd, http, local, rpc · 4 functions", "http, local, rpc · 4 functions"], executors
            # the jobs stored, as distsched status counts them: examples/jobs.toml's five
            assert page.locator("#jobs .big").inner_text() == "5"
            assert page.locator("#jobs p:not(.big)").inner_text() == "5 enabled"
            shot(page, "overview")

            # A change without logging in is refused (and sent to the login page).
            page.goto(f"{base}/jobs/tick/pause")
            page.click("#confirm")
            page.wait_for_url(lambda url: "/login?next=" in url)
            shot(page, "login")
            assert httpx.get(f"{base}/api/v1/jobs/tick").json()["paused"] is False

            # Log in.
            page.fill("#token", TOKEN)
            page.click("#submit")
            sync_api.expect(page.locator("#logout")).to_be_visible()
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies["distsched_session"]["httpOnly"] and cookies["distsched_session"]["sameSite"] == "Strict"
            assert TOKEN not in cookies["distsched_session"]["value"]

            # Jobs page; pause tick through its confirmation page.
            wait_for(lambda: history("tick"), 15, "a first run of tick")
            page.goto(f"{base}/jobs")
            shot(page, "jobs")
            page.click('tr[data-job="tick"] >> text=pause')
            sync_api.expect(page.locator("h1")).to_have_text("Pause job tick?")
            shot(page, "confirm")
            page.click("#confirm")
            sync_api.expect(page.locator("#job-state")).to_have_text("paused")
            assert httpx.get(f"{base}/api/v1/jobs/tick").json()["paused"] is True
            # It stops firing: tick fires every 2 s; no new slot over the next 3 intervals.
            slots = lambda: {t["id"] for t in history("tick") if t["slot"] is not None}  # noqa: E731
            before = slots()
            deadline = time.monotonic() + 6.5
            while time.monotonic() < deadline:
                assert slots() <= before, "tick fired while paused"
                time.sleep(0.5)

            # Trigger it now: the new run appears in its history (live refresh) with its outcome.
            page.click("#trigger")
            page.click("#confirm")
            flash = page.locator("#flash").inner_text()
            assert flash.startswith("triggered: task tick@manual-")
            task_id = flash.split("task ", 1)[1].strip()
            row = page.locator("#history tr", has=page.locator(f'a:text-is("{task_id}")'))
            sync_api.expect(row).to_have_count(1, timeout=20_000)
            sync_api.expect(row.locator("td.state-succeeded")).to_have_text("succeeded", timeout=20_000)
            assert "manual" in row.inner_text()
            shot(page, "job")

            # A failed task and its error; live refresh keeps the filters and the scroll.
            wait_for(lambda: httpx.get(f"{base}/api/v1/tasks?state=failed&job=flaky").json()["items"], 30,
                     "a failed flaky task")
            page.set_viewport_size({"width": 1280, "height": 160})
            page.goto(f"{base}/tasks?state=failed&job=flaky")
            page.evaluate("window.scrollTo(0, 60)")
            scrolled = page.evaluate("window.scrollY")
            assert scrolled > 0
            # (polled from here: the page's CSP forbids the eval wait_for_function would need)
            wait_for(lambda: page.evaluate("document.documentElement.dataset.refreshed"), 10, "a live refresh")
            assert page.evaluate("window.scrollY") == scrolled
            assert page.input_value("select[name=state]") == "failed" and page.input_value("input[name=job]") == "flaky"
            states = page.locator("#tasks tbody td.state-failed")
            assert states.count() >= 1 and states.count() == page.locator("#tasks tbody tr").count()
            page.set_viewport_size({"width": 1280, "height": 860})
            page.evaluate("window.scrollTo(0, 0)")
            shot(page, "tasks")
            page.locator("#tasks tbody a[href^='/tasks/']").first.click()
            sync_api.expect(page.locator("#task-state")).to_have_text("failed")
            errors = page.locator("#attempts pre.error")
            sync_api.expect(errors).to_have_count(3)
            assert "ConnectionError: the upstream is down" in errors.first.inner_text()
            shot(page, "task")
            # Retry it from its page, through the confirmation page: the flash line links to the new task.
            failed_id = page.locator("h1").inner_text().removeprefix("Task ")
            page.click("#retry")
            sync_api.expect(page.locator("h1")).to_have_text(f"Retry task {failed_id}?")
            page.click("#confirm")
            retried = page.locator("#flash a#retried")
            new_id = retried.inner_text()
            assert new_id == f"{failed_id}.retry-1" and page.locator("#flash").inner_text() == f"retried as task {new_id}"
            retried.click()
            sync_api.expect(page.locator("h1")).to_have_text(f"Task {new_id}")
            assert httpx.get(f"{base}/api/v1/tasks/{new_id}").json()["job"] == "flaky"

            page.goto(f"{base}/workers")
            sync_api.expect(page.locator("section.worker-box")).to_have_count(2)
            advertised = sorted(page.locator("section.worker-box .advertised").all_inner_texts())
            assert advertised == ["executors cmd, http, local, rpc · functions add, always_fails, slow, tick",
                                  "executors http, local, rpc · functions add, always_fails, slow, tick"], advertised
            shot(page, "workers")

            # Log out; changes are refused again.
            page.click("#logout")
            sync_api.expect(page.locator("#login")).to_be_visible()
            page.goto(f"{base}/jobs/tick/resume")
            page.click("#confirm")
            page.wait_for_url(lambda url: "/login?next=" in url)
            refused = page.request.post(f"{base}/api/v1/jobs/tick/resume")
            assert refused.status == 401 and refused.json()["error"]["field"] == "Authorization"
            assert httpx.get(f"{base}/api/v1/jobs/tick").json()["paused"] is True
            assert problems == []
        finally:
            browser.close()
