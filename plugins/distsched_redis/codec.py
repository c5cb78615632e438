"""How model objects become Redis values and back. JSON only, never pickle.

A task is stored as a hash (see ``lua/lib/tasks.lua``): ``sp`` the spec JSON, ``d`` the fields
that change rarely as compact JSON (``None`` values left out), and one hash field for each
field the scripts change on their own - ``s`` state, ``v`` version, ``w`` worker, ``n``
dispatches, ``u`` updated_at, ``sa`` started_at, ``da`` dispatched_at, ``fa`` finished_at,
``r`` the result JSON - plus ``to`` timeout and ``j`` job for the indexes. A dispatch, a
worker's pull and the leader's settling of successes change only those fields, in Lua,
without reading or rewriting the JSON (settling drops the ``reason`` of a requeue from ``d``).

Records read back from the store are rebuilt without running the model's validators again
(``distsched.model.trusted``): the engine validated them when they were created.

Floats travel as ``repr(float)`` text, which Redis and Lua read back exactly. JSON goes
through orjson (several times faster than the standard library on these small documents),
with the standard library where orjson would differ: an integer beyond 64 bits, which orjson
cannot encode (and would decode as a float). Such a text is written by the standard library
with a leading space, and read back by it.
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
from distsched.model.trusted import stored_result, stored_spec, stored_task, stored_worker
from distsched.ports import Attempt, SettledTask

_std_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ORJSON = orjson.OPT_NON_STR_KEYS  # int keys become strings, as with the standard library


def _dumps(value: Any) -> str:
    """Compact JSON text."""
    try:
        return orjson.dumps(value, option=_ORJSON).decode()
    except TypeError:  # an integer beyond 64 bits (or a type neither library encodes: it raises)
        return " " + _std_dumps(value)  # the space: read it back with the standard library


def loads(text: str) -> Any:
    if text[:1] == " ":  # written by the standard library: may hold integers beyond 64 bits
        return json.loads(text)
    return orjson.loads(text)


#: Fields of Task kept in ``d``; computed from the model so a new field is stored too.
_OVERLAY = {"id", "spec", "state", "version", "started_at", "updated_at", "worker_id", "dispatches",
            "dispatched_at", "finished_at", "result", "signature"}
_D_FIELDS = tuple(f.name for f in attrs.fields(Task) if f.name not in _OVERLAY)
_R_FIELDS = tuple(f.name for f in attrs.fields(TaskResult))
#: Worker fields kept in its JSON (heartbeat, draining and load live elsewhere).
_W_FIELDS = tuple(f.name for f in attrs.fields(Worker) if f.init and f.name not in ("load", "last_heartbeat", "draining", "blocked"))
#: Separates the fields of a task in script arguments and replies.
SEP = "\x1f"


def num(value: float | None) -> str:
    """A float as exact text ('' for None)."""
    return "" if value is None else repr(float(value))


def dumps(value: Any) -> str:
    return _dumps(value)


# -- specs: many tasks share one; cache both directions --------------------------------
#: A spec's JSON, encoded once for the tasks that share it while its kwargs and options
#: dicts are unchanged (see distsched.model.spec_json_cache).
spec_json = spec_json_cache(_dumps)


@lru_cache(maxsize=4096)
def spec_from_json(text: str) -> TaskSpec:
    """TaskSpec is frozen; tasks of one job share the decoded instance - its ``args`` and
    ``kwargs`` too, which must never be changed: the ``local`` executor copies a list or dict
    argument before each call (a function changing its arguments in place would otherwise
    change later tasks' and retries', and what the store writes back)."""
    return stored_spec(loads(text))


# -- tasks --------------------------------------------------------------------------------
def _blen(text: str) -> str:
    return str(len(text.encode("utf-8")))


def task_args(task: Task, expected_version: int | None = None) -> str:
    """``task`` as one script argument for a full write (see ``parse_task`` in
    lua/lib/tasks.lua): fields separated by \\x1f (JSON never holds a raw one), the free-text
    ones (job, worker, id) last, with their byte lengths, so any id is safe."""
    d: dict[str, Any] = {}
    for name in _D_FIELDS:
        value = getattr(task, name)
        if value is not None:
            d[name] = value
    state = task.state
    deadline = task.deadline() if state in ASSIGNED else None
    job = task.job or ""
    worker = task.worker_id or ""
    result = task.result
    return SEP.join((
        state.value,
        str(task.version if expected_version is None else expected_version),
        num(task.not_before),
        num(deadline),
        num(task.updated_at),
        num(task.started_at),
        str(task.dispatches),
        num(task.spec.timeout),
        num(task.dispatched_at),
        num(task.finished_at),
        spec_json(task.spec),
        _dumps(d),
        "" if result is None else result_json(result),
        num(task.created_at),
        _attempt_json(task) if task.dispatches and state not in ASSIGNED else "",
        _blen(job),
        _blen(worker),
        job + worker + task.id,
    ))


def _attempt_json(task: Task) -> str:
    """The record of the attempt ``task`` ends if the stored one was dispatched or running
    (the script decides, and adds the worker it was on)."""
    record = ended_attempt(task, None)
    return "" if record is None else _dumps(record.to_dict())


def decode_attempt(entry: str) -> Attempt:
    """An entry of ``ta:<id>``: "<worker>\x1f<attempt JSON>"."""
    worker, _, text = entry.partition(SEP)
    data = loads(text)
    if not data.get("worker_id") and worker:
        data["worker_id"] = worker
    return stored_attempt(data)


def dispatch_args(task: Task) -> str:
    """A task the leader moved to ``dispatched``, as lua/dispatch.lua reads it: only the
    fields a dispatch changes (the expected version is ``task.version``)."""
    worker = task.worker_id or ""
    return SEP.join((
        str(task.version),
        str(task.dispatches),
        num(task.updated_at),
        num(task.dispatched_at),
        num(task.deadline()),
        task.signature or "",
        _blen(worker),
        worker + task.id,
    ))


_STATES = {state.value: state for state in TaskState}


def decode_task(row: list[Any]) -> Task:
    """A task row from a script: [s, v, sa, u, w, n, da, fa, r, sp, d, g, id], None for a field
    not stored (see ``task_reply`` in lua/lib/tasks.lua)."""
    s, v, sa, u, w, n, da, fa, r, sp, d, g, task_id = row
    data = loads(d)
    data["id"] = task_id
    data["spec"] = spec_from_json(sp)
    data["state"] = _STATES[s]
    data["version"] = int(v)
    data["started_at"] = float(sa) if sa else None
    data["updated_at"] = float(u)
    data["worker_id"] = w or None
    data["dispatches"] = int(n)
    data["dispatched_at"] = float(da) if da else None
    data["finished_at"] = float(fa) if fa else None
    data["result"] = stored_result(loads(r)) if r else None
    data["signature"] = g or None
    return stored_task(data)


def decode_settled(row: str) -> SettledTask:
    """A summary from lua/settle.lua: "job\\x1fattempt\\x1fstarted\\x1ffinished\\x1fat\\x1fid"."""
    job, attempt, started, finished, at, task_id = row.split(SEP, 5)
    return SettledTask(task_id=task_id, job=job or None, attempt=int(attempt),
                       started_at=float(started), finished_at=float(finished), at=float(at))


def _result_dict(result: TaskResult) -> dict[str, Any]:
    """Like ``result.to_dict()`` without attrs.asdict's deep copy (JSON encodes it at once)."""
    return {name: getattr(result, name) for name in _R_FIELDS}


def result_json(result: TaskResult) -> str:
    return _dumps(_result_dict(result))


def decode_result(text: str) -> TaskResult:
    data = loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"a result must be a JSON object, not {type(data).__name__}")
    for field in ("task_id", "attempt_id", "outcome"):
        if not isinstance(data.get(field), str):
            raise TypeError(f"result field {field!r} must be a string")
    for field in ("started_at", "finished_at"):
        if isinstance(data.get(field), bool) or not isinstance(data.get(field), (int, float)):
            raise TypeError(f"result field {field!r} must be a number")
    return TaskResult.from_dict(data)


# -- jobs ---------------------------------------------------------------------------------
def config_json(config: TaskConfig) -> str:
    """Compact: the name (the hash field) and the version (in the state) are not repeated, nor
    the spec's balance_key when it is the job name (TaskConfig restores exactly that)."""
    data = config.to_dict()
    data.pop("version", None)
    data.pop("name", None)
    if data["spec"].get("balance_key") == config.name:
        del data["spec"]["balance_key"]
    return _dumps(data)


_FLAGS = ("0", "1")


def decode_job(name: str, config: str, state: str, last_outcome: str = "") -> tuple[TaskConfig, JobState]:
    """A job from its config JSON, its state text "v|next|last|paused|enabled|op" and its
    last outcome "state|at|task id" ("" = none yet).

    The state's flags are the ones the scripts fire by (lua/fire.lua fires a job whose paused
    field is ``0`` and enabled field ``1``, nothing else): a state that says anything else, or
    an enabled flag its config does not say, or one the scripts cannot parse (not 5 or 6
    fields), is refused naming the field. Read as "not paused", such a job was listed as
    scheduled, never fired, and held the leader's next due time in the past: its pass ran
    without pause (12,000 Redis commands a second instead of 200)."""
    fields = state.split("|")
    if not 5 <= len(fields) <= 6:
        raise ValidationError("schedule state", f"must be 'version|next_fire_at|last_slot|paused|enabled|op' "
                                                f"(5 or 6 fields), not {len(fields)} field(s)")
    version, nxt, last, paused, enabled = fields[:5]
    if paused not in _FLAGS:
        raise ValidationError("paused", f"the schedule state's paused flag must be 0 or 1, not {paused!r:.40}")
    if enabled not in _FLAGS:
        raise ValidationError("enabled", f"the schedule state's enabled flag must be 0 or 1, not {enabled!r:.40}")
    outcome, at, task_id = last_outcome.split("|", 2) if last_outcome else (None, None, None)
    data = loads(config)
    data["name"] = name
    data["version"] = int(version)
    said = data.get("enabled", True)  # one of another type: TaskConfig refuses it, naming the field
    if isinstance(said, bool) and said is not (enabled == "1"):
        raise ValidationError("enabled", f"the schedule state says {enabled!r} (the scripts fire by it), its config "
                                         f"{'true' if said else 'false'}")
    job_state = JobState(
        name=name,
        next_fire_at=float(nxt) if nxt else None,
        last_slot=float(last) if last else None,
        paused=paused == "1",
        last_outcome=outcome or None,
        last_outcome_at=float(at) if at else None,
        last_task=task_id or None,
    )
    return TaskConfig.from_dict(data), job_state


# -- workers ------------------------------------------------------------------------------
def worker_json(worker: Worker) -> str:
    return _dumps({name: getattr(worker, name) for name in _W_FIELDS})


def decode_worker(worker_id: str, data: str, heartbeat: Any, draining: Any, load: Any, blocked: Any = 0) -> Worker:
    """The worker stored under ``worker_id``: the key names it (its heartbeat, queue and tasks
    are kept under that id), not the copy of the id in its JSON - a record copied from
    another worker listed twice under that worker's id. A field this version does not know
    (a newer worker's) is left out, with one WARNING per field (``stored_worker``)."""
    fields = loads(data)
    fields.update(id=worker_id, last_heartbeat=float(heartbeat), draining=bool(int(draining)), load=int(load),
                  blocked=int(blocked or 0))
    return stored_worker(fields)
