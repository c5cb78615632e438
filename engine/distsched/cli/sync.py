"""``distsched jobs sync FILE [--prune] [--dry-run]``: a jobs file as the source of truth.

Also the diff printer the ``scheduler --jobs FILE [--prune]`` start uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar, cast

import click
from click.core import ParameterSource

from ..config import STORAGE_ENV
from ..masking import mask_secrets
from ..model import RetryPolicy, Trigger
from ..model.sync import SyncPlan, plan_sync
from ..model.words import duration_words, schedule_words
from ..urls import REDACTED, redact_url

T = TypeVar("T")


def _value(field: str, value: Any) -> str:
    """A field's value as the diff shows it, its secrets masked (:func:`mask_secrets`)."""
    if field == "schedule":
        return schedule_words(value)
    if field in ("timeout", "misfire_grace") and isinstance(value, (int, float)):
        return duration_words(value)
    if isinstance(value, RetryPolicy):
        return json.dumps(value.to_dict(), sort_keys=True)
    value = mask_secrets(value)
    if isinstance(value, (tuple, list, dict)):
        return json.dumps(value, default=str, sort_keys=True)
    return repr(value) if isinstance(value, str) else str(value)


def plan_lines(plan: SyncPlan, source: str, configs: dict[str, Any]) -> list[str]:
    """The diff of a sync, one line per job (a changed job: one line per field; a job another
    node's sync changed at the same moment: a ``*`` line); targets, options, arguments and
    headers are shown with their secrets masked."""
    lines: list[str] = []
    for name in plan.added:
        config = configs[name]
        trigger: Trigger | None = config.trigger
        lines.append(f"+ {name:<24} {schedule_words(trigger)}  {config.spec.executor}:{mask_secrets(config.spec.target)}")
    for change in plan.updated:
        for i, field in enumerate(change.changes):
            head = f"~ {change.name:<24}" if i == 0 else f"  {'':<24}"
            old, new = _value(field.field, field.old), _value(field.field, field.new)
            # Only a masked part changed: say so rather than print two equal values.
            tail = " (a masked secret changed)" if old == new else ""
            lines.append(f"{head} {field.field}: {old} -> {new}{tail}")
    for name in plan.removed:
        lines.append(f"- {name:<24} not in {source}: removed")
    for name in plan.kept:
        lines.append(f"! {name:<24} stored, not in {source}: kept (--prune removes it)")
    for name in plan.concurrent:  # another node's sync wrote it first: this one left it as it was
        done = f"already as in {source}" if name in configs else f"already removed (not in {source})"
        lines.append(f"* {name:<24} changed by another node at the same moment: {done}")
    if plan.unchanged:
        lines.append(f"= {len(plan.unchanged)} job(s) unchanged")
    return lines


def plan_dict(plan: SyncPlan) -> dict[str, Any]:
    """``jobs sync --json``: the plan, each changed field's old and new value with its secrets
    masked."""
    data = plan.to_dict()
    for job in data["updated"]:
        for change in job["changes"]:
            change["old"], change["new"] = mask_secrets(change["old"]), mask_secrets(change["new"])
    return data


#: How many names a failed sync's message lists per kind (then "and N more").
SHOWN = 20


def _changes(plan: SyncPlan) -> list[tuple[str, str]]:
    """The jobs a plan adds, updates and removes: ``(mark, name)``, marked as the diff marks them."""
    return ([("+", n) for n in plan.added] + [("~", c.name) for c in plan.updated]
            + [("-", n) for n in plan.removed])


def _named(changes: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{mark} {name}" for mark, name in changes[:SHOWN])
    return shown + (f" and {len(changes) - SHOWN} more" if len(changes) > SHOWN else "")


def _cause(exc: BaseException) -> str:
    """The error that stopped a write, in one line, its secrets masked."""
    from ..model.errors import DistschedError
    from ..urls import redact_text

    text = str(exc).splitlines()[0] if str(exc) else ""
    if not text and isinstance(exc, (TimeoutError, asyncio.TimeoutError)):  # says nothing by itself
        text = "the store did not answer in time"
    return redact_text(text if isinstance(exc, DistschedError) else f"{type(exc).__name__}: {text}".rstrip(": "))


class SyncAgain(NamedTuple):
    """How a failed write's report tells the operator to write what is left."""

    #: The ``distsched jobs sync`` command, runnable as shown (its secrets masked: ``note``).
    command: str
    #: A line to add, or "" (the storage URL is shown with its secrets masked).
    note: str = ""


def sync_again(ctx: click.Context, jobs_file: str, *, prune: bool, storage: str | None) -> SyncAgain:
    """The ``distsched jobs sync`` command that writes what a failed write of ``jobs_file``
    left, on the store this command used, runnable as shown: the storage URL given on the
    command line or in a config file (``jobs sync`` reads no config file) as
    ``--storage URL``, its password and secret query values masked - the note then says to
    put them back; a storage from an environment variable as the variable
    (``--storage "$DISTSCHED_SCHEDULER_STORAGE"``), or not at all for ``$DISTSCHED_STORAGE``
    (``jobs sync`` reads it too) and for the default store."""
    words = ["distsched", "jobs", "sync", shlex.quote(str(jobs_file))]
    note = ""
    if storage:
        if ctx.get_parameter_source("storage") is ParameterSource.ENVIRONMENT:
            param = next((p for p in ctx.command.params if p.name == "storage"), None)
            envvar = param.envvar if param is not None else None
            names = [envvar] if isinstance(envvar, str) else list(envvar or ())
            name = next((n for n in names if os.environ.get(n)), STORAGE_ENV)
            if name != STORAGE_ENV:
                words += ["--storage", f'"${name}"']
        else:
            shown = redact_url(storage)
            words += ["--storage", shlex.quote(shown)]
            if shown != storage:
                note = (f"  the storage URL is shown with {REDACTED} in place of its password (and secret "
                        "query values): put them back to run it")
    if prune:
        words.append("--prune")
    return SyncAgain(" ".join(words), note)


async def apply_sync(app: Any, configs: Any, *, prune: bool, source: str, again: SyncAgain) -> SyncPlan:
    """``app.sync_jobs(configs, prune=prune)`` - the plan the store answered with - and, when a
    write fails, an error (click.ClickException) that says what the store holds then
    (:func:`write_reporting`)."""
    return await write_reporting(app, configs, lambda: app.sync_jobs(configs, prune=prune), prune=prune,
                                 source=source, again=again, subject=f"jobs sync of {source}")


async def write_reporting(app: Any, configs: Any, write: Callable[[], Awaitable[T]], *, prune: bool, source: str,
                          again: SyncAgain, subject: str) -> T:
    """``await write()`` - a write of the jobs ``configs`` of ``source`` (a sync, with
    ``prune`` or not; ``distsched run``'s ``put_jobs``) - and, when it fails, an error
    (click.ClickException) that says what the store holds then, starting with ``subject``.

    A sync is not one atomic write, on any store: the new jobs are stored in batches of a
    few hundred, each batch in one atomic step, then each changed job and each removed one
    on its own; each job is written whole or not at all. So the plan is computed first (as
    ``--dry-run`` does, writing nothing), and after a failed write the stored jobs are read
    again: the planned changes now made are named as written, the others as not written
    (``again.command`` runs the sync again: it writes only what is left). When the store
    cannot be read then, every planned change is named as one that may or may not have been
    written. A problem found before any write (a bad job, a one-shot in the past...) is
    raised as it is: nothing was written; so is a failure to read the stored jobs for the
    plan (the store went away, a lock held past the store's command timeout), saying so."""
    from ..model.errors import DistschedError

    try:
        planned = await app.sync_jobs(configs, prune=prune, dry_run=True)
    except DistschedError:
        raise
    except Exception as exc:  # it printed "Error: TimeoutError:  (run with -vv ...)", no more
        logging.getLogger("distsched.cli").debug("reading the stored jobs failed", exc_info=exc)
        raise click.ClickException("\n".join([
            f"{subject} wrote nothing: the stored jobs could not be read to plan it ({_cause(exc)})",
            f"  once the store answers, `{again.command}` writes them"] + ([again.note] if again.note else []))) from None
    try:
        return await write()
    except Exception as exc:  # the store refused a write, or went away: say what it holds
        logging.getLogger("distsched.cli").debug("the jobs' write failed", exc_info=exc)  # -vv: the traceback
        raise click.ClickException(await _failed_sync(app, configs, planned, exc, prune=prune, source=source,
                                                      again=again, subject=subject)) from None


async def _failed_sync(app: Any, configs: Any, planned: SyncPlan, exc: BaseException, *, prune: bool,
                       source: str, again: SyncAgain, subject: str) -> str:
    cause = _cause(exc)
    wanted = _changes(planned)
    command = again.command
    note = [again.note] if again.note else []
    try:  # the stored jobs as they are now (a read: a store refusing writes still answers it)
        left = plan_sync(await app.jobs(), configs, prune=prune)
    except Exception as failed:
        return "\n".join([
            f"{subject} failed: {cause}",
            f"  what it wrote is unknown: the store could not be read after the failure ({_cause(failed)})",
            f"  may or may not have been written: {_named(wanted)}",
            f"  each job is written whole or not at all, but a sync is not one atomic write: once the store "
            f"answers, `{command} --dry-run` shows what is left and `{command}` writes it"] + note)
    remaining = _changes(left)
    todo = {name for _, name in remaining}
    written = [(mark, name) for mark, name in wanted if name not in todo]
    not_written = [(mark, name) for mark, name in wanted if name in todo]
    # changed meanwhile by someone else, not planned by this sync: differs from the file too
    planned_names = {name for _, name in wanted}
    others = [(mark, name) for mark, name in remaining if name not in planned_names]
    lines = [f"{subject} wrote nothing: {cause}" if not written else f"{subject} failed partway: {cause}"]
    if written:
        lines.append(f"  written before the failure (now stored as in {source}): {_named(written)}")
    if not_written:
        lines.append(f"  not written: {_named(not_written)}")
    if others:
        lines.append(f"  also not as in {source} (changed by another node meanwhile): {_named(others)}")
    if not (not_written or others):
        lines.append(f"  every job is now stored as in {source} (the failed write had been made, or another node made it)")
    elif written:
        lines.append(f"  the other stored jobs are as they were; once the cause is fixed, `{command}` writes what is left")
    else:
        lines.append(f"  the stored jobs are as they were; once the cause is fixed, `{command}` writes them")
    return "\n".join(lines + (note if not_written or others else []))


def summary(plan: SyncPlan) -> str:
    verb = "" if plan.applied else "would be "
    text = (f"{len(plan.added)} {verb}added, {len(plan.updated)} {verb}updated, "
            f"{len(plan.removed)} {verb}removed, {len(plan.unchanged)} unchanged")
    if plan.kept:
        text += f", {len(plan.kept)} stored job(s) not in the file kept"
    if plan.concurrent:
        text += f", {len(plan.concurrent)} job(s) changed by another node at the same moment"
    return text + ("" if plan.applied else " (dry run: nothing changed)")


@click.command("sync")
@click.argument("jobs_file", type=click.Path(dir_okay=False))
@click.option("--storage", "storage", metavar="URL", default=None,
              help="Storage URL (memory://, redis://host:6379/0, ...). Default: $DISTSCHED_STORAGE or memory://.")
@click.option("--prune", is_flag=True, help="Also remove the stored jobs that are not in JOBS_FILE.")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the plan).")
@click.pass_context
def sync(ctx: click.Context, jobs_file: str, storage: str | None, prune: bool, dry_run: bool, as_json: bool) -> None:
    """Make the stored jobs equal JOBS_FILE: add the new jobs, update the changed ones and,
    with --prune, remove the stored jobs the file does not have. Prints the diff of what it
    wrote (--dry-run: of what it would write), then a summary.

    Every job, and the file's [worker] table, is checked first, as a worker checks the table:
    a key or value the worker refuses is an error and nothing is written; a key that only an
    executor that does not declare its settings may read is a warning.

    A sync is not one atomic write: the new jobs are stored in batches, then each changed or
    removed job on its own, each job whole or not at all. When a write fails (the store
    refuses it, or goes away) it exits 1 with the error and names the changes written before
    it and those not written, as read back from the store - or, when the store cannot be
    read, the changes that may or may not have been written. Run it again to write what is
    left: the command it names does (with --storage URL as given, its password shown as ***
    to put back)."""
    from . import _check_jobs, _jobs_call, _load_jobs

    loaded = _load_jobs(jobs_file)
    configs = {c.name: c for c in loaded.jobs}

    async def call(app: Any) -> SyncPlan:
        _check_jobs(app, loaded)  # every problem of the file at once, as `jobs add` lists them
        # a [worker] typo or bad value: refused as `worker --jobs FILE` and `run` refuse it
        app.check_worker_settings(loaded.worker.settings, where=str(loaded.path))
        if dry_run:
            return cast(SyncPlan, await app.sync_jobs(loaded.jobs, prune=prune, dry_run=True))
        # The plan the store answered with, not the one computed before writing: another
        # node syncing at the same moment may have written some of it (SyncPlan.concurrent).
        # A failed write says what the store holds then (apply_sync).
        return await apply_sync(app, loaded.jobs, prune=prune, source=jobs_file,
                                again=sync_again(ctx, jobs_file, prune=prune, storage=storage))

    plan = _jobs_call(ctx, storage, call, reader=dry_run)
    if as_json:
        click.echo(json.dumps(plan_dict(plan), indent=2))
        return
    for line in plan_lines(plan, jobs_file, configs):
        click.echo(line)
    click.echo(summary(plan))


async def report_sync(app: Any, jobs_file: Any, *, prune: bool, again: SyncAgain | None = None) -> SyncPlan:
    """The scheduler's start with ``--jobs FILE``: sync the file's jobs and print the diff of
    what it wrote on stderr (without ``prune``, the stored jobs the file lacks are named and
    kept); a failed write says what the store holds and ``again``'s command (:func:`sync_again`;
    default: ``distsched jobs sync FILE [--prune]``, on the default store)."""
    configs = {c.name: c for c in jobs_file.jobs}
    if again is None:
        again = SyncAgain(f"distsched jobs sync {shlex.quote(str(jobs_file.path))}{' --prune' if prune else ''}")
    plan = await apply_sync(app, jobs_file.jobs, prune=prune, source=str(jobs_file.path), again=again)
    for line in plan_lines(plan, str(jobs_file.path), configs):
        if not line.startswith("="):
            click.echo(line, err=True)
    if plan.kept:
        click.echo(f"{len(plan.kept)} stored job(s) not in {jobs_file.path}: {', '.join(plan.kept[:20])}"
                   f"{' ...' if len(plan.kept) > 20 else ''} (kept; --prune removes them)", err=True)
    click.echo(f"jobs from {jobs_file.path}: {summary(plan)}", err=True)
    return plan

