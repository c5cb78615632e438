"""What an alert says: the first line of an error, control characters shown escaped,
secret-looking pairs masked; a timed-out task; a link to the dashboard's task page."""

from __future__ import annotations

from distsched.model.events import RecordQuarantined, TaskFinished
from distsched_alerts import parse_settings
from distsched_alerts.alerts import Digest, alert_for, body, one_line, payload, subject

SETTINGS = parse_settings({"webhook_urls": ["https://hooks.example/x"], "dashboard_url": "https://dash.example/ui/",
                           "max_items": 1, "webhook_format": "json"})


def test_one_line_keeps_the_first_line_escapes_control_characters_and_masks_secrets():
    assert one_line("login failed password=hunter2\nTraceback ...") == "login failed password=***"
    assert one_line("red \x1b[31malert\x07 \u202eevil") == "red \\x1b[31malert\\x07 \\u202eevil"
    assert one_line("x" * 1000).endswith("...") and len(one_line("x" * 1000)) == 303
    assert one_line(None) == ""


def test_a_timed_out_task_names_everything_and_links_to_its_page():
    alert = alert_for(TaskFinished(at=0.0, task_id="slow@1 2", job="slow", state="timed_out", attempt=2, duration=1.0,
                                   error="timed out after 1s", worker_id="w-7", error_type="Timeout"), SETTINGS)
    assert alert is not None and alert.title == "slow timed out: Timeout"
    fields = dict(alert.fields)
    assert fields["link"] == "https://dash.example/ui/tasks/slow%401%202"
    assert (fields["worker"], fields["attempt"], fields["outcome"]) == ("w-7", "2 (no retry left)", "timed_out")


def test_a_task_its_retry_filters_ended_says_why_not_that_no_retry_was_left():
    """With attempts left, a failure the retry policy's filters do not retry said `(no retry
    left)`: it names the filter's reason now."""
    alert = alert_for(TaskFinished(at=0.0, task_id="p@1", job="picky", state="failed", attempt=1, duration=0.1,
                                   error="ValueError: bad row", error_type="ValueError",
                                   reason="not retried: ValueError is not in retry_on (ConnectionError)"), SETTINGS)
    assert alert is not None
    assert dict(alert.fields)["attempt"] == "1 (not retried: ValueError is not in retry_on (ConnectionError))"


def test_a_success_is_no_alert_and_a_digest_lists_then_counts():
    assert alert_for(TaskFinished(at=0.0, task_id="t", job=None, state="succeeded", attempt=1, duration=0.1),
                     SETTINGS) is None
    digest = Digest(limit=1)
    for key in ("a", "b", "c"):
        digest.add(alert_for(RecordQuarantined(at=0.0, record="job", key=key, reason="bad\njson", action="paused"),
                             SETTINGS))
    assert subject(digest, SETTINGS) == "[distsched] job a paused (and 2 more)"
    text = body(digest, SETTINGS, "h1")
    assert text.startswith("distsched on h1: 3 alerts\n") and "... and 2 more." in text and "json" not in text
    data = payload(digest, SETTINGS, "h1")
    assert data["count"] == 3 and data["more"] == 2 and [a["key"] for a in data["alerts"]] == ["a"]
