"""What the pages and the API show, read through the public facade and the storage ports.

Every function returns plain JSON-ready dicts (the API serialises them as they are; the
templates render them). Nothing here scans all jobs or all tasks: listings are paginated by
the store, counts come from the store's counters.
"""

from __future__ import annotations

import asyncio
from datetime import timezone
from typing import Any
from zoneinfo import ZoneInfo

from distsched.history import (
    attempt_duration,
    in_words,
    redelivered,
    scheduled_for,
    shown_start,
    task_error,
    task_times,
)
from distsched.masking import mask_secrets
from distsched.model import (  # the job builders (issue 12.1)
    Task,
    TaskConfig,
    ValidationError,
    clean_log,
    job_fields,
)
from distsched.model.times import to_datetime
from distsched.model.words import schedule_words
from distsched.urls import redact_text, redact_url

#: Largest page the pages and the API hand out.
MAX_LIMIT = 200
TASK_STATES = ("pending", "dispatched", "running", "retrying", "succeeded", "failed", "timed_out",
               "cancelled", "skipped")
FAILED_STATES = ("failed", "timed_out")


def iso(at: float | None, zone: str | None = None) -> str | None:
    """``at`` as ISO 8601 in ``zone`` (UTC: ``...Z``); None for none, and for a time no date
    can show (past year 9999 in the zone: the number beside it still says it)."""
    if at is None:
        return None
    tz = ZoneInfo(zone) if zone and zone != "UTC" else timezone.utc
    when = to_datetime(at, tz)
    if when is None:
        return None
    text = when.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if tz is timezone.utc else text


def trigger_words(config: TaskConfig) -> str:
    """The job's schedule in the same words as ``distsched jobs list`` prints."""
    return schedule_words(config.trigger)


def check_limit(value: Any, default: int = 50) -> int:
    if value is None:
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ValidationError("limit", f"must be an integer between 1 and {MAX_LIMIT}, not {value!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be an integer between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def check_cursor(value: Any, field: str = "cursor") -> str | None:
    """An opaque page cursor (or a job name for the jobs pages); None for the first page."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 1024:
        raise ValidationError(field, "must be the cursor of a previous page (1-1024 characters)")
    return value


def check_state(value: Any, *, empty_is_any: bool = False) -> str | None:
    """A task state filter; ``""`` means any state only on the pages (their form sends it)."""
    if value is None or (value == "" and empty_is_any):
        return None
    if value not in TASK_STATES:
        raise ValidationError("state", f"must be one of {', '.join(TASK_STATES)}, not {value!r}")
    return str(value)


def task_row(task: Task, now: float | None = None) -> dict[str, Any]:
    """One task as a listing row, by the rules of ``distsched tasks list``. ``now`` (the
    store's clock) tells whether a task its worker took ahead of its slot is still held
    (``held_until``: it has not started) or runs - for ``now`` minus its start: its duration.
    Its start is never before its slot, and a task pending again after its worker was lost
    has no duration (``distsched.history.task_times``). Its ``error`` is that of ``tasks
    list`` (``distsched.history.task_error``): a task that failed with no result - not
    dispatchable, or its worker lost once too often - gives why, as a cancelled one does."""
    result = task.result
    started, finished, duration = task_times(task, now)
    held = task.held_until(now) if now is not None else None
    reason, earlier_reason = task.reasons()
    scheduled = scheduled_for(task, now)
    return {
        "id": task.id, "job": task.job, "state": task.state.value, "slot": task.slot, "slot_iso": iso(task.slot),
        "held_until": held, "held_until_iso": iso(held),
        "attempt": task.attempt, "worker_id": task.worker_id,
        "created_at": task.created_at, "updated_at": task.updated_at, "updated_iso": iso(task.updated_at),
        "started_at": started, "started_iso": iso(started), "finished_at": finished,
        "duration": round(duration, 6) if duration is not None else None,
        "outcome": result.outcome if result is not None else None,
        "error": mask_secrets(task_error(task)),
        # a dispatched or running task's reason is an earlier requeue's (Task.reasons)
        "reason": reason, "earlier_reason": earlier_reason,
        # when it may be dispatched; a pending task submitted for later (delay / at), not due
        # yet, says when it is due beside its state: "scheduled for <iso> (in 4m10s)"
        "not_before": task.not_before, "not_before_iso": iso(task.not_before),
        "scheduled_for": scheduled, "scheduled_for_iso": iso(scheduled),
        "scheduled_in": in_words(scheduled - now) if scheduled is not None and now is not None else None,
    }


def attempt_row(a: Any, slot: float | None = None, *, redelivered: bool = False) -> dict[str, Any]:
    """One attempt as the task page shows it, by the rules of ``distsched tasks show``
    (``distsched.history``). A ``lost`` attempt has no duration: its end is when the leader
    declared its worker lost, not when the worker stopped (the page says ``declared lost``)
    - ``attempt_duration``. A start is never before the task's ``slot`` (``shown_start``).
    ``redelivered``: a crash re-delivery, which keeps its attempt number (``Attempt.number``)
    under a dispatch of its own (``redelivered``)."""
    duration = attempt_duration(a)
    started = shown_start(a.started_at, a.finished_at, slot)
    return {
        "attempt": a.number, "attempt_id": a.attempt_id, "worker_id": a.worker_id,
        "dispatched_at": a.dispatched_at, "started_at": started, "started_iso": iso(started),
        "finished_at": a.finished_at, "finished_iso": iso(a.finished_at),
        "duration": round(duration, 6) if duration is not None else None, "outcome": a.outcome,
        "value": mask_secrets(a.value), "error": mask_secrets(a.error), "error_type": a.error_type,
        "retry_at": a.retry_at, "retry_iso": iso(a.retry_at), "truncated": a.truncated,
        "held_until": None, "held_until_iso": None, "redelivered": redelivered,
    }


def task_detail(task: Task, attempts: Any, now: float | None = None) -> dict[str, Any]:
    """One task with every attempt (result or error) and its retry schedule; the attempt in
    flight has not started while its worker holds it for its slot (``held_until``)."""
    row = task_row(task, now)
    attempts = list(attempts)  # oldest first
    rows = [attempt_row(a, task.slot, redelivered=again) for a, again in zip(attempts, redelivered(attempts))]
    for a in rows:
        if a["attempt_id"] == task.attempt_id and a["outcome"] in ("dispatched", "running") and now is not None:
            started = task.attempt_began(now) if a["outcome"] == "running" else None
            a.update(started_at=started, started_iso=iso(started), held_until=row["held_until"],
                     held_until_iso=row["held_until_iso"])
    spec = task.spec
    retry = spec.retry
    schedule = [{"after_attempt": n, "delay": retry.delay_after(n)} for n in range(1, min(retry.max_attempts, 51))]
    retrying = task.state.value == "retrying"
    row.update(
        spec=mask_secrets(spec.to_dict()), dispatches=task.dispatches, redeliveries=task.redeliveries,
        not_before=task.not_before, not_before_iso=iso(task.not_before), dispatched_at=task.dispatched_at,
        version=task.version, attempts=rows,
        retry={"policy": retry.to_dict(), "words": retry.words(), "schedule": schedule,
               "next_attempt_at": task.not_before if retrying else None,
               "next_attempt_iso": iso(task.not_before) if retrying else None},
    )
    result = task.result
    # what the last attempt's code logged (the local executor's capture), masked; null: none
    row["log"] = None if result is None or result.log is None else {
        "attempt_id": result.attempt_id, "text": mask_secrets(clean_log(result.log))}
    return row


#: A scheduler node's ``state`` (``distsched.status.SchedulerStatus.state``): its role while
#: it is heard from, else ``silent`` - a leader killed keeps ``role: leader`` beside the
#: node that took over.
SCHEDULER_STATES = ("leader", "standby", "silent")


def quarantine_row(q: Any) -> dict[str, Any]:
    """A record the store moved aside (``distsched.ports.Quarantined``), as the pages show it.
    Its reason quotes the bad value (a corrupted field may hold a storage URL): the passwords
    of URLs in it are hidden, as in task errors."""
    return {"kind": q.kind, "key": q.key, "reason": redact_text(q.reason), "at": q.at, "at_iso": iso(q.at)}


class WebData:
    """The queries behind the pages and the API, over one DistributeSchedule (its history
    queries: ``status``, ``throughput``, ``jobs_page``, ``tasks``, ``task_detail``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def store(self) -> Any:
        return await self.app.storage()

    # -- overview ---------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        status = await self.app.status()
        leader = status.leader
        return {
            "now": status.now, "now_iso": iso(status.now),
            "leader": None if leader is None else {
                "node_id": leader.node_id, "term": leader.term, "since": leader.acquired_at,
                "since_iso": iso(leader.acquired_at), "lease_age": round(leader.lease_age, 3),
                "renewed_age": round(leader.renewed_age, 3), "expires_in": round(leader.expires_in, 3),
                "expired": leader.expired,
                # its last renewal older than two renew intervals: the holder may be dead
                "renewal_overdue": leader.renewal_overdue, "renewal_overdue_after": leader.renewal_overdue_after,
                # the holder's, as its lease record gives it (None: an older node's record)
                "renew_interval": leader.renew_interval},
            "leader_claimed_by": list(status.leader_claimed_by),
            "schedulers": [{"id": n.id, "host": n.host, "pid": n.pid, "role": n.role, "state": n.state,
                            "heartbeat_age": None if n.heartbeat_age is None else round(n.heartbeat_age, 3),
                            "alive": n.alive} for n in status.schedulers],
            "workers": [{"id": w.id, "host": w.host, "pid": w.pid, "state": w.state, "load": w.load,
                         "capacity": w.capacity, "concurrency": w.concurrency, "queued": w.queued,
                         "heartbeat_age": None if w.heartbeat_age is None else round(w.heartbeat_age, 3),
                         "alive": w.state in ("alive", "draining"), "draining": w.draining,
                         "started_iso": iso(w.started_at),
                         # what it advertised, by which the leader routes its tasks ([]: not
                         # said - a worker of an earlier version, which gets every task)
                         "executors": mask_secrets(list(w.executors)), "functions": mask_secrets(list(w.functions))}
                        for w in sorted(status.workers, key=lambda w: w.id)],
            # the jobs stored, as distsched status counts them (none: a store that lost its data)
            "jobs": None if status.jobs is None else {"total": status.jobs.total, "enabled": status.jobs.enabled,
                                                      "more": status.jobs.more},
            "tasks": {s: int(status.counts.get(s, 0)) for s in TASK_STATES},
            # the oldest pending task the leader may dispatch: the slots held behind serial jobs left out
            "oldest_pending_age": status.oldest_pending_age,
            # the pending slots that wait their turn behind serial jobs (null: the store cannot count them)
            "held": None if status.held is None else {
                "total": status.held.total, "jobs": status.held.jobs,
                "backlogs": [{"job": b.job, "waiting": b.waiting, "oldest_age": b.oldest_age}
                             for b in status.held.backlogs]},
            "quarantined": status.quarantined,
            "quarantine": [quarantine_row(q) for q in status.quarantine],
            # what the store says is wrong with it (it refuses writes...): the reads still work
            "store_warnings": list(status.store_warnings),
        }

    async def overview(self) -> dict[str, Any]:
        data = await self.status()
        now = data["now"]
        # what failed in the last hour, whenever it was created
        failures = [task_row(t) for t in await self.app.finished_tasks(FAILED_STATES, since=now - 3600, limit=20)]
        buckets = await self.app.throughput(60)
        data.update(
            storage=redact_url(self.app.config.storage),
            throughput=[{"minute": b.minute, "minute_iso": iso(b.minute), "count": sum(b.counts.values()),
                         "counts": dict(b.counts)} for b in buckets],
            failures=failures[:20],
        )
        return data

    async def quarantine(self, *, limit: int = 100) -> dict[str, Any]:
        """Every record the store moved aside (the overview shows the newest five), newest first."""
        return {"items": [quarantine_row(q) for q in await self.app.quarantined(limit)], "limit": limit}

    # -- jobs -------------------------------------------------------------------------
    async def jobs(self, *, after: str | None = None, limit: int = 50) -> dict[str, Any]:
        page = await self.app.jobs_page(after=after, limit=limit)
        # the page's serial backlogs: one store call for the page
        backlogs = await self.app.job_backlogs([c for c, _ in page.jobs])
        return {"items": [job_row(c, s, backlogs[c.name]) for c, s in page.jobs], "after": after, "limit": limit,
                "next_after": page.next_after}

    async def job(self, name: str, *, count: int = 10) -> dict[str, Any]:
        store = await self.store()
        config = await store.jobs.get(name)
        state = await store.jobs.state(name)
        row = job_row(config, state, (await self.app.job_backlogs([config]))[name])
        held = await self.app.held_slots([name]) if row["waiting"] else None
        oldest = held.get(name) if held is not None else None
        # when the oldest of its waiting slots came due (null: none waits)
        row["backlog_oldest_at"] = oldest[1] if oldest is not None else None
        row["backlog_oldest_iso"] = iso(oldest[1]) if oldest is not None else None
        fields = job_fields(config)
        fields["retry"] = config.spec.retry.to_dict()
        row["retry_words"] = config.spec.retry.words()
        if fields.get("balance_key") is None:
            fields.pop("balance_key", None)
        row["spec"] = mask_secrets(fields)
        # start: the slot delayed by the job's jitter (the slot stays the task's identity)
        row["upcoming"] = [{"at": s.at, "utc": iso(s.at), "local": iso(s.at, row["timezone"]), "skip": s.skip,
                            "start": config.start_at(s.at), "start_utc": iso(config.start_at(s.at))}
                           for s in config.upcoming(store.clock(), count)]
        return row

    async def job_history(self, name: str, *, cursor: str | None = None, limit: int = 20) -> dict[str, Any]:
        await self.app.get_job(name)  # NotFound for an unknown job
        page = await self.app.job_history(name, cursor=cursor, limit=limit)
        now = (await self.store()).clock()
        return {"items": [task_row(t, now) for t in page.tasks], "cursor": cursor, "limit": limit,
                "next_cursor": page.next_cursor}

    # -- tasks ------------------------------------------------------------------------
    async def tasks(self, *, state: str | None = None, job: str | None = None, worker: str | None = None,
                    cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        page = await self.app.tasks(state=state, job=job, worker=worker, cursor=cursor, limit=limit)
        now = (await self.store()).clock()
        return {"items": [task_row(t, now) for t in page.tasks], "cursor": cursor, "limit": limit,
                "next_cursor": page.next_cursor, "state": state, "job": job, "worker": worker}

    async def task(self, task_id: str) -> dict[str, Any]:
        detail = await self.app.task_detail(task_id)
        row = task_detail(detail.task, detail.attempts, (await self.store()).clock())
        task = detail.task
        row.update(
            # why one not dispatched yet waits (its serial job's turn, no worker that offers its
            # function...), as distsched tasks show says it; null when it does not
            waiting=mask_secrets(await self.app.why_waiting(task)) or None,
            # the task this one retries, and the retries of this one (retry_task: <id>.retry-N)
            retry_of=task.spec.retry_of, retried_as=await self.app.retried_as(task))
        return row

    # -- workers ----------------------------------------------------------------------
    async def workers(self, *, recent: int = 10) -> list[dict[str, Any]]:
        store = await self.store()

        async def detail(w: dict[str, Any]) -> dict[str, Any]:
            assigned, page = await asyncio.gather(store.tasks.assigned(w["id"]),
                                                  self.app.tasks(worker=w["id"], limit=recent))
            live = sorted(assigned, key=lambda t: t.updated_at, reverse=True)
            now = store.clock()
            w.update(live=[task_row(t, now) for t in live[:100]], recent=[task_row(t, now) for t in page.tasks])
            return w

        # Two queries per worker, all in flight at once: the page costs about one round trip
        # however many workers there are, not two per worker in turn.
        return list(await asyncio.gather(*(detail(w) for w in (await self.status())["workers"])))


def job_row(config: TaskConfig, state: Any, backlog: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job as the jobs page and the API list it. ``backlog``: its ``job_backlogs`` entry
    (None: not serial) - a serial job's slots waiting their turn, ``waiting`` of its
    ``max_backlog`` (``backlog_full`` at it: new slots are recorded skipped), in words as
    ``distsched jobs list`` says them (``backlog``)."""
    zone = config.trigger.timezone if config.trigger is not None else "UTC"
    return {
        "overlap": config.overlap.mode, "max_instances": config.overlap.max_instances,
        "max_backlog": backlog["max_backlog"] if backlog is not None else None,
        "waiting": backlog["waiting"] if backlog is not None else None,
        "backlog_full": backlog is not None and backlog["full"],
        "backlog": backlog["words"] if backlog is not None else None,
        "name": config.name, "trigger": trigger_words(config), "timezone": zone,
        "executor": config.spec.executor, "target": mask_secrets(config.spec.target),
        "enabled": config.enabled, "paused": state.paused, "version": config.version,
        "next_fire_at": state.next_fire_at, "next_fire_utc": iso(state.next_fire_at),
        "next_fire_local": iso(state.next_fire_at, zone),
        "last_state": state.last_outcome, "last_at": state.last_outcome_at, "last_iso": iso(state.last_outcome_at),
        "last_task": state.last_task, "description": config.description,
        # its end_date passed (no slot left): shown as ended, not with a next time
        "ended": config.ended(state.next_fire_at), "end_date": iso(getattr(config.trigger, "end", None)),
    }
