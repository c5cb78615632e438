"""Secrets masked in what distsched shows of a job, a task or a result.

>>> mask_secrets({"headers": {"Authorization": "Bearer s3cret"}, "url": "https://u:pw@h/x?token=t"})
{'headers': {'Authorization': '***'}, 'url': 'https://u:***@h/x?token=***'}

Every output that shows a job's target, options, arguments or a task's result - the CLI
(``jobs list``, ``jobs sync``, ``scheduler --jobs``, ``tasks list`` / ``show`` / ``submit
--wait``, the task log) and the web dashboard's pages and API - goes through
:func:`mask_secrets`. It hides:

* in every string, the passwords and secret query values of the URLs in it, by the one URL
  redactor (:func:`distsched.urls.redact_text`);
* the value under every key whose name says it is a secret (:data:`SECRET_KEY`:
  ``password``, ``token``, ``secret``, ``authorization``, ``api_key``, ``cookie``,
  ``credential``...), at any depth: ``***`` (an empty value or ``null`` is shown as it is).

It errs on the side of hiding: what is nested deeper than it looks is shown as ``***``.
It never raises and never changes its argument.
"""

from __future__ import annotations

import re
from typing import Any

from .urls import REDACTED, redact_text

#: A key whose value is a secret (matched case-insensitively, anywhere in the key).
SECRET_KEY = re.compile(r"pass(word)?|token|secret|authori[sz]ation|api[_-]?key|cookie|credential", re.IGNORECASE)

#: How deep :func:`mask_secrets` looks; what is nested deeper is shown as ``***``.
MAX_DEPTH = 20


def mask_secrets(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (a string or a JSON-like value: dicts, lists, tuples) with the
    secrets masked: URL passwords and secret query values in every string, the values of
    secret-looking keys. Tuples come back as lists; other values as they are."""
    if isinstance(value, str):
        return redact_text(value)
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


__all__ = ["MAX_DEPTH", "SECRET_KEY", "mask_secrets"]
