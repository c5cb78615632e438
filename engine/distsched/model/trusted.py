"""Rebuilding model objects from data that was validated when it was first created.

A store reads back tasks it wrote itself: running every validator again (a spec's payload
check serialises all its arguments) would cost more than reading the record. ``unchecked``
builds an instance field by field, with the class's defaults, and runs no validator,
converter or ``__attrs_post_init__``. Use it only for data the engine wrote; anything that
crossed a trust boundary (a jobs file, a submission, a worker's result) goes through the
normal constructor.

A field a newer distsched node wrote, which this version does not know, is refused naming
it in a task or its spec or retry policy (ignored, the task would run or retry otherwise
than stored), and dropped with one WARNING per field per process in a result or a worker
record (``distsched.model.newer``).
"""

from __future__ import annotations

from functools import cache, lru_cache
from math import isfinite
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .newer import ignore_newer, init_fields, refuse_newer
from .times import is_time

if TYPE_CHECKING:
    from .result import TaskResult
    from .retry import RetryPolicy
    from .spec import TaskSpec
    from .task import Task
    from .worker import Worker

T = TypeVar("T")
_MISSING = object()


@cache
def _plan(cls: type) -> tuple[tuple[str, Any, Any, Any], ...]:
    """Per field of ``cls``: its name, the raw slot setter (a slotted attrs class keeps each
    field in a member descriptor; its ``__set__`` bypasses a frozen class's ``__setattr__``
    and every on-setattr hook), its default and its factory."""
    out = []
    for field in attrs.fields(cls):
        setter = cls.__dict__[field.name].__set__
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            out.append((field.name, setter, _MISSING, default.factory))
        else:
            out.append((field.name, setter, default, None))
    return tuple(out)


def unchecked(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the slotted attrs class ``cls`` with ``values`` (defaults for the
    others), built without validators, converters or ``__attrs_post_init__``. Raises
    ``KeyError`` for a missing mandatory field."""
    inst = object.__new__(cls)
    get = values.get
    for name, setter, default, factory in _plan(cls):  # type: ignore[arg-type]
        value = get(name, _MISSING)
        if value is _MISSING:
            if factory is not None:
                value = factory()
            elif default is _MISSING or default is attrs.NOTHING:
                raise KeyError(name)
            else:
                value = default
        setter(inst, value)
    return inst


#: Above any count a task reaches: each stored counter is below it, so that the next write
#: (+1) still fits the narrowest column a store keeps it in (PostgreSQL's integer).
COUNTER_MAX = 2**31 - 1
#: A stored task's counters and the least each can be.
_TASK_COUNTERS = (("version", 0), ("attempt", 1), ("dispatches", 0), ("redeliveries", 0))
#: A task's times: those it always has, and those ``None`` until set. Each must be one a date
#: can show (``model.times``: years 1 to 9999, UTC): the engine writes times within days of
#: now, and one outside these made ``distsched tasks show`` end in a traceback ("year 33658
#: is out of range").
_TASK_TIMES = ("created_at", "updated_at", "not_before")
_TASK_TIMES_OR_NONE = ("slot", "dispatched_at", "started_at", "finished_at")


def stored_task(values: dict[str, Any]) -> Task:
    """``unchecked(Task, values)`` for a task read back from a store, refusing (``ValueError``,
    naming the field) a time that is not a finite number: NaN or an infinity in a float
    column, or a JSON value (a string, null for a time every task has) written by something
    other than distsched, or a time no date can show (before year 1 or after 9999); and a
    counter (version, attempt, dispatches, redeliveries) that is not an integer from its
    least to ``COUNTER_MAX - 1``; a job or reason that is not text, a serial limit that is
    not an integer >= 1 (Redis keeps them in the task's JSON: a job of ``true`` or a serial
    limit of ``"x"`` failed the leader's dispatch). No validator runs on a stored task, and a
    leader that acted on one failed the write it made of it (a NOT NULL column, a sorted-set
    score, a version + 1 out of PostgreSQL's integer range) at every pass; refused here, the
    store moves the record aside like any other it cannot decode."""
    from .task import Task

    refuse_newer("task", values, init_fields(Task))
    for name, least in _TASK_COUNTERS:
        value = values.get(name, least)  # missing: the Task default
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value < COUNTER_MAX:
            raise ValueError(f"its {name} is not an integer from {least} to {COUNTER_MAX - 1} ({value!r})")
    for name in _TASK_TIMES:
        _check_time(name, values.get(name))
    for name in _TASK_TIMES_OR_NONE:
        value = values.get(name)
        if value is not None:
            _check_time(name, value)
    for name in ("job", "reason"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"its {name} is not text ({value!r:.80})")
    limit = values.get("serial_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"its serial_limit is not an integer >= 1 ({limit!r:.80})")
    return unchecked(Task, values)


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and isfinite(value)


def _check_time(name: str, value: Any) -> None:
    if not _finite_number(value):
        raise ValueError(f"its {name} is not a finite number ({value!r})")
    if not is_time(value):
        raise ValueError(f"its {name} is not a time from year 1 to 9999 ({value!r})")


def stored_worker(values: dict[str, Any]) -> Worker:
    """A worker record read back from a store, built by the validating constructor (a
    ``ValidationError`` names the field), not :func:`unchecked`: a store lists a few workers
    a pass, and the leader reads their fields - one record with a capacity that is a list or
    none, or functions that are a number, failed every pass of the leader on PostgreSQL (a
    crash loop while that worker heartbeated), and a start time no date can show took down
    the dashboard's overview and workers pages. (The heartbeat is not checked: one far from
    the store's clock is a dead worker, which the leader reaps and ``status`` shows as
    stale.)"""
    from .worker import Worker

    return Worker(**ignore_newer("worker", values, init_fields(Worker)))


#: A stored result's fields that are text, and those that may be none.
_RESULT_TEXT = ("task_id", "attempt_id", "outcome")
_RESULT_TEXT_OR_NONE = ("worker_id", "error", "error_type", "signature", "log")


def stored_result(values: dict[str, Any]) -> TaskResult:
    """``unchecked(TaskResult, values)`` for a task's result read back from a store (as part
    of its task), refusing (``ValueError``, naming the field) a field of another type than
    the engine writes: an error that is a number made the task's page fail (its length is
    taken) and the history record of the attempt that ended with it; times must be finite
    and showable, ``retryable`` a bool, ``retry_after`` a finite number or none, ``meta`` a
    table. The store then moves the task aside like any record it cannot decode."""
    from .result import OUTCOMES, TaskResult

    ignore_newer("result", values, init_fields(TaskResult))
    for name in _RESULT_TEXT:
        if not isinstance(values.get(name), str):
            raise ValueError(f"its result's {name} is not text ({values.get(name)!r:.80})")
    if values["outcome"] not in OUTCOMES:
        raise ValueError(f"its result's outcome is not one of {', '.join(OUTCOMES)} ({values['outcome']!r:.80})")
    for name in _RESULT_TEXT_OR_NONE:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"its result's {name} is not text ({value!r:.80})")
    for name in ("started_at", "finished_at"):
        _check_time(f"result's {name}", values.get(name))
    retry_after = values.get("retry_after")
    if retry_after is not None and not _finite_number(retry_after):
        raise ValueError(f"its result's retry_after is not a finite number ({retry_after!r:.80})")
    if not isinstance(values.get("retryable", True), bool):
        raise ValueError(f"its result's retryable is not true or false ({values.get('retryable')!r:.80})")
    if not isinstance(values.get("meta", {}), dict):
        raise ValueError(f"its result's meta is not a table ({values.get('meta')!r:.80})")
    return unchecked(TaskResult, values)


def stored_spec(data: dict[str, Any]) -> TaskSpec:
    """A TaskSpec from its stored JSON object (``TaskSpec.to_dict()`` as a store wrote it),
    without validators: a list of ``args`` becomes the tuple the model holds (none: no
    arguments). Refused (``ValueError``, naming the field): args that are not a list, and a
    field the leader itself reads of another type than the engine writes - a ``target``,
    ``executor`` or ``balancer`` that is not text, a ``timeout`` that is not a finite
    number. Kept as they were, the leader's dispatch or write of the task failed on them at
    every pass (a crash loop: ``list(5)``, a list as a dict key, ``now + None``), and so did
    the task's page. A balance key its balancer fails on cancels that task alone, with the
    reason; the rest (kwargs, options, the values' ranges) is the worker's check
    (``TaskSpec.validate``), which fails the task saying why. Equal retry policies share one
    instance. ``data`` is consumed."""
    from .spec import TaskSpec

    refuse_newer("spec", data, init_fields(TaskSpec), "spec")
    if not isinstance(data.get("target"), str):
        raise ValueError(f"its spec's target is not text ({data.get('target')!r:.80})")
    for name in ("executor", "balancer"):
        if name in data and not isinstance(data[name], str):
            raise ValueError(f"its spec's {name} is not text ({data[name]!r:.80})")
    if "timeout" in data:
        timeout = data["timeout"]
        if not _finite_number(timeout):
            raise ValueError(f"its spec's timeout is not a finite number ({timeout!r:.80})")

    args = data.get("args")
    if args is None:
        args = ()
    elif not isinstance(args, list):
        raise ValueError(f"its spec's args are not a list ({type(args).__name__} {args!r:.80})")
    data["args"] = tuple(args)
    retry = data.get("retry")
    data["retry"] = _retry(tuple(sorted(_retry_items(retry)))) if retry else _retry(())
    return unchecked(TaskSpec, data)


def _retry_items(retry: Any) -> Any:
    """A stored policy's fields, its lists as the tuples the policy holds (hashable: the
    cache's key). What the leader reads when it applies the policy is refused (``ValueError``)
    unless it has the type the engine writes - ``max_attempts`` an integer, ``delay``,
    ``max_delay`` and ``jitter`` finite numbers, ``backoff`` text, the lists names (text) or
    finite delays: a string ``intervals`` or ``max_attempts`` failed the leader's pass at the
    task's timeout or requeue (every pass: the crash loop above), and the task's page."""
    if not isinstance(retry, dict):
        raise ValueError(f"its spec's retry is not a table ({retry!r:.80})")
    from .retry import RetryPolicy

    refuse_newer("retry", retry, init_fields(RetryPolicy), "spec.retry")
    for key, value in retry.items():
        if key == "max_attempts" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"its spec's retry.max_attempts is not an integer ({value!r:.80})")
        if key in ("delay", "max_delay", "jitter") and not _finite_number(value):
            raise ValueError(f"its spec's retry.{key} is not a finite number ({value!r:.80})")
        if key == "backoff" and not isinstance(value, str):
            raise ValueError(f"its spec's retry.backoff is not text ({value!r:.80})")
        if key in ("retry_on", "dont_retry_on", "intervals"):
            if not isinstance(value, list) or not all(
                    isinstance(v, str) if key != "intervals" else _finite_number(v) for v in value):
                raise ValueError(f"its spec's retry.{key} is not a list of "
                                 f"{'delays' if key == 'intervals' else 'names'} ({value!r:.80})")
            value = tuple(value)
        yield key, value


@lru_cache(maxsize=256)
def _retry(items: tuple[tuple[str, Any], ...]) -> RetryPolicy:
    from .retry import RetryPolicy

    return unchecked(RetryPolicy, dict(items))


__all__ = ["COUNTER_MAX", "stored_result", "stored_spec", "stored_task", "stored_worker", "unchecked"]
