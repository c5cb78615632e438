"""Building and validating jobs from plain keyword arguments (a jobs file, the facade, the CLI).

Pure like the rest of the model: no I/O, no clock reads (``first_fire`` is given ``now``).

>>> config = build_job("tick", every="2s", target="tick")
>>> build_job("tick", **job_fields(config)) == config
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .due import epoch_seconds
from .errors import ValidationError
from .job import DEFAULT_MAX_BACKLOG, MisfirePolicy, OverlapPolicy, TaskConfig
from .retry import MAX_INTERVALS, RetryPolicy
from .spec import TaskSpec
from .times import check_time, iso_utc
from .trigger import (
    DST_FOLD,
    DST_GAP,
    AtTrigger,
    CronTrigger,
    EveryTrigger,
    Trigger,
    check_jitter,
    check_window,
    parse_duration,
    parse_seconds,
    refuse_random,
    zone_name,
)
from .words import duration_words

_TASK_ID_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


def check_task_id(task_id: Any) -> None:
    """A caller-chosen task id: 1-256 characters, no control characters (it becomes a key)."""
    if not isinstance(task_id, str) or not _TASK_ID_RE.fullmatch(task_id):  # not match: "$" takes a final "\n"
        raise ValidationError("task_id", "must be 1-256 characters without control characters")


#: The fields of a ``retry`` table.
RETRY_FIELDS = ("max_attempts", "backoff", "delay", "max_delay", "jitter", "intervals", "retry_on", "dont_retry_on")
#: The policy of a task submitted without one (frozen: one instance serves every call).
_DEFAULT_RETRY = RetryPolicy()


def build_retry(value: RetryPolicy | dict[str, Any] | None) -> RetryPolicy:
    """A RetryPolicy from a policy, a table (durations may be strings such as ``"30s"``) or None
    (the default policy). Errors name the field as ``retry.<name>``."""
    if value is None:
        return _DEFAULT_RETRY
    if isinstance(value, RetryPolicy):
        return value
    if not isinstance(value, dict):
        raise ValidationError("retry", f"must be a table with {', '.join(RETRY_FIELDS)}; not {value!r}")
    data = dict(value)
    for key in ("delay", "max_delay"):
        if key in data:
            data[key] = (parse_seconds(data[key], f"retry.{key}") if isinstance(data[key], (str, timedelta))
                         else data[key])
    unknown = set(data) - set(RETRY_FIELDS)
    if unknown:
        raise ValidationError(f"retry.{sorted(unknown)[0]}", f"unknown field (expected {', '.join(RETRY_FIELDS)})")
    if "intervals" in data:
        clash = [key for key in ("backoff", "delay") if key in data]
        if clash:
            raise ValidationError("retry.intervals", f"cannot be combined with {' and '.join(f'retry.{k}' for k in clash)}"
                                                     " (intervals lists every delay itself)")
        given = data["intervals"]
        if isinstance(given, (list, tuple)):
            if len(given) > MAX_INTERVALS:
                raise ValidationError("retry.intervals", f"must hold at most {MAX_INTERVALS} delays, not {len(given)}")
            data["intervals"] = [parse_seconds(v, "retry.intervals") if isinstance(v, (str, timedelta)) else v
                                 for v in given]
    try:
        return RetryPolicy(**data)
    except ValidationError as exc:
        raise ValidationError(f"retry.{exc.field}", exc.reason) from None


JOB_FIELDS = (
    "cron", "every", "at", "timezone", "executor", "target", "args", "kwargs", "options", "timeout",
    "balancer", "balance_key", "retry", "enabled", "misfire", "misfire_grace", "overlap", "max_instances",
    "max_backlog", "dst_gap", "dst_fold", "description", "start_date", "end_date", "jitter",
)


def build_job(
    name: str,
    *,
    cron: str | None = None,
    every: str | float | timedelta | None = None,
    at: str | datetime | None = None,
    timezone: str | ZoneInfo = "UTC",
    executor: str = "local",
    target: str | None = None,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    timeout: float | str | timedelta = 60.0,
    balancer: str = "least-tasks",
    balance_key: str | None = None,
    retry: RetryPolicy | dict[str, Any] | None = None,
    enabled: bool = True,
    misfire: str = "fire-once",
    misfire_grace: float | str | timedelta = 60.0,
    overlap: str = "parallel",
    max_instances: int = 1,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
    dst_gap: str = "shift",
    dst_fold: str = "once",
    description: str = "",
    start_date: str | datetime | float | None = None,
    end_date: str | datetime | float | None = None,
    jitter: float | str | timedelta | None = None,
) -> TaskConfig:
    """Build and validate a job. Raises ValidationError naming the field and the reason.

    ``start_date`` / ``end_date`` (cron and every jobs): no slot before / after them (both
    inclusive); an aware ``datetime``, ISO-8601 text with an offset or epoch seconds - a
    naive time is refused, naming the field. An every job counts its slots from its
    ``start_date`` (APScheduler's IntervalTrigger does), not from the epoch. ``jitter``
    (seconds, a duration string or a ``timedelta``; at most 1 hour, and an every job's
    interval): each slot's start is delayed by 0 to ``jitter`` seconds, the same delay on
    every node (:func:`distsched.model.job.jitter_delay`)."""
    timezone = zone_name(timezone)  # a ZoneInfo is taken by its name
    given = [k for k, v in (("cron", cron), ("every", every), ("at", at)) if v is not None]
    if len(given) != 1:
        raise ValidationError("cron/every/at", f"give exactly one of cron, every, at (got {', '.join(given) or 'none'})")
    if at is not None:
        for field, value in (("start_date", start_date), ("end_date", end_date), ("jitter", jitter)):
            if value is not None:
                raise ValidationError(field, "applies to cron and every jobs, not to a one-shot at")
    start = _date_field(start_date, "start_date")
    end = _date_field(end_date, "end_date")
    check_window(start, end)
    jitter_s = 0.0 if jitter is None else parse_seconds(jitter, "jitter")
    # Read by cron jobs only, but checked for every job: a typo is an error, not ignored.
    for field, value, choices in (("dst_gap", dst_gap, DST_GAP), ("dst_fold", dst_fold, DST_FOLD)):
        if value not in choices:
            raise ValidationError(field, f"must be one of {', '.join(choices)}, not {value!r}")
    trigger: Trigger
    if cron is not None:
        check_jitter(jitter_s)
        trigger = CronTrigger(cron, timezone, dst_gap=dst_gap, dst_fold=dst_fold, start=start, end=end,
                              jitter=jitter_s)
        refuse_random(trigger.expr)
    elif every is not None:
        interval = parse_duration(every, "every")
        check_jitter(jitter_s, interval)
        trigger = EveryTrigger(interval, anchor=0.0 if start is None else _ms_up(start), timezone=timezone,
                               end=end, jitter=jitter_s)
    else:
        trigger = AtTrigger.parse(at, timezone)
    if not isinstance(args, (list, tuple)):
        raise ValidationError("args", f"must be a list, not {type(args).__name__}")
    if not isinstance(enabled, bool):
        raise ValidationError("enabled", f"must be true or false, not {enabled!r}")
    spec = TaskSpec(
        executor=executor, target=target if target is not None else name, args=tuple(args),
        kwargs=kwargs if kwargs is not None else {}, options=options if options is not None else {},
        timeout=parse_duration(timeout, "timeout"), retry=build_retry(retry), balancer=balancer,
        balance_key=balance_key if balance_key is not None else name,  # TaskConfig's default, without a copy
    )
    return TaskConfig(
        name=name, trigger=trigger, spec=spec, enabled=enabled,
        misfire=MisfirePolicy(mode=misfire, grace=parse_seconds(misfire_grace, "misfire_grace")
                              if isinstance(misfire_grace, (str, timedelta)) else misfire_grace),
        overlap=OverlapPolicy(mode=overlap, max_instances=max_instances, max_backlog=max_backlog),
        description=description,
    )


def _date_field(value: Any, field: str) -> float | None:
    """``start_date`` / ``end_date`` as UNIX seconds (None: not given), read as ``submit(at=)``
    reads its time: a naive one is refused naming the field, as is one no date can show."""
    if value is None:
        return None
    seconds = epoch_seconds(value, field)
    check_time(field, seconds)
    return seconds


def _ms_up(t: float) -> float:
    """``t`` to the millisecond, not earlier than ``t`` (an every job's slots are kept to the
    millisecond: its first slot, its start_date, must not fall before the start)."""
    at = round(t, 3)
    return at if at >= t - 1e-7 else round(at + 0.001, 3)


def job_fields(config: TaskConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`build_job` that rebuild ``config``."""
    trigger = config.trigger
    fields: dict[str, Any] = {}
    if isinstance(trigger, CronTrigger):
        fields.update(cron=trigger.expr, dst_gap=trigger.dst_gap, dst_fold=trigger.dst_fold)
    elif isinstance(trigger, EveryTrigger):
        fields.update(every=trigger.interval)
    if isinstance(trigger, (CronTrigger, EveryTrigger)):
        for field, value in (("start_date", trigger.start_date), ("end_date", trigger.end)):
            if value is not None:
                fields[field] = value
        if trigger.jitter:
            fields["jitter"] = trigger.jitter
    elif isinstance(trigger, AtTrigger):
        fields.update(at=datetime.fromtimestamp(trigger.at, timezone.utc).isoformat())
    if trigger is not None:
        fields["timezone"] = trigger.timezone
    spec = config.spec
    fields.update(
        executor=spec.executor, target=spec.target, args=list(spec.args), kwargs=spec.kwargs,
        options=spec.options, timeout=spec.timeout, balancer=spec.balancer,
        balance_key=None if spec.balance_key == config.name else spec.balance_key,
        retry=spec.retry, enabled=config.enabled, misfire=config.misfire.mode,
        misfire_grace=config.misfire.grace, overlap=config.overlap.mode,
        max_instances=config.overlap.max_instances, max_backlog=config.overlap.max_backlog,
        description=config.description,
    )
    return fields


def ignored_timezone(config: TaskConfig) -> str | None:
    """What to warn about a job whose ``timezone`` its trigger does not read - an ``every``
    job (its slots count from the UNIX epoch in UTC, wherever it runs) with a zone other than
    UTC - or None. Not refused: a stored job may already have it."""
    trigger = config.trigger
    if not isinstance(trigger, EveryTrigger) or trigger.timezone == "UTC":
        return None
    since = iso_utc(trigger.anchor) if trigger.start_date is not None else "1970-01-01T00:00:00Z"
    origin = "its start_date" if trigger.start_date is not None else "the UNIX epoch"
    return (f"job {config.name!r}: timezone: {trigger.timezone!r} is not read by an every schedule: every counts "
            f"from {origin} in UTC (every {duration_words(trigger.interval)} fires at the multiples of it "
            f"since {since}, not at local times); timezone applies to cron and to a naive at only "
            f"(for midnight in {trigger.timezone}: cron = \"0 0 * * *\")")


#: A day-of-week field holding a number: Quartz counts from 1 = Sunday, cron from 0 = Sunday.
_NUMBERED_WEEKDAY = re.compile(r"\d")


def quartz_weekdays(config: TaskConfig) -> str | None:
    """What to warn about a cron job written the Quartz way (a ``?`` in a day field, as
    Quartz and XXL-JOB require) whose day of the week is given by number: cron numbers the
    days from 0 = Sunday (1 = Monday ... 6 = Saturday, 7 = Sunday too), Quartz from 1 =
    Sunday (2 = Monday ... 7 = Saturday), so Quartz's ``2-6`` (Monday to Friday) runs Tuesday
    to Saturday here - or None. Names (``MON-FRI``) mean the same in both."""
    trigger = config.trigger
    if not isinstance(trigger, CronTrigger) or "?" not in trigger.expr:
        return None
    weekday = trigger.expr.split()[-1]
    if not _NUMBERED_WEEKDAY.search(weekday):
        return None
    return (f"job {config.name!r}: cron: {trigger.expr!r} has a '?' as Quartz expressions do, but its day of the "
            f"week {weekday!r} is read as cron numbers the days (0 or 7 = Sunday, 1 = Monday ... 6 = Saturday), "
            f"not as Quartz does (1 = Sunday ... 7 = Saturday): write the days by name (MON-FRI) to mean the same "
            f"in both")


def job_warnings(config: TaskConfig) -> list[str]:
    """What to warn about a job that is stored as given but may not mean what its author
    meant: a ``timezone`` its trigger does not read (:func:`ignored_timezone`), Quartz day
    numbers (:func:`quartz_weekdays`)."""
    return [said for said in (ignored_timezone(config), quartz_weekdays(config)) if said]


def one_shot_missed(config: TaskConfig, now: float) -> bool:
    """A one-shot ``at`` whose time is more than its misfire grace before ``now``: it can no
    more fire on time (:func:`first_fire` refuses it; a jobs file stores it as fired)."""
    return isinstance(config.trigger, AtTrigger) and config.trigger.at <= now - config.misfire.grace


def missed_words(config: TaskConfig) -> str:
    """Why a missed one-shot (:func:`one_shot_missed`) does not fire: ``<time> is in the past
    (beyond the misfire grace of <grace>)``."""
    assert isinstance(config.trigger, AtTrigger)
    return (f"{iso_utc(config.trigger.at)} is in the past (beyond the misfire grace of "
            f"{duration_words(config.misfire.grace)})")


def ended_words(config: TaskConfig, now: float) -> str:
    """Why a job with an ``end_date`` has no slot left after ``now``."""
    end = getattr(config.trigger, "end", None)
    assert end is not None
    if end <= now:
        return f"{iso_utc(end)} is in the past: the job would never fire"
    return f"no slot of the schedule falls from {iso_utc(now)} to {iso_utc(end)}: the job would never fire"


def first_fire(config: TaskConfig, now: float, *, missed: bool = False) -> float | None:
    """The first slot of a new (or re-timed) job: the next one after now; a one-shot ``at``
    still inside its misfire grace fires at once, one further in the past is refused - or,
    with ``missed`` (a jobs file's job: a past one-shot must not block the others), has no
    slot (None: stored as a one-shot that already fired). A cron or every job whose
    ``end_date`` leaves it no slot after now is refused the same way, or with ``missed``
    has none (stored as ended)."""
    if isinstance(config.trigger, AtTrigger):
        if one_shot_missed(config, now):
            if missed:
                return None
            raise ValidationError("at", missed_words(config), where=f"job {config.name!r}")
        return config.trigger.at
    first = config.next_fire_after(now)
    if first is None and getattr(config.trigger, "end", None) is not None:
        # a jobs file's job is stored as ended (listed, never fires), as a past one-shot is
        if missed:
            return None
        raise ValidationError("end_date", ended_words(config, now), where=f"job {config.name!r}")
    if first is None and isinstance(config.trigger, CronTrigger):
        # A cron no date matches is refused when its trigger is built (the calendar's whole
        # 400-year cycle is searched): here the next date is past the last time kept.
        raise ValidationError("cron", f"{config.trigger.expr!r} fires no more after {iso_utc(now)}: its next date "
                                      "is after the end of year 9999 (UTC), the last time distsched keeps",
                              where=f"job {config.name!r}")
    return first


__all__ = ["JOB_FIELDS", "build_job", "build_retry", "check_task_id", "ended_words", "first_fire", "ignored_timezone", "job_fields",
           "job_warnings", "missed_words", "one_shot_missed", "quartz_weekdays"]
