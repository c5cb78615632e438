"""When a one-off task submitted for later is due: ``submit(..., delay=)`` / ``at=``.

Celery's ``countdown`` / ``eta``, RQ's ``enqueue_in`` / ``enqueue_at``, arq's ``_defer_by`` /
``_defer_until``. The time becomes the task's ``not_before``: the stores' ready queues are
ordered by it, the leader dispatches the task when it is due (up to ``fire_ahead`` early,
and the worker holds such a task until its time), and a cancel before then means it never
runs.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from .errors import ValidationError
from .times import iso_utc
from .trigger import parse_seconds
from .words import duration_words

#: The furthest ahead a task may be submitted (366 days). A wait longer than that is a
#: calendar's (an ``at`` job's) work, and such a time is most often a mistake: epoch
#: milliseconds given as seconds, or a year typed wrong.
MAX_AHEAD = 366 * 86400.0
_MAX_WORDS = "366 days"
#: How far in the past an ``at`` may be before submitting it says so (a WARNING; it is due
#: at once either way): a job's default ``misfire_grace``. A time a little past is a clock
#: or a network's delay; one long past (epoch 0, a year typed wrong, a time in another zone
#: than meant) is most often a mistake, which ran at once without a word.
PAST_GRACE = 60.0


def due_at(now: float, *, delay: Any = None, at: Any = None, field_suffix: str = "") -> float | None:
    """The ``not_before`` of a task submitted at ``now`` (the store's clock) with ``delay``
    or ``at``; None when neither is given (due at once).

    ``delay``: seconds (int or float), a duration string (``"10s"``, ``"5m"``, ``"1h30m"``)
    or a ``datetime.timedelta``; 0 or more. ``at``: an aware ``datetime``, an ISO-8601
    string with an offset (``2030-01-01T09:00:00Z``, ``...+01:00``) or UNIX epoch seconds;
    a naive datetime or an ISO string without an offset is refused (whose local time it is
    cannot be told), and a time already past is due at once. Either may be at most
    :data:`MAX_AHEAD` ahead. A bad value raises a ValidationError naming the field
    (``delay`` / ``at`` plus ``field_suffix``, e.g. ``delay[3]``) and the reason."""
    if delay is not None and at is not None:
        raise ValidationError("at" + field_suffix, "give delay or at, not both")
    if delay is not None:
        field = "delay" + field_suffix
        seconds = parse_seconds(delay, field)
        if seconds < 0:
            raise ValidationError(field, f"must be 0 or more seconds, not {delay!r}")
        if seconds > MAX_AHEAD:
            raise ValidationError(field, f"{delay!r} is more than {_MAX_WORDS} ahead: a wait that long is a job's "
                                         "(add_job(at=...)), not a submitted task's")
        return now + seconds
    if at is not None:
        when = _epoch(at, "at" + field_suffix)
        if when > now + MAX_AHEAD:
            raise ValidationError("at" + field_suffix, f"{at!r} is more than {_MAX_WORDS} ahead (epoch milliseconds "
                                                      "given as seconds?): a wait that long is a job's "
                                                      "(add_job(at=...)), not a submitted task's")
        return max(when, now)
    return None


def epoch_seconds(value: Any, field: str) -> float:
    """A date-time as UNIX seconds: an aware ``datetime``, ISO-8601 text with an offset or
    epoch seconds; a naive time, a date or anything else is refused naming ``field``."""
    return _epoch(value, field)


def past_at(now: float, at: Any, field_suffix: str = "") -> str | None:
    """What to warn of an ``at`` more than :data:`PAST_GRACE` before ``now`` (the store's
    clock), which :func:`due_at` makes due at once; None for any other (or no) ``at``. Call it
    after ``due_at`` accepted the value."""
    if at is None:
        return None
    when = _epoch(at, "at" + field_suffix)
    late = now - when
    if late <= PAST_GRACE:
        return None
    ago = f"{late / 86400:,.0f} days" if late >= 2 * 86400 else duration_words(round(late))
    return (f"at{field_suffix}: {iso_utc(when)} is {ago} in the past: the task is due at "
            f"once (meant for later? check its year, its time zone, that it is epoch seconds)")


def _epoch(value: Any, field: str) -> float:
    """``at`` as UNIX seconds."""
    if isinstance(value, bool):
        raise ValidationError(field, f"must be a date-time (aware datetime, ISO-8601 or epoch seconds), not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, datetime):
        seconds = _aware(value, field, value)
    elif isinstance(value, date):
        raise ValidationError(field, f"must be a date-time with a time zone, not the date {value.isoformat()!r}")
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValidationError(field, f"must be an ISO-8601 date-time such as '2030-01-01T09:00:00Z' or "
                                             f"epoch seconds, not {value!r}") from None
            seconds = _aware(parsed, field, value)
    else:
        raise ValidationError(field, f"must be a date-time (aware datetime, ISO-8601 or epoch seconds), not "
                                     f"{type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValidationError(field, f"must be a finite time, not {value!r}")
    return seconds


def _aware(when: datetime, field: str, given: Any) -> float:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError(field, f"{str(given)!r} has no time zone: give one (an aware datetime, or an ISO "
                                     "offset such as 'Z' or '+01:00'); a naive time is refused, not guessed")
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError) as exc:
        raise ValidationError(field, f"{str(given)!r} is not a time this system can hold ({exc})") from None
