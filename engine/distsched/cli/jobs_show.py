"""``distsched jobs show NAME``: one stored job whole, as an operator needs it.

    distsched jobs show NAME [--storage URL] [--runs N] [--json]

Its definition (schedule in words, call, timeout, retry, overlap, misfire, balancer), its
state (paused / disabled / ended, next fire time in UTC and its zone, last slot, a serial
job's backlog, a quarantined record of its name) and its last runs - what the dashboard's job
page shows, read through the same facade calls (``get_job``, the store's job state,
``job_backlogs`` / ``held_slots``, ``job_history``, ``quarantined``). Its arguments, options
and errors are shown with their secrets masked (:func:`distsched.masking.mask_secrets`), as
``tasks show`` and the API show them.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import click

from ..history import MAX_PAGE
from ..masking import mask_secrets
from ..model.errors import NotFound
from ..model.result import clean_error
from ..model.times import iso_utc
from ..model.trigger import load_zone
from ..model.words import duration_words, schedule_words
from . import _jobs_call, _local_iso, _overlap_json, jobs, storage_option
from .format import when
from .tasks import seconds, state_label, task_row

#: Quarantine entries read to find one of the job's name (newest first).
QUARANTINE_LOOKUP = 1000
#: Names offered after ``no job named ...`` (closest first).
SUGGESTIONS = 3


def _first_line(text: str | None) -> str | None:
    """An error's first line, masked, its control characters escaped (None stays None)."""
    if not text:
        return None
    lines = str(text).strip().splitlines()
    return clean_error(mask_secrets(lines[0] if lines else ""))


async def _suggest(app: Any, name: str) -> list[str]:
    """Stored names close to ``name``: at most two store calls - the first page of names and
    the page from ``name``'s first two characters on (where a near name sorts in a big
    store) - never a read of every job."""
    names: set[str] = set()
    for after in dict.fromkeys((None, name[:2] if len(name) > 2 else None)):
        page = await app.jobs_page(after=after, limit=MAX_PAGE)
        names.update(config.name for config, _ in page.jobs)
    return difflib.get_close_matches(name, sorted(names), n=SUGGESTIONS, cutoff=0.6)


async def _quarantined(app: Any, name: str) -> list[dict[str, Any]]:
    """The quarantine's entries for job ``name`` (its record moved aside: undecodable, or
    half-stored - its config or its schedule state gone), newest first."""
    return [{"kind": q.kind, "key": q.key, "reason": mask_secrets(q.reason), "at": q.at}
            for q in await app.quarantined(QUARANTINE_LOOKUP) if q.kind == "job" and q.key == name]


async def job_detail(app: Any, name: str, runs: int) -> dict[str, Any]:
    """``jobs show --json``: the fields of its ``jobs list --json`` row and more (see
    docs/cli.md). NotFound when no job ``name`` is stored."""
    store = await app.storage()
    config = await app.get_job(name)
    state = await store.jobs.state(name)
    backlog = (await app.job_backlogs([config]))[name]
    held = await app.held_slots([name]) if backlog is not None and backlog["waiting"] else None
    oldest = held.get(name) if held is not None else None
    trigger = config.trigger
    zone = trigger.timezone if trigger is not None else "UTC"
    spec = config.spec
    page = await app.job_history(name, limit=runs)
    now = store.clock()
    rows = []
    for task in page.tasks:
        row = mask_secrets(task_row(task, now))
        row["error_line"] = _first_line(row["error"])  # what the text shows of the error
        rows.append(row)
    return {
        # the fields of its `jobs list --json` row
        "name": config.name, "trigger": trigger.to_dict() if trigger else None, "schedule": schedule_words(trigger),
        "executor": spec.executor, "target": mask_secrets(spec.target), "enabled": config.enabled,
        "overlap": _overlap_json(config), "backlog": backlog, "paused": state.paused,
        "next_fire_at": state.next_fire_at, "version": config.version, "ended": config.ended(state.next_fire_at),
        # and more: its definition...
        "description": mask_secrets(config.description), "timezone": zone,
        "start_date": getattr(trigger, "start_date", None), "end_date": getattr(trigger, "end", None),
        "jitter": getattr(trigger, "jitter", 0.0) or 0.0,
        "args": mask_secrets(list(spec.args)), "kwargs": mask_secrets(spec.kwargs),
        "options": mask_secrets(spec.options), "timeout": spec.timeout,
        "retry": spec.retry.to_dict(), "retry_words": spec.retry.words(),
        "misfire": {"mode": config.misfire.mode, "grace": config.misfire.grace},
        "balancer": spec.balancer, "balance_key": spec.balance_key or config.name,
        # ...its state...
        "next_fire_utc": iso_utc(state.next_fire_at) if state.next_fire_at is not None else None,
        "next_fire_local": _local_iso(state.next_fire_at, load_zone(zone)) if state.next_fire_at is not None else None,
        "last_slot": state.last_slot, "last_outcome": state.last_outcome, "last_outcome_at": state.last_outcome_at,
        "last_task": state.last_task,
        # when the oldest of its waiting slots came due (null: none waits)
        "backlog_oldest_at": oldest[1] if oldest is not None else None,
        # records of this name the store moved aside (an earlier one, undecodable or half-stored)
        "quarantined": await _quarantined(app, name),
        # ...and its last runs, newest first (`tasks list --json` rows, plus the error's first line)
        "runs": rows, "more_runs": page.next_cursor is not None,
    }


@jobs.command("show")
@click.argument("name")
@storage_option
@click.option("--runs", "runs", type=click.IntRange(1, MAX_PAGE), default=10, show_default=True,
              help="How many of its last runs (tasks, newest first) to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def jobs_show(ctx: click.Context, name: str, storage: str | None, runs: int, as_json: bool) -> None:
    """One stored job: its definition (schedule in words, call with its secrets masked,
    timeout, retry, overlap, misfire, balancer), its state (paused, disabled or ended; next
    fire time in UTC and in its zone; last slot; a serial job's backlog; a record of it the
    store quarantined) and its last --runs runs: slot, state, attempts, duration, the
    error's first line. Exit status 1 when no such job is stored."""

    async def call(app: Any) -> dict[str, Any]:
        try:
            return await job_detail(app, name, runs)
        except NotFound:
            pass
        moved = await _quarantined(app, name)
        if moved:  # its record was moved aside: say why, not just "no job"
            q = moved[0]
            raise click.ClickException(f"job {name!r} is quarantined ({when(q['at'])}): {q['reason']} - "
                                       "see distsched quarantine list")
        close = await _suggest(app, name)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise click.ClickException(f"no job named {name!r}{hint}")

    data = _jobs_call(ctx, storage, call, reader=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("\n".join(render(data)))


def _call_words(data: dict[str, Any]) -> str:
    args = [json.dumps(a) for a in data["args"]] + [f"{k}={json.dumps(v)}" for k, v in data["kwargs"].items()]
    return f"{data['executor']}:{data['target']}({', '.join(args)})"


def _state_words(data: dict[str, Any]) -> str:
    if data["ended"]:
        return "ended: no slot after its end_date" + (f" {when(data['end_date'])}" if data["end_date"] else "")
    held = [word for word, on in (("paused", data["paused"]), ("disabled (enabled = false)", not data["enabled"]))
            if on]
    return ", ".join(held) if held else "active"


def render(data: dict[str, Any]) -> list[str]:
    """``jobs show`` as lines."""
    lines = [f"job         {data['name']}   version {data['version']}"]
    if data["description"]:
        lines.append(f"about       {' '.join(data['description'].split())}")
    lines.append(f"schedule    {data['schedule']}")
    if data["trigger"] is not None and data["timezone"] != "UTC":
        lines.append(f"time zone   {data['timezone']}")
    lines.append(f"call        {_call_words(data)}   timeout {duration_words(data['timeout'])}")
    if data["options"]:
        lines.append(f"options     {json.dumps(data['options'])}")
    lines.append(f"retry       {data['retry_words']}")
    overlap = data["overlap"]
    lines.append(f"overlap     {overlap['mode']}, max_instances {overlap['max_instances']}, "
                 f"max_backlog {overlap['max_backlog']}")
    misfire = data["misfire"]
    lines.append(f"misfire     {misfire['mode']}, grace {duration_words(misfire['grace'])}")
    key = "" if data["balance_key"] == data["name"] else f", key {data['balance_key']}"
    lines.append(f"balancer    {data['balancer']}{key}")
    lines.append(f"state       {_state_words(data)}")
    if not data["ended"]:
        nxt = data["next_fire_at"]
        local = (f"  ({data['next_fire_local']} {data['timezone']})"
                 if data["next_fire_local"] and data["timezone"] != "UTC" else "")
        if data["paused"] or not data["enabled"]:  # its stored time is not one it fires at (as jobs list says)
            lines.append("next        none while " + ("paused (resumed, it fires from its next slot after then)"
                                                      if data["paused"] else "disabled"))
        else:
            lines.append(f"next        {when(nxt) + ' UTC' if nxt is not None else '-'}{local}")
    lines.append(f"last slot   {when(data['last_slot']) + ' UTC' if data['last_slot'] is not None else '-'}")
    if data["last_outcome"]:
        lines.append(f"last run    {data['last_outcome']} at {when(data['last_outcome_at'])} UTC"
                     + (f"  task {data['last_task']}" if data["last_task"] else ""))
    if data["backlog"] is not None:
        oldest = data["backlog_oldest_at"]
        lines.append(f"backlog     {data['backlog']['words']}"
                     + (f"  (oldest waiting slot {when(oldest)} UTC)" if oldest is not None else ""))
    for q in data["quarantined"]:
        lines.append(f"quarantined a record of this name, {when(q['at'])}: {q['reason']} (distsched quarantine list)")
    rows = data["runs"]
    if not rows:
        lines.append("runs        none yet")
        return lines
    lines.append(f"runs        {len(rows)}, newest first" + ("" if data["more_runs"] else " (every one it has)"))
    lines.append(f"  {'SLOT':<19}  {'STATE':<10} {'ATT':>3}  {'DURATION':>9}  ERROR")
    for r in rows:
        slot = when(r["slot"]) if r["slot"] is not None else "manual"
        lines.append(f"  {slot:<19}  {state_label(r):<10} {r['attempt']:>3}  {seconds(r['duration']):>9}  "
                     f"{r['error_line'] or ''}".rstrip())
    if data["more_runs"]:
        lines.append(f"  older: distsched tasks list --job {data['name']}")
    return lines


__all__ = ["job_detail", "jobs_show", "render"]
