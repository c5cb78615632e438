"""End to end: an engine on the memory store whose job fails, the alerts plugin configured
through ``plugin_settings`` ([plugins.alerts]), a real SMTP server and a real webhook
receiver on loopback."""

from __future__ import annotations

import json
import logging
import time

from distsched.testing.processes import wait_until_async
from distsched_alerts.hooks import OBSERVER_NAME, alerter_of

SECRET = "PLANTED-SECRET-kw-4711"


def boom(token: str = "") -> None:
    raise ConnectionError("the upstream is down\nsecond line with \x1b[31mnoise")


def ok() -> str:
    return "fine"


def settings(smtp_port: int, webhook_url: str, **more: object) -> dict:
    return {"alerts": {"email_to": ["ops@example.com", "Oncall <oncall@example.com>"],
                       "email_from": "distsched@example.com", "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
                       "webhook_urls": [webhook_url], "dashboard_url": "https://dash.example/",
                       "timeout": 2, **more}}


async def test_a_failed_task_is_mailed_and_posted_with_job_error_and_worker_never_its_arguments(
        distsched_app, smtp_server, webhook_server):
    app = await distsched_app(functions={"boom": boom}, plugin_settings=settings(smtp_server.port, webhook_server.url()))
    task_id = await app.submit("boom", kwargs={"token": SECRET})
    task = await app.wait(task_id, timeout=10)
    assert task.state.value == "failed"

    await wait_until_async(lambda: _async(len(smtp_server.mails) >= 1 and len(webhook_server.posts) >= 1), 10,
                           what="the first mail and POST")
    mail = smtp_server.mails[0]
    text = smtp_server.texts()[0]
    assert sorted(smtp_server.envelopes[0].rcpt_tos) == ["oncall@example.com", "ops@example.com"]
    assert mail["From"] == "distsched@example.com"
    assert mail["Subject"].startswith("[distsched] ")
    assert "failed: ConnectionError" in mail["Subject"]
    for expected in (f"task        {task_id}", "attempt     1 (no retry left)", "outcome     failed",
                     "error type  ConnectionError", "error       ConnectionError: the upstream is down",
                     f"worker      {task.worker_id}", f"link        https://dash.example/tasks/{task_id.replace('@', '%40')}"):
        assert expected in text, (expected, text)
    assert "second line" not in text and "\x1b" not in text
    path, body = webhook_server.posts[0]
    assert path == "/hooks/T000/B000/s3cr3t-path-token"
    assert set(body) == {"text"} and "ConnectionError: the upstream is down" in body["text"]
    everything = json.dumps([str(m) for m in smtp_server.mails]) + json.dumps(webhook_server.posts)
    assert SECRET not in everything


async def _async(value):
    return value


async def test_the_job_name_is_in_the_alert(distsched_app, smtp_server, webhook_server):
    app = await distsched_app(functions={"boom": boom},
                              plugin_settings=settings(smtp_server.port, webhook_server.url(), webhook_format="json"))
    await app.add_job("nightly-report", every="0.2s", target="boom", kwargs={"token": SECRET})
    await wait_until_async(lambda: _async(len(webhook_server.posts) >= 1 and len(smtp_server.mails) >= 1), 10,
                           what="an alert")
    assert "nightly-report failed: ConnectionError" in smtp_server.mails[0]["Subject"]
    _, body = webhook_server.posts[0]
    [alert, *_] = body["alerts"]
    assert alert["job"] == "nightly-report" and alert["event"] == "task.failed"
    assert alert["error type"] == "ConnectionError" and alert["outcome"] == "failed"
    assert SECRET not in json.dumps(webhook_server.posts) + "".join(smtp_server.texts())
    await app.pause_job("nightly-report")


async def test_a_flood_is_one_digest_per_window(distsched_app, smtp_server, webhook_server):
    app = await distsched_app(functions={"boom": boom}, plugin_settings=settings(
        smtp_server.port, webhook_server.url(), min_interval=0.5, max_items=5))
    started = time.monotonic()
    ids = [await app.submit("boom") for _ in range(200)]
    for task_id in ids:
        await app.wait(task_id, timeout=20)

    def counted(texts: list[str]) -> int:
        total = 0
        for text in texts:
            total += int(text.split(": ", 1)[1].split(" alert", 1)[0])
        return total

    await wait_until_async(lambda: _async(counted(smtp_server.texts()) == 200 and len(webhook_server.posts)
                                          == len(smtp_server.mails)), 10, what="every failure counted")
    elapsed = time.monotonic() - started
    windows = int(elapsed / 0.5) + 2
    assert len(smtp_server.mails) <= windows, (len(smtp_server.mails), elapsed)
    assert len(smtp_server.mails) < 20
    for text in smtp_server.texts():
        assert text.count("error type  ConnectionError") <= 5
    assert any("... and " in text and " more." in text for text in smtp_server.texts())


async def test_a_refusing_or_silent_server_gives_one_warning_per_window_and_scheduling_goes_on(
        distsched_app, webhook_server, silent_port, caplog):
    webhook_server.status = 500
    caplog.set_level(logging.WARNING, logger="distsched.alerts")
    app = await distsched_app(functions={"boom": boom, "ok": ok}, plugin_settings=settings(
        silent_port, webhook_server.url(), timeout=1.0))
    first = await app.submit("boom")
    await app.wait(first, timeout=10)
    alerter = alerter_of(app.plugins)
    # the sender now waits on the silent SMTP server (up to its 1 s timeout): tasks go on meanwhile
    done = [await app.result(await app.submit("ok"), timeout=10) for _ in range(20)]
    assert all(r.ok for r in done)
    assert alerter.failed == {} and alerter.sent == {}, "the tasks waited for the mail server"
    for _ in range(30):  # more failures in the same window: held, not sent one by one
        await app.wait(await app.submit("boom"), timeout=10)
    await wait_until_async(lambda: _async(sum(alerter.failed.values()) == 2), 10, what="both channels failed once")
    alerter.flush()  # the end of the window, now
    await wait_until_async(lambda: _async(sum(alerter.failed.values()) == 4), 10, what="the digest failed too")
    warnings = [r.getMessage() for r in caplog.records if r.name == "distsched.alerts"]
    assert len(warnings) == 4, warnings
    assert sum("by email to 2 address(es) via 127.0.0.1:" in w and "timed out" in w for w in warnings) == 2, warnings
    assert sum("by webhook http://127.0.0.1:" in w and "HTTP 500" in w for w in warnings) == 2, warnings
    assert any("could not send 30 alert(s)" in w for w in warnings), warnings
    assert not any("s3cr3t-path-token" in w for w in warnings)
    assert len(webhook_server.posts) == 2


async def test_no_table_no_observer_no_events(distsched_app):
    app = await distsched_app(functions={"ok": ok})
    assert app.plugins.hook_manager.get_plugin(OBSERVER_NAME) is None
    assert not app.engine.events.active
