"""A job's schedule in words, for people: ``every 2s``, ``at 02:30 (Europe/Paris)``.

Cron expressions are described by ``cron-descriptor``; an expression it cannot describe is
shown as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .times import iso_utc
from .trigger import AtTrigger, CronTrigger, EveryTrigger

#: The aliases croniter accepts, as 5-field expressions (cron-descriptor does not read them).
_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
            "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


def duration_words(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``0.25`` -> ``250ms``; ``86400`` -> ``1d``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    out = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            count = int(rest // size)
            out.append(f"{count}{unit}")
            rest -= count * size
    if rest or not out:
        out.append(f"{round(rest, 3):g}s")
    return "".join(out)


def cron_words(expr: str) -> str:
    """A cron expression (5 fields, or 6 with seconds first) in English; the expression
    itself when it cannot be described."""
    try:
        from cron_descriptor import ExpressionDescriptor, Options
    except ImportError:  # pragma: no cover - a dependency of distsched
        return f"cron {expr!r}"
    fields = _ALIASES.get(expr.strip().lower(), expr).split()
    if len(fields) == 6:  # seconds first: cron-descriptor reads 7 fields as seconds + year
        fields.append("*")
    options = Options()
    options.use_24hour_time_format = True
    try:
        text = ExpressionDescriptor(" ".join(fields), options).get_description()
    except Exception:
        return f"cron {expr!r}"
    return text[:1].lower() + text[1:]


def window_words(trigger: Any) -> str:
    """A trigger's window and jitter in words (``, from 2030-01-01T00:00:00Z until ...,
    jitter 30s``), or "" when it has none."""
    start = getattr(trigger, "start_date", None)
    end = getattr(trigger, "end", None)
    jitter = getattr(trigger, "jitter", 0.0)
    window = " ".join(([f"from {iso_utc(start)}"] if start is not None else [])
                      + ([f"until {iso_utc(end)}"] if end is not None else []))
    parts = ([window] if window else []) + ([f"jitter {duration_words(jitter)}"] if jitter else [])
    return (", " + ", ".join(parts)) if parts else ""


def schedule_words(trigger: Any) -> str:
    """A trigger in words: ``every 10s``, ``at 02:30 (cron '30 2 * * *', Europe/Paris)``,
    ``once at 2030-01-01T08:00:00Z``; a window and a jitter follow (``every 10s, from
    2030-01-01T00:00:00Z until 2030-02-01T00:00:00Z, jitter 5s``)."""
    if isinstance(trigger, CronTrigger):
        zone = "" if trigger.timezone == "UTC" else f", {trigger.timezone}"
        return f"{cron_words(trigger.expr)} (cron '{trigger.expr}'{zone}){window_words(trigger)}"
    if isinstance(trigger, EveryTrigger):
        return f"every {duration_words(trigger.interval)}{window_words(trigger)}"
    if isinstance(trigger, AtTrigger):
        return f"once at {iso_utc(trigger.at)}"
    return "no schedule"


def names_listed(names: Iterable[str], most: int = 20) -> str:
    """Sorted distinct ``names``, the first ``most`` of them, then ``(+N more)``; ``nothing``
    for none: what the live workers have or offer, in a message (a worker may advertise
    4,096 function names)."""
    distinct = sorted(set(names))
    shown = ", ".join(distinct[:most]) or "nothing"
    return shown + (f" (+{len(distinct) - most} more)" if len(distinct) > most else "")


__all__ = ["cron_words", "duration_words", "names_listed", "schedule_words", "window_words"]
