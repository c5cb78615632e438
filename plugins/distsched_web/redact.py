"""Secrets never leave the dashboard: URL passwords and values under secret-looking keys.

The storage URL's password is cut out by the project's URL redactor; values under keys such
as ``password``, ``token``, ``secret``, ``authorization`` or ``api_key`` become ``***`` in
everything the pages and the API show.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(r"pass(word)?|token|secret|authori[sz]ation|api[_-]?key|cookie|credential", re.I)
_URL_CREDS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)


def redact_url(url: str) -> str:
    """``scheme://user:***@host/...`` for any URL carrying a password (also inside text)."""
    if not isinstance(url, str) or "@" not in url:
        return url
    return _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON value with secret-looking keys masked and URL passwords cut."""
    if _depth > 20:
        return value
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: ("***" if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    else scrub(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, _depth + 1) for v in value]
    return value
