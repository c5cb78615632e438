"""The TOML jobs file: ``[[jobs]]`` tables, a ``[worker]`` and a ``[scheduler]`` table, and
``[plugins.<name>]`` tables (plugins' own settings, as in the config file).

Loading validates everything before anything is stored, and reports every problem at once,
one line each, naming the job, the field and the reason: a bad file changes nothing.

This module builds jobs with the model alone (no facade, engine or plugin manager). What
only the plugins know - that an executor exists and accepts the job's target - is checked
by the ``check_spec`` callable a caller passes in, typically
``DistributeSchedule.check_spec``: ``load_jobs_file(path, check_spec=app.check_spec)``.
"""

from __future__ import annotations

import difflib
import importlib
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from .config import check_plugin_settings
from .model import JOB_FIELDS, TaskConfig, TaskSpec, ValidationError, build_job
from .model.errors import DistschedError
from .model.result import error_text
from .model.worker import MAX_CAPACITY, MAX_CONCURRENCY, check_capacity
from .tasks import marked_functions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WORKER_KEYS = ("imports", "concurrency", "capacity", "name", "drain_timeout")
#: ``[worker]`` keys that are options of ``distsched worker`` (read by the command, see
#: distsched.cli.config), not executor settings.
WORKER_OPTION_KEYS = ("storage", "heartbeat_interval", "fail_fast", "metrics", "jobs")
#: ``[scheduler]``: options of ``distsched scheduler`` (checked by the command).
SCHEDULER_TABLE = "scheduler"
#: ``[plugins.<name>]``: a plugin's own settings (``EngineConfig.plugin_settings``).
PLUGINS_TABLE = "plugins"
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_JOBS = 100_000


class JobsFileError(DistschedError):
    """A jobs file is invalid; ``problems`` lists every problem found, one per line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")


@attrs.frozen(kw_only=True)
class WorkerSection:
    imports: tuple[str, ...] = ()
    concurrency: int | None = None
    capacity: int | None = None
    name: str | None = None
    drain_timeout: float | None = None
    #: Every other key of ``[worker]``: executor settings (``http_allow``, ...).
    settings: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class JobsFile:
    path: Path
    jobs: tuple[TaskConfig, ...]
    worker: WorkerSection
    #: The ``[plugins.<name>]`` tables: plugin name -> its settings (JSON values), for
    #: ``EngineConfig.plugin_settings``; a config file's table of the same plugin wins key by key.
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def job(self, name: str) -> TaskConfig:
        for job in self.jobs:
            if job.name == name:
                return job
        raise ValidationError("job", f"no job named {name!r} in {self.path} (jobs: {', '.join(j.name for j in self.jobs)})")


def _suggest(key: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: Checks one job's spec where only the plugins can (``check_spec(spec, where)``, raising a
#: DistschedError): :meth:`distsched.DistributeSchedule.check_spec`.
SpecCheck = Callable[[TaskSpec, str], None]


def load_jobs_file(path: str | Path, *, check_spec: SpecCheck | None = None) -> JobsFile:
    """Parse and validate a jobs file. Raises JobsFileError listing every problem, including
    what ``check_spec`` refuses (an unknown executor, an ``http`` target that is not a URL)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            # a device (/dev/zero) or a FIFO would be read until memory runs out, or block
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, FIFO or socket)"
            raise JobsFileError(str(path), [f"{kind}: a jobs file must be a regular file"])
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise JobsFileError(str(path), [f"file is {size} bytes; the limit is {MAX_FILE_BYTES}"])
        with path.open("rb") as file:  # bounded even if the file grows after the stat
            raw = file.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise JobsFileError(str(path), [f"file is over {MAX_FILE_BYTES} bytes, the limit"])
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise JobsFileError(str(path), ["file not found"]) from None
    except PermissionError:
        raise JobsFileError(str(path), ["permission denied"]) from None
    except UnicodeDecodeError as exc:
        raise JobsFileError(str(path), [f"not UTF-8 text: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise JobsFileError(str(path), [f"invalid TOML: {exc}"]) from None
    except RecursionError:
        raise JobsFileError(str(path), ["invalid TOML: nested too deeply"]) from None
    return parse_jobs(data, path, check_spec=check_spec)


def parse_jobs(data: dict[str, Any], path: Path, *, check_spec: SpecCheck | None = None) -> JobsFile:
    problems: list[str] = []
    for key in data:
        if key not in ("jobs", "worker", SCHEDULER_TABLE, PLUGINS_TABLE):
            problems.append(f"unknown top-level key {key!r}{_suggest(key, ('jobs', 'worker', 'scheduler', 'plugins'))} "
                            "(expected [[jobs]], [worker], [scheduler] and [plugins.<name>])")
        elif key == SCHEDULER_TABLE and not isinstance(data[key], dict):
            problems.append("scheduler: must be a table ([scheduler])")
    plugins: dict[str, dict[str, Any]] = {}
    raw_plugins = data.get(PLUGINS_TABLE, {})
    if not isinstance(raw_plugins, dict):
        problems.append("plugins: must be tables of plugin settings ([plugins.<name>])")
    else:
        for name, table in raw_plugins.items():
            try:  # the value itself is never in the reason: it may be a secret
                plugins.update(check_plugin_settings({name: table}))
            except ValidationError as exc:
                problems.append(f"{exc.field}: {exc.reason}")
    raw_jobs = data.get("jobs", [])
    if not isinstance(raw_jobs, list):
        problems.append("jobs: must be an array of tables ([[jobs]])")
        raw_jobs = []
    if len(raw_jobs) > MAX_JOBS:
        problems.append(f"jobs: {len(raw_jobs)} jobs; the limit per file is {MAX_JOBS}")
        raw_jobs = []
    jobs: list[TaskConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_jobs):
        if not isinstance(raw, dict):
            problems.append(f"jobs[{index}]: must be a table")
            continue
        name = raw.get("name")
        where = f"job {name!r}" if isinstance(name, str) and name else f"jobs[{index}]"
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: name: missing (every job needs a unique name)")
            continue
        if name in seen:
            problems.append(f"{where}: name: duplicate job name")
            continue
        seen.add(name)
        fields = {k: v for k, v in raw.items() if k != "name"}
        unknown = [k for k in fields if k not in JOB_FIELDS]
        for key in unknown:
            problems.append(f"{where}: {key}: unknown field{_suggest(key, JOB_FIELDS)}")
        if unknown:
            continue
        try:
            config = build_job(name, **fields)
        except ValidationError as exc:
            problems.append(f"{where}: {exc.field}: {exc.reason}")
            continue
        except TypeError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if check_spec is not None:
            try:
                check_spec(config.spec, where)
            except DistschedError as exc:
                problems.append(str(exc) if str(exc).startswith(f"{where}: ") else f"{where}: {exc}")
                continue
        jobs.append(config)
    worker = WorkerSection()
    raw_worker = data.get("worker", {})
    if not isinstance(raw_worker, dict):
        problems.append("worker: must be a table ([worker])")
    else:
        try:
            worker = _worker(raw_worker)
        except ValidationError as exc:
            problems.append(f"[worker]: {exc.field}: {exc.reason}")
    if problems:
        raise JobsFileError(str(path), problems)
    return JobsFile(path=path, jobs=tuple(jobs), worker=worker, plugins=plugins)


def _worker(raw: dict[str, Any]) -> WorkerSection:
    imports = raw.get("imports", [])
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise ValidationError("imports", f"must be a list of module names, not {imports!r}")
    for key, limit in (("concurrency", MAX_CONCURRENCY), ("capacity", MAX_CAPACITY)):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit):
            raise ValidationError(key, f"must be an integer between 1 and {limit}, not {value!r}")
    if raw.get("capacity") is not None and raw.get("concurrency") is not None:
        check_capacity(raw["concurrency"], raw["capacity"])
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ValidationError("name", f"must be a string, not {name!r}")
    drain = raw.get("drain_timeout")
    if drain is not None:
        from .model.trigger import parse_seconds

        drain = parse_seconds(drain, "drain_timeout")  # 0 to 1 day: WorkerConfig's check
    return WorkerSection(
        imports=tuple(imports), concurrency=raw.get("concurrency"), capacity=raw.get("capacity"), name=name,
        drain_timeout=drain, settings={k: v for k, v in raw.items() if k not in WORKER_KEYS + WORKER_OPTION_KEYS},
    )


def import_task_modules(
    modules: tuple[str, ...] | list[str], *, base: Path | None = None, register: Callable[[str, Any], None],
    collect: Callable[[ModuleType], dict[str, Callable[..., Any]]] = marked_functions,
    hint: Callable[[ModuleType], str] | None = None,
) -> list[str]:
    """Import the ``[worker] imports`` modules and register their functions: ``collect``
    finds them (default: the ``@distsched.task`` ones; the CLI also takes ``@app.task``
    functions of a DistributeSchedule in the module), ``hint`` says what to do when a module
    has none. Modules resolve relative to ``base`` (the jobs file's folder), then the current
    directory. Returns the registered names."""
    for folder in (Path.cwd(), base):
        if folder is not None and str(folder.resolve()) not in sys.path:
            sys.path.insert(0, str(folder.resolve()))
    names: list[str] = []
    for module_name in modules:
        where = f" (looked in {base} and the current directory)" if base else ""
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ValidationError("imports", f"cannot import {module_name!r}{where}: {error_text(exc)}") from None
        except SystemExit as exc:  # sys.exit() at import: the worker would exit with its status, saying nothing
            raise ValidationError("imports", f"cannot import {module_name!r}{where}: it called sys.exit({exc.code!r}) "
                                             "when imported (a task module must not exit on import: put the code "
                                             "that exits under `if __name__ == \"__main__\":`)") from None
        found = collect(module)
        if not found:
            what = hint(module) if hint is not None else "mark its functions with @distsched.task"
            raise ValidationError("imports", f"module {module_name!r} gives the worker no function: {what}")
        for task_name, func in found.items():
            register(task_name, func)
            names.append(task_name)
    return names
