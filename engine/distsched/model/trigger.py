"""Triggers: when a job's schedule slots fall.

Three kinds, all pure (time is passed in as UNIX seconds, UTC):

``CronTrigger``   a cron expression (5 fields, or 6 with seconds first) read in the job's time
                  zone, with the day fields of Vixie/Debian cron (day-of-month and
                  day-of-week both restricted: a day matches if either does; but a field
                  that starts with ``*``, such as ``*/10``, counts as unrestricted, so both
                  must match - croniter's ``implement_cron_bug``). The cron library
                  (croniter) walks wall-clock time; this module maps each wall-clock time
                  to instants and applies the DST policies:
                  ``dst_gap``  a wall time that does not exist (spring forward):
                               ``shift`` runs it at the shifted instant (02:30 -> 03:30),
                               ``skip`` records it as a skipped slot,
                               ``transition`` (Debian cron's rule) runs a fixed-time job at
                               the transition instant (02:30 -> 03:00) and records a
                               wildcard job's (below) as skipped;
                  ``dst_fold`` a wall time that happens twice (fall back):
                               ``once`` runs the first occurrence, ``twice`` runs both. As in
                               cron, a *wildcard* job - its minute or hour field (or seconds
                               field) starts with ``*``, or ``@hourly`` - follows real time:
                               it runs in both occurrences whatever ``dst_fold`` says.
``EveryTrigger``  a fixed interval ("10s", "5m", "1h30m"), aligned to ``anchor`` (default the
                  UNIX epoch, so every node computes the same slots without coordination;
                  a job's ``start_date`` is its anchor, as APScheduler's IntervalTrigger
                  counts from its start_date).
``AtTrigger``     one instant (ISO-8601; a naive time is read in the job's time zone).

A cron or every trigger may have an active window - no slot before ``start`` (inclusive),
none after ``end`` (inclusive: APScheduler 3's ``start_date`` / ``end_date``) - and a
``jitter``: the most seconds a slot's start is delayed by (``TaskConfig.start_at``: a
deterministic function of the job's name and the slot, so the slot, the task's identity,
stays where the schedule puts it).
"""

from __future__ import annotations

import copy
import math
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError

from .errors import ValidationError
from .newer import init_fields, refuse_newer
from .times import TIME_MAX, check_time, iso_utc, to_datetime, valid_time

UTC = timezone.utc
DST_GAP = ("shift", "skip", "transition")
DST_FOLD = ("once", "twice")
MIN_INTERVAL = 0.01
MAX_CRON_LENGTH = 1024
MAX_INTERVAL = 366 * 24 * 3600.0
#: The longest ``jitter`` (an every job's is at most its interval too).
MAX_JITTER = 3600.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)


@attrs.frozen
class Slot:
    """One schedule slot: its instant, and why it must not run (``skip``) if it must not."""

    at: float
    skip: str | None = None


def parse_duration(value: Any, field: str = "every") -> float:
    """``"10s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` or a number of seconds -> seconds, from
    ``MIN_INTERVAL`` to ``MAX_INTERVAL`` (an interval, a timeout)."""
    seconds = parse_seconds(value, field)
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ValidationError(
            field, f"must be between {MIN_INTERVAL:g}s and {MAX_INTERVAL:g}s, not {value!r}"
        )
    return seconds


def parse_seconds(value: Any, field: str) -> float:
    """A duration with units or a number of seconds, as :func:`parse_duration` reads it,
    without its range: for a value whose own validator sets its range (a misfire grace or a
    retry delay may be 0, as ``"0s"`` as well as ``0``)."""
    if isinstance(value, bool):
        raise ValidationError(field, f"must be a duration such as '10s' or '5m', not {value!r}")
    if isinstance(value, timedelta):  # what APScheduler and Celery users pass
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _DURATION_RE.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2).lower()]
            pos = match.end()
        if pos != len(text) or not text:
            try:
                seconds = float(text)
            except ValueError:
                raise ValidationError(
                    field, f"must be a duration such as '10s', '5m', '1h30m', not {value!r}"
                ) from None
    else:
        raise ValidationError(field, f"must be a duration such as '10s' or '5m', not {value!r}")
    if not math.isfinite(seconds):
        raise ValidationError(field, f"must be a finite duration, not {value!r}")
    return seconds


def zone_name(value: Any, field: str = "timezone") -> str:
    """A time zone given as an IANA name, a ``zoneinfo.ZoneInfo`` (its key) or UTC
    (``datetime.timezone.utc``) -> its IANA name; a fixed offset or another tzinfo has no
    name the rules of its zone can be read by: refused, naming the field."""
    if isinstance(value, str):
        return value
    if isinstance(value, ZoneInfo) and value.key:
        return value.key
    if value is timezone.utc:
        return "UTC"
    raise ValidationError(field, f"must be an IANA time zone name such as 'Europe/Paris' (or its ZoneInfo), "
                                 f"not {value!r}")


def load_zone(name: str, field: str = "timezone") -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValidationError(field, f"must be an IANA time zone name such as 'Europe/Paris', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(field, f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')") from None


def _choice(options: tuple[str, ...]):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            raise ValidationError(attribute.name, f"must be one of {', '.join(options)}, not {value!r}")

    return check


def _zone(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    load_zone(value)


#: What cron's @ aliases stand for (for the wildcard test; croniter expands them itself).
_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
            "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


def is_wildcard(expr: str) -> bool:
    """A cron job that Vixie/Debian cron runs by real time across DST changes: its minute or
    hour field (or, with 6 fields, its seconds field) starts with ``*``."""
    fields = _ALIASES.get(expr.strip().lower(), expr).split()
    times = fields[:3] if len(fields) == 6 else fields[:2]
    return any(f.startswith("*") for f in times)


#: The window croniter searches for a step's next match. Most expressions match within a
#: year; a step that finds none in it is searched again over :data:`CRON_CYCLE_YEARS`.
CRON_NEAR_YEARS = 5
#: The Gregorian calendar repeats every 400 years (146,097 days, whole weeks): an expression
#: that matches any date matches one in every 400 years, so a step searched this far finds
#: the next match when there is one (``0 0 29 2 *``: 2096 to 2104, no Feb 29 in 2100), and
#: one that finds none there never matches.
CRON_CYCLE_YEARS = 400


def _croniter(expr: str, seconds: bool, years: int) -> croniter:
    try:
        # implement_cron_bug: the day fields of Vixie/Debian cron (see the module doc)
        return croniter(expr, datetime(2000, 1, 1), second_at_beginning=seconds, max_years_between_matches=years,
                        implement_cron_bug=True)
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError("cron", f"invalid expression {expr!r}: {exc}") from None


@lru_cache(maxsize=4096)
def _parsed_cron(expr: str, seconds: bool) -> croniter:
    """croniter's parse of ``expr`` (most of its cost), checked to fire at all; done once per
    expression and copied for every walk. It searches :data:`CRON_NEAR_YEARS` for a step's
    next match (cheap: a day field that cannot match, the ``30 2`` of ``0 0 30 2 mon``, is
    searched to the window's end at every step); a step it finds nothing for is searched again
    with :func:`_cycle_cron`. Raises ValidationError (not cached)."""
    parsed = _croniter(expr, seconds, CRON_NEAR_YEARS)
    try:
        copy.copy(parsed).get_next(datetime)
    except (CroniterError, ValueError):
        try:  # a rare date (Feb 29 on a Sunday), or none: the whole cycle, once per expression
            copy.copy(_cycle_cron(expr, seconds)).get_next(datetime)
        except (CroniterError, ValueError):
            raise ValidationError("cron", f"{expr!r} never fires: no date matches its day and month fields (none "
                                          f"in the {CRON_CYCLE_YEARS}-year cycle of the calendar)") from None
    return parsed


@lru_cache(maxsize=256)
def _cycle_cron(expr: str, seconds: bool) -> croniter:
    """``expr`` searching the whole calendar cycle (:data:`CRON_CYCLE_YEARS`) for a step's
    next match: it finds one whenever the expression fires at all."""
    return _croniter(expr, seconds, CRON_CYCLE_YEARS)


#: A list item of a cron field that is Jenkins' ``H`` (hashed): ``H``, ``H(0-29)``, ``H/15``;
#: a name holding the letter (``THU``) is not one.
_HASHED_ITEM = re.compile(r"^[Hh](?:\(|/|$)")
#: A list item of a cron field that is croniter's ``R`` (random): ``R``, ``R(0-29)``, ``R/15``.
_RANDOM_ITEM = re.compile(r"^[Rr](?:\(|/|$)")
_CRON_FIELDS = {5: ("minute", "hour", "day", "month", "weekday"),
                6: ("second", "minute", "hour", "day", "month", "weekday")}


def _item_matching(fields: list[str], pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """The first list item of a cron field that matches ``pattern``, and that field's name."""
    for name, field in zip(_CRON_FIELDS[len(fields)], fields):
        for item in field.split(","):
            if pattern.match(item):
                return item, name
    return None


def _refuse_hashed(expr: str, fields: list[str]) -> None:
    """``H`` values are refused naming the field (croniter's own error, "Hashed definitions
    must include hash_id", names neither; no stored job can hold one)."""
    found = _item_matching(fields, _HASHED_ITEM)
    if found:
        raise ValidationError("cron", f"H (hashed) fields are not supported: {expr!r} has {found[0]!r} in its "
                                      f"{found[1]} field; write the values themselves")


def refuse_random(expr: str) -> None:
    """``R`` values are refused naming the field, for a new job (the job builder): croniter
    draws the value each time it parses the expression, so every scheduler process - each
    leader after a failover, each ``explain`` - would fire the job at its own time. A stored
    job that holds one is still read (refusing it there would put it aside)."""
    fields = expr.split()
    found = None if expr.startswith("@") or len(fields) not in _CRON_FIELDS else _item_matching(fields, _RANDOM_ITEM)
    if found:
        raise ValidationError("cron", f"R (random) fields are not supported: {expr!r} has {found[0]!r} in its "
                                      f"{found[1]} field, and each scheduler would draw its own value (the job "
                                      "would fire at another time after a failover); write the value itself")


def _window_time(field: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            check_time(field, value)

    return check


def check_window(start: float | None, end: float | None) -> None:
    """``end`` after ``start`` (both given), or a ValidationError naming both fields."""
    if start is not None and end is not None and not end > start:
        raise ValidationError("end_date", f"must be after start_date ({iso_utc(end)} is not after "
                                          f"{iso_utc(start)}): the job would never fire")


def check_jitter(value: Any, interval: float | None = None) -> None:
    """``jitter``: 0 to :data:`MAX_JITTER` seconds and, for an every job, at most its interval
    (a delay longer than that would start a slot after the next one's)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_JITTER:
        raise ValidationError("jitter", f"must be from 0 to {MAX_JITTER:g} seconds (1 hour), not {value!r}")
    if interval is not None and value > interval:
        raise ValidationError("jitter", f"{value:g}s is longer than the interval ({interval:g}s): a slot would "
                                        "start after the next one's")


def _jitter(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_jitter(value, getattr(instance, "interval", None))


def _windowed(trigger: Any, slot: Slot | None) -> Slot | None:
    """``slot`` unless it is after the trigger's ``end`` (None: the window is over)."""
    end = trigger.end
    return None if slot is None or (end is not None and slot.at > end) else slot


@attrs.frozen
class CronTrigger:
    expr: str
    timezone: str = attrs.field(default="UTC", validator=_zone)
    dst_gap: str = attrs.field(default="shift", validator=_choice(DST_GAP))
    dst_fold: str = attrs.field(default="once", validator=_choice(DST_FOLD))
    #: The active window: no slot before ``start``, none after ``end`` (both inclusive).
    start: float | None = attrs.field(default=None, validator=_window_time("start_date"))
    end: float | None = attrs.field(default=None, validator=_window_time("end_date"))
    #: The most seconds a slot's start is delayed by (``TaskConfig.start_at``).
    jitter: float = attrs.field(default=0.0, validator=_jitter)
    _zone: ZoneInfo = attrs.field(init=False, repr=False, eq=False)
    _seconds: bool = attrs.field(init=False, repr=False, eq=False)
    #: Runs by real time across DST changes, as cron runs it (see :func:`is_wildcard`).
    wildcard: bool = attrs.field(init=False, repr=False, eq=False)

    kind = "cron"

    def __attrs_post_init__(self) -> None:
        expr = self.expr
        if not isinstance(expr, str) or not expr.strip():
            raise ValidationError("cron", f"must be a cron expression such as '*/5 * * * *', not {expr!r}")
        if len(expr) > MAX_CRON_LENGTH:
            raise ValidationError("cron", f"expression is {len(expr)} characters; the limit is {MAX_CRON_LENGTH}")
        fields = expr.split()
        if not expr.startswith("@") and len(fields) not in (5, 6):
            raise ValidationError(
                "cron",
                f"{expr!r} has {len(fields)} fields; use 5 (minute hour day month weekday) "
                "or 6 (second first)",
            )
        seconds = len(fields) == 6
        if not expr.startswith("@"):
            _refuse_hashed(expr, fields)
        _parsed_cron(expr, seconds)
        object.__setattr__(self, "_zone", load_zone(self.timezone))
        object.__setattr__(self, "_seconds", seconds)
        object.__setattr__(self, "wildcard", is_wildcard(expr))
        check_window(self.start, self.end)

    @property
    def start_date(self) -> float | None:
        return self.start

    def dst_summary(self) -> str:
        """What the DST policies do for this expression, in words (for ``explain``)."""
        gap = {"shift": "shifted by the gap", "skip": "skipped",
               "transition": "skipped" if self.wildcard else "run at the transition"}[self.dst_gap]
        fold = "both" if self.wildcard or self.dst_fold == "twice" else "the first"
        why = " (wildcard minute/hour: real time, as cron)" if self.wildcard and self.dst_fold == "once" else ""
        return (f"dst_gap={self.dst_gap}, dst_fold={self.dst_fold}: a wall time in a spring-forward gap is {gap}; "
                f"a repeated wall time runs {fold} occurrence{'s' if fold == 'both' else ''}{why}")

    def _walls_after(self, wall: datetime, *, inclusive: bool = False):
        """The expression's wall times after ``wall`` (and ``wall`` itself if ``inclusive``
        and it matches), in order, until year 9999 ends. Each step searches a few years, then
        (no match there: ``0 0 29 2 *`` from 2096) the whole calendar cycle, which finds the
        next match of an expression that fires at all."""
        if inclusive and self._matches(wall):
            yield wall
        near = copy.copy(_parsed_cron(self.expr, self._seconds))
        cycle: croniter | None = None
        while True:
            try:
                try:
                    near.set_current(wall, force=True)
                    wall = near.get_next(datetime)
                except CroniterBadDateError:
                    cycle = cycle or copy.copy(_cycle_cron(self.expr, self._seconds))
                    cycle.set_current(wall, force=True)
                    wall = cycle.get_next(datetime)
            except (CroniterError, ValueError, OverflowError):  # OverflowError: past year 9999
                return
            yield wall

    def _matches(self, wall: datetime) -> bool:
        """``wall`` is one of the expression's wall times. croniter only walks forward from a
        time before it, and nothing is before 0001-01-01 00:00 (``datetime.min``, where a
        walk from the start of the calendar begins): the calendar repeats every 400 years
        (146,097 days, whole weeks), so the same wall time 400 years on is asked instead."""
        try:
            later = wall.replace(year=wall.year + 400)
        except ValueError:  # past year 9999: a wall time no walk starts from
            return False
        step = timedelta(seconds=1) if self._seconds else timedelta(minutes=1)
        return next(self._walls_after(later - step), None) == later

    def _instants(self, wall: datetime) -> list[Slot]:
        """The instants of wall time ``wall``; none when it has none a date can show (a wall
        time near year 1 or 9999 whose instant falls before year 1 or after 9999 UTC)."""
        try:
            return self._instants_of(wall)
        except (ValueError, OverflowError):
            return []

    def _instants_of(self, wall: datetime) -> list[Slot]:
        zone = self._zone
        first = wall.replace(tzinfo=zone, fold=0)
        utc0 = first.astimezone(UTC)
        if utc0.astimezone(zone).replace(tzinfo=None) != wall:
            # Does not exist (spring forward); fold=0 reads it with the pre-transition
            # offset, which is the wall time shifted by the gap.
            if self.dst_gap == "transition" and not self.wildcard:
                return [Slot(self._transition(wall))]
            return [Slot(utc0.timestamp(), None if self.dst_gap == "shift" else "dst-gap")]
        utc1 = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if utc1 != utc0 and (self.dst_fold == "twice" or self.wildcard):
            return [Slot(utc0.timestamp()), Slot(utc1.timestamp())]
        return [Slot(utc0.timestamp())]

    def _transition(self, wall: datetime) -> float:
        """The instant a spring-forward gap containing the non-existent ``wall`` ends: the
        first whole minute after it that exists (every zone's gaps are whole minutes)."""
        zone = self._zone
        probe = wall.replace(second=0, microsecond=0)
        for _ in range(2 * 24 * 60):
            probe += timedelta(minutes=1)
            aware = probe.replace(tzinfo=zone, fold=0)
            if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == probe:
                return aware.timestamp()
        raise ValueError(f"no end found for the DST gap at {wall.isoformat()} in {self.timezone}")  # pragma: no cover

    def _ambiguous_or_missing(self, wall: datetime) -> bool:
        zone = self._zone
        first = wall.replace(tzinfo=zone, fold=0)
        if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
            return True  # does not exist
        return first.utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()

    def _next_plain(self, t: float) -> Slot | None:
        """The common case away from DST transitions, in one croniter step.

        When t's own wall time is unambiguous and no transition happened in the 3 hours
        before it, every wall time before it maps to an instant before t, so croniter's next wall time is the answer - unless that wall time is
        itself missing or repeated, where the careful walk takes over (returns None).
        """
        local = to_datetime(t, self._zone)
        before = to_datetime(t - 3 * 3600, self._zone)
        if local is None or before is None:  # near year 1 or 9999: the careful walk
            return None
        wall = local.replace(tzinfo=None)
        if self._ambiguous_or_missing(wall):
            return None
        if before.utcoffset() != local.utcoffset():
            # Just after a transition: a non-existent wall time before t's can still map
            # (shifted) to an instant after t - the careful walk finds it.
            return None
        nxt = next(self._walls_after(wall), None)
        if nxt is None or self._ambiguous_or_missing(nxt):
            return None
        at = nxt.replace(tzinfo=self._zone).timestamp()
        return Slot(at) if at > t else None

    def next_after(self, t: float) -> Slot | None:
        """The first slot strictly after ``t`` inside the window (none before ``start``; None
        after ``end``)."""
        start = self.start
        if start is not None and t < start:
            t = min(start - 1e-6, math.nextafter(start, -math.inf))  # the slot at start is after it
        slot = self._unbounded_next(t)
        while slot is not None and start is not None and slot.at < start:
            slot = self._unbounded_next(slot.at)
        return _windowed(self, slot)

    def _unbounded_next(self, t: float) -> Slot | None:
        """The first slot strictly after ``t``, or None when the expression never fires again
        - nor before the end of year 9999 (UTC): the times a date can show (``model.times``)."""
        try:
            slot = self._next_after(t)
        except (ValueError, OverflowError):
            # The next wall time maps past year 9999 UTC (a zone behind UTC on 9999-12-31):
            # no instant a date can show, now or later.
            return None
        return slot if slot is None or slot.at <= TIME_MAX else None

    def _next_after(self, t: float) -> Slot | None:
        if self.timezone == "UTC":
            start = to_datetime(t, UTC)
            if start is None and not t < 0:  # after year 9999, or NaN
                return None
            # before year 1: from the calendar's first wall time, which is after t
            wall = datetime.min if start is None else start.replace(tzinfo=None)
            for nxt in self._walls_after(wall, inclusive=start is None):
                at = nxt.replace(tzinfo=UTC).timestamp()
                if at > t:
                    return Slot(at)
            return None
        fast = self._next_plain(t)
        if fast is not None:
            return fast
        # Walk wall-clock time from a little before t's wall time (an instant in a repeated
        # hour can map to an earlier wall time) and keep the earliest instant after t. Near
        # the ends of the calendar: from the first wall time (t's is before year 1 there), or
        # none at all (t's is after year 9999 there).
        local = to_datetime(t, self._zone)
        if local is None:
            if t > 0:
                return None
            wall = datetime.min
        else:
            wall = local.replace(tzinfo=None)
            wall = wall - timedelta(hours=3) if wall - datetime.min > timedelta(hours=3) else datetime.min
        best: Slot | None = None
        best_wall: datetime | None = None
        # From the calendar's first wall time, that one is a slot too when it matches (its
        # instant, 0001-01-01 00:00 local, is after t in a zone behind UTC).
        for count, nxt in enumerate(self._walls_after(wall, inclusive=wall == datetime.min)):
            for slot in self._instants(nxt):
                if slot.at > t and (
                    best is None
                    or slot.at < best.at
                    # A shifted non-existent wall time (dst_gap=skip) can land on the instant
                    # of a real slot: the real slot wins, it must not be recorded as skipped.
                    or (slot.at == best.at and best.skip is not None and slot.skip is None)
                ):
                    best = slot
                    shown = to_datetime(slot.at, self._zone)
                    best_wall = shown.replace(tzinfo=None) if shown is not None else nxt
            # A later wall time maps to an instant whose own wall time differs from it by at
            # most a DST shift (<= 2 h): compare wall times, not wall time to UTC (the zone's
            # offset, up to 14 h, must not end the walk early).
            if best_wall is not None and nxt - best_wall > timedelta(hours=3):
                break
            if count > 100_000:
                break
        return best

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cron", "expr": self.expr, "timezone": self.timezone,
                "dst_gap": self.dst_gap, "dst_fold": self.dst_fold, **_window_dict(self)}


def _window_dict(trigger: Any) -> dict[str, Any]:
    """The window and jitter fields of a trigger's dict, only those set: the record of a job
    without them is the one written before they existed (and reads back the same)."""
    out: dict[str, Any] = {}
    if getattr(trigger, "start", None) is not None:
        out["start"] = trigger.start
    if trigger.end is not None:
        out["end"] = trigger.end
    if trigger.jitter:
        out["jitter"] = trigger.jitter
    return out


def _interval(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ValidationError("every", f"must be between {MIN_INTERVAL:g}s and {MAX_INTERVAL:g}s, not {value!r}")


@attrs.frozen
class EveryTrigger:
    interval: float = attrs.field(validator=_interval)
    # a trigger read back from a store is built with its validators: a stored one that
    # holds a time no date can show is moved aside (it took down `jobs list` and the
    # dashboard's jobs pages), and a parsed `at` past year 9999 UTC is refused naming it
    anchor: float = attrs.field(default=0.0, validator=valid_time)
    timezone: str = attrs.field(default="UTC", validator=_zone)
    #: No slot after ``end`` (inclusive); the window's start is ``anchor`` (``start_date``).
    end: float | None = attrs.field(default=None, validator=_window_time("end_date"))
    #: The most seconds a slot's start is delayed by (``TaskConfig.start_at``), <= interval.
    jitter: float = attrs.field(default=0.0, validator=_jitter)

    kind = "every"

    def __attrs_post_init__(self) -> None:
        check_window(self.start_date, self.end)

    @property
    def start_date(self) -> float | None:
        """The job's ``start_date``: its anchor when one was given (the epoch is no start)."""
        return self.anchor if self.anchor else None

    def next_after(self, t: float) -> Slot | None:
        """The first slot strictly after ``t`` inside the window (None after ``end``)."""
        return _windowed(self, self._unbounded_next(t))

    def _unbounded_next(self, t: float) -> Slot | None:
        """The first slot strictly after ``t``, or None when it falls past year 9999 (UTC)."""
        if t < self.anchor:
            return Slot(self.anchor)
        # Millisecond resolution keeps slot ids stable across nodes. The comparisons are made
        # on the rounded instants: a slot rounded down onto (or below) ``t`` is not after it.
        def at(k: int) -> float:
            return round(self.anchor + k * self.interval, 3)

        k = math.floor((t - self.anchor) / self.interval) + 1
        while k > 0 and at(k - 1) > t:  # float rounding overshot: do not skip a slot
            k -= 1
        while at(k) <= t:  # float rounding undershot
            k += 1
        # None past year 9999 (UTC): no date can show that slot (``model.times``).
        return Slot(at(k)) if at(k) <= TIME_MAX else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "every", "interval": self.interval, "anchor": self.anchor, "timezone": self.timezone,
                **_window_dict(self)}


@attrs.frozen
class AtTrigger:
    at: float = attrs.field(validator=valid_time)  # as EveryTrigger.anchor
    timezone: str = attrs.field(default="UTC", validator=_zone)

    kind = "at"

    @classmethod
    def parse(cls, value: Any, timezone_name: str = "UTC") -> AtTrigger:
        zone = load_zone(timezone_name)
        if isinstance(value, datetime):
            when = value
        elif isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError("at", f"must be an ISO-8601 date-time such as '2030-01-01T09:00:00+01:00', not {value!r}") from None
        else:
            raise ValidationError("at", f"must be an ISO-8601 date-time, not {value!r}")
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        return cls(when.timestamp(), timezone_name)

    def next_after(self, t: float) -> Slot | None:
        return Slot(self.at) if self.at > t else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "at", "at": self.at, "timezone": self.timezone}


Trigger = CronTrigger | EveryTrigger | AtTrigger


def trigger_from_dict(data: dict[str, Any]) -> Trigger:
    """A trigger from its stored dict (``to_dict()``). A field its kind does not know (a
    trigger option of a newer version) is refused naming it (``trigger.<field>``): read
    without it, the job would fire on another schedule than the one stored
    (``distsched.model.newer``)."""
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _TRIGGER_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValidationError("trigger", f"unknown kind {kind!r} (cron, every, at)")
    refuse_newer("trigger", data, init_fields(cls), "trigger")
    return cls(**data)  # type: ignore[no-any-return]


_TRIGGER_KINDS: dict[str, type] = {"cron": CronTrigger, "every": EveryTrigger, "at": AtTrigger}

