"""Secrets masked in what distsched shows of a job, a task or a result.

>>> mask_secrets({"headers": {"Authorization": "Bearer s3cret"}, "url": "https://u:pw@h/x?token=t"})
{'headers': {'Authorization': '***'}, 'url': 'https://u:***@h/x?token=***'}

Every output that shows a job's target, options, arguments or a task's result - the CLI
(``jobs list``, ``jobs sync``, ``scheduler --jobs``, ``tasks list`` / ``show`` / ``submit
--wait``, the task log) and the web dashboard's pages and API - goes through
:func:`mask_secrets`. It hides:

* in every string, the passwords and secret query values of the URLs in it, by the one URL
  redactor (:func:`distsched.urls.redact_text`), and the value of every ``name=value`` or
  ``name: value`` pair whose name says it is a secret (an error message such as ``login
  failed (password=hunter2)``, ``{"api_key": "k"}`` or ``Authorization: Bearer t``):
  :func:`mask_text`;
* the value under every key whose name says it is a secret (:data:`SECRET_KEY`:
  ``password``, ``token``, ``secret``, ``authorization``, ``api_key``, ``cookie``,
  ``credential``...), at any depth: ``***`` (an empty value or ``null`` is shown as it is).

It errs on the side of hiding: what is nested deeper than it looks is shown as ``***``.
It never raises and never changes its argument.

A plugin's settings (``[plugins.<name>]``, as ``--show-config`` and ``EngineConfig``'s repr
show them) go through :func:`mask_settings`: :func:`mask_secrets`, and a webhook URL's path,
which is its token (Slack's ``/services/T../B../XXXX``, Mattermost's ``/hooks/<key>``,
Discord's ``/api/webhooks/<id>/<token>``), shown as ``/***`` - every URL under a key that
names a hook (:data:`HOOK_KEY`: ``webhook_urls``, ``slack_hook``...), and under any other
key a URL whose path has a token-like segment (:data:`TOKEN_SEGMENT`):

>>> mask_settings({"webhook_urls": ["https://hooks.slack.com/services/T0/B0/XXXX"], "dashboard_url": "https://d.example.com/ui"})
{'webhook_urls': ['https://hooks.slack.com/***'], 'dashboard_url': 'https://d.example.com/ui'}
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .urls import REDACTED, redact_text

#: A key whose value is a secret (matched case-insensitively, anywhere in the key).
_SECRET_WORDS = r"pass(?:word)?|token|secret|authori[sz]ation|api[_-]?key|cookie|credential"
SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)

#: A ``name=value`` / ``name: value`` pair in free text: the name (a run of word characters,
#: dots and dashes, quoted or not; only a run's start is tried, so a long word costs one
#: scan), then the value - quoted (up to 500 characters), or up to a space or a delimiter;
#: after a scheme word (``Bearer``, ``Basic``...) the credentials after it too. Whether the
#: name is a secret's is :data:`SECRET_NAME`'s to say.
_PAIR = re.compile(
    r"""(?<![\w.-])(?P<key>(?P<q>["']?)(?P<name>[\w.-]+)(?P=q))(?P<sep>[ \t]*[=:][ \t]*)"""
    r"""(?P<value>(?:(?:bearer|basic|digest|token|negotiate)[ \t]+)?"""
    r"""(?:"[^"\n]{0,500}"|'[^'\n]{0,500}'|[^\s,;&)\]}"'<>]+))""",
    re.IGNORECASE)
#: A pair's name that says its value is a secret: one of :data:`SECRET_KEY`'s words at its
#: end or before a ``_``, ``-`` or ``.`` (``access_token``, ``db_password``, ``X-Api-Key``,
#: ``password_file``; not ``tokenizer`` or ``max_tokens``).
SECRET_NAME = re.compile(rf"(?:{_SECRET_WORDS}|passwd|pwd)(?:[_.-]|$)", re.IGNORECASE)


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if not SECRET_NAME.search(match.group("name")) or value.strip("\"'") in ("", REDACTED):
        return match.group(0)
    return f"{match.group('key')}{match.group('sep')}{REDACTED}"


def mask_text(text: str) -> str:
    """``text`` with its URLs redacted and the values of its secret-looking ``name=value``
    pairs shown as ``***`` (:data:`SECRET_NAME`). Linear in the text's length."""
    text = redact_text(text)
    if "=" not in text and ":" not in text:
        return text
    return _PAIR.sub(_mask_pair, text)


#: How deep :func:`mask_secrets` looks; what is nested deeper is shown as ``***``.
MAX_DEPTH = 20


def mask_secrets(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (a string or a JSON-like value: dicts, lists, tuples) with the
    secrets masked: URL passwords and secret query values in every string, the values of
    secret-looking keys. Tuples come back as lists; other values as they are."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        if _depth >= MAX_DEPTH:
            return REDACTED
        return {k: (REDACTED if isinstance(k, str) and SECRET_KEY.search(k) and v not in (None, "")
                    else mask_secrets(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if _depth >= MAX_DEPTH:
            return REDACTED
        return [mask_secrets(v, _depth + 1) for v in value]
    return value


#: A plugin setting's key whose URLs are webhooks (matched case-insensitively, anywhere in
#: the key): their whole path is masked.
HOOK_KEY = re.compile(r"hook", re.IGNORECASE)
#: A URL path segment that looks like a token: 20 or more letters, digits, ``_`` or ``-``
#: with a digit among them, or 32 or more of them (a Slack, Mattermost, Discord or Teams
#: webhook's key); an ordinary path (``/api/v1/reports``, ``/distsched``) has none.
TOKEN_SEGMENT = re.compile(r"(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}|[A-Za-z0-9_-]{32,}")
#: A URL in a setting's text: the scheme, then everything up to a space.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s]*")


def _mask_url_path(match: re.Match[str], every: bool) -> str:
    url = match.group(0)
    try:
        parts = urlsplit(url)
    except ValueError:  # a bad port or IPv6 literal: show nothing after the scheme
        return url.split("://", 1)[0] + "://" + REDACTED
    rest = url[len(parts.scheme) + 3 + len(parts.netloc):]
    if rest in ("", "/"):
        return url
    if not every and not any(TOKEN_SEGMENT.fullmatch(seg) for seg in re.split(r"[/?#&=]", rest)):
        return url
    return f"{parts.scheme}://{parts.netloc}/{REDACTED}"


def _mask_setting(value: Any, hook: bool, depth: int) -> Any:
    if isinstance(value, str):
        return _URL.sub(lambda m: _mask_url_path(m, hook), value) if "://" in value else value
    if depth >= MAX_DEPTH:
        return value  # mask_secrets shows it as ***
    if isinstance(value, dict):
        return {k: _mask_setting(v, hook or (isinstance(k, str) and bool(HOOK_KEY.search(k))), depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_setting(v, hook, depth + 1) for v in value]
    return value


def mask_settings(table: dict[str, Any]) -> dict[str, Any]:
    """A plugin's settings table as shown (``--show-config``, ``EngineConfig``'s repr): a
    copy with :func:`mask_secrets`'s masking, and the path of every webhook URL shown as
    ``/***`` (``https://hooks.slack.com/***``): every URL under a key that names a hook
    (:data:`HOOK_KEY`), and any URL whose path has a token-like segment
    (:data:`TOKEN_SEGMENT`). Its scheme, host and port stay, and so does every ordinary URL
    (``dashboard_url = "https://dash.example.com/ui"``). Never raises."""
    masked = mask_secrets(_mask_setting(table, False, 0))
    return masked if isinstance(masked, dict) else {}


__all__ = ["HOOK_KEY", "MAX_DEPTH", "SECRET_KEY", "SECRET_NAME", "TOKEN_SEGMENT", "mask_secrets", "mask_settings",
           "mask_text"]
