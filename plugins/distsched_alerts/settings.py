"""``[plugins.alerts]``: read and checked once, at the engine's start.

Every refusal is a :class:`~distsched.model.ValidationError` naming the key alone (the engine
adds ``[plugins.alerts] ``) and never the value of a URL (a Slack webhook's path is its
secret) or of a password (which is never in the table: ``smtp_password_env`` names the
environment variable that holds it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

#: The plugin's name (its entry point): its settings are the config file's ``[plugins.alerts]``.
PLUGIN_NAME = "alerts"

#: What may be alerted on (``events``), and what each is.
EVENTS = {
    "task.failed": "a task ended failed, no retry left (task.finished, state failed)",
    "task.timed_out": "a task ended timed out, no retry left (task.finished, state timed_out)",
    "record.quarantined": "a record the engine could not use was moved aside, a job paused or a task cancelled",
    "leader.lost": "this node lost the leadership (not at its own shutdown)",
    "worker.lost": "the leader removed a worker that stopped beating (not one that left cleanly)",
    "store.data_lost": "the store found the data it held gone (a Redis restarted empty)",
}
DEFAULT_EVENTS = ("task.failed", "task.timed_out", "record.quarantined")
SECURITY = ("none", "starttls", "ssl")
FORMATS = ("text", "json")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}

#: The keys of ``[plugins.alerts]``.
SETTINGS = ("events", "email_to", "email_from", "smtp_host", "smtp_port", "smtp_security", "smtp_user",
            "smtp_password_env", "webhook_urls", "webhook_format", "dashboard_url", "subject_prefix",
            "min_interval", "max_items", "queue_size", "timeout")
_EMAIL_KEYS = ("email_from", "smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password_env")

_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]+")


@attrs.frozen(kw_only=True)
class Settings:
    """``[plugins.alerts]`` as read; ``smtp_password`` comes from the environment and is
    never shown (not in the repr)."""

    events: tuple[str, ...] = DEFAULT_EVENTS
    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_user: str | None = None
    smtp_password_env: str | None = None
    smtp_password: str | None = attrs.field(default=None, repr=False)
    webhook_urls: tuple[str, ...] = attrs.field(default=(), repr=False)
    webhook_format: str = "text"
    dashboard_url: str | None = None
    subject_prefix: str = "[distsched]"
    min_interval: float = 60.0
    max_items: int = 20
    queue_size: int = 10_000
    timeout: float = 10.0

    @property
    def active(self) -> bool:
        """Whether there is anywhere to send to (no table: the plugin does nothing)."""
        return bool(self.email_to or self.webhook_urls)


def _error(key: str, reason: str) -> Exception:
    from distsched.model import ValidationError

    return ValidationError(key, reason)


def _texts(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of non-empty texts (a single text is a list of one)."""
    value = table.get(key)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise _error(key, "must be a list of non-empty texts")
    return tuple(v.strip() for v in items)


def _text(table: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = table.get(key, default)
    if value is not None and (not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        raise _error(key, "must be a text on one line")
    return value


def _integer(table: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _error(key, f"must be an integer from {low} to {high}, not {value!r}")
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = table.get(key, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if isinstance(value, (int, float)) else None
        if number is None and isinstance(value, str):
            from distsched.model import parse_duration

            number = parse_duration(value, key)
        if number is None or not low <= number <= high:
            raise ValueError
    except Exception:
        raise _error(key, f"must be seconds from {low:g} to {high:g} (a number, or a duration such as '60s', "
                          f"'5m'), not {value!r}") from None
    return number


def _url(key: str, value: str, which: str) -> str:
    """An http(s) URL with a host; the value itself is never echoed (it may hold a token)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _error(key, f"{which} is not a URL") from None
    if any(ord(c) <= 32 or ord(c) == 127 for c in value):
        raise _error(key, f"{which} holds a space or a control character")
    if parts.scheme not in ("http", "https") or not host:
        raise _error(key, f"{which} must be an http:// or https:// URL with a host")
    return value


def _address(key: str, value: str) -> str:
    from email.utils import parseaddr

    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _error(key, f"{value.encode('unicode_escape').decode()!r} holds a control character")
    _, address = parseaddr(value)
    if not address or not _ADDRESS.fullmatch(address) or len(address) > 254:
        raise _error(key, f"{value!r} is not an email address (name@example.com)")
    return value


def _unknown(key: str) -> Exception:
    import difflib

    if key in ("smtp_password", "password"):
        return _error(key, "the password is never read from the config file: put it in an environment variable "
                           "and name that variable in smtp_password_env")
    close = difflib.get_close_matches(key, SETTINGS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return _error(key, f"unknown setting ({hint}the alerts plugin reads: {', '.join(SETTINGS)})")


def parse_settings(table: Mapping[str, Any], environ: Mapping[str, str] | None = None, *,
                   need_password: bool = True) -> Settings:
    """``[plugins.alerts]`` -> :class:`Settings`, or a ValidationError naming the key.

    ``environ`` (default ``os.environ``) gives the SMTP password, read from the variable
    ``smtp_password_env`` names; ``need_password=False`` (a process that only reads the
    store and never sends) does not require it to be set."""
    if not table:
        return Settings()
    for key in table:
        if key not in SETTINGS:
            raise _unknown(key)
    events = _texts(table, "events") if "events" in table else DEFAULT_EVENTS
    for event in events:
        if event not in EVENTS:
            import difflib

            close = difflib.get_close_matches(event, EVENTS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _error("events", f"unknown event {event!r} ({hint}known: {', '.join(EVENTS)})")
    email_to = tuple(_address("email_to", a) for a in _texts(table, "email_to"))
    urls = _texts(table, "webhook_urls")
    webhook_urls = tuple(_url("webhook_urls", u, f"entry {i}" if len(urls) > 1 else "the value")
                         for i, u in enumerate(urls, 1))
    if not email_to and not webhook_urls:
        raise _error("email_to", "set email_to or webhook_urls (or both): the alerts plugin has nowhere to send")
    if not email_to:
        for key in _EMAIL_KEYS:
            if key in table:
                raise _error(key, "is read only with email_to, which is not set")
    email_from = _text(table, "email_from", None)
    if email_to and not email_from:
        raise _error("email_from", "is needed to send mail (the sender's address, e.g. distsched@example.com)")
    if email_from:
        _address("email_from", email_from)
    security = _text(table, "smtp_security", "none")
    if security not in SECURITY:
        raise _error("smtp_security", f"must be one of {', '.join(SECURITY)}, not {security!r}")
    host = _text(table, "smtp_host", "localhost") or ""
    if not _HOST.fullmatch(host):
        raise _error("smtp_host", f"must be a host name or an address, not {host!r}")
    port = _integer(table, "smtp_port", DEFAULT_PORTS[security], 1, 65535)
    user = _text(table, "smtp_user", None)
    password_env = _text(table, "smtp_password_env", None)
    password = None
    if password_env is not None:
        if not _ENV_NAME.fullmatch(password_env):
            raise _error("smtp_password_env", f"must be the name of an environment variable, not {password_env!r}")
        if not user:
            raise _error("smtp_password_env", "is read only with smtp_user, which is not set")
        password = (os.environ if environ is None else environ).get(password_env)
        if not password and need_password:
            raise _error("smtp_password_env", f"the environment variable {password_env} is not set (or empty)")
    elif user:
        raise _error("smtp_user", "needs smtp_password_env: the name of the environment variable that holds "
                                  "the password")
    webhook_format = _text(table, "webhook_format", "text")
    if webhook_format not in FORMATS:
        raise _error("webhook_format", f"must be one of {', '.join(FORMATS)}, not {webhook_format!r}")
    if "webhook_format" in table and not webhook_urls:
        raise _error("webhook_format", "is read only with webhook_urls, which is not set")
    dashboard_url = _text(table, "dashboard_url", None)
    if dashboard_url is not None:
        _url("dashboard_url", dashboard_url, "the value")
    prefix = _text(table, "subject_prefix", "[distsched]")
    return Settings(
        events=tuple(dict.fromkeys(events)), email_to=email_to, email_from=email_from or "", smtp_host=host,
        smtp_port=port, smtp_security=security or "none", smtp_user=user, smtp_password_env=password_env,
        smtp_password=password, webhook_urls=webhook_urls, webhook_format=webhook_format or "text",
        dashboard_url=dashboard_url.rstrip("/") if dashboard_url else None, subject_prefix=prefix or "",
        min_interval=_seconds(table, "min_interval", 60.0, 0.1, 86400.0),
        max_items=_integer(table, "max_items", 20, 1, 1000),
        queue_size=_integer(table, "queue_size", 10_000, 1, 1_000_000),
        timeout=_seconds(table, "timeout", 10.0, 0.1, 300.0),
    )


def check_settings(table: Mapping[str, Any]) -> None:
    """Refuse a table the plugin would not read right (the password variable may be unset)."""
    parse_settings(table, need_password=False)


__all__ = ["DEFAULT_EVENTS", "DEFAULT_PORTS", "EVENTS", "FORMATS", "PLUGIN_NAME", "SECURITY", "SETTINGS", "Settings",
           "check_settings", "parse_settings"]
