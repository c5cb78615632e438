"""The ``distsched`` command.

    distsched run JOBS_FILE            scheduler + worker in one process (default memory://)
    distsched explain JOBS_FILE [JOB]  the next fire times of the jobs, in UTC and their zone
    distsched plugins                  discovered plugins, their distribution and what they provide
    distsched scheduler / worker       the distributed roles, on a shared store (redis://...)
    distsched status                   leader and lease, schedulers, workers, task counts
    distsched tasks ...                list / show / submit / retry / cancel tasks
    distsched jobs ...                 list / show / add / remove / pause / resume / trigger jobs
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import click

from ..__about__ import __version__
from ..config import ALLOW_REPLACE_ENV, DISABLE_ENV, PLUGINS_ENV, STORAGE_ENV, WorkerConfig
from ..masking import mask_secrets
from ..model import events as ev
from ..model.errors import DistschedError
from ..model.worker import MAX_CAPACITY, MAX_CONCURRENCY
from ..urls import redact_text, redact_url
from .config import Seconds, configurable

T = TypeVar("T")
log = logging.getLogger("distsched.cli")


# -- helpers ---------------------------------------------------------------------------
def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _from_option_and_env(ctx: click.Context, key: str, env_var: str) -> list[str] | None:
    """The names of a repeatable group option plus those of its environment variable; None
    when the option is not given (the plugin manager then reads the variable itself)."""
    names = ctx.find_root().obj.get(key) if ctx.find_root().obj else None
    if not names:
        return None
    import os

    env = [n.strip() for n in os.environ.get(env_var, "").split(",") if n.strip()]
    return list(names) + env


def _disabled(ctx: click.Context) -> list[str] | None:
    return _from_option_and_env(ctx, "disable", DISABLE_ENV)


def _allow_replace(ctx: click.Context) -> list[str] | None:
    return _from_option_and_env(ctx, "allow_replace", ALLOW_REPLACE_ENV)


def _run(coro_factory: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run a coroutine with SIGINT/SIGTERM setting the stop event (clean shutdown)."""

    async def main() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
                pass
        return await coro_factory(stop)

    try:
        return asyncio.run(main())
    except DistschedError as exc:
        raise click.ClickException(redact_text(str(exc))) from None
    except (KeyboardInterrupt, click.ClickException):
        raise
    except Exception as exc:
        # The store refused or failed (a permission an ACL user lacks, a connection
        # refused, ...): one line naming the error; the traceback with -vv.
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise click.ClickException(f"{type(exc).__name__}: {redact_text(text)} (run with -vv for the traceback)") from None


_ts_second: list[Any] = [None, ""]


def _ts(at: float) -> str:
    """``HH:MM:SS.mmm`` (UTC); the seconds part is formatted once per second."""
    second = int(at)
    if _ts_second[0] != second:
        _ts_second[:] = [second, datetime.fromtimestamp(second, timezone.utc).strftime("%H:%M:%S")]
    return f"{_ts_second[1]}.{min(999, int((at - second) * 1000)):03d}"


def task_line(event: ev.Event) -> str | None:
    """One line per finished attempt, skipped slot or cancelled task (job, attempt, state,
    duration, task id; a cancel's reason), lost worker, and this node's leadership taken (its
    term) or lost (why)."""
    if isinstance(event, ev.TaskFinished):
        tail = f"  {mask_secrets(event.error)}" if event.error and event.state != "succeeded" else ""
        tail += f" ({mask_secrets(event.reason)})" if event.reason else ""  # not retried: why
        return (f"{_ts(event.at)}  {event.job or event.task_id:<20} attempt {event.attempt:<3} {event.state:<10} "
                f"{event.duration:8.3f}s  task {event.task_id}{tail}")
    if isinstance(event, ev.TaskRetryScheduled):
        return (f"{_ts(event.at)}  {event.job or event.task_id:<20} attempt {event.failed_attempt:<3} {event.outcome:<10} "
                f"{event.duration:8.3f}s  task {event.task_id}  retry in {event.delay:.2f}s: {mask_secrets(event.error)}")
    if isinstance(event, ev.TaskSkipped):
        return (f"{_ts(event.at)}  {event.job or event.task_id:<20} slot {_ts(event.slot or 0)} skipped ({event.reason})"
                f"  task {event.task_id}")
    if isinstance(event, ev.TaskCancelled):
        return (f"{_ts(event.at)}  {event.job or event.task_id:<20} cancelled: {mask_secrets(event.reason)}"
                f"  task {event.task_id}")
    if isinstance(event, ev.WorkerLost) and (event.requeued or event.reason not in ("", "worker left")):
        what = event.reason if event.reason.startswith("worker ") else f"worker {event.worker_id} lost"
        return f"{_ts(event.at)}  {what}; {event.requeued} task(s) requeued"
    if isinstance(event, ev.LeaderElected):
        return f"{_ts(event.at)}  leading: {event.node_id} took the lease, term {event.term}"
    if isinstance(event, ev.LeadershipLost):
        return f"{_ts(event.at)}  stopped leading: {event.node_id}, term {event.term} ({event.reason})"
    return None


def _told_by_event(record: logging.LogRecord) -> bool:
    """Log filter: drop the records the task log already prints as an event line."""
    return getattr(record, "distsched_event", None) is None


#: Events ``--log-format json`` writes (one JSON object a line).
JSON_LOG_EVENTS = (ev.TaskFinished, ev.TaskRetryScheduled, ev.TaskSkipped, ev.TaskCancelled, ev.WorkerLost,
                   ev.LeaderElected, ev.LeadershipLost)


def task_json(event: ev.Event) -> str | None:
    """One JSON object (one line) per finished attempt, skipped slot, cancel, lost worker,
    and this node's leadership taken or lost: the event's fields (``kind``, ``at`` in UNIX
    seconds, ``task_id``, ...) plus ``time``
    (ISO-8601 UTC), for log shippers."""
    if not isinstance(event, JSON_LOG_EVENTS):
        return None
    data = mask_secrets(event.to_dict())
    data["time"] = datetime.fromtimestamp(event.at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(data, separators=(",", ":"), default=str)


class _TaskLog:
    """The task log on stdout: the lines of one event batch go out in one write."""

    def __init__(self, fmt: str = "text") -> None:
        self.lines: list[str] = []
        #: Tasks this node cancelled (a balancer failing on a task, a job's overlap policy):
        #: the summary of ``run`` counts them, its scheduler's stats do not.
        self.cancelled = 0
        self.format = task_json if fmt == "json" else task_line
        # A lost worker is reported once: by its event line here, not also by the log.
        scheduler_log = logging.getLogger("distsched.scheduler")
        if _told_by_event not in scheduler_log.filters:
            scheduler_log.addFilter(_told_by_event)

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.TaskCancelled):
            self.cancelled += 1
        line = self.format(event)
        if line is None:
            return
        self.lines.append(line)
        if len(self.lines) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write at once
                self.flush()

    def flush(self) -> None:
        if self.lines:
            lines, self.lines = self.lines, []
            click.echo("\n".join(lines))


log_format_option = click.option(
    "--log-format", "log_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="The task log on stdout: a line per finished attempt, or one JSON object a line (for log shippers).")


def _load_jobs(path: str) -> Any:
    """The jobs file at ``path`` (a clear error when it is invalid); a job whose ``timezone``
    its trigger does not read (``every``), or a Quartz-style cron whose day numbers are read
    as cron's, is a WARNING naming it, not an error (``job_warnings``)."""
    from ..jobs import load_jobs_file
    from ..model.build import job_warnings

    try:
        loaded = load_jobs_file(path)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None
    for config in loaded.jobs:
        for said in job_warnings(config):
            log.warning("%s: %s", path, said)
    return loaded


def _extra_plugins(ctx: click.Context) -> list[tuple[str, Any]]:
    from ..plugin.manager import load_plugin_modules, modules_from_env

    obj = ctx.find_root().obj or {}
    try:
        return load_plugin_modules(list(obj.get("plugins", ())) + modules_from_env())
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None


def _app(ctx: click.Context, storage: str | None, **kw: Any) -> Any:
    from ..facade import DistributeSchedule
    from .config import plugin_settings

    if "plugin_settings" not in kw and plugin_settings():  # the config file's [plugins.<name>] tables
        kw["plugin_settings"] = plugin_settings()
    try:
        return DistributeSchedule(storage, disabled_plugins=_disabled(ctx), allow_replace=_allow_replace(ctx),
                                 plugins=_extra_plugins(ctx), **kw)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None


def _prepare(app: Any, jobs_file: Any, extra_imports: tuple[str, ...] = ()) -> None:
    """Import the worker's task modules, check every job's executor, balancer and target,
    and check the worker's settings as its start would (once: it does not check them again)."""
    from ..facade import functions_in_module, missing_functions_hint
    from ..jobs import import_task_modules
    from .config import config_settings, config_settings_source

    try:
        import_task_modules(list(dict.fromkeys(list(jobs_file.worker.imports if jobs_file else ()) + list(extra_imports))),
                            base=jobs_file.path.parent if jobs_file else None, register=app.functions.add,
                            collect=functions_in_module, hint=missing_functions_hint)
    except DistschedError as exc:
        raise click.ClickException(f"{jobs_file.path if jobs_file else 'worker'}: {exc}") from None
    if jobs_file:
        _refuse(jobs_file, app.check_jobs(jobs_file.jobs, functions=True))
    # The settings the worker will read, merged from the jobs file's [worker] table and the
    # config file's (its value wins), each key named by the file it comes from: a typo or
    # bad value is refused before anything is stored or started, a key no executor can judge
    # is warned about once (the worker's start does not check settings accepted here again).
    sources = {key: str(jobs_file.path) for key in (jobs_file.worker.settings if jobs_file else ())}
    sources.update({key: config_settings_source() for key in config_settings()})
    try:
        app.check_worker_settings(app.worker_config.settings, where="worker", sources=sources)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None


def _check_jobs(app: Any, jobs_file: Any, jobs: Any = None) -> None:
    """Check every job's executor, balancer and target (the executor's validator) before any is stored."""
    _refuse(jobs_file, app.check_jobs(jobs_file.jobs if jobs is None else jobs))


def _refuse(jobs_file: Any, problems: list[str]) -> None:
    if problems:
        raise click.ClickException(f"{jobs_file.path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


def _worker_config(jobs_file: Any, *, name: str | None = None, concurrency: int | None = None,
                   capacity: int | None = None, drain_timeout: float | None = None) -> WorkerConfig:
    from .config import config_settings

    section = jobs_file.worker if jobs_file else None
    if drain_timeout is None:
        drain_timeout = section.drain_timeout if section and section.drain_timeout is not None else 30.0
    try:
        return WorkerConfig(
            name=name or (section.name if section else None),
            concurrency=concurrency or (section.concurrency if section and section.concurrency else 8),
            capacity=capacity or (section.capacity if section else None),
            drain_timeout=drain_timeout,
            settings={**(dict(section.settings) if section else {}), **config_settings()},
        )
    except DistschedError as exc:  # capacity under concurrency, each from its own source
        raise click.ClickException(f"worker: {exc}") from None


storage_option = click.option(
    "--storage", "storage", metavar="URL", default=None,
    help=f"Storage URL (memory://, redis://host:6379/0, ...). Default: ${STORAGE_ENV} or memory://.",
)


def _check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from ..config import parse_address

    if value is None:
        return None
    try:
        parse_address(value, f"--{param.name}")
    except DistschedError as exc:
        raise click.BadParameter(getattr(exc, "reason", str(exc))) from None
    return value


metrics_option = click.option(
    "--metrics", "metrics", metavar="HOST:PORT", default=None, callback=_check_address,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics while running (the metrics "
         "plugin: pip install 'distsched[metrics]'; see docs/metrics.md).",
)


def _serve(metrics: str | None, web: str | None = None) -> dict[str, str]:
    """``EngineConfig.serve`` from the serve options (``distsched_serve`` starts each)."""
    return {name: address for name, address in (("metrics", metrics), ("web", web)) if address}


def _serving(metrics: str | None) -> str:
    """The tail of a command's start line: where metrics are served (port 0: see -v)."""
    if not metrics:
        return ""
    if metrics.endswith(":0"):
        return "; metrics on a free port (-v logs it)"
    return f"; metrics at http://{metrics}/metrics"


# -- the command group -----------------------------------------------------------------
class _DistschedGroup(click.Group):
    """The built-in commands plus those plugins add through ``distsched_cli_commands``.

    Plugins are only consulted for a name no built-in command has (and for ``--help``), so
    the built-in commands start without loading every plugin first."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, Any]:
        root = ctx.find_root()
        meta = root.meta
        if "distsched.plugin_commands" in meta:
            return dict(meta["distsched.plugin_commands"])
        from ..plugin.manager import PluginManager, load_plugin_modules, modules_from_env

        disable = list(root.params.get("disable") or ())
        disabled = None
        if disable:
            import os

            disabled = disable + [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n]
        try:
            extra = load_plugin_modules(list(root.params.get("extra") or ()) + modules_from_env())
            pm = PluginManager(disabled=disabled, plugins=extra)
        except DistschedError as exc:
            raise click.ClickException(str(exc)) from None
        by_name: dict[str, list[tuple[str, Any]]] = {}
        for origin, command in pm.cli_commands():
            by_name.setdefault(command.name or "", []).append((origin, command))
        commands: dict[str, Any] = {}
        for name, offers in by_name.items():
            origins = " and ".join(origin for origin, _ in offers)
            if name in self.commands:
                log.warning("command %r of %s ignored: distsched has a built-in command of that name", name, origins)
            elif len(offers) > 1:
                log.warning("command %r is offered by %s; neither is used (disable one with --disable-plugin)",
                            name, origins)
            else:
                commands[name] = offers[0][1]
        meta["distsched.plugin_commands"] = commands
        return dict(commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugin_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return self._plugin_commands(ctx).get(cmd_name)


@click.group(cls=_DistschedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="distsched")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug) on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option("--disable-plugin", "disable", multiple=True, metavar="NAME", is_eager=True,
              help=f"Do not load this plugin (repeatable; also ${DISABLE_ENV}=a,b).")
@click.option("-p", "--plugin", "extra", multiple=True, metavar="MODULE", is_eager=True,
              help=f"Also load this module as a plugin, without an entry point (repeatable; also ${PLUGINS_ENV}=a,b).")
@click.option("--allow-replace", "allow_replace", multiple=True, metavar="NAME",
              help="Let the plugin that registers NAME (or URL scheme) with replace=True take it over from "
                   f"another plugin (repeatable; also ${ALLOW_REPLACE_ENV}=a,b). Without it, a name two plugins "
                   "provide is unusable.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, disable: tuple[str, ...], extra: tuple[str, ...],
        allow_replace: tuple[str, ...]) -> None:
    """distsched: a distributed task scheduler with pluggable storage, executors and balancers."""
    ctx.obj = {"disable": disable, "plugins": extra, "allow_replace": allow_replace}
    _setup_logging(verbose, quiet)


@cli.command()
@click.argument("jobs_file", type=click.Path(dir_okay=False))
@storage_option
@click.option("--duration", type=Seconds(min=0), default=None, metavar="DURATION",
              help="Stop after this many seconds (default: run until Ctrl-C / SIGTERM).")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), default=None, help="Tasks run at once (default: [worker] concurrency or 8).")
@log_format_option
@metrics_option
@click.option("--web", "web", is_flag=False, flag_value="127.0.0.1:8787", default=None, metavar="[HOST:PORT]",
              callback=_check_address,
              help="Also serve the web dashboard and REST API on HOST:PORT (default 127.0.0.1:8787; the web "
                   "plugin: pip install 'distsched[web]'; see docs/web.md).")
@click.pass_context
def run(ctx: click.Context, jobs_file: str, storage: str | None, duration: float | None, concurrency: int | None,
        log_format: str, metrics: str | None, web: str | None) -> None:
    """Run the scheduler and a worker in this process with the jobs of JOBS_FILE.

    Prints one line per finished attempt: time, job, attempt, state, duration, task id, and
    one when this process takes or loses the lease (--log-format json: one JSON object a
    line). Stops cleanly on Ctrl-C / SIGTERM or after
    --duration.

    Before it stores anything it checks the jobs and the file's [worker] table as the worker
    does: a key or value the worker refuses is an error (exit status 1, nothing stored); a
    key that only an executor that does not declare its settings may read is one warning.
    Its [plugins.<name>] tables are the plugins' settings (no config file is read). It then
    adds or updates the file's jobs (stored jobs the file lacks are left as they are); a
    failed write ends it with exit status 1 before anything starts, naming the changes
    written before the failure (they stay) and those not written, as `jobs sync` does, and
    the `distsched jobs sync` command that writes what is left.
    """
    jobs = _load_jobs(jobs_file)
    plugin_tables = {"plugin_settings": jobs.plugins} if jobs.plugins else {}  # its [plugins.<name>] tables
    app = _app(ctx, storage, worker=_worker_config(jobs, concurrency=concurrency), serve=_serve(metrics, web),
               **plugin_tables)
    _prepare(app, jobs)
    task_log = _TaskLog(log_format)
    app.listeners.append(task_log)

    from .sync import sync_again, write_reporting

    again = sync_again(ctx, jobs_file, prune=False, storage=storage)

    async def main(stop: asyncio.Event) -> None:
        from .service import SyncAgainOnDataLoss, freeze_startup_objects

        # A failed write says what the store holds then, as `jobs sync` does (write_reporting).
        await write_reporting(app, jobs.jobs, lambda: app.put_jobs(jobs.jobs, replace=True), prune=False,
                              source=jobs_file, again=again, subject=f"storing the jobs of {jobs_file}")
        app.listeners.append(SyncAgainOnDataLoss(lambda: app.put_jobs(jobs.jobs, replace=True), jobs_file,
                                                 again.command))
        freeze_startup_objects()
        click.echo(f"distsched {__version__}: {len(jobs.jobs)} job(s) from {jobs_file} on {redact_url(app.config.storage)}"
                   + (f" for {duration:g}s" if duration is not None else "; Ctrl-C to stop") + _serving(metrics), err=True)
        await app.run_async(duration=duration, stop=stop)
        s = app.stats
        if s is not None:
            cancelled = f", {task_log.cancelled} cancelled" if task_log.cancelled else ""
            click.echo(f"stopped: {s.get('succeeded', 0)} succeeded, {s.get('failed', 0)} failed, "
                       f"{s.get('timed_out', 0)} timed out{cancelled}, {s.get('retrying', 0)} retries scheduled",
                       err=True)

    _run(main)


@cli.command()
@click.argument("jobs_file", type=click.Path(dir_okay=False))
@click.argument("job", required=False)
@click.option("-n", "count", type=click.IntRange(1, 10_000), default=5, show_default=True, help="How many fire times.")
@click.option("--after", metavar="ISO-8601", default=None, help="Start from this time instead of now.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def explain(jobs_file: str, job: str | None, count: int, after: str | None, as_json: bool) -> None:
    """Preview the next fire times of the jobs in JOBS_FILE (or of JOB), in UTC and in the
    job's time zone, with the slots its DST policy skips."""
    import time as _time
    from zoneinfo import ZoneInfo

    from ..model import AtTrigger, CronTrigger, EveryTrigger
    from ..model.times import iso_utc
    from ..model.words import window_words

    jobs = _load_jobs(jobs_file)
    start = _time.time()
    if after is not None:
        start = _after_time(after)
    try:
        selected = [jobs.job(job)] if job else list(jobs.jobs)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None
    out = []
    retry_words = {config.name: config.spec.retry.words() for config in selected}
    for config in selected:
        trigger = config.trigger
        # an every job's slots count from the epoch in UTC: its timezone, not read, is not shown as its zone
        ignored = trigger.timezone if isinstance(trigger, EveryTrigger) and trigger.timezone != "UTC" else None
        zone = ZoneInfo(trigger.timezone) if trigger and not ignored else ZoneInfo("UTC")
        slots = config.upcoming(start, count)
        if isinstance(trigger, CronTrigger):
            what = f"cron {trigger.expr!r} ({trigger.dst_summary()})"
        elif isinstance(trigger, AtTrigger):
            what = "at"
        else:
            what = f"every {trigger.interval:g}s" if trigger else "no trigger"
        if isinstance(trigger, (CronTrigger, EveryTrigger)):
            what += window_words(trigger)
        rows = [{"utc": iso_utc(s.at), "local": _local_iso(s.at, zone), "skip": s.skip} for s in slots]
        if getattr(trigger, "jitter", 0.0):
            # a jitter delays each slot's start (the slot, the task's identity, stays): when it starts
            for row, slot in zip(rows, slots, strict=True):
                row["start_utc"] = _start_iso(config.start_at(slot.at))
        out.append({"job": config.name, "trigger": what, "timezone": str(zone.key), "enabled": config.enabled,
                    "overlap": _overlap_json(config), "retry": config.spec.retry.to_dict(), "slots": rows,
                    "ended": not slots and getattr(trigger, "end", None) is not None,
                    **({"timezone_ignored": ignored} if ignored else {})})
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for item in out:
        if "timezone_ignored" in item:
            click.echo(f"{item['job']}: {item['trigger']}, in UTC (timezone {item['timezone_ignored']!r} is not read: "
                       "every counts from its start_date, else from the UNIX epoch, in UTC)")
        else:
            click.echo(f"{item['job']}: {item['trigger']}, time zone {item['timezone']}")
        overlap = item["overlap"]
        if overlap["mode"] == "serial":
            click.echo(f"    overlap serial: {overlap['max_instances']} at a time, at most {overlap['max_backlog']} "
                       "slot(s) waiting (max_backlog; later ones are recorded skipped)")
        if item["retry"]["max_attempts"] > 1:
            click.echo(f"    retry: {retry_words[item['job']]}")
        if not item["enabled"]:
            click.echo("    disabled (enabled = false): it never fires; the times it would fire at:")
        if not item["slots"]:
            click.echo("    (ended: no fire time left before its end_date)" if item["ended"]
                       else "    (no more fire times)")
        for i, row in enumerate(item["slots"], 1):
            skip = f"   skipped ({row['skip']})" if row["skip"] else ""
            starts = f"   starts {row['start_utc']}" if row.get("start_utc", row["utc"]) != row["utc"] and not skip else ""
            click.echo(f"  {i:>3}  {row['utc']:<26} {row['local'] or '(past year 9999 there)'}{skip}{starts}")


def _start_iso(at: float) -> str:
    """A slot's start (its jitter applied) in UTC, to the millisecond when it has some."""
    from ..model.times import iso_utc, to_datetime

    when = to_datetime(at, timezone.utc)
    if when is None or not when.microsecond:
        return iso_utc(at)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _overlap_json(config: Any) -> dict[str, Any]:
    """A job's overlap policy for explain and jobs list --json."""
    overlap = config.overlap
    return {"mode": overlap.mode, "max_instances": overlap.max_instances, "max_backlog": overlap.max_backlog}


def _after_time(after: str) -> float:
    """``explain --after``: an ISO-8601 time (UTC unless it has an offset) from year 1 to
    9999 UTC, as UNIX seconds; a clear error otherwise."""
    from ..model.times import is_time

    try:
        parsed = datetime.fromisoformat(after.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 date-time: {after!r}", param_hint="--after") from None
    try:
        start = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError):
        start = float("nan")
    if not is_time(start):
        raise click.BadParameter(f"{after!r} is not between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z "
                                 "(the times a date can show)", param_hint="--after")
    return start


def _local_iso(at: float, zone: Any) -> str | None:
    """``at`` as ISO-8601 in ``zone``; None when no date can show it there (past year 9999)."""
    from ..model.times import to_datetime

    shown = to_datetime(at, zone)
    return shown.isoformat() if shown is not None else None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--config", "config_file", metavar="FILE", envvar="DISTSCHED_CONFIG", show_envvar=True, default=None,
              type=click.Path(dir_okay=False),
              help="Say which plugins have a [plugins.<name>] table in this config file (keys only; default "
                   "./distsched.toml if present).")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, config_file: str | None) -> None:
    """List the discovered plugins: distribution, version, module, hooks and what each provides
    (names with their descriptions, an executor's declared settings; observer, server...;
    the keys of its [plugins.<name>] table in the config file, never the values).

    Exits 1 when a plugin failed to load or a name is provided by more than one plugin (the
    name is then unusable), so a deploy script can check an environment with it."""
    from ..plugin.listing import registration_lines, role_lines, settings_lines
    from ..plugin.manager import PluginManager
    from .config import find_config

    config = find_config(config_file)
    try:
        pm = PluginManager(disabled=_disabled(ctx), plugins=_extra_plugins(ctx), allow_replace=_allow_replace(ctx))
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in pm.note_settings(config.plugin_settings if config is not None else {}):
        click.echo(f"warning: {config.path if config is not None else ''}: {warning}", err=True)
    data = pm.describe()
    conflicts = pm.conflicts()
    unhealthy = bool(conflicts) or any(item["error"] and not item["disabled"] for item in data)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        ctx.exit(1 if unhealthy else 0)
    if not data:
        click.echo("no plugins found in entry-point group 'distsched' (is distsched installed? try `pip install -e .`)")
    for item in data:
        dist = f"{item['dist']} {item['version']}" if item["dist"] else "(no distribution)"
        state = " [disabled]" if item["disabled"] else (" [BROKEN]" if item["error"] else "")
        click.echo(f"{item['name']:<12} {dist:<26} {item['module']}{state}")
        marks: dict[tuple[str, str, str], str] = {}
        for conflict in item["conflicts"]:
            others = [p["plugin"] for p in conflict["providers"] if p["plugin"] != item["name"]]
            marks[(conflict["family"], conflict["kind"], conflict["key"])] = \
                f" [CONFLICT with {', '.join(others)}: unusable]"
        for rep in item["replacements"]:
            if rep["by"]["plugin"] == item["name"]:
                what = f" [replaces {', '.join(r['plugin'] for r in rep['replaced'])}]"
            else:
                what = f" [replaced by {rep['by']['plugin']}]"
            marks[(rep["family"], rep["kind"], rep["key"])] = what
        for family, names in sorted(item["provides"].items()):
            click.echo(f"    {family:<10} " + ", ".join(n + marks.pop((family, "name", n), "") for n in names))
            for line in registration_lines(item, family):  # descriptions, an executor's settings
                click.echo(line)
        for (family, _, key), mark in sorted(marks.items()):  # URL schemes
            click.echo(f"    {family:<10} scheme {key}://{mark}")
        for line in settings_lines(item, str(config.path) if config is not None else ""):  # [plugins.<name>] keys
            click.echo(line)
        for line in role_lines(item):  # observer, server...; warnings
            click.echo(line)
        if item["error"]:
            click.echo(f"    error: {item['error']}")
    if conflicts:
        click.echo(f"\nCONFLICTS: {len(conflicts)} name(s) provided by more than one plugin, unusable until resolved:")
        for conflict in conflicts:
            click.echo(f"  - {conflict.message()}")
    ctx.exit(1 if unhealthy else 0)


@cli.command()
@storage_option
@click.option("--jobs", "jobs_file", type=click.Path(dir_okay=False), default=None,
              help="Add or update the jobs of this file in the store at start (and name the stored jobs it lacks).")
@click.option("--node-id", default=None, help="This node's id (default: node-HOST-PID-RANDOM).")
@click.option("--lease-ttl", type=Seconds(0.2, 3600), default=10.0, show_default=True, help="How long a lease lasts without renewal (seconds, or 10s, 1m).")
@click.option("--renew-interval", type=Seconds(0.05, 3600), default=3.0, show_default=True, help="Time between lease renewals (seconds, or 3s, 500ms).")
@click.option("--heartbeat-ttl", type=Seconds(0.2, 86400), default=10.0, show_default=True, help="A worker silent this long is dead (seconds, or 10s, 1m).")
@click.option("--unroutable-wait", type=Seconds(0, 86400), default=None,
              help="How long a task that no live worker may run (none offers its function or has its executor: "
                   "its workers are restarting) waits for one before it fails (e.g. 5m). 0: it goes to any "
                   "worker, which fails it at once. Default: 300s where the store parks such tasks out of the "
                   "ready queue (memory, Redis, PostgreSQL), else 0 (there more than 500 waiting would hold back the rest).")
@click.option("--prune", is_flag=True, help="Remove the stored jobs that are not in --jobs FILE (the file is the source of truth).")
@click.option("--fail-fast", is_flag=True, help="Exit at once when the store is unreachable at start (default: wait and retry with backoff).")
@log_format_option
@metrics_option
@click.pass_context
def scheduler(ctx: click.Context, storage: str | None, jobs_file: str | None, node_id: str | None,
              lease_ttl: float, renew_interval: float, heartbeat_ttl: float, unroutable_wait: float | None, prune: bool,
              fail_fast: bool, log_format: str, metrics: str | None) -> None:
    """Run a scheduler node: campaign for the lease; while leader, fire and dispatch.

    Run several on different machines against one shared store; exactly one leads. Prints
    the task log on stdout while it leads, and a line when it takes or loses the lease.

    With --jobs FILE it first checks the jobs and the file's [worker] table as a worker
    checks it (it does not use those settings itself): a key or value the worker refuses is
    an error (exit status 1, nothing stored); a key that only an executor that does not
    declare its settings may read is a warning. It then syncs the file as `distsched jobs
    sync` does, printing the diff on stderr; a failed write ends it with exit status 1 and
    the report `jobs sync` gives (the changes written, those not written).
    """
    if prune and not jobs_file:
        raise click.UsageError("--prune needs --jobs FILE (the jobs it keeps)")
    jobs = _load_jobs(jobs_file) if jobs_file else None
    options: dict[str, Any] = {"lease_ttl": lease_ttl, "renew_interval": renew_interval, "heartbeat_ttl": heartbeat_ttl,
                               "heartbeat_interval": min(2.0, heartbeat_ttl / 3), "unroutable_wait": unroutable_wait,
                               "serve": _serve(metrics)}
    if node_id:
        options["node_id"] = node_id
    app = _app(ctx, storage, **options)
    app.listeners.append(_TaskLog(log_format))
    if jobs is not None:
        _check_jobs(app, jobs)
        try:  # the [worker] table of the file it syncs, as `jobs sync` checks it (a worker reads it)
            app.check_worker_settings(jobs.worker.settings, where=str(jobs.path))
        except DistschedError as exc:
            raise click.ClickException(str(exc)) from None

    from .sync import sync_again

    again = sync_again(ctx, str(jobs.path), prune=prune, storage=storage) if jobs is not None else None

    async def main(stop: asyncio.Event) -> None:
        from .service import SyncAgainOnDataLoss, freeze_startup_objects, wait_for_store

        if not await wait_for_store(app, stop, fail_fast=fail_fast, role="scheduler", url=redact_url(app.config.storage)):
            return
        if jobs is not None and again is not None:
            from .sync import report_sync

            await report_sync(app, jobs, prune=prune, again=again)
            app.listeners.append(SyncAgainOnDataLoss(lambda: report_sync(app, jobs, prune=prune, again=again),
                                                     str(jobs_file), again.command))
        freeze_startup_objects()
        click.echo(f"scheduler {app.config.node_id} on {redact_url(app.config.storage)}{_serving(metrics)}", err=True)
        await app.run_async(stop=stop, worker=False)

    _run(main)


configurable("scheduler")(scheduler)


@cli.command()
@storage_option
@click.option("--name", default=None, help="Worker name prefix (default: the host name).")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), default=None, help="Tasks run at once (default 8).")
@click.option("--capacity", type=click.IntRange(1, MAX_CAPACITY), default=None,
              help="Tasks this worker may hold, queued + running: at least --concurrency (default max(4 x concurrency, 64)).")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Module with @distsched.task functions, or a DistributeSchedule with @app.task ones (repeatable).")
@click.option("--jobs", "jobs_file", type=click.Path(dir_okay=False), default=None,
              help="Take the [worker] table (imports, concurrency, settings) from this jobs file.")
@click.option("--heartbeat-interval", type=Seconds(0.05, 3600), default=2.0, show_default=True, help="Time between heartbeats (seconds, or 2s, 500ms).")
@click.option("--drain-timeout", type=Seconds(0, 86400), default=None,
              help="Seconds a stopping worker lets running tasks finish before returning them (default 30; a task held for a time after it is returned at once).")
@click.option("--fail-fast", is_flag=True, help="Exit at once when the store is unreachable at start (default: wait and retry with backoff).")
@metrics_option
@click.pass_context
def worker(ctx: click.Context, storage: str | None, name: str | None, concurrency: int | None, capacity: int | None,
           imports: tuple[str, ...], jobs_file: str | None, heartbeat_interval: float, drain_timeout: float | None,
           fail_fast: bool, metrics: str | None) -> None:
    """Run a worker: execute the tasks the leader pushes into this worker's own queue.

    SIGTERM drains: it stops pulling, returns the tasks it holds for a time after the
    drain, lets running ones finish (or returns them after --drain-timeout), deregisters.
    """
    jobs = _load_jobs(jobs_file) if jobs_file else None
    app = _app(ctx, storage, worker=_worker_config(jobs, name=name, concurrency=concurrency, capacity=capacity,
                                                   drain_timeout=drain_timeout),
               heartbeat_interval=heartbeat_interval, heartbeat_ttl=max(10.0, heartbeat_interval * 3),
               serve=_serve(metrics))
    _prepare(app, jobs, imports)

    async def main(stop: asyncio.Event) -> None:
        from .service import freeze_startup_objects, wait_for_store

        if not await wait_for_store(app, stop, fail_fast=fail_fast, role="worker", url=redact_url(app.config.storage)):
            return
        freeze_startup_objects()
        from .status import names

        # as many names as fit a line, then how many more (`status --json` lists them all)
        click.echo(f"worker on {redact_url(app.config.storage)}; functions: "
                   f"{names(app.function_names(), WORKER_LINE_NAMES) or 'none'}{_serving(metrics)}", err=True)
        await app.run_async(stop=stop, scheduler=False)

    _run(main)


configurable("worker")(worker)


#: Characters of function names the worker's start line shows, then ``(+N more)``.
WORKER_LINE_NAMES = 200


# -- jobs ------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Manage the jobs of a shared store."""


def _store_call(ctx: click.Context, storage: str | None, call: Callable[[Any], Awaitable[T]], *,
                reader: bool = False) -> T:
    """``await call(app)`` on a new app over ``storage``, stopped afterwards; a DistschedError
    is the command's error (one line, exit status 1). ``reader``: the command only reads, and
    the store is opened as a reader (``EngineConfig.reader``: no migrations)."""
    app = _app(ctx, storage, reader=reader)

    async def main(stop: asyncio.Event) -> T:
        try:
            return await call(app)
        except DistschedError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            await app.stop()

    return _run(main)


def _jobs_call(ctx: click.Context, storage: str | None, call: Callable[[Any], Awaitable[T]], *,
               reader: bool = False) -> T:
    app = _app(ctx, storage, reader=reader)

    async def main(stop: asyncio.Event) -> T:
        try:
            from .format import is_memory, note_memory

            if is_memory(app.config.storage):
                note_memory(app.config.storage, not await app.jobs())
            return await call(app)
        finally:
            await app.stop()

    return _run(main)


@jobs.command("list")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def jobs_list(ctx: click.Context, storage: str | None, as_json: bool) -> None:
    """List the jobs: schedule in words, executor:target, next fire time (UTC) - or, for a
    paused or disabled job, that state in its place, and `ended` for a job past its end_date
    (--json: next_fire_at as stored, with the paused, enabled and ended fields). A serial job
    has a line more: how many of its slots wait their turn, of its max_backlog (full: new
    slots are recorded skipped)."""

    from ..model.words import schedule_words

    async def call(app: Any) -> list[dict[str, Any]]:
        from ..history import MAX_PAGE

        store = await app.storage()
        out = []
        after: str | None = None
        while True:  # by pages of jobs with their state: one store call a page, not one a job
            page = await store.jobs.page(after, MAX_PAGE)
            # the page's serial backlogs (held slots): one store call a page too
            backlogs = await app.job_backlogs([job for job, _ in page.jobs])
            for job, state in page.jobs:
                out.append({"name": job.name, "trigger": job.trigger.to_dict() if job.trigger else None,
                            "schedule": schedule_words(job.trigger),
                            "executor": job.spec.executor, "target": mask_secrets(job.spec.target),
                            "enabled": job.enabled, "overlap": _overlap_json(job),
                            # its slots waiting their turn, of its max_backlog (null: not serial)
                            "backlog": backlogs[job.name],
                            "paused": state.paused, "next_fire_at": state.next_fire_at, "version": job.version,
                            # its end_date passed: no slot left (next_fire_at is none, not a stale time)
                            "ended": job.ended(state.next_fire_at)})
            if page.next_after is None:
                return sorted(out, key=lambda j: j["name"])
            after = page.next_after

    data = _jobs_call(ctx, storage, call, reader=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from .format import jobs_table

    lines = jobs_table(data)[:1]
    for row in data:
        lines += jobs_table([row])[1:]
        if row["backlog"] is not None:  # a serial job: how many of its slots wait their turn, of its max_backlog
            lines.append(f"  {row['backlog']['words']}")
    click.echo("\n".join(lines) if data else "no jobs")


@jobs.command("add")
@click.argument("jobs_file", type=click.Path(dir_okay=False))
@click.argument("names", nargs=-1)
@storage_option
@click.pass_context
def jobs_add(ctx: click.Context, jobs_file: str, names: tuple[str, ...], storage: str | None) -> None:
    """Add (or update) the jobs of JOBS_FILE, or only NAMES, in the store.

    A one-shot (`at`) whose time is more than its misfire grace in the past is refused when
    NAMES names it; adding the whole file stores it as a one-shot that already fired (never
    runs) with a warning, as `jobs sync` does, so it does not hold up the other jobs."""
    loaded = _load_jobs(jobs_file)
    try:
        selected = [loaded.job(n) for n in names] if names else list(loaded.jobs)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None

    async def call(app: Any) -> None:
        _check_jobs(app, loaded, selected)
        # named: a past one-shot is an error; the whole file: stored as fired (jobs sync's rule)
        for stored in await app.put_jobs(selected, replace=True, missed=not names):
            click.echo(f"{stored.name}: version {stored.version}")

    _jobs_call(ctx, storage, call)


def _simple(action: str, help_text: str) -> None:
    @jobs.command(action, help=help_text)
    @click.argument("name")
    @storage_option
    @click.pass_context
    def command(ctx: click.Context, name: str, storage: str | None) -> None:
        async def call(app: Any) -> Any:
            if action == "remove":
                if not await app.remove_job(name):
                    raise click.ClickException(f"job {name!r} does not exist")
                return f"removed {name}"
            if action == "pause":
                if not await app.pause_job(name):  # a no-op, exit status 0 (as resume's)
                    return f"{name} is already paused: nothing changed"
                return f"paused {name}: its slots until it is resumed are neither run nor recorded"
            if action == "resume":
                # not paused: nothing changes (its next slot and missed slots stay), exit status 0
                resumed = await app.resume_job(name)
                said = f"resumed {name}" if resumed else f"{name} is not paused: nothing changed"
                if not (await app.get_job(name)).enabled:  # resume lifts a pause, not enabled = false
                    return (f"{said}, but it is disabled (enabled = false): it never fires until its "
                            "jobs file sets enabled = true and is synced (distsched jobs sync FILE)")
                return said
            return f"triggered {name}: task {await app.trigger_job(name)}"

        click.echo(_jobs_call(ctx, storage, call))


_simple("remove", "Remove job NAME (its past tasks stay).")
_simple("pause", "Pause job NAME: no slot fires until it is resumed; its slots until then are neither run nor "
                 "recorded. A paused job: nothing changes.")
_simple("resume", "Resume paused job NAME from its next slot after now: the slots while it was paused are neither run "
                  "nor recorded. A job that is not paused: nothing changes (its next slot and the slots it missed while "
                  "no leader ran stay, for its misfire policy). A disabled job, enabled = false, stays disabled and "
                  "never fires.")
_simple("trigger", "Run job NAME once now, outside its schedule.")

from .sync import sync as _sync  # noqa: E402  (jobs sync: its own module)

jobs.add_command(_sync)


def main() -> None:
    """The ``distsched`` console script and ``python -m distsched``: the command owns its
    process (see :data:`distsched.cli.service.OWN_PROCESS`)."""
    from . import service

    service.OWN_PROCESS = True
    cli(prog_name="distsched")


from . import jobs_show as _jobs_show  # noqa: E402,F401  (distsched jobs show)
from . import quarantine as _quarantine  # noqa: E402,F401  (distsched quarantine ...)
from . import status as _status  # noqa: E402,F401  (distsched status)
from . import tasks as _tasks  # noqa: E402,F401  (distsched tasks ...)

__all__ = ["cli", "main", "task_line"]
