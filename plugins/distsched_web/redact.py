"""Secrets never leave the dashboard: URL passwords and values under secret-looking keys.

URLs go through the project's one URL redactor (``distsched.urls.redact_url``) - passwords
and secret query values hidden; values under keys such as ``password``, ``token``,
``secret``, ``authorization`` or ``api_key`` become ``***`` in everything the pages and the
API show.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(r"pass(word)?|token|secret|authori[sz]ation|api[_-]?key|cookie|credential", re.I)
_URL_CREDS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_ONE_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S*", re.I)

try:
    from distsched.urls import redact_url as _project_redactor
except ImportError:  # pragma: no cover - until the one redactor (issue 16.4) is merged
    _project_redactor = None


def safe_url(text: str) -> str:
    """``text`` with the secrets of its URLs hidden: a whole URL by the project's redactor,
    URLs inside longer text (an error message) at least by their ``user:***@``."""
    if not isinstance(text, str) or "://" not in text:
        return text
    if _project_redactor is not None and _ONE_URL.fullmatch(text):
        return _project_redactor(text)
    return _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON value with secret-looking keys masked and URL passwords cut."""
    if _depth > 20:
        return value
    if isinstance(value, str):
        return safe_url(value)
    if isinstance(value, dict):
        return {k: ("***" if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    else scrub(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, _depth + 1) for v in value]
    return value
