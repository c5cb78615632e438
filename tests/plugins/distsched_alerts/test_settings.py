"""``[plugins.alerts]``: a bad table stops the engine at start with one line naming the key
and the reason - never a traceback, never a password or a webhook URL's path."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.model import ValidationError
from distsched_alerts import DEFAULT_EVENTS, parse_settings

GOOD = {"email_to": ["ops@example.com"], "email_from": "distsched@example.com"}


def _app(table: dict) -> DistributeSchedule:
    return DistributeSchedule(f"memory://alerts-{uuid.uuid4().hex}", plugin_settings={"alerts": table})


@pytest.mark.parametrize("table, message", [
    ({**GOOD, "email_too": ["x@example.com"]}, "[plugins.alerts] email_too: unknown setting (did you mean 'email_to'?"),
    ({**GOOD, "smtp_password": "hunter2"}, "[plugins.alerts] smtp_password: the password is never read from the "
                                           "config file: put it in an environment variable"),
    ({"email_to": ["ops at example.com"], "email_from": "d@example.com"},
     "[plugins.alerts] email_to: 'ops at example.com' is not an email address"),
    ({"email_to": ["ops@example.com"]}, "[plugins.alerts] email_from: is needed to send mail"),
    ({"webhook_urls": ["ftp://hooks.example/T0/B0/tok3n"]},
     "[plugins.alerts] webhook_urls: the value must be an http:// or https:// URL with a host"),
    ({"webhook_urls": ["https://ok.example/x", "https:///tok3n"]},
     "[plugins.alerts] webhook_urls: entry 2 must be an http:// or https:// URL with a host"),
    ({**GOOD, "dashboard_url": "dash.example"},
     "[plugins.alerts] dashboard_url: the value must be an http:// or https:// URL"),
    ({**GOOD, "smtp_user": "me", "smtp_password_env": "ALERTS_TEST_UNSET_PW"},
     "[plugins.alerts] smtp_password_env: the environment variable ALERTS_TEST_UNSET_PW is not set"),
    ({**GOOD, "smtp_user": "me"}, "[plugins.alerts] smtp_user: needs smtp_password_env"),
    ({**GOOD, "smtp_security": "tls"}, "[plugins.alerts] smtp_security: must be one of none, starttls, ssl"),
    ({**GOOD, "smtp_port": 0}, "[plugins.alerts] smtp_port: must be an integer from 1 to 65535"),
    ({**GOOD, "events": ["task.failed", "task.fialed"]},
     "[plugins.alerts] events: unknown event 'task.fialed' (did you mean 'task.failed'?"),
    ({**GOOD, "min_interval": "soon"}, "[plugins.alerts] min_interval: must be seconds from 0.1 to 86400"),
    ({**GOOD, "max_items": 0}, "[plugins.alerts] max_items: must be an integer from 1 to 1000"),
    ({"subject_prefix": "x"}, "[plugins.alerts] email_to: set email_to or webhook_urls (or both)"),
    ({"webhook_urls": ["https://ok.example/x"], "smtp_host": "mail"},
     "[plugins.alerts] smtp_host: is read only with email_to, which is not set"),
])
async def test_a_bad_table_is_refused_at_start_naming_the_key(table, message, monkeypatch):
    monkeypatch.delenv("ALERTS_TEST_UNSET_PW", raising=False)
    app = _app(table)
    with pytest.raises(ValidationError) as caught:
        await app.start()
    await app.stop()
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text and "hunter2" not in text and "tok3n" not in text


def test_defaults_and_durations(monkeypatch):
    monkeypatch.setenv("ALERTS_TEST_PW", "pw-value-1")
    s = parse_settings({**GOOD, "smtp_security": "starttls", "smtp_user": "me", "smtp_password_env": "ALERTS_TEST_PW",
                        "min_interval": "2m", "email_to": "one@example.com"})
    assert s.events == DEFAULT_EVENTS == ("task.failed", "task.timed_out", "record.quarantined")
    assert s.smtp_port == 587 and s.min_interval == 120.0 and s.email_to == ("one@example.com",)
    assert s.smtp_password == "pw-value-1" and "pw-value-1" not in repr(s)
    assert parse_settings({}).active is False


def test_a_reader_does_not_need_the_password_variable(monkeypatch):
    monkeypatch.delenv("ALERTS_TEST_UNSET_PW", raising=False)
    s = parse_settings({**GOOD, "smtp_user": "me", "smtp_password_env": "ALERTS_TEST_UNSET_PW"}, need_password=False)
    assert s.smtp_password is None


def test_a_scheduler_refuses_a_bad_table_from_the_config_file_in_one_line(tmp_path):
    (tmp_path / "d.toml").write_text('[plugins.alerts]\nwebhook_urls = ["https://hooks.example/T0/B0/tok3n"]\n'
                                     'email_from = "distsched@example.com"\nmin_interval = -1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTSCHED_")}
    proc = subprocess.run([sys.executable, "-m", "distsched", "scheduler", "--config", "d.toml", "--fail-fast"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "[plugins.alerts] email_from: is read only with email_to, which is not set" in proc.stderr
    assert "Traceback" not in proc.stderr and "tok3n" not in proc.stderr


def test_distsched_plugins_lists_it_with_its_keys_never_the_values(distsched_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "distsched.toml").write_text('[plugins.alerts]\nwebhook_urls = ["https://hooks.example/T0/B0/tok3n"]\n'
                                             'events = ["task.failed", "worker.lost"]\n')
    result = distsched_cli("plugins")
    lines = result.output.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith("alerts ")]
    assert lines[at].endswith("distsched_alerts.hooks")
    assert lines[at + 1] == "    settings   distsched.toml: events, webhook_urls"
    assert "settings   distsched.toml: events, webhook_urls" in result.output
    assert "tok3n" not in result.output
