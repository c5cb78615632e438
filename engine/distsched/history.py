"""Helpers storage backends share for the history queries (``TaskRepository.query`` and
``detail``): the opaque page cursor, and the attempt records built from a task; and the
rules by which a display shows that history (``distsched tasks list`` / ``show`` and the
dashboard: a start, a duration, an error, a re-delivery).

Public for plugins: a third-party backend uses these to answer exactly like the built-in
ones, and a display (the dashboard) to show what the CLI shows.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from .model import Task, TaskState, ValidationError
from .model.newer import ignore_newer, init_fields
from .model.result import safe_str
from .model.task import ASSIGNED
from .model.times import is_time
from .ports import ATTEMPT_TEXT_CAP, Attempt

log = logging.getLogger("distsched.history")

#: Most tasks one ``query`` call may return.
MAX_PAGE = 1000
#: A ``query`` whose index entries do not all match its other filters examines at most
#: this many entries per returned slot (plus a base) before it returns a short page.
SCAN_FACTOR = 20
SCAN_BASE = 200


def check_limit(limit: Any, field: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError(field, f"must be an integer between 1 and {MAX_PAGE}, not {limit!r}")
    return limit


def check_state(state: Any) -> str | None:
    if state is None:
        return None
    try:
        return TaskState(state).value
    except ValueError:
        raise ValidationError("state", f"must be one of {', '.join(s.value for s in TaskState)}, "
                                       f"not {state!r}") from None


#: The states a task ends in (``finished`` takes only these): the model's terminal states.
FINISHED_STATES = tuple(state.value for state in TaskState if state.terminal)


def check_finished(states: Any, since: Any) -> tuple[list[str], float]:
    """The arguments of ``TaskRepository.finished``: a list of terminal states (each once)
    and a time; ValidationError naming ``states`` or ``since`` otherwise."""
    if isinstance(states, str) or not isinstance(states, (list, tuple)) or not states:
        raise ValidationError("states", f"must be a non-empty list of task states, not {states!r}")
    out: list[str] = []
    for state in states:
        if state not in FINISHED_STATES:
            raise ValidationError("states", f"must be states a task ends in ({', '.join(FINISHED_STATES)}), "
                                            f"not {state!r}")
        if state not in out:
            out.append(state)
    checked = check_since(since)
    if checked is None:
        raise ValidationError("since", "must be a time (store clock), not None")
    return out, checked


def newest_finished(tasks: Iterable[Task], limit: int) -> list[Task]:
    """The first ``limit`` of ``tasks`` by ``finished_at``, newest first (ties: by id,
    descending) - the order of ``TaskRepository.finished``."""
    return sorted(tasks, key=lambda t: (t.finished_at or 0.0, t.id), reverse=True)[:limit]


def check_since(since: Any) -> float | None:
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since):
        raise ValidationError("since", f"must be a time in UNIX seconds, not {since!r}")
    return float(since)


def encode_cursor(created_at: float, task_id: str) -> str:
    """The cursor after the task (created_at, id): URL-safe text, opaque to callers."""
    raw = json.dumps([repr(float(created_at)), task_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """(created_at, id) of a cursor; ValidationError naming ``cursor`` when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, task_id = json.loads(raw)
        value = float(score)
        if not isinstance(task_id, str) or not math.isfinite(value):
            raise ValueError
        return value, task_id
    except Exception:
        raise ValidationError("cursor", "is not a cursor returned by a previous page") from None


def _capped_value(value: Any) -> tuple[Any, bool]:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
        return text[:ATTEMPT_TEXT_CAP], True
    if len(text) <= ATTEMPT_TEXT_CAP:
        return value, False
    return text[:ATTEMPT_TEXT_CAP], True


def _capped_text(text: str | None) -> tuple[str | None, bool]:
    if text is None or len(text) <= ATTEMPT_TEXT_CAP:
        return text, False
    return text[:ATTEMPT_TEXT_CAP], True


def shown_start(started: float | None, until: float | None, slot: float | None) -> float | None:
    """The start of an attempt as a display may show it: never before the task's ``slot``. A
    worker takes a slot dispatched ahead (``fire_ahead``) before its time and holds it until
    then; an attempt that ended (``until``) before its slot never started (None), one that
    ended after it began at its slot - the rule of :meth:`Task.attempt_began`, which a requeue
    cannot apply itself (it moves ``not_before`` to the requeue: a lost attempt showed its
    take, before its slot, as its start). ``until`` None: in flight, held (None)."""
    if started is None or slot is None or started >= slot:
        return started
    return slot if until is not None and until >= slot else None


def task_times(task: Task, now: float | None) -> tuple[float | None, float | None, float | None]:
    """``(started, finished, duration)`` of a task's latest attempt as a listing shows them
    (``distsched tasks list``, the dashboard's task rows): the times of
    :meth:`Task.last_attempt_times`, the start never before its slot (:func:`shown_start`). A
    task in flight has run for ``now`` minus its start - none while its worker holds it for
    its slot (taken ahead: it has not started); a task pending again after its worker was
    lost has no duration (when that worker stopped is not known), nor one that failed with no
    result of its attempt (its worker lost once too often: its end is the reap; or the
    leader could not dispatch it). ``now``: the store's clock (None: not known, and no
    duration for a task that has not ended)."""
    started, finished = task.last_attempt_times(now)
    until = finished if finished is not None else now
    started = shown_start(started, until, task.slot)
    no_result = task.attempt_result is None
    lost = task.dispatches > 0 and (task.state is TaskState.PENDING or (task.state is TaskState.FAILED and no_result))
    duration = None if lost or started is None or until is None else max(0.0, until - started)
    return started, finished, duration


def scheduled_for(task: Task, now: float | None) -> float | None:
    """When a task submitted for later (``submit(delay=/at=)``, ``tasks submit --in/--at``,
    the REST ``delay`` / ``at``) is due: its ``not_before``, while it is ``pending`` and that
    is after ``now`` (the store's clock); None otherwise (None ``now``: not known). A display
    says ``scheduled for <time> (in 4m10s)`` beside its state (:func:`in_words`): a plain
    ``pending`` read as "waiting to be dispatched"."""
    if now is None or task.state is not TaskState.PENDING or task.not_before <= now:
        return None
    return task.not_before


def in_words(seconds: float) -> str:
    """A time ahead, short, as ``distsched status`` writes ages: ``0.4s``, ``12s``, ``4m10s``,
    ``3h04m``, ``2d03h``."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def task_error(task: Task) -> str | None:
    """What a listing shows in a task's error column (``distsched tasks list``, the
    dashboard's task rows): none for a task that succeeded; its result's error; else why it is
    in its state (:meth:`Task.reasons`) - a task that failed with no result (the leader
    could not dispatch it: ``cannot dispatch: balancer ... is not registered``; its worker was
    lost once too often: ``...; gave up after 10 re-deliveries`` - not the error of an earlier
    attempt that failed and was retried), one cancelled, skipped or pending again after its
    worker was lost. Not masked: a display masks what it shows."""
    if task.state is TaskState.SUCCEEDED:
        return None
    result = task.latest_result  # the current attempt's, or the last one's while the task waits to retry
    if result is not None and result.error:
        return result.error
    return task.reasons()[0]


#: An error that begins with the name of its own exception (``ConnectError: ...``).
_NAMED = re.compile(r"[A-Z][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*: ")


def shown_error(error_type: str | None, error: str) -> str:
    """An attempt's error as a display shows it (``distsched tasks show``, the dashboard's
    task page): its type in front - unless the error already begins with a type's name:
    ``ConnectionError: ConnectError: All connection attempts failed`` named two types and no
    host (an http attempt recorded before its executor named the target)."""
    if not error_type or error.startswith(error_type) or _NAMED.match(error):
        return error
    return f"{error_type}: {error}"


def attempt_duration(attempt: Attempt) -> float | None:
    """How long an attempt took, as a display shows it: its end minus its start as recorded;
    none for a ``lost`` attempt (its end is when the leader declared its worker lost, not
    when the worker stopped) or one without both times."""
    if attempt.started_at is None or attempt.finished_at is None or attempt.outcome == "lost":
        return None
    return attempt.finished_at - attempt.started_at


def redelivered(attempts: Iterable[Attempt]) -> list[bool]:
    """For each attempt of a task, oldest first (as ``TaskRepository.detail`` gives them):
    whether it is a crash re-delivery - a dispatch after the first of its number. A
    re-delivery keeps its attempt number (:attr:`Attempt.number`: the retry policy's) under a
    dispatch of its own (``attempt_id``); a display says ``1 (re-delivered)``."""
    seen: set[int] = set()
    out = []
    for attempt in attempts:
        out.append(attempt.number in seen)
        seen.add(attempt.number)
    return out


def _attempt(task: Task, *, outcome: str, worker_id: str | None, number: int, retry_at: float | None) -> Attempt:
    result = task.attempt_result
    value, cut_v = _capped_value(result.value) if result is not None else (None, False)
    error, cut_e = _capped_text(result.error if result is not None else
                                (task.reason if outcome in ("lost", "cancelled", "failed") else None))
    finished = None if outcome in ("dispatched", "running") else (
        result.finished_at if result is not None else task.updated_at)
    # the worker's own start when it reported; else the record's, which is not the take of a
    # task its worker held for its slot (dispatched ahead) and that ended (or, here, runs) before it
    started = result.started_at if result is not None else shown_start(task.attempt_began(finished), finished,
                                                                        task.slot)
    return Attempt(
        number=number, attempt_id=task.attempt_id,
        worker_id=worker_id if worker_id else (result.worker_id if result is not None else None),
        dispatched_at=task.dispatched_at, started_at=started, finished_at=finished, outcome=outcome,
        value=value, error=error, error_type=result.error_type if result is not None else None,
        retry_at=retry_at, truncated=cut_v or cut_e,
    )


def ended_attempt(task: Task, worker_id: str | None) -> Attempt | None:
    """The record of the attempt ``task`` just ended: ``task`` as written, moved out of
    dispatched/running (a result applied, a requeue, a cancel); ``worker_id`` the worker it
    was assigned to before the write. None when the task never was dispatched."""
    if task.dispatches <= 0 or task.state in ASSIGNED:
        return None
    result = task.attempt_result
    state = task.state
    if state is TaskState.RETRYING:
        return _attempt(task, outcome=result.outcome if result else "failed", worker_id=worker_id,
                        number=max(1, task.attempt - 1), retry_at=task.not_before)
    if result is not None:
        return _attempt(task, outcome=result.outcome, worker_id=worker_id, number=task.attempt, retry_at=None)
    # failed with no result of this attempt: its worker was lost once too often (a requeue
    # that gives up) - the attempt was lost like one requeued, not a failure it reported
    outcome = {TaskState.PENDING: "lost", TaskState.FAILED: "lost",
               TaskState.CANCELLED: "cancelled"}.get(state, state.value)
    return _attempt(task, outcome=outcome, worker_id=worker_id, number=task.attempt, retry_at=None)


def current_attempt(task: Task) -> Attempt | None:
    """The latest attempt as the task record itself tells it: the one in flight
    (dispatched / running), or the one whose result the task holds. None otherwise."""
    if task.dispatches <= 0:
        return None
    if task.state in ASSIGNED:
        return _attempt(task, outcome=task.state.value, worker_id=task.worker_id, number=task.attempt,
                        retry_at=None)
    if task.attempt_result is not None:
        return ended_attempt(task, task.worker_id)
    return None


#: An attempt record's fields that are text, and those that may be none; its times.
_ATTEMPT_TEXT = ("attempt_id", "outcome")
_ATTEMPT_TEXT_OR_NONE = ("worker_id", "error", "error_type")
_ATTEMPT_TIMES = ("dispatched_at", "started_at", "finished_at", "retry_at")


def stored_attempt(values: dict[str, Any]) -> Attempt:
    """An :class:`~distsched.ports.Attempt` from a record a store kept (its JSON, as
    :func:`ended_attempt` wrote it), refusing (``ValueError``, naming the field) a field of
    another type than that: a start time that was a table made the task's page fail (the
    duration is a subtraction); and a number below 1 (attempts count from 1). Fields it does
    not know (a newer node's) are left out, with one WARNING per field per process
    (``distsched.model.newer``)."""
    ignore_newer("attempt", values, init_fields(Attempt))
    number = values.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"its number is not an attempt number from 1 ({number!r:.80})")
    for name in _ATTEMPT_TEXT:
        if not isinstance(values.get(name), str):
            raise ValueError(f"its {name} is not text ({values.get(name)!r:.80})")
    for name in _ATTEMPT_TEXT_OR_NONE:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"its {name} is not text ({value!r:.80})")
    for name in _ATTEMPT_TIMES:
        value = values.get(name)
        if value is not None and not is_time(value):
            raise ValueError(f"its {name} is not a time from year 1 to 9999 ({value!r:.80})")
    if not isinstance(values.get("truncated", False), bool):
        raise ValueError(f"its truncated is not true or false ({values.get('truncated')!r:.80})")
    return Attempt.from_dict(values)


def readable_attempts(task_id: str, entries: Iterable[Any], decode: Callable[[Any], Attempt]) -> list[Attempt]:
    """``decode`` of each stored attempt record of task ``task_id``; a record it cannot
    decode (written by something other than distsched) is left out of the history with a
    warning, instead of failing the whole task's detail (its page, ``tasks show``)."""
    out = []
    for entry in entries:
        try:
            out.append(decode(entry))
        except Exception as exc:
            log.warning("task %r: an attempt record cannot be read (%s: %s); the history leaves it out",
                        task_id, type(exc).__name__, safe_str(exc)[:300])
    return out


def merge_attempts(task: Task, recorded: Iterable[Attempt]) -> tuple[Attempt, ...]:
    """The recorded attempts (oldest first) and the task's latest one when not recorded."""
    out = list(recorded)
    latest = current_attempt(task)
    if latest is not None and all(a.attempt_id != latest.attempt_id for a in out):
        out.append(latest)
    return tuple(out)


__all__ = [
    "FINISHED_STATES", "MAX_PAGE", "SCAN_BASE", "SCAN_FACTOR", "attempt_duration", "check_finished", "check_limit",
    "check_since", "check_state", "current_attempt", "decode_cursor", "newest_finished",
    "encode_cursor", "ended_attempt", "merge_attempts", "readable_attempts", "redelivered", "shown_error",
    "shown_start", "stored_attempt", "task_error", "task_times", "scheduled_for", "in_words",
]
