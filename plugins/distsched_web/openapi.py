"""The OpenAPI 3.0 document of ``/api/v1`` (served at ``/api/v1/openapi.json``).

Written by hand next to the handlers in ``server.py``; schemathesis checks the handlers
against it in the test suite.
"""

from __future__ import annotations

from typing import Any

from distsched import __version__

from .data import MAX_LIMIT, SCHEDULER_STATES, TASK_STATES

_NUM = {"type": "number"}
_NNUM = {"type": "number", "nullable": True}
_NSTR = {"type": "string", "nullable": True}
_STR = {"type": "string"}
_INT = {"type": "integer"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "required": required or list(props)}
    if not extra:
        out["additionalProperties"] = False
    return out


_ERROR = _obj({"error": _obj({"code": _STR, "field": _NSTR, "reason": _STR})})
_DURATION = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
_RETRY = {"type": "object", "properties": {
    "max_attempts": {"type": "integer", "minimum": 1}, "backoff": {"type": "string", "enum": ["fixed", "exponential"]},
    "delay": _DURATION, "max_delay": _DURATION, "jitter": {"type": "number", "minimum": 0, "maximum": 1},
    "intervals": {"type": "array", "items": _DURATION, "maxItems": 100},
    "retry_on": {"type": "array", "items": {"type": "string"}, "maxItems": 64},
    "dont_retry_on": {"type": "array", "items": {"type": "string"}, "maxItems": 64}},
    "additionalProperties": False}

_TASK_ROW = _obj({
    "id": _STR, "job": _NSTR, "state": {"type": "string", "enum": list(TASK_STATES)}, "slot": _NNUM,
    "slot_iso": _NSTR, "attempt": _INT, "worker_id": _NSTR, "created_at": _NUM, "updated_at": _NUM,
    "updated_iso": _NSTR, "started_at": _NNUM, "started_iso": _NSTR, "finished_at": _NNUM, "duration": _NNUM,
    "outcome": _NSTR, "error": _NSTR, "reason": _NSTR, "earlier_reason": _NSTR, "held_until": _NNUM, "held_until_iso": _NSTR,
    "not_before": {"type": "number", "description": "When it may be dispatched (epoch seconds): its slot, a retry's "
                                                    "time, or the time it was submitted for (delay / at)"},
    "not_before_iso": _NSTR,
    "scheduled_for": {"type": "number", "nullable": True,
                      "description": "A pending task submitted for later (delay / at), not due yet: when it is "
                                     "(its not_before); null otherwise. The pages say 'scheduled for <time> (in "
                                     "4m10s)' beside its state, distsched tasks list 'scheduled'"},
    "scheduled_for_iso": _NSTR,
    "scheduled_in": {"type": "string", "nullable": True,
                     "description": "How long until scheduled_for, in words ('4m10s'), on the store's clock"},
})
_ATTEMPT = _obj({
    "attempt": _INT, "attempt_id": _STR, "worker_id": _NSTR, "dispatched_at": _NNUM, "started_at": _NNUM,
    "started_iso": _NSTR, "finished_at": _NNUM, "finished_iso": _NSTR, "duration": _NNUM, "outcome": _STR,
    "value": {"nullable": True}, "error": _NSTR, "error_type": _NSTR, "retry_at": _NNUM, "retry_iso": _NSTR,
    "truncated": {"type": "boolean"}, "held_until": _NNUM, "held_until_iso": _NSTR,
    "redelivered": {"type": "boolean", "description": "A crash re-delivery: it keeps the attempt number of the "
                                                      "dispatch before it (distsched tasks show: '#1 (re-delivered)')"},
})
#: What the last attempt's code logged (the local executor's capture), secrets masked.
_LOG = {**_obj({"attempt_id": _STR, "text": _STR}), "nullable": True,
        "description": "What the task's last attempt logged through Python logging (the local executor's capture: "
                       "its last log_capture bytes, 16 KiB by default, with a first line saying what was dropped; "
                       "secrets masked); null: nothing captured (another executor, capture off, no attempt yet)"}
_TASK = {"allOf": [_ref("TaskRow"), _obj({
    "log": _LOG,
    "spec": {"type": "object"}, "dispatches": _INT, "redeliveries": _INT, "not_before": _NUM,
    "not_before_iso": _NSTR, "dispatched_at": _NNUM, "version": _INT,
    "attempts": {"type": "array", "items": _ref("Attempt")},
    "waiting": {"type": "string", "nullable": True,
                "description": "Why a task not dispatched yet waits, as distsched tasks show says it (its serial "
                               "job's turn, no live worker, none that offers its function, all full, no leader); "
                               "null when it does not wait or none of these holds"},
    "retry_of": {"type": "string", "nullable": True,
                 "description": "The task this one runs again (a retry: POST .../retry, distsched tasks retry)"},
    "retried_as": {"type": "array", "items": _STR,
                   "description": "The retries of this task, oldest first (<id>.retry-1, -2...; retries made "
                                  "before this link existed are not listed)"},
    "retry": _obj({"policy": {"type": "object"}, "words": _STR,
                   "schedule": {"type": "array", "items": {"type": "object"}},
                   "next_attempt_at": _NNUM, "next_attempt_iso": _NSTR}),
})]}
_JOB_ROW = _obj({
    "name": _STR, "trigger": _STR, "timezone": _STR, "executor": _STR, "target": _STR, "enabled": {"type": "boolean"},
    "paused": {"type": "boolean"}, "version": _INT, "next_fire_at": _NNUM, "next_fire_utc": _NSTR,
    "next_fire_local": _NSTR, "last_state": _NSTR, "last_at": _NNUM, "last_iso": _NSTR, "last_task": _NSTR,
    "description": _STR, "ended": {"type": "boolean", "description": "its end_date passed: no slot left (it stays "
                                                                     "stored until removed)"},
    "end_date": _NSTR,
    "overlap": {"type": "string", "enum": ["parallel", "serial", "discard", "replace"]}, "max_instances": _INT,
    "max_backlog": {"type": "integer", "nullable": True,
                    "description": "A serial job's max_backlog: how many of its slots may wait (null: not serial)"},
    "waiting": {"type": "integer", "nullable": True,
                "description": "How many of its slots wait their turn, held by the store until the job has room "
                               "(null: not serial, or a store that cannot count them)"},
    "backlog_full": {"type": "boolean", "description": "A serial job with max_backlog slots waiting: the store "
                                                       "records its new slots skipped"},
    "backlog": {"type": "string", "nullable": True,
                "description": "The backlog in words, as distsched jobs list says it ('serial, 37 waiting of 100'); "
                               "null: not serial"},
})
_JOB = {"allOf": [_ref("JobRow"), _obj({
    "spec": {"type": "object"},
    "backlog_oldest_at": {"type": "number", "nullable": True,
                          "description": "The slot time of its oldest waiting slot (null: none waits)"},
    "backlog_oldest_iso": _NSTR,
    "retry_words": {"type": "string", "description": "The retry policy in one line, as distsched explain says it "
                                                     "('4 attempts, waits 10s, 30s, 60s (the last repeats)')"},
    "upcoming": {"type": "array", "items": _obj({"at": _NUM, "utc": _STR, "local": _STR, "skip": _NSTR,
                                                 "start": _NUM, "start_utc": _STR})},
})]}
_QUARANTINED = _obj({"kind": _STR, "key": _STR, "reason": _STR, "at": _NUM, "at_iso": _NSTR})
#: A worker as the overview lists it; /api/v1/workers adds its live and recent tasks.
_WORKER_FIELDS = {
    "id": _STR, "host": _STR, "pid": _INT, "state": {"type": "string", "enum": ["alive", "draining", "silent", "stale", "stopped"]},
    "load": _INT, "capacity": _INT, "concurrency": _INT, "queued": _INT, "heartbeat_age": _NNUM,
    "alive": {"type": "boolean"}, "draining": {"type": "boolean"}, "started_iso": _NSTR,
    "executors": {"type": "array", "items": _STR,
                  "description": "The executors the worker advertised: the leader sends it only tasks of these. "
                                 "Empty: not said - a worker of an earlier version, which gets every task "
                                 "(distsched status: 'executors not said')"},
    "functions": {"type": "array", "items": _STR,
                  "description": "The functions its local executor runs, all of them: the leader sends it only "
                                 "local tasks of these (empty, with executors said: none)"},
}
_WORKER_SUMMARY = _obj(_WORKER_FIELDS)
_WORKER = _obj({
    **_WORKER_FIELDS,
    "live": {"type": "array", "items": _ref("TaskRow")}, "recent": {"type": "array", "items": _ref("TaskRow")},
})
_SCHEDULER = _obj({
    "id": _STR, "host": _STR, "pid": _INT,
    "role": {"type": "string", "description": "The role the node last reported (leader or standby), as "
                                              "recorded: a killed leader's stays 'leader'"},
    "state": {"type": "string", "enum": list(SCHEDULER_STATES),
              "description": "Its role while it is heard from within the lease TTL, else 'silent' "
                             "(distsched status: 'silent (was leader)')"},
    "heartbeat_age": _NNUM, "alive": {"type": "boolean"},
})
_LEADER = {**_obj({
    "node_id": _STR, "term": _INT, "since": _NUM, "since_iso": _NSTR, "lease_age": _NUM,
    "renewed_age": {"type": "number", "description": "Seconds since the lease's last renewal"},
    "expires_in": {"type": "number", "description": "Seconds until the lease expires (negative: expired)"},
    "expired": {"type": "boolean"},
    "renewal_overdue": {"type": "boolean", "description": "Not expired, but its last renewal is older than "
                                                          "renewal_overdue_after: the holder may be dead, and no "
                                                          "other node can lead until the lease expires "
                                                          "(distsched status: 'renewal overdue')"},
    "renewal_overdue_after": {"type": "number", "nullable": True,
                              "description": "Seconds after a renewal from which the next one is overdue: two "
                                             "renew intervals (null: the lease record gives none to measure by)"},
    "renew_interval": {"type": "number", "nullable": True,
                       "description": "The holder's renew interval, as it recorded it when it took the lease (null: "
                                      "a record written by an older node; renewal_overdue_after is then estimated "
                                      "from the lease TTL)"},
}), "nullable": True, "description": "The lease as recorded (null: none was ever taken, or its record cannot be "
                                     "read: see leader_claimed_by)"}
_JOBS = {**_obj({
    "total": {"type": "integer", "description": "Jobs stored (when more: the most the status counts)"},
    "enabled": {"type": "integer", "nullable": True,
                "description": "Of which enabled: a disabled job never fires (null: more than counted)"},
    "more": {"type": "boolean", "description": "More jobs are stored than the status counts"},
}), "nullable": True, "description": "The jobs stored, as distsched status counts them ('jobs 12 (11 enabled)'; "
                                     "total 0: none - a store that lost its data, a Redis restarted empty, reads "
                                     "so too). Null: not counted"}
_HELD = {**_obj({
    "total": {"type": "integer", "description": "Pending slots that wait their turn behind serial jobs (counted "
                                                "in tasks.pending, left out of oldest_pending_age)"},
    "jobs": {"type": "integer", "description": "The serial jobs they wait behind"},
    "backlogs": {"type": "array", "description": "The jobs with the most waiting (10 at most)",
                 "items": _obj({"job": _STR, "waiting": _INT, "oldest_age": {
                     "type": "number", "nullable": True, "description": "Seconds since the oldest one's slot"}})},
}), "nullable": True, "description": "A serial job's backlog: its slots held by the store until the job has room "
                                     "(null: the store cannot count them)"}
_OVERVIEW = {"type": "object", "required": ["now", "leader", "leader_claimed_by", "schedulers", "workers", "jobs",
                                            "tasks"],
             "properties": {"now": _NUM, "leader": _LEADER, "jobs": _JOBS, "held": _HELD,
                            "leader_claimed_by": {"type": "array", "items": _STR},
                            "schedulers": {"type": "array", "items": _ref("Scheduler")},
                            "workers": {"type": "array", "items": _ref("WorkerSummary")},
                            "tasks": {"type": "object", "additionalProperties": _INT},
                            "store_warnings": {"type": "array", "items": _STR,
                                               "description": "What the store says is wrong with it now, a "
                                                              "line each: it refuses writes (Redis at maxmemory, "
                                                              "a read-only replica, a PostgreSQL standby) or may "
                                                              "evict records; empty when nothing is"}}}
_JOB_INPUT = {
    "type": "object", "additionalProperties": False,
    "description": "The fields of a [[jobs]] table of the jobs file (docs/jobs-file.md); exactly one of "
                   "cron, every, at.",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200}, "cron": _STR, "every": _DURATION, "at": _STR, "timezone": _STR, "executor": _STR,
        "target": _STR, "args": {"type": "array"}, "kwargs": {"type": "object"}, "options": {"type": "object"},
        "timeout": _DURATION, "balancer": _STR, "balance_key": _NSTR, "retry": _RETRY,
        "enabled": {"type": "boolean"}, "misfire": {"type": "string", "enum": ["skip", "fire-once", "fire-all"]},
        "misfire_grace": _DURATION,
        "overlap": {"type": "string", "enum": ["parallel", "serial", "discard", "replace"]},
        "max_instances": {"type": "integer", "minimum": 1},
        "max_backlog": {"type": "integer", "minimum": 0, "maximum": 1_000_000}, "dst_gap": {"type": "string", "enum": ["shift", "skip", "transition"]},
        "dst_fold": {"type": "string", "enum": ["once", "twice"]}, "description": _STR,
        "start_date": {"type": "string", "format": "date-time", "description": "cron and every: no slot before it "
                       "(ISO-8601 with an offset; an every job counts its slots from it)"},
        "end_date": {"type": "string", "format": "date-time", "description": "cron and every: no slot after it "
                     "(ISO-8601 with an offset)"},
        "jitter": _DURATION,
    },
}
_SUBMIT = {
    "type": "object", "additionalProperties": False, "required": ["target"],
    "properties": {
        "target": _STR, "executor": _STR, "args": {"type": "array"}, "kwargs": {"type": "object"},
        "options": {"type": "object"}, "timeout": _DURATION, "retry": _RETRY, "balancer": _STR, "task_id": _STR,
        "delay": {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
                  "description": "Run it this long from now, not at once: seconds or '10s', '5m', '1h30m' (366 days "
                                 "at most; not with at). Stored as its not_before: pending until then"},
        "at": {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
               "description": "Run it at this time, not at once: ISO-8601 with an offset ('2030-01-01T09:00:00Z') or "
                              "epoch seconds (366 days ahead at most; a time without an offset is refused; one "
                              "already past is due at once; not with delay)"},
    },
}

_CURSOR = {"name": "cursor", "in": "query", "required": False,
           "description": "The next_cursor of the previous page (opaque).",
           "schema": {"type": "string", "minLength": 1, "maxLength": 1024}}
_AFTER = {"name": "after", "in": "query", "required": False,
          "description": "The next_after of the previous page (the last name shown).",
          "schema": {"type": "string", "minLength": 1, "maxLength": 1024}}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": _STR}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "Invalid input: the field and the reason", 401: "Missing or wrong bearer token",
             403: "Read-only dashboard (no DISTSCHED_WEB_TOKEN)", 404: "Not found",
             409: "Conflict (exists, or changed meanwhile)", 413: "Body too large",
             503: "The store does not answer, or cannot be opened (the reason says why)"}
    return {str(c): _json(_ref("Error"), words[c]) for c in codes}


_WRITE = (400, 401, 403, 404, 409, 413)
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]


def openapi_document() -> dict[str, Any]:
    page = lambda items: _obj({"items": {"type": "array", "items": items}, "cursor": _NSTR, "limit": _INT,  # noqa: E731
                               "next_cursor": _NSTR})
    action = lambda what: {  # noqa: E731
        "post": {"summary": f"{what.title()} a job", "operationId": f"{what}Job", "parameters": [_NAME],
                 "security": _SECURED, "responses": {"200": _json({"type": "object"}), **_errors(*_WRITE)}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "distsched REST API", "version": __version__,
                 "description": "Read a deployment and operate its jobs and tasks. Mutating calls need "
                                "'Authorization: Bearer <DISTSCHED_WEB_TOKEN>'."},
        "paths": {
            "/api/v1/overview": {"get": {"summary": "Leader, workers, task counts, throughput, recent failures",
                                         "operationId": "overview", "responses": {"200": _json(_ref("Overview")), **_errors(401)}}},
            "/api/v1/jobs": {
                "get": {"summary": "Jobs, by name, paginated", "operationId": "listJobs",
                        "parameters": [_AFTER, _LIMIT],
                        "responses": {"200": _json(_obj({"items": {"type": "array", "items": _ref("JobRow")},
                                                         "after": _NSTR, "limit": _INT, "next_after": _NSTR})),
                                      **_errors(400, 401)}},
                "post": {"summary": "Create a job from jobs-file fields", "operationId": "createJob",
                         "security": _SECURED,
                         "requestBody": {"required": True, "content": {"application/json": {"schema": _JOB_INPUT}}},
                         "responses": {"201": _json(_ref("Job"), "Created"), **_errors(*_WRITE)}},
            },
            "/api/v1/jobs/{name}": {
                "get": {"summary": "One job: spec, next fire times", "operationId": "getJob", "parameters": [_NAME],
                        "responses": {"200": _json(_ref("Job")), **_errors(401, 404)}},
                "put": {"summary": "Create or update a job", "operationId": "putJob", "parameters": [_NAME],
                        "security": _SECURED,
                        "requestBody": {"required": True, "content": {"application/json": {"schema": _JOB_INPUT}}},
                        "responses": {"200": _json(_ref("Job"), "Updated"), "201": _json(_ref("Job"), "Created"),
                                      **_errors(*_WRITE)}},
                "delete": {"summary": "Remove a job (its tasks stay)", "operationId": "removeJob",
                           "parameters": [_NAME], "security": _SECURED,
                           "responses": {"200": _json(_obj({"removed": _STR})), **_errors(*_WRITE)}},
            },
            "/api/v1/jobs/{name}/history": {
                "get": {"summary": "A job's runs, newest first", "operationId": "jobHistory",
                        "parameters": [_NAME, _CURSOR, _LIMIT],
                        "responses": {"200": _json(page(_ref("TaskRow"))), **_errors(400, 401, 404)}}},
            "/api/v1/jobs/{name}/pause": action("pause"),
            "/api/v1/jobs/{name}/resume": action("resume"),
            "/api/v1/jobs/{name}/trigger": action("trigger"),
            "/api/v1/tasks": {
                "get": {"summary": "Tasks, most recently updated first, filtered", "operationId": "listTasks",
                        "parameters": [
                            {"name": "state", "in": "query", "required": False,
                             "schema": {"type": "string", "enum": list(TASK_STATES)}},
                            {"name": "job", "in": "query", "required": False, "schema": _STR},
                            {"name": "worker", "in": "query", "required": False, "schema": _STR},
                            _CURSOR, _LIMIT],
                        "responses": {"200": _json(page(_ref("TaskRow"))), **_errors(400, 401)}},
                "post": {"summary": "Submit a one-off task", "operationId": "submitTask", "security": _SECURED,
                         "requestBody": {"required": True, "content": {"application/json": {"schema": _SUBMIT}}},
                         "responses": {"201": _json({"allOf": [_ref("Task"), _obj({"warnings": {
                             "type": "array", "items": _STR,
                             "description": "What was accepted but is likely a mistake, a line each: an 'at' more "
                                            "than a minute in the past (the task is due at once). Empty: none"}})]},
                             "Submitted"), **_errors(*_WRITE)}},
            },
            "/api/v1/tasks/{task_id}": {
                "get": {"summary": "One task: attempts, result or error, retry schedule", "operationId": "getTask",
                        "parameters": [_TASK_ID],
                        "responses": {"200": _json(_ref("Task")), **_errors(401, 404)}}},
            "/api/v1/tasks/{task_id}/cancel": {
                "post": {"summary": "Cancel a task that has not finished (as distsched tasks cancel): it will not "
                                    "run (again); a running attempt is stopped by its worker within one heartbeat. "
                                    "409: it already finished", "operationId": "cancelTask",
                         "parameters": [_TASK_ID], "security": _SECURED,
                         "responses": {"200": _json(_obj({
                             "task_id": _STR, "cancelled": {"type": "boolean"},
                             "was_running_on": {"type": "string", "nullable": True,
                                                "description": "The worker that had it (it stops the attempt)"},
                             "task": _ref("Task")})), **_errors(401, 403, 404, 409)}}},
            "/api/v1/tasks/{task_id}/retry": {
                "post": {"summary": "Run a finished task (any final state: succeeded, failed, timed_out, "
                                    "cancelled, skipped) again as a new task with the same call (as distsched "
                                    "tasks retry; a job's task stays with its job), <id>.retry-N, its retry_of "
                                    "the old id. 409: it has not finished", "operationId": "retryTask",
                         "parameters": [_TASK_ID], "security": _SECURED,
                         "responses": {"201": _json(_obj({
                             "task_id": _STR, "retry_task_id": {"type": "string", "description": "The new task"},
                             "task": _ref("Task")}), "Submitted"), **_errors(401, 403, 404, 409)}}},
            "/api/v1/workers": {
                "get": {"summary": "Workers with load, heartbeat age and live tasks", "operationId": "listWorkers",
                        "responses": {"200": _json(_obj({"items": {"type": "array", "items": _ref("Worker")}})),
                                      **_errors(401)}}},
            "/api/v1/quarantine": {
                "get": {"summary": "Records the store moved aside because they could not be decoded, newest first",
                        "operationId": "listQuarantined", "parameters": [_LIMIT],
                        "responses": {"200": _json(_obj({"items": {"type": "array", "items": _ref("Quarantined")},
                                                         "limit": _INT})),
                                      **_errors(400, 401)}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "TaskRow": _TASK_ROW, "Attempt": _ATTEMPT, "Task": _TASK,
                        "JobRow": _JOB_ROW, "Job": _JOB, "Worker": _WORKER, "WorkerSummary": _WORKER_SUMMARY, "Quarantined": _QUARANTINED,
                        "Scheduler": _SCHEDULER, "Overview": _OVERVIEW},
        },
    }
