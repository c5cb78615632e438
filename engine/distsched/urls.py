"""The one URL redactor: what may be shown of a storage (or any) URL in messages and logs.

>>> redact_url("redis://default:s3cret@db:6379/0?namespace=x&sentinel_password=pw")
'redis://default:***@db:6379/0?namespace=x&sentinel_password=***'

Every output of a URL (the CLI, the engine's errors, the storage plugins' errors and log
lines, ``repr(EngineConfig)``) goes through :func:`redact_url`. It hides:

* the password of the userinfo (``user:PASSWORD@``), even when it holds unencoded ``@``,
  ``/``, ``?``, ``#`` or ``:`` characters (``p?w``, ``Pass#w/rd``, ``se/cret``, ``p@ss``):
  the userinfo ends at the *last* ``@`` whose user part is a plain name;
* the value of every query parameter whose name says it is a secret (``password``,
  ``sentinel_password``, ``passwd``, ``pwd``, ``secret``, ``token``, ``api_key``, ``auth``,
  ``credential``...), up to the next ``&name=`` (so an unencoded ``&`` or ``#`` inside the
  value does not end it), or the end of the URL.

:func:`redact_text` applies it to every URL inside a longer text (an error message).

It errs on the side of hiding: text it cannot place is redacted rather than shown. It never
raises and never decodes anything it shows.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from .model.errors import ValidationError
from .model.trigger import parse_seconds

#: What replaces a secret.
REDACTED = "***"

#: A query parameter name that holds a secret (matched case-insensitively, after
#: percent-decoding, anywhere in the name: ``sentinel_password``, ``X-Auth-Token``...).
SECRET_PARAM = re.compile(r"pass|pwd|secret|token|api[_-]?key|auth|credential|signature|private", re.IGNORECASE)

#: A query parameter start: ``name=`` at the start of the query or after ``&`` / ``;``.
_PARAM = re.compile(r"(?:^|(?<=[&;]))([^&;=]*)=")
#: A URL inside a longer text.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
#: Where a query surely starts: '?name='.
_QUERY = re.compile(r"\?[A-Za-z_][A-Za-z0-9_.\-]*=")
#: Characters that end a user name: a user part containing one is not a userinfo.
_NOT_USER = re.compile(r"[/?#]")


def redact_url(url: object) -> str:
    """``url`` with its passwords and secret query values replaced by ``***``."""
    text = url if isinstance(url, str) else str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    prefix = f"{scheme}://" if sep else ""
    rest = _redact_userinfo(rest)
    return prefix + _redact_query(rest)


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with every URL in it redacted by
    :func:`redact_url`; a URL runs from its ``scheme://`` to the next whitespace."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def userinfo_end(url: str) -> int:
    """The index in ``url`` of the ``@`` that ends its userinfo, or -1 when it has none.

    The same rule as :func:`redact_url`, so a URL parser can refuse a URL whose userinfo it
    would read differently (an unencoded '/', '?' or '#' in the password) without echoing it.
    """
    scheme, sep, rest = url.partition("://")
    offset = len(scheme) + len(sep) if sep else 0
    at = _userinfo_at(rest if sep else url)
    return at + offset if at >= 0 else -1


def _userinfo_at(rest: str) -> int:
    # The userinfo ends at an '@' before the query when there is one there ('?name=' starts
    # the query; a '?' in an unencoded password is rarely followed by 'name='), else at the
    # last '@' of all whose user part is a plain name.
    query = _QUERY.search(rest)
    for limit in ((query.start(),) if query else ()) + (len(rest),):
        at = limit
        while True:
            at = rest.rfind("@", 0, at)
            if at < 0:
                break
            if not _NOT_USER.search(rest[:at].partition(":")[0]):
                return at
            # An '@' in the path or the query (its "user" holds '/', '?', '#'): an earlier one?
    return -1


def _redact_userinfo(rest: str) -> str:
    at = _userinfo_at(rest)
    if at < 0:
        return rest
    user, colon, _password = rest[:at].partition(":")
    return f"{user}:{REDACTED}@{rest[at + 1:]}" if colon else f"{user}@{rest[at + 1:]}"


def _redact_query(rest: str) -> str:
    """Hide the values of secret parameters in the query (the text after the first '?')."""
    head, q, query = rest.partition("?")
    if not q:
        return rest
    starts = list(_PARAM.finditer(query))
    out = [head, "?", query[: starts[0].start()] if starts else query]
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(query)
        name = match.group(1)
        if SECRET_PARAM.search(unquote(name)):
            # Everything up to the next parameter: a separator may belong to the value.
            tail = query[match.end():end]
            sep = tail[-1] if tail.endswith(("&", ";")) and index + 1 < len(starts) else ""
            out.append(f"{name}={REDACTED}{sep}")
        else:
            out.append(query[match.start():end])
    return "".join(out)


# -- options of a storage URL ------------------------------------------------------------
# For storage plugins that read options from their URL's query string (``?retention=1d``):
# each check raises a ValidationError on the field ``storage`` that shows the URL redacted
# and names the option and the reason.

#: The spellings of a true and a false option value.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def url_error(url: str, reason: str) -> ValidationError:
    """A ValidationError about storage URL ``url`` (shown redacted)."""
    return ValidationError("storage", f"{redact_url(url)}: {reason}")


def refuse_control_characters(url: str) -> None:
    """Refuse a storage URL that holds an ASCII control character (a newline, a tab...) with
    a ValidationError naming it (the URL shown redacted and escaped). Python's URL parser
    drops tabs and newlines without a word: a password ``pa\\nss`` would be read as ``pass``,
    or the user name and password misread as part of the host."""
    bad = next((c for c in url if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        shown = redact_url(url).encode("unicode_escape").decode("ascii")
        raise ValidationError("storage", f"{shown}: holds a control character ({bad!r}): remove it, or "
                                         "percent-encode it in a user name or password (%0A for a newline)")


def option_bool(url: str, name: str, value: Any) -> bool:
    """Option ``name`` as a boolean (``1/true/yes/on``, ``0/false/no/off``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise url_error(url, f"option {name} must be true or false, not {value!r}")


def option_seconds(url: str, name: str, value: Any, low: float, high: float) -> float:
    """Option ``name`` as seconds between ``low`` and ``high``: a number or a duration (``5s``)."""
    try:
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = parse_seconds(value, name)  # the range is checked below, naming it
        else:
            number = value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError
        number = float(number)
    except (ValueError, ValidationError):
        raise url_error(url, f"option {name} must be a number of seconds (or a duration such as '5s'), "
                             f"not {value!r}") from None
    if not low <= number <= high:
        raise url_error(url, f"option {name} must be between {low:g} and {high:g} seconds, not {value!r}")
    return number


def option_int(url: str, name: str, value: Any, low: int, high: int) -> int:
    """Option ``name`` as an integer between ``low`` and ``high``."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise url_error(url, f"option {name} must be an integer, not {value!r}") from None
    if not low <= number <= high:
        raise url_error(url, f"option {name} must be between {low} and {high}, not {value!r}")
    return number


__all__ = ["FALSE_WORDS", "REDACTED", "SECRET_PARAM", "TRUE_WORDS", "option_bool", "option_int", "option_seconds",
           "redact_text", "redact_url", "refuse_control_characters", "url_error", "userinfo_end"]
