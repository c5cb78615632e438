"""``distsched tasks``: the task history of a store, and one-off task operations.

    distsched tasks list [--job J] [--state S] [--worker W] [--since DURATION] [-n N] [--json]
    distsched tasks show ID [--json]
    distsched tasks submit TARGET [ARGS...] [--in DURATION | --at TIME]
    distsched tasks retry ID
    distsched tasks cancel ID

Every read goes through the storage port's history queries (``TaskRepository.query`` /
``detail``): a page costs what the page holds, never a scan of the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import click

from ..history import (
    attempt_duration,
    in_words,
    redelivered,
    scheduled_for,
    shown_start,
    task_error,
    task_times,
)
from ..history import shown_error as error_text
from ..masking import mask_secrets
from ..model import Task, TaskState
from ..model.due import due_at
from ..model.errors import DistschedError, NotFound
from ..model.result import clean_log
from ..ports import Attempt
from . import _store_call, cli, storage_option
from .config import Seconds
from .format import is_memory, note_memory, when

#: Characters of an error shown in one line of ``tasks list``.
SHORT_ERROR = 60


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.3f}s"
    minutes, sec = divmod(value, 60)
    if minutes < 60:
        return f"{int(minutes)}m{sec:04.1f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes):02d}m"


def _short(text: str | None, limit: int = SHORT_ERROR) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def task_row(task: Task, now: float) -> dict[str, Any]:
    """The fields ``tasks list --json`` gives for one task (its latest attempt's times; a
    task its worker holds for its slot has not started: ``held_until`` says until when; a
    task pending again after its worker was lost has no duration - when that worker stopped
    is not known - and no start before its slot: :func:`~distsched.history.task_times`)."""
    started, finished, duration = task_times(task, now)
    return {
        "id": task.id, "job": task.job, "slot": task.slot, "state": task.state.value, "attempt": task.attempt,
        "worker": task.worker_id or (task.result.worker_id if task.result else None),
        "created_at": task.created_at, "started_at": started, "finished_at": finished,
        "duration": duration, "error": task_error(task),
        "held_until": task.held_until(now),
        # a pending task submitted for later (submit --in/--at): when it is due (None: not)
        "scheduled_for": scheduled_for(task, now),
    }


def state_label(row: dict[str, Any]) -> str:
    """The STATE cell of ``tasks list``: the state, or ``held`` for a task that is
    ``running`` on its worker only in that the worker took it ahead of its slot and holds it
    until then (the stored state stays ``running``; ``--state running`` lists it), or
    ``scheduled`` for a ``pending`` task submitted for later, not due yet (``--state
    pending`` lists it; :func:`scheduled_note` says when)."""
    if row.get("held_until") is not None:
        return "held"
    return "scheduled" if row.get("scheduled_for") is not None else row["state"]


def scheduled_note(at: float, now: float, *, inside: bool = False) -> str:
    """``scheduled for 2026-12-07 23:00:05 (in 4m10s)``: a pending task submitted for later
    (``inside`` parentheses already: ``..., in 4m10s``)."""
    left = in_words(at - now)
    return f"scheduled for {when(at)}, in {left}" if inside else f"scheduled for {when(at)} (in {left})"


def _attempt_dicts(attempts: Iterable[Attempt], slot: float | None) -> list[dict[str, Any]]:
    """The attempts of ``tasks show --json``, oldest first: each record plus ``duration`` (none
    for a ``lost`` attempt: its end is when the leader declared it lost, not when its worker
    stopped) and ``redelivered`` (a crash re-delivery keeps its attempt number: true for the
    dispatches after the first of a number); a start is never before the task's slot
    (:func:`~distsched.history.shown_start`: records written before it was applied). The
    rules are :mod:`distsched.history`'s, which the dashboard follows too."""
    attempts = list(attempts)
    out = []
    for a, again in zip(attempts, redelivered(attempts)):
        data = a.to_dict()
        data["duration"] = attempt_duration(a)
        data["started_at"] = shown_start(a.started_at, a.finished_at, slot)
        data["redelivered"] = again
        out.append(data)
    return out


@cli.group()
def tasks() -> None:
    """The task history of a store: list, show; submit, retry, cancel tasks."""


@tasks.command("list")
@storage_option
@click.option("--job", default=None, help="Only the tasks of this job.")
@click.option("--state", type=click.Choice([s.value for s in TaskState]), default=None, help="Only tasks in this state.")
@click.option("--worker", default=None, help="Only tasks dispatched to this worker.")
@click.option("--since", default=None, metavar="DURATION", help="Only tasks created in the last DURATION (30s, 15m, 2h).")
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many tasks.")
@click.option("--cursor", default=None, help="Continue after the page that printed this cursor.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def tasks_list(ctx: click.Context, storage: str | None, job: str | None, state: str | None, worker: str | None,
               since: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """List tasks newest first (by creation): id, job, slot, state, attempt, worker, started,
    duration and the error in short."""
    from ..model import parse_duration

    try:
        window = parse_duration(since, "since") if since is not None else None
    except DistschedError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None

    async def call(app: Any) -> tuple[list[dict[str, Any]], str | None, float]:
        store = await app.storage()
        now = store.clock()
        page = await app.tasks(job=job, state=state, worker=worker, cursor=cursor, limit=limit,
                               since=None if window is None else now - window)
        if not page.tasks and is_memory(app.config.storage):
            note_memory(app.config.storage, not any((await store.tasks.counts()).values()))
        return [mask_secrets(task_row(t, now)) for t in page.tasks], page.next_cursor, now

    rows, nxt, now = _store_call(ctx, storage, call, reader=True)
    if as_json:
        click.echo(json.dumps({"tasks": rows, "next_cursor": nxt}, indent=2))
        return
    if not rows:
        click.echo("no tasks")
        return
    width = max(12, min(48, max(len(r["id"]) for r in rows)))
    job_w = max(3, min(24, max(len(r["job"] or "-") for r in rows)))
    click.echo(f"{'ID':<{width}}  {'JOB':<{job_w}}  {'SLOT':<8}  {'STATE':<10} {'ATT':>3}  {'WORKER':<20} "
               f"{'STARTED':<19}  {'DURATION':>9}  ERROR")
    for r in rows:
        click.echo(f"{r['id']:<{width}}  {r['job'] or '-':<{job_w}}  {when(r['slot'], date=False):<8}  {state_label(r):<10} "
                   f"{r['attempt']:>3}  {(r['worker'] or '-')[:20]:<20} {when(r['started_at']):<19}  "
                   f"{seconds(r['duration']):>9}  "
                   f"{scheduled_note(r['scheduled_for'], now) if r['scheduled_for'] is not None else _short(r['error'])}"
                   .rstrip())
    if nxt:
        click.echo(f"more: --cursor {nxt}", err=True)


@tasks.command("show")
@click.argument("task_id")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def tasks_show(ctx: click.Context, task_id: str, storage: str | None, as_json: bool) -> None:
    """One task: its call, state and every attempt (worker, timings, result value or error,
    retry schedule), then what its last attempt logged (a local function's logging, its
    last 16 KiB by default); one not dispatched yet says why it waits (its turn behind its
    serial job's runs, no live worker...)."""

    async def call(app: Any) -> dict[str, Any]:
        try:
            detail = await app.task_detail(task_id)
        except NotFound:
            if is_memory(app.config.storage):
                note_memory(app.config.storage, not any((await (await app.storage()).tasks.counts()).values()))
            raise
        now = (await app.storage()).clock()
        t = detail.task
        attempts = _attempt_dicts(detail.attempts, t.slot)
        held = t.held_until(now)
        for a in attempts:
            if a["attempt_id"] == t.attempt_id and a["outcome"] in ("dispatched", "running"):
                # the attempt in flight: not started while its worker holds it for its slot
                # (taken ahead), started at its slot once that came (until its result says)
                a["started_at"] = t.attempt_began(now) if a["outcome"] == "running" else None
                a["held_until"] = held
                a["taken_at"] = t.started_at if held is not None else None
        return mask_secrets({  # its target, arguments, options, results and errors: secrets masked
            "task": t.to_dict(), "attempts": attempts, "held_until": held,
            # a dispatched or running task's reason is an earlier requeue's (Task.reasons)
            "earlier_reason": t.reasons()[1],
            "next_attempt_at": t.not_before if t.state in (TaskState.RETRYING, TaskState.PENDING) else None,
            "max_attempts": t.spec.retry.max_attempts,
            # a pending task submitted for later (submit --in/--at), not due yet: when it is
            # (due_at: its name before scheduled_for, the same)
            "due_at": scheduled_for(t, now), "scheduled_for": scheduled_for(t, now), "now": now,
            # the task this one retries (retry_task), and the retries of this one
            "retry_of": t.spec.retry_of, "retried_as": await app.retried_as(t),
            # why a task not dispatched yet waits (its serial job's turn, no worker...): None when it does not
            "waiting": await app.why_waiting(t) or None,
        })

    data = _store_call(ctx, storage, call, reader=True)
    now = data.pop("now")  # the store's clock, for "in 4m10s"
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    t = data["task"]
    spec = t["spec"]
    click.echo(f"task      {t['id']}")
    click.echo(f"job       {t['job'] or '-'}" + (f"   slot {when(t['slot'])}" if t["slot"] is not None else ""))
    call_args = ", ".join([json.dumps(a) for a in spec["args"]] + [f"{k}={json.dumps(v)}" for k, v in spec["kwargs"].items()])
    click.echo(f"call      {spec['executor']}:{spec['target']}({call_args})   timeout {spec['timeout']:g}s")
    earlier = data["earlier_reason"]
    notes = ([f"held by its worker until {when(data['held_until'])}, its slot"] if data["held_until"] is not None
             else []) + ([scheduled_note(data["scheduled_for"], now, inside=True)] if data["scheduled_for"] is not None
                         else []) + ([f"run again after: {earlier}"] if earlier else [t["reason"]] if t.get("reason") else [])
    state = t["state"] + (f" ({'; '.join(notes)})" if notes else "")
    click.echo(f"state     {state}   attempt {t['attempt']} of {data['max_attempts']}")
    if data["waiting"]:
        click.echo(f"why       {data['waiting']}")
    click.echo(f"created   {when(t['created_at'])}   updated {when(t['updated_at'])}")
    if data["retry_of"] is not None:
        click.echo(f"retry of  {data['retry_of']}")
    if data["retried_as"]:
        click.echo(f"retried as {', '.join(data['retried_as'])}")
    if data["next_attempt_at"] is not None and t["state"] == "retrying":
        click.echo(f"retry at  {when(data['next_attempt_at'])}")
    if t["result"] is not None and t["state"] == "succeeded":
        click.echo(f"result    {_short(json.dumps(t['result']['value']), 200)}")
    click.echo(f"attempts  {len(data['attempts'])}")
    for a in data["attempts"]:
        number = f"#{a['number']}" + (" (re-delivered)" if a.get("redelivered") else "")
        click.echo(f"  {number} {a['attempt_id']}  {a['outcome']:<10} worker {a['worker_id'] or '-'}")
        began = (f"taken {when(a['taken_at'])}, held until {when(a['held_until'])}" if a.get("held_until") is not None
                 else f"started {when(a['started_at'])}")
        # a lost attempt ended when the leader declared its worker lost, not when it stopped
        ended = (f"declared lost {when(a['finished_at'])}" if a["outcome"] == "lost"
                 else f"finished {when(a['finished_at'])}  took {seconds(a['duration'])}")
        click.echo(f"      dispatched {when(a['dispatched_at'])}  {began}  {ended}")
        if a["outcome"] == "succeeded":
            click.echo(f"      value  {_short(json.dumps(a['value']), 200)}" + ("  (truncated)" if a["truncated"] else ""))
        elif a["error"]:
            click.echo(f"      error  {error_text(a['error_type'], a['error'])}" + ("  (truncated)" if a["truncated"] else ""))
        if a["retry_at"] is not None:
            click.echo(f"      retry scheduled at {when(a['retry_at'])}")
    log = (t["result"] or {}).get("log")
    if log:  # what the last attempt's code logged (local executor), masked, its control characters escaped
        click.echo(f"log       of attempt {t['result']['attempt_id']}")
        for line in (clean_log(log) or "").splitlines():
            click.echo(f"  {line}")


def _json_or_text(value: str) -> Any:
    """A command-line argument: JSON when it parses (3, true, "x", [1], {"a": 1}), else text."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    """The JSON object an option gives ({} without it); a usage error naming the option otherwise."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return value


@tasks.command("submit")
@click.argument("target")
@click.argument("args", nargs=-1)
@storage_option
@click.option("--executor", default="local", show_default=True, help="Executor that runs it (local, http, rpc, ...).")
@click.option("--kwargs", "kwargs_json", default=None, metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--options", "options_json", default=None, metavar="JSON",
              help='Executor options as a JSON object (rpc: {"method": "name"}; http: method, json, headers...).')
@click.option("--timeout", default="60s", show_default=True, help="Timeout of each attempt.")
@click.option("--retries", type=click.IntRange(0, 99), default=0, show_default=True,
              help="Retries after a failed or timed-out attempt (N + 1 attempts at most, default backoff).")
@click.option("--id", "task_id", default=None, help="Task id (makes the submission idempotent).")
@click.option("--wait", "wait", type=Seconds(min=0), default=None, metavar="DURATION",
              help="Wait this long for the result and print it.")
@click.option("--in", "delay", default=None, metavar="DURATION",
              help="Run it this long from now, not at once (10s, 5m, 1h30m; 366 days at most).")
@click.option("--at", "at", default=None, metavar="TIME",
              help="Run it at this time, not at once: ISO-8601 with an offset (2030-01-01T09:00:00Z, "
                   "...+01:00) or epoch seconds; a time without an offset is refused.")
@click.pass_context
def tasks_submit(ctx: click.Context, target: str, args: tuple[str, ...], storage: str | None, executor: str,
                 kwargs_json: str | None, options_json: str | None, timeout: str, retries: int, task_id: str | None,
                 wait: float | None, delay: str | None, at: str | None) -> None:
    """Submit a one-off task calling TARGET with ARGS (each JSON when it parses, else text);
    prints its id. A worker offering TARGET runs it - at once, or when it is due with
    ``--in`` / ``--at`` (it is stored at once, pending: ``tasks show`` says when it is due,
    ``tasks cancel`` before then means it never runs)."""
    kwargs = _json_object(kwargs_json, "--kwargs")
    options = _json_object(options_json, "--options")
    if delay is not None and at is not None:
        raise click.UsageError("give --in or --at, not both")
    try:  # refused here, naming the option; the store's clock sets the time when it is stored
        due_at(time.time(), delay=delay, at=at)
    except DistschedError as exc:
        raise click.BadParameter(getattr(exc, "reason", str(exc)), param_hint="--in" if delay is not None else "--at") from None

    call_args = [_json_or_text(a) for a in args]

    async def call(app: Any) -> tuple[str, Any]:
        new_id = await app.submit(target, *call_args, executor=executor, kwargs=kwargs, options=options,
                                  timeout=timeout, retry={"max_attempts": retries + 1}, task_id=task_id,
                                  delay=delay, at=at)
        if task_id is not None:  # idempotent by id: a task already stored under it is the one that runs
            spec = (await app.get_task(new_id)).spec
            if ((spec.executor, spec.target, list(spec.args), spec.kwargs, spec.options)
                    != (executor, target, call_args, kwargs, options)):
                click.echo(f"note: task {new_id!r} already exists with another call "
                           f"({spec.executor}:{mask_secrets(spec.target)}); it is that one that runs, not this "
                           "submission (--id makes a submission idempotent)", err=True)
        if wait is None:
            return new_id, None
        try:
            task = await app.wait(new_id, timeout=wait)
        except TimeoutError as exc:
            raise click.ClickException(f"{new_id}: {exc}") from None
        return new_id, task

    new_id, task = _store_call(ctx, storage, call)
    click.echo(new_id)
    if task is not None:
        result = task.result
        if task.state is TaskState.SUCCEEDED and result is not None:
            click.echo(json.dumps(mask_secrets(result.value)))
        else:
            raise click.ClickException(f"{new_id} {task.state.value}: {mask_secrets(task_error(task) or '')}")


@tasks.command("retry")
@click.argument("task_id")
@storage_option
@click.pass_context
def tasks_retry(ctx: click.Context, task_id: str, storage: str | None) -> None:
    """Run finished task TASK_ID again (in any final state), as a new task; prints the new
    task's id, ``TASK_ID.retry-N`` (``tasks show`` links the two: ``retry of`` /
    ``retried as``)."""
    click.echo(_store_call(ctx, storage, lambda app: app.retry_task(task_id)))


@tasks.command("cancel")
@click.argument("task_id")
@storage_option
@click.option("--reason", default="cancelled by user", show_default=True, help="Recorded on the task.")
@click.pass_context
def tasks_cancel(ctx: click.Context, task_id: str, storage: str | None, reason: str) -> None:
    """Cancel task TASK_ID: it will not run (again). A running attempt is stopped by its
    worker within one heartbeat (a sync function's thread is abandoned); any late result is
    dropped."""

    async def call(app: Any) -> str:
        from ..model import InvalidTransition

        try:
            task = await app.cancel_task(task_id, reason)
        except InvalidTransition:
            current = await app.get_task(task_id)
            raise click.ClickException(f"task {task_id!r} already finished ({current.state.value})") from None
        return f"cancelled {task.id} (was running on {task.worker_id})" if task.worker_id else f"cancelled {task.id}"

    click.echo(_store_call(ctx, storage, call))
