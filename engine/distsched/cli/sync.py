"""``distsched jobs sync FILE [--prune] [--dry-run]``: a jobs file as the source of truth.

Also the diff printer the ``scheduler --jobs FILE [--prune]`` start uses.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..masking import mask_secrets
from ..model import RetryPolicy, Trigger
from ..model.sync import SyncPlan
from ..model.words import duration_words, schedule_words


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
    wrote (--dry-run: of what it would write), then a summary."""
    from . import _check_jobs, _jobs_call, _load_jobs

    loaded = _load_jobs(jobs_file)
    configs = {c.name: c for c in loaded.jobs}

    async def call(app: Any) -> SyncPlan:
        _check_jobs(app, loaded)  # every problem of the file at once, as `jobs add` lists them
        # a [worker] typo or bad value: refused as `worker --jobs FILE` and `run` refuse it
        app.check_worker_settings(loaded.worker.settings, where=str(loaded.path))
        # The plan the store answered with, not the one computed before writing: another
        # node syncing at the same moment may have written some of it (SyncPlan.concurrent).
        return await app.sync_jobs(loaded.jobs, prune=prune, dry_run=dry_run)

    plan = _jobs_call(ctx, storage, call, reader=dry_run)
    if as_json:
        click.echo(json.dumps(plan_dict(plan), indent=2))
        return
    for line in plan_lines(plan, jobs_file, configs):
        click.echo(line)
    click.echo(summary(plan))


async def report_sync(app: Any, jobs_file: Any, *, prune: bool) -> SyncPlan:
    """The scheduler's start with ``--jobs FILE``: sync the file's jobs and print the diff of
    what it wrote on stderr (without ``prune``, the stored jobs the file lacks are named and
    kept)."""
    configs = {c.name: c for c in jobs_file.jobs}
    plan = await app.sync_jobs(jobs_file.jobs, prune=prune)
    for line in plan_lines(plan, str(jobs_file.path), configs):
        if not line.startswith("="):
            click.echo(line, err=True)
    if plan.kept:
        click.echo(f"{len(plan.kept)} stored job(s) not in {jobs_file.path}: {', '.join(plan.kept[:20])}"
                   f"{' ...' if len(plan.kept) > 20 else ''} (kept; --prune removes them)", err=True)
    click.echo(f"jobs from {jobs_file.path}: {summary(plan)}", err=True)
    return plan

