"""The sender thread against a real SMTP server: a flood of 10,000 alerts is two mails, a
full queue is counted and said once, the password logs in and appears nowhere."""

from __future__ import annotations

import logging
import threading

import pytest

from distsched.model.events import LeadershipLost, RecordQuarantined, TaskFinished, WorkerLost
from distsched.testing.processes import wait_until
from distsched_alerts import parse_settings
from distsched_alerts.sender import Alerter, EmailChannel

GOOD = {"email_to": ["ops@example.com"], "email_from": "distsched@example.com", "smtp_host": "127.0.0.1",
        "timeout": 2}


def failed(n: int) -> TaskFinished:
    return TaskFinished(at=1_796_428_030.0 + n, task_id=f"report@{n}", job="report", state="failed", attempt=3,
                        duration=0.1, error="ConnectionError: the upstream is down", worker_id="w1",
                        error_type="ConnectionError")


def test_ten_thousand_failures_make_two_mails(smtp_server, caplog):
    caplog.set_level(logging.WARNING, logger="distsched.alerts")
    alerter = Alerter(parse_settings({**GOOD, "smtp_port": smtp_server.port, "max_items": 10}))
    try:
        for n in range(10_000):
            alerter.distsched_event(failed(n))
        wait_until(lambda: smtp_server.mails, 5, what="the first mail")
        alerter.flush()  # the window's end (60 s by default), now
        wait_until(lambda: len(smtp_server.mails) == 2, 5, what="the digest")
    finally:
        alerter.stop(timeout=5)
    first, digest = smtp_server.texts()
    assert int(first.split(": ", 1)[1].split(" alert")[0]) + int(digest.split(": ", 1)[1].split(" alert")[0]) == 10_000
    assert digest.count("error type  ConnectionError") == 10
    assert "... and " in digest and smtp_server.mails[1]["Subject"].endswith("more)")
    assert len(smtp_server.mails) == 2
    assert [r for r in caplog.records if r.name == "distsched.alerts"] == []


def test_a_full_queue_drops_counts_and_warns_once(smtp_server, caplog):
    caplog.set_level(logging.WARNING, logger="distsched.alerts")
    settings = parse_settings({**GOOD, "smtp_port": smtp_server.port, "queue_size": 5, "max_items": 3})
    entered, gate = threading.Event(), threading.Event()

    class Gated(EmailChannel):  # the real mail, once the test lets the first one go
        def send(self, digest):
            entered.set()
            assert gate.wait(5)
            super().send(digest)

    alerter = Alerter(settings, channels=[Gated(settings, "test-host")])
    try:
        alerter.distsched_event(failed(0))
        assert entered.wait(5)  # the sender is busy with the first mail: the queue fills
        for n in range(1, 501):
            alerter.distsched_event(failed(n))
        gate.set()
        alerter.flush()
        wait_until(lambda: len(smtp_server.mails) == 2, 5, what="the digest")
    finally:
        alerter.stop(timeout=5)
    first, digest = smtp_server.texts()
    assert first.startswith("distsched on test-host: 1 alert\n")
    assert digest.startswith("distsched on test-host: 500 alerts\n")
    assert digest.count("error type  ConnectionError") == 3
    assert "... and 497 more (495 of them dropped before they were read: the alert queue of 5 was full)." in digest
    [warning] = [r.getMessage() for r in caplog.records if r.name == "distsched.alerts"]
    assert warning.startswith("alerts: 495 alert(s) dropped since the last message: the queue of 5 (queue_size) "
                              "was full")


def test_login_reads_the_password_from_the_environment_and_never_shows_it(smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ALERTS_TEST_PW", "right-pw-123")
    alerter = Alerter(parse_settings({**GOOD, "smtp_port": smtp_server.port, "smtp_user": "ops",
                                      "smtp_password_env": "ALERTS_TEST_PW"}))
    try:
        alerter.distsched_event(failed(1))
        wait_until(lambda: smtp_server.mails, 5, what="the mail")
    finally:
        alerter.stop(timeout=5)
    assert smtp_server.logins == [("ops", "right-pw-123")]
    assert "right-pw-123" not in str(smtp_server.mails[0]) and "right-pw-123" not in caplog.text


def test_a_wrong_password_is_one_warning_without_it(smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="distsched.alerts")
    monkeypatch.setenv("ALERTS_TEST_PW", "wrong-pw-456")
    alerter = Alerter(parse_settings({**GOOD, "smtp_port": smtp_server.port, "smtp_user": "ops",
                                      "smtp_password_env": "ALERTS_TEST_PW", "timeout": 0.5}))
    try:
        alerter.distsched_event(failed(1))
        wait_until(lambda: alerter.failed, 5, what="the failed login")
    finally:
        alerter.stop(timeout=5)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "distsched.alerts"]
    assert warning.startswith("alerts: could not send 1 alert(s) by email to 1 address(es) via 127.0.0.1:")
    assert ("ops", "wrong-pw-456") in smtp_server.logins  # it was tried, and is in no log line
    assert "wrong-pw-456" not in caplog.text
    assert smtp_server.mails == []


def test_events_other_than_the_selected_ones_are_not_sent(smtp_server):
    alerter = Alerter(parse_settings({**GOOD, "smtp_port": smtp_server.port, "events": ["worker.lost", "leader.lost"]}))
    try:
        alerter.distsched_event(failed(1))  # not selected
        alerter.distsched_event(RecordQuarantined(at=1.0, record="job", key="poison", reason="bad json", action="quarantined"))
        alerter.distsched_event(WorkerLost(at=1.0, worker_id="w-left", requeued=0, reason="worker left"))  # clean exit
        alerter.distsched_event(LeadershipLost(at=1.0, node_id="s1", term=7, reason="shutdown"))  # its own stop
        alerter.distsched_event(WorkerLost(at=2.0, worker_id="w-dead", requeued=4, reason="no heartbeat for 10s"))
        wait_until(lambda: smtp_server.mails, 5, what="the mail")
    finally:
        alerter.stop(timeout=5)
    [text] = smtp_server.texts()
    assert "worker w-dead lost" in text and "requeued    4 task(s)" in text
    assert "w-left" not in text and "poison" not in text and "report" not in text


def _login_settings(port: int, security: str) -> dict:
    return {**GOOD, "smtp_port": port, "smtp_security": security, "smtp_user": "ops",
            "smtp_password_env": "ALERTS_TEST_PW", "timeout": 2}


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_logs_in_after_the_handshake_against_a_trusted_certificate(
        smtp_factory, server_tls, tls_files, security, monkeypatch):
    monkeypatch.setenv("ALERTS_TEST_PW", "right-pw-123")
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])  # the system's CAs, here: the test's own
    server = (smtp_factory(tls_context=server_tls, require_starttls=True, auth_require_tls=True)
              if security == "starttls" else smtp_factory(ssl_context=server_tls))
    alerter = Alerter(parse_settings(_login_settings(server.port, security)))
    try:
        alerter.distsched_event(failed(1))
        wait_until(lambda: server.mails or alerter.failed, 5, what="the mail")
    finally:
        alerter.stop(timeout=5)
    assert alerter.failed == {} and len(server.mails) == 1
    assert server.logins == [("ops", "right-pw-123")]


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_refused_before_the_password_is_sent(
        smtp_factory, server_tls, security, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="distsched.alerts")
    monkeypatch.setenv("ALERTS_TEST_PW", "right-pw-123")
    server = (smtp_factory(tls_context=server_tls, require_starttls=True, auth_require_tls=True)
              if security == "starttls" else smtp_factory(ssl_context=server_tls))
    alerter = Alerter(parse_settings(_login_settings(server.port, security)))
    try:
        alerter.distsched_event(failed(1))
        wait_until(lambda: alerter.failed, 5, what="the refused handshake")
    finally:
        alerter.stop(timeout=5)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "distsched.alerts"]
    assert "CERTIFICATE_VERIFY_FAILED" in warning
    assert server.logins == [] and server.mails == []
