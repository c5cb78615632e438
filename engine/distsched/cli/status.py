"""``distsched status``: the truthful state of a deployment (``app.status()``).

The lease with its term and age ("EXPIRED" once it lapsed, never a dead leader shown as
leading; "renewal overdue" before that, once its last renewal is older than two renew
intervals: the holder may be dead), the scheduler nodes (leader and standbys), every worker
with its heartbeat age on the store's clock (``stopped`` once deregistered, until the leader
reaps it; a reaped worker is gone), load, capacity and queue depth, the jobs stored (how
many enabled), the task counts and the age of the oldest task waiting for dispatch. ``--watch`` redraws in place.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from ..model.errors import DistschedError
from ..model.task import TaskState
from ..status import HELD_SHOWN
from ..urls import redact_text, redact_url
from . import _app, _run, cli, storage_option
from .config import Seconds
from .format import note_memory

#: Task states in the order the status prints them.
STATE_ORDER = [s.value for s in TaskState]
#: ANSI: cursor home, clear the screen below.
CLEAR = "\x1b[H\x1b[J"


def beat(age: float | None) -> str:
    """A heartbeat's age: ``1.2s ago``; ``24h00m ahead`` (of the store's clock: a broken
    record); ``-`` for none."""
    if age is None:
        return "-"
    return f"{ago(-age)} ahead" if age < 0 else f"{ago(age)} ago"


def ago(seconds: float | None) -> str:
    """A short age: ``0.4s``, ``12s``, ``5m12s``, ``3h04m``, ``2d03h`` (``-`` for None)."""
    from ..history import in_words

    return "-" if seconds is None else in_words(seconds)


#: Characters of names a worker's executors line shows of each list, then ``(+N more)``: the
#: line stays readable with hundreds of functions (``--json`` gives them all).
NAMES_WIDTH = 50


def names(items: list[str], width: int = NAMES_WIDTH) -> str:
    """``a, b, c (+12 more)``: as many of ``items`` as fit in ``width`` characters (at least
    one, cut with ``...`` when it alone is longer), then how many more. A name that is not
    printable (a broken record: a newline, an escape sequence) is shown quoted, escaped."""
    shown: list[str] = []
    used = 0
    for name in items:
        text = name if isinstance(name, str) and name.isprintable() else repr(name)
        if not shown and len(text) > width:
            text = text[:width - 3] + "..."
        cost = len(text) + (2 if shown else 0)
        if shown and used + cost > width:
            break
        shown.append(text)
        used += cost
    rest = len(items) - len(shown)
    return ", ".join(shown) + (f" (+{rest} more)" if rest else "")


def advertised(worker: dict[str, Any]) -> str:
    """What a worker advertised, by which the leader routes its tasks: ``executors local,
    http; functions tick, report (+12 more)``."""
    executors = worker.get("executors") or []
    functions = worker.get("functions") or []
    if not executors:  # a record of an earlier version: taken to have and offer everything
        return "executors not said (an older worker: gets every task)"
    text = f"executors {names(executors)}"
    if functions:
        text += f"; functions {names(functions)}"
    elif "local" in executors:
        text += "; functions none (gets no local task)"
    return text


def render(data: dict[str, Any]) -> str:
    """The status as text (``data``: ``Status.to_dict()`` plus ``storage``)."""
    out = [f"storage     {data['storage']}"]
    for warning in data.get("store_warnings") or ():
        out.append(f"  WARNING   {warning}")
    signing = data.get("signing", "unsigned")
    if signing == "signed":
        out.append("signing     signed: the leader signs every dispatch, every live worker checks")
    elif signing == "mixed":
        out.append("signing     MIXED: some nodes have no DISTSCHED_SIGNING_KEY (the leader gives no task to a "
                   "worker whose signing differs from its own)")
    else:
        out.append("signing     unsigned: anyone who can write to the store can run tasks on the workers "
                   "(set DISTSCHED_SIGNING_KEY, see docs/security.md)")
    leader = data["leader"]
    claiming = data.get("leader_claimed_by") or ()
    if leader is None and claiming:
        # the store gives no lease for a lease record it cannot read (a warning in the log),
        # until the holder's next renewal writes it again: not "no scheduler ever took it"
        out.append(f"leader      unknown: the lease record cannot be read while {', '.join(claiming)} reports "
                   "leading (see the warning logged; the holder's next renewal writes the record again)")
    elif leader is None:
        out.append("leader      none (no scheduler ever took the lease)")
    elif leader["expired"]:
        out.append(f"leader      none: the lease EXPIRED {ago(-leader['expires_in'])} ago "
                   f"(last holder {leader['node_id']}, term {leader['term']})")
    elif leader.get("renewal_overdue"):
        # the holder renews every renew interval: one silent for two may be dead, and no
        # other node can lead until its lease expires
        out.append(f"leader      {leader['node_id']}  term {leader['term']}  leading for {ago(leader['lease_age'])}"
                   f"  (renewal overdue: renewed {ago(leader['renewed_age'])} ago - the holder may be dead; "
                   f"the lease expires in {ago(leader['expires_in'])})")
    else:
        out.append(f"leader      {leader['node_id']}  term {leader['term']}  leading for {ago(leader['lease_age'])}"
                   f"  (renewed {ago(leader['renewed_age'])} ago, expires in {ago(leader['expires_in'])})")
    nodes = data["schedulers"]
    standbys = sum(1 for n in nodes if n["role"] != "leader" and n["alive"])
    out.append(f"schedulers  {len(nodes)} ({standbys} standby)")
    for n in nodes:
        state = n["role"] if n["alive"] else f"silent (was {n['role']})"
        out.append(f"  {n['id']:<36} {state:<20} heartbeat {beat(n['heartbeat_age'])}  host {n['host']} pid {n['pid']}")
    workers = data["workers"]
    alive = sum(1 for w in workers if w["state"] in ("alive", "draining"))
    silent = sum(1 for w in workers if w["state"] == "silent")
    out.append(f"workers     {len(workers)} ({alive} alive" + (f", {silent} silent: given no task" if silent else "") + ")")
    for w in workers:
        out.append(f"  {w['id']:<36} {w['state']:<9} load {w['load']}/{w['capacity']}  queued {w['queued']}"
                   f"  heartbeat {beat(w['heartbeat_age'])}  host {w['host']} pid {w['pid']}")
        out.append(f"  {'':<36} {advertised(w)}")
        if w.get("blocked"):
            out.append(f"  {'':<36} {w['blocked']} of {w['concurrency']} execution slot(s) blocked by timed-out "
                       "sync calls still running: it takes fewer tasks")
    jobs = data.get("jobs")
    if jobs is not None:
        if jobs["more"]:
            out.append(f"jobs        more than {jobs['total']} (status counts up to {jobs['total']})")
        else:
            out.append(f"jobs        {jobs['total']} ({jobs['enabled']} enabled)" if jobs["total"] else "jobs        none")
    counts = data["counts"]
    ordered = [s for s in STATE_ORDER if counts.get(s)] + sorted(s for s in counts if s not in STATE_ORDER)
    held = data.get("held") or {"total": 0, "jobs": 0, "backlogs": []}
    parked = data.get("parked") or []
    parked_total = sum(p["waiting"] for p in parked)
    aside = ([f"{held['total']} held behind {held['jobs']} serial job(s)"] if held["total"] else []) + (
        [f"{parked_total} parked waiting for a worker"] if parked_total else [])
    cells = [f"{s} {counts[s]}" + (f" ({', '.join(aside)})" if s == "pending" and aside else "") for s in ordered]
    out.append("tasks       " + (", ".join(cells) or "none"))
    oldest = ago(data["oldest_pending_age"]) if data["oldest_pending_age"] is not None else "-"
    left_out = " and ".join(w for w, n in (("held", held["total"]), ("parked", parked_total)) if n)
    out.append(f"oldest pending  {oldest}" + (f"  (the {left_out} ones left out: the leader does not dispatch them yet)"
                                              if left_out else ""))
    if parked:
        # tasks no live worker may run (unroutable_wait), out of the ready queue
        out.append(f"parked      {parked_total} task(s) wait for a worker that may run them (no live worker "
                   "offers the function or has the executor):")
        for p in parked[:HELD_SHOWN]:
            what = (f"function {p['key'][len('local:'):]!r}" if p["key"].startswith("local:")
                    else f"executor {p['key']!r}")
            fails = f"the first fails in {ago(p['fails_in'])}" if p["fails_in"] > 0 else "the first fails now"
            out.append(f"  {what:<36} {p['waiting']} waiting, {fails} unless one starts")
        if len(parked) > HELD_SHOWN:
            out.append(f"  ... and {len(parked) - HELD_SHOWN} more")
    if held["total"]:
        # a serial job slower than its slots: its waiting slots, the most first
        out.append(f"serial backlog  {held['total']} slot(s) wait their turn (distsched jobs list shows each "
                   "job's max_backlog):")
        for b in held["backlogs"]:
            since = f"oldest slot {ago(b['oldest_age'])} ago" if b["oldest_age"] is not None else "not due yet"
            out.append(f"  {b['job']:<36} {b['waiting']} waiting, {since}")
        if held["jobs"] > len(held["backlogs"]):
            out.append(f"  ... and {held['jobs'] - len(held['backlogs'])} more serial job(s)")
    if data.get("quarantined"):
        out.append(f"quarantined {data['quarantined']} record(s) the engine could not decode, moved aside "
                   "(see Failure modes in docs/redis.md or docs/postgres.md):")
        for q in data["quarantine"]:
            out.append(f"  {q['kind']} {q['key']!r}: {q['reason']}")
    return "\n".join(out)


@cli.command()
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one JSON document per refresh).")
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option("--interval", type=Seconds(0.2, 3600), default=2.0, show_default=True, metavar="DURATION",
              help="Seconds between refreshes with --watch.")
@click.pass_context
def status(ctx: click.Context, storage: str | None, as_json: bool, watch: bool, interval: float) -> None:
    """Show the leader (term, lease age, renewal overdue, or EXPIRED), the scheduler nodes, the workers (heartbeat
    age on the store's clock, load, queue depth; `stopped` once deregistered), the jobs stored, the task
    counts (how many pending slots wait their turn behind serial jobs, per job) and the age of the oldest pending
    task the leader may dispatch (those held slots left out)."""
    if not watch and ctx.get_parameter_source("interval") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--interval needs --watch (without it, one status is shown and the command ends)")
    from ..facade import store_unreachable

    app = _app(ctx, storage, reader=True)
    where = redact_url(app.config.storage)

    def show(data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=None if watch else 2) if as_json else render(data)
        # color=True: click would strip the escape sequence when stdout is not a terminal
        click.echo((CLEAR if watch and not as_json else "") + text, color=True)

    async def main(stop: asyncio.Event) -> None:
        noted = False
        try:
            while True:
                try:
                    snapshot = await app.status()
                except Exception as exc:
                    # a watch started during an outage fails to open the store (the plugin's
                    # PluginError around the client's error): retried as an outage that began
                    # during the watch; anything the store refused (a bad URL, a password, a
                    # schema too new) ends the watch as it ends a single status
                    if isinstance(exc, DistschedError) and not (watch and store_unreachable(exc)):
                        raise
                    cause = exc.__cause__ if isinstance(exc, DistschedError) and exc.__cause__ is not None else exc
                    error = f"{type(cause).__name__}: {redact_text(str(cause))}"
                    if not watch:
                        raise click.ClickException(f"{where}: {error}") from None
                    if as_json:  # stdout stays one JSON document per refresh
                        click.echo(json.dumps({"storage": where, "reachable": False, "error": error}))
                    else:
                        click.echo(f"{CLEAR}{where}: unreachable ({error})", color=True)
                else:
                    show({"storage": where, "reachable": True, **snapshot.to_dict()})
                    if not noted:  # once: a memory:// store read by a command of its own is a new one
                        noted = True
                        note_memory(app.config.storage, snapshot.leader is None and not snapshot.schedulers
                                    and not snapshot.workers and not any(snapshot.counts.values()))
                if not watch:
                    return
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                    return
                except asyncio.TimeoutError:
                    pass
        finally:
            await app.stop()

    _run(main)
