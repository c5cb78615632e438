"""Secrets never leave the dashboard: URL passwords and values under secret-looking keys.

URLs go through the project's one URL redactor (``distsched.urls.redact_text``) - passwords
and secret query values hidden; values under keys such as ``password``, ``token``,
``secret``, ``authorization`` or ``api_key`` become ``***`` in everything the pages and the
API show.
"""

from __future__ import annotations

import re
from typing import Any

from distsched.urls import redact_text

_SECRET_KEY = re.compile(r"pass(word)?|token|secret|authori[sz]ation|api[_-]?key|cookie|credential", re.I)


def safe_url(text: str) -> str:
    """``text`` with the secrets of its URLs hidden (a whole URL, or URLs inside a longer
    text such as an error message), by the project's one redactor."""
    if not isinstance(text, str):
        return text
    return redact_text(text)


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
