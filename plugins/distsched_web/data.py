"""What the pages and the API show, read through the public facade and the storage ports.

Every function returns plain JSON-ready dicts (the API serialises them as they are; the
templates render them). Nothing here scans all jobs or all tasks: listings are paginated by
the store, counts come from the store's counters.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from distsched.model import (
    AtTrigger,
    CronTrigger,
    EveryTrigger,
    NotFound,
    Task,
    TaskConfig,
    ValidationError,
)

from .redact import redact_url, scrub

#: Largest page the pages and the API hand out.
MAX_LIMIT = 200
TASK_STATES = ("pending", "dispatched", "running", "retrying", "succeeded", "failed", "timed_out",
               "cancelled", "skipped")
FAILED_STATES = ("failed", "timed_out")


def iso(at: float | None, zone: str | None = None) -> str | None:
    if at is None:
        return None
    tz = ZoneInfo(zone) if zone and zone != "UTC" else timezone.utc
    text = datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if tz is timezone.utc else text


def trigger_words(config: TaskConfig) -> str:
    trigger = config.trigger
    if isinstance(trigger, CronTrigger):
        return f"cron {trigger.expr} ({trigger.timezone})"
    if isinstance(trigger, EveryTrigger):
        return f"every {_seconds(trigger.interval)}"
    if isinstance(trigger, AtTrigger):
        return f"once at {iso(trigger.at)}"
    return "no trigger (trigger now only)"


def _seconds(value: float) -> str:
    if value >= 3600 and value % 3600 == 0:
        return f"{value / 3600:g}h"
    if value >= 60 and value % 60 == 0:
        return f"{value / 60:g}m"
    return f"{value:g}s"


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


def check_offset(value: Any) -> int:
    if value is None:
        return 0
    try:
        offset = int(value)
    except (TypeError, ValueError):
        raise ValidationError("offset", f"must be a non-negative integer, not {value!r}") from None
    if not 0 <= offset <= 100_000:
        raise ValidationError("offset", f"must be between 0 and 100000, not {offset}")
    return offset


def check_state(value: Any, *, empty_is_any: bool = False) -> str | None:
    """A task state filter; ``""`` means any state only on the pages (their form sends it)."""
    if value is None or (value == "" and empty_is_any):
        return None
    if value not in TASK_STATES:
        raise ValidationError("state", f"must be one of {', '.join(TASK_STATES)}, not {value!r}")
    return str(value)


def task_row(task: Task) -> dict[str, Any]:
    """One task as a listing row."""
    result = task.result
    started = task.started_at
    finished = task.finished_at
    return {
        "id": task.id, "job": task.job, "state": task.state.value, "slot": task.slot, "slot_iso": iso(task.slot),
        "attempt": task.attempt, "worker_id": task.worker_id,
        "created_at": task.created_at, "updated_at": task.updated_at, "updated_iso": iso(task.updated_at),
        "started_at": started, "started_iso": iso(started), "finished_at": finished,
        "duration": round(finished - started, 6) if started is not None and finished is not None else None,
        "outcome": result.outcome if result is not None else None,
        "error": scrub(result.error) if result is not None and result.error else (task.reason if task.state.value == "skipped" else None),
        "reason": task.reason,
    }


def task_detail(task: Task) -> dict[str, Any]:
    """One task with its attempt, result or error and its retry schedule."""
    row = task_row(task)
    spec = task.spec
    retry = spec.retry
    schedule = []
    for attempt in range(1, retry.max_attempts):
        delay = retry.delay_after(attempt)
        schedule.append({"after_attempt": attempt, "delay": delay})
    result = task.result
    attempts = []
    if result is not None:
        attempts.append({
            "attempt": task.attempt, "attempt_id": result.attempt_id, "worker_id": result.worker_id,
            "started_at": result.started_at, "started_iso": iso(result.started_at),
            "finished_at": result.finished_at, "finished_iso": iso(result.finished_at),
            "duration": round(result.finished_at - result.started_at, 6), "outcome": result.outcome,
            "value": scrub(result.value), "error": scrub(result.error), "error_type": result.error_type,
        })
    elif task.dispatches:
        attempts.append({
            "attempt": task.attempt, "attempt_id": task.attempt_id, "worker_id": task.worker_id,
            "started_at": task.started_at, "started_iso": iso(task.started_at), "finished_at": None,
            "finished_iso": None, "duration": None, "outcome": None, "value": None, "error": None,
            "error_type": None,
        })
    row.update(
        spec=scrub(spec.to_dict()), dispatches=task.dispatches, redeliveries=task.redeliveries,
        not_before=task.not_before, not_before_iso=iso(task.not_before), dispatched_at=task.dispatched_at,
        version=task.version, attempts=attempts,
        retry={"policy": retry.to_dict(), "schedule": schedule,
               "next_attempt_at": task.not_before if task.state.value == "retrying" else None,
               "next_attempt_iso": iso(task.not_before) if task.state.value == "retrying" else None},
    )
    return row


class WebData:
    """The queries behind the pages and the API, over one DistributeSchedule."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def store(self) -> Any:
        return await self.app.storage()

    # -- overview ---------------------------------------------------------------------
    async def leader(self) -> dict[str, Any] | None:
        election = await self.app.engine.open_election()
        fence = await election.current()
        if fence is None:
            return None
        since = None
        scheduler = getattr(self.app.engine, "scheduler", None)
        fence_here = getattr(scheduler, "fence", None) if scheduler is not None else None
        if fence_here is not None and getattr(fence_here, "term", None) == fence.term:
            since = getattr(scheduler, "leader_since", None)
        return {"node_id": fence.node_id, "term": fence.term, "since": since, "since_iso": iso(since)}

    async def workers(self) -> list[dict[str, Any]]:
        store = await self.store()
        now = store.clock()
        ttl = self.app.config.heartbeat_ttl
        out = []
        for w in sorted(await _list_workers(store), key=lambda w: w.id):
            out.append({"id": w.id, "host": w.host, "pid": w.pid, "load": w.load, "capacity": w.capacity,
                        "concurrency": w.concurrency, "heartbeat_age": round(max(0.0, now - w.last_heartbeat), 3),
                        "alive": w.is_alive(now, ttl), "draining": w.draining, "started_iso": iso(w.started_at)})
        return out

    async def overview(self) -> dict[str, Any]:
        store = await self.store()
        now = store.clock()
        counts = await store.tasks.counts()
        failures = []
        for state in FAILED_STATES:
            for task in await _query(store, state=state, limit=20):
                if task.updated_at >= now - 3600:
                    failures.append(task_row(task))
        failures.sort(key=lambda r: r["updated_at"], reverse=True)
        return {
            "storage": redact_url(self.app.config.storage),
            "now": now, "now_iso": iso(now),
            "leader": await self.leader(),
            "workers": await self.workers(),
            "tasks": {s: int(counts.get(s, 0)) for s in TASK_STATES},
            "throughput": await self.throughput(now),
            "failures": failures[:20],
        }

    async def throughput(self, now: float) -> list[dict[str, Any]]:
        """Tasks finished per minute over the last hour, oldest minute first."""
        per_minute = getattr(self.app, "throughput", None)
        if per_minute is not None:
            data = await per_minute(minutes=60)
            return [{"minute": int(m), "minute_iso": iso(m), "count": int(c)} for m, c in data]
        first = int(now // 60) * 60 - 59 * 60
        buckets = dict.fromkeys(range(first, first + 60 * 60, 60), 0)
        store = await self.store()
        for state in ("succeeded", *FAILED_STATES):
            for task in await _query(store, state=state, limit=500):
                end = task.finished_at or task.updated_at
                minute = int(end // 60) * 60
                if minute in buckets:
                    buckets[minute] += 1
        return [{"minute": m, "minute_iso": iso(m), "count": c} for m, c in buckets.items()]

    # -- jobs -------------------------------------------------------------------------
    async def jobs(self, *, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        store = await self.store()
        now = store.clock()
        page_call = getattr(self.app, "jobs_page", None)
        if page_call is not None:
            page = await page_call(offset=offset, limit=limit)
            configs, total = list(page.items), page.total
        else:
            every = sorted(await _list_jobs(store), key=lambda c: c.name)
            total = len(every)
            configs = every[offset:offset + limit]
        rows = []
        for config in configs:
            rows.append(await self._job_row(store, config, now))
        return {"items": rows, "total": total, "offset": offset, "limit": limit}

    async def _job_row(self, store: Any, config: TaskConfig, now: float) -> dict[str, Any]:
        state = await store.jobs.state(config.name)
        zone = config.trigger.timezone if config.trigger is not None else "UTC"
        last = await _query(store, job=config.name, limit=1)
        last_task = last[0] if last else None
        return {
            "name": config.name, "trigger": trigger_words(config), "timezone": zone,
            "executor": config.spec.executor, "target": redact_url(config.spec.target),
            "enabled": config.enabled, "paused": state.paused, "version": config.version,
            "next_fire_at": state.next_fire_at, "next_fire_utc": iso(state.next_fire_at),
            "next_fire_local": iso(state.next_fire_at, zone),
            "last_state": last_task.state.value if last_task else None,
            "last_at": last_task.updated_at if last_task else None,
            "last_iso": iso(last_task.updated_at) if last_task else None,
            "last_task": last_task.id if last_task else None,
            "description": config.description,
        }

    async def job(self, name: str, *, count: int = 10) -> dict[str, Any]:
        store = await self.store()
        now = store.clock()
        config = await store.jobs.get(name)
        row = await self._job_row(store, config, now)
        zone = row["timezone"]
        from distsched.facade import job_fields

        fields = job_fields(config)
        fields["retry"] = config.spec.retry.to_dict()
        if fields.get("balance_key") is None:
            fields.pop("balance_key", None)
        row["spec"] = scrub(fields)
        row["upcoming"] = [{"at": s.at, "utc": iso(s.at), "local": iso(s.at, zone), "skip": s.skip}
                           for s in config.upcoming(now, count)]
        return row

    async def job_history(self, name: str, *, offset: int = 0, limit: int = 20) -> dict[str, Any]:
        store = await self.store()
        await store.jobs.get(name)  # NotFound for an unknown job
        history = getattr(self.app, "job_history", None)
        if history is not None:
            page = await history(name, offset=offset, limit=limit)
            tasks = list(page.items)
        else:
            tasks = (await _query(store, job=name, limit=offset + limit + 1))[offset:]
        more = len(tasks) > limit
        return {"items": [task_row(t) for t in tasks[:limit]], "offset": offset, "limit": limit, "more": more}

    # -- tasks ------------------------------------------------------------------------
    async def tasks(self, *, state: str | None = None, job: str | None = None, worker: str | None = None,
                    offset: int = 0, limit: int = 50) -> dict[str, Any]:
        store = await self.store()
        if worker:
            found = [t for t in await store.tasks.assigned(worker) if (not state or t.state.value == state)
                     and (not job or t.job == job)]
            found.sort(key=lambda t: t.updated_at, reverse=True)
            found = found[offset:offset + limit + 1]
        else:
            found = (await _query(store, state=state, job=job, limit=offset + limit + 1))[offset:]
        more = len(found) > limit
        return {"items": [task_row(t) for t in found[:limit]], "offset": offset, "limit": limit, "more": more,
                "state": state, "job": job}

    async def task(self, task_id: str) -> dict[str, Any]:
        store = await self.store()
        task = await store.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} does not exist")
        return task_detail(task)

    async def worker_tasks(self, worker_id: str, *, recent: int = 20) -> dict[str, Any]:
        store = await self.store()
        live = sorted(await store.tasks.assigned(worker_id), key=lambda t: t.updated_at, reverse=True)
        recent_tasks = []
        by_worker = getattr(self.app, "worker_history", None)
        if by_worker is not None:
            recent_tasks = list((await by_worker(worker_id, limit=recent)).items)
        return {"live": [task_row(t) for t in live[:100]], "recent": [task_row(t) for t in recent_tasks]}

    async def workers_page(self) -> list[dict[str, Any]]:
        out = []
        for w in await self.workers():
            w.update(await self.worker_tasks(w["id"]))
            out.append(w)
        return out


async def _list_jobs(store: Any) -> list[TaskConfig]:
    repo = store.jobs
    call = getattr(repo, "list_jobs", None) or repo.list
    return list(await call())


async def _list_workers(store: Any) -> list[Any]:
    repo = store.workers
    call = getattr(repo, "list_workers", None) or repo.list
    return list(await call())


async def _query(store: Any, *, state: str | None = None, job: str | None = None, limit: int = 50) -> list[Task]:
    repo = store.tasks
    return list(await repo.list(state=state, job=job, limit=limit))


def now() -> float:
    return time.time()
