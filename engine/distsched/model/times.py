"""Times as the engine keeps them: seconds since the epoch, UTC, a float, on the store's clock.

A time the engine stores must be one a date can show: from year 1 to year 9999 (UTC), the
range of ``datetime``. A store takes more (a float column, a JSON number, a sorted-set score
take 1e12, year 33658) and every page or command that showed such a time ended in "year
33658 is out of range": one record took down ``distsched jobs list`` and the dashboard's
overview, jobs or workers page. The model refuses such a time where it builds a job, a
trigger or a worker (:func:`check_time`), so a stored record holding one is moved aside when
read; :func:`to_datetime` is the display side, for a time that comes from elsewhere (a
lease's, an event's) or is shown in a zone that pushes it past year 9999.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from math import isfinite
from typing import Any

from .errors import ValidationError

#: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times a date can show.
TIME_MIN = -62135596800.0
TIME_MAX = 253402300799.0


def is_time(value: Any) -> bool:
    """``value`` is a number (not a bool) from :data:`TIME_MIN` to :data:`TIME_MAX` (so not
    NaN nor an infinity)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and isfinite(value)
            and TIME_MIN <= value <= TIME_MAX)


def check_time(field: str, value: Any) -> None:
    """Raise :class:`ValidationError` naming ``field`` unless :func:`is_time` (``value``)."""
    if not is_time(value):
        raise ValidationError(field, f"must be a time from year 1 to 9999 (seconds since the epoch, UTC), "
                                     f"not {value!r}")


def valid_time(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator: :func:`check_time` of the field's value, naming the field (a job's
    state, a trigger's time, a worker's start: a record read back from a store holding a
    time no date can show fails its decode and is moved aside)."""
    check_time(attribute.name, value)


def to_datetime(at: float, tz: tzinfo) -> datetime | None:
    """``datetime.fromtimestamp(at, tz)``, or None when no date can show ``at`` (out of
    range, NaN, or past year 9999 in ``tz``): the caller shows the number instead."""
    try:
        return datetime.fromtimestamp(at, tz)
    except (ValueError, OverflowError, OSError, TypeError):
        return None


def iso_utc(at: float) -> str:
    """``at`` as an ISO 8601 UTC time (``2030-01-01T08:00:00Z``), or the number when no date
    can show it."""
    when = to_datetime(at, timezone.utc)
    return when.isoformat().replace("+00:00", "Z") if when else repr(at)


__all__ = ["TIME_MAX", "TIME_MIN", "check_time", "is_time", "iso_utc", "to_datetime", "valid_time"]
