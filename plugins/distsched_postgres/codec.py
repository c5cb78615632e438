"""How model objects become rows and parameters of the PostgreSQL backend, and back. JSON only.

Tasks travel to the SQL functions as one JSON array of objects with the columns of the
``task_in`` type (see migrations/0001_initial.sql); the spec and the result are JSON texts in
it (stored as ``text``: JSON ``jsonb`` could not hold a ``\\u0000`` a result may carry). Rows
read back are rebuilt without running the model's validators again
(``distsched.model.trusted``): the engine validated them when it created them.

JSON goes through orjson, with the standard library for what orjson cannot encode (an
integer beyond 64 bits); such a text starts with a space and is read back by the standard
library, so the integer comes back exact.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import attrs
import orjson

from distsched.history import ended_attempt, stored_attempt
from distsched.model import (
    ASSIGNED,
    JobState,
    Task,
    TaskConfig,
    TaskResult,
    TaskSpec,
    TaskState,
    ValidationError,
    Worker,
    spec_json_cache,
)
from distsched.model.trusted import (
    stored_result,
    stored_spec,
    stored_task,
    stored_worker,
)
from distsched.ports import Attempt, SchedulerNode

_std_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ORJSON = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Compact JSON text."""
    try:
        return orjson.dumps(value, option=_ORJSON).decode()
    except TypeError:  # an integer beyond 64 bits
        return " " + _std_dumps(value)


def loads(text: str) -> Any:
    if text[:1] == " ":
        return json.loads(text)
    return orjson.loads(text)


_R_FIELDS = tuple(f.name for f in attrs.fields(TaskResult))
_W_FIELDS = tuple(f.name for f in attrs.fields(Worker)
                  if f.init and f.name not in ("load", "last_heartbeat", "draining", "blocked"))
_STATES = {state.value: state for state in TaskState}

# -- specs: many tasks share one; cache both directions -------------------------------------
#: A spec's JSON, encoded once for the tasks that share it while its kwargs and options
#: dicts are unchanged (see distsched.model.spec_json_cache).
spec_json = spec_json_cache(dumps)


@lru_cache(maxsize=4096)
def spec_from_json(text: str) -> TaskSpec:
    """TaskSpec is frozen; tasks of one job share the decoded instance - its ``args`` and
    ``kwargs`` too, which must never be changed: the ``local`` executor copies a list or dict
    argument before each call (a function changing its arguments in place would otherwise
    change later tasks' and retries', and what the store writes back)."""
    return stored_spec(loads(text))


# -- tasks ----------------------------------------------------------------------------------
def result_json(result: TaskResult) -> str:
    return dumps({name: getattr(result, name) for name in _R_FIELDS})


def decode_result(text: str) -> TaskResult:
    """A result a worker reported (validated by TaskResult: it crossed a process boundary)."""
    return TaskResult.from_dict(loads(text))


def ended_json(task: Task) -> str | None:
    """The record of the attempt a write of ``task`` would end (filed by the store only when
    the write moves it out of dispatched/running; the store adds the worker it was on)."""
    if task.dispatches <= 0 or task.state in ASSIGNED:
        return None
    record = ended_attempt(task, None)
    return None if record is None else dumps(record.to_dict())


def decode_attempt(data: str, worker_id: str | None) -> Attempt:
    values = loads(data)
    if worker_id:
        values["worker_id"] = worker_id
    return stored_attempt(values)


def _no_nul(field: str, value: str | None) -> str | None:
    """PostgreSQL ``text`` cannot hold U+0000 (JSON texts can: they escape it)."""
    if value is not None and "\x00" in value:
        raise ValidationError(field, "must not contain a NUL character (U+0000): PostgreSQL text cannot hold it")
    return value


def task_in(task: Task, firing: int | None = None, *, ended: bool = False) -> dict[str, Any]:
    """``task`` as an object of the SQL type ``task_in`` (with the attempt record it ends
    when ``ended``: the writes of an existing task). A NUL in an id is refused; in the free
    text ``reason`` it becomes U+FFFD."""
    result = task.result
    reason = task.reason
    if reason is not None and "\x00" in reason:
        reason = reason.replace("\x00", "\ufffd")
    if "\x00" in task.id or (task.job and "\x00" in task.job) or (task.worker_id and "\x00" in task.worker_id):
        _no_nul("id", task.id)
        _no_nul("job", task.job)
        _no_nul("worker_id", task.worker_id)
    return {
        "id": task.id, "job": task.job, "slot": task.slot, "state": task.state.value,
        "spec": spec_json(task.spec), "timeout": task.spec.timeout, "created_at": task.created_at,
        "updated_at": task.updated_at, "not_before": task.not_before, "attempt": task.attempt,
        "dispatches": task.dispatches, "redeliveries": task.redeliveries, "worker_id": task.worker_id,
        "dispatched_at": task.dispatched_at, "started_at": task.started_at, "finished_at": task.finished_at,
        "result": None if result is None else result_json(result), "reason": reason,
        "serial_limit": task.serial_limit, "version": task.version, "firing": firing,
        "ended": ended_json(task) if ended else None,
    }


def tasks_param(tasks: Any, *, ended: bool = False) -> str:
    return dumps([task_in(task, ended=ended) for task in tasks])


#: The columns of ``tasks`` a read selects, in this order (decode_task).
TASK_COLUMNS = ("id, job, slot, state, spec, created_at, updated_at, not_before, attempt, dispatches, "
                "redeliveries, worker_id, dispatched_at, started_at, finished_at, result, reason, "
                "serial_limit, version, signature")


def decode_task(row: Any) -> Task:
    result = row["result"]
    return stored_task({
        "id": row["id"], "spec": spec_from_json(row["spec"]), "job": row["job"], "slot": row["slot"],
        "state": _STATES[row["state"]], "created_at": row["created_at"], "updated_at": row["updated_at"],
        "not_before": row["not_before"], "attempt": row["attempt"], "dispatches": row["dispatches"],
        "redeliveries": row["redeliveries"], "worker_id": row["worker_id"],
        "dispatched_at": row["dispatched_at"], "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "result": None if result is None else stored_result(loads(result)),
        "reason": row["reason"], "serial_limit": row["serial_limit"], "version": row["version"],
        "signature": row["signature"],
    })


# -- jobs and workers -------------------------------------------------------------------------
def config_json(config: TaskConfig) -> str:
    return dumps(config.to_dict())


def decode_job(row: Any) -> tuple[TaskConfig, JobState]:
    data = loads(row["config"])
    data["version"] = row["version"]
    data["enabled"] = row["enabled"]
    config = TaskConfig.from_dict(data)
    state = JobState(name=row["name"], next_fire_at=row["next_fire_at"], last_slot=row["last_slot"],
                     paused=row["paused"], last_outcome=row["last_outcome"],
                     last_outcome_at=row["last_outcome_at"], last_task=row["last_task"])
    return config, state


def worker_json(worker: Worker) -> str:
    return dumps({name: getattr(worker, name) for name in _W_FIELDS})


def decode_worker(row: Any) -> Worker:
    """The worker of a ``workers`` row: its ``id`` column names it (its heartbeat and tasks
    are kept under that id), not the copy of the id in its JSON - a row copied from another
    worker listed twice under that worker's id."""
    data = loads(row["data"])
    data["id"] = row["id"]
    data["last_heartbeat"] = row["heartbeat"]
    data["draining"] = row["draining"]
    data["load"] = row["load"]
    data["blocked"] = row["blocked"]
    return stored_worker(data)


#: SchedulerNode fields kept in its JSON (id, heartbeat and role are columns).
_N_FIELDS = tuple(f.name for f in attrs.fields(SchedulerNode) if f.name not in ("id", "last_heartbeat", "role"))


def scheduler_json(node: SchedulerNode) -> str:
    return dumps({name: getattr(node, name) for name in _N_FIELDS})


def decode_scheduler(row: Any) -> SchedulerNode:
    data = loads(row["data"])
    data.update(id=row["id"], last_heartbeat=row["heartbeat"], role=row["role"])
    return SchedulerNode.from_dict(data)  # a newer node's field: left out, with a WARNING
