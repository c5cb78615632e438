"""Options of ``distsched scheduler`` and ``distsched worker`` from a config file and the
environment, with one order of precedence: command line > environment > config file >
the jobs file's ``[scheduler]`` / ``[worker]`` table > built-in default.

* Config file: ``--config FILE`` (or ``$DISTSCHED_CONFIG``), else ``./distsched.toml`` when it
  exists. TOML: a top-level ``storage`` shared by both roles, a ``[scheduler]`` and a
  ``[worker]`` table whose keys are the option names with ``_`` (``lease_ttl = "10s"``,
  ``imports = ["myapp"]``). Other keys of ``[worker]`` are executor settings (``http_allow``),
  as in the jobs file: a key that is neither an option nor a setting a loaded executor
  declares is refused, with a did-you-mean. A ``[web]`` table is left to the ``distsched web``
  command. ``[plugins.<name>]`` tables are each plugin's own settings (JSON values), given to
  both roles as ``EngineConfig.plugin_settings`` (the ``distsched_configure`` hook) and
  listed, keys only, by ``distsched plugins``.
* Environment: ``DISTSCHED_SCHEDULER_<OPTION>`` / ``DISTSCHED_WORKER_<OPTION>``
  (``DISTSCHED_SCHEDULER_LEASE_TTL=5``); ``$DISTSCHED_STORAGE`` for both.

Every value is checked as the option checks it; a bad one is an error naming the file, the
table and the key.
"""

from __future__ import annotations

import difflib
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ..config import STORAGE_ENV

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "DISTSCHED_CONFIG"
DEFAULT_CONFIG = "distsched.toml"
#: Top-level keys of the config file; ``web`` belongs to the ``distsched web`` command.
TOP_LEVEL = ("storage", "scheduler", "worker", "web", "plugins")
#: Options that are not configuration (they name the config file itself).
NOT_CONFIGURABLE = ("config", "show_config")
#: Config keys that differ from the option's long name (``--import`` is repeatable).
ALIASES = {"import": "imports"}


def config_key(param: click.Option) -> str:
    """The config file key (and environment suffix) of an option: its long name with ``_``."""
    longest = max((o for o in param.opts if o.startswith("--")), key=len, default=param.name or "")
    key = longest.lstrip("-").replace("-", "_")
    return ALIASES.get(key, key)


class ConfigFile:
    """A parsed ``distsched.toml``."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def section(self, name: str) -> dict[str, Any]:
        table = dict(self.data.get(name) or {})
        if "storage" in self.data and "storage" not in table:
            table["storage"] = self.data["storage"]
        return table

    @property
    def plugin_settings(self) -> dict[str, dict[str, Any]]:
        """The ``[plugins.<name>]`` tables (checked by :func:`load_config`)."""
        return {name: dict(table) for name, table in (self.data.get("plugins") or {}).items()}


def load_config(path: str | Path) -> ConfigFile:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.ClickException(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(f"{path}: invalid TOML: {exc}") from None
    problems = []
    for key, value in data.items():
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(key, TOP_LEVEL, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown top-level key {key!r}{hint} "
                            "(expected storage, [scheduler], [worker], [web], [plugins.<name>])")
        elif key != "storage" and not isinstance(value, dict):
            problems.append(f"{key}: must be a table ([{key}])")
        elif key == "plugins":
            problems += _plugin_table_problems(value)
    if problems:
        raise click.ClickException(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return ConfigFile(path, data)


def _plugin_table_problems(tables: dict[str, Any]) -> list[str]:
    """What is wrong with the ``[plugins.<name>]`` tables: one that is not a table, a value
    that is not JSON (a TOML date) - each naming the table and the key, never the value."""
    from ..config import plugin_table_problem

    problems = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.append(f"[plugins.{name}]: must be a table ([plugins.{name}]), not {type(table).__name__}")
            continue
        for key, value in table.items():
            why = plugin_table_problem(value)
            if why:
                problems.append(f"[plugins.{name}] {key}: {why}")
    return problems


def find_config(explicit: str | None) -> ConfigFile | None:
    """The config file of ``--config FILE`` (``$DISTSCHED_CONFIG``), else ``./distsched.toml``
    when it exists, else None."""
    return _find_config(explicit)


def _find_config(explicit: str | None) -> ConfigFile | None:
    if explicit:
        return load_config(explicit)
    if Path(DEFAULT_CONFIG).is_file():
        return load_config(DEFAULT_CONFIG)
    return None


class Seconds(click.FloatRange):
    """A duration option: ``"10s"``, ``"1m30s"``, ``"250ms"`` or a number of seconds, within
    the range given - on the command line, in the environment and in a config file alike."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            from ..model.errors import ValidationError
            from ..model.trigger import parse_seconds

            try:
                value = parse_seconds(value, param.name if param is not None and param.name else "value")
            except ValidationError as exc:
                self.fail(exc.reason, param, ctx)
        return super().convert(value, param, ctx)


def _convert(ctx: click.Context, param: click.Parameter, value: Any, where: str) -> Any:
    """A config value as the option would have parsed it; durations (``"10s"``) are accepted
    for options in seconds (within the option's own range: ``"0s"`` is 0)."""
    from ..model.errors import ValidationError
    from ..model.trigger import parse_seconds

    try:
        if isinstance(param.type, click.types.FloatParamType) and isinstance(value, str):
            value = parse_seconds(value, param.name or "value")
        if param.multiple:
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list):
                raise click.BadParameter(f"must be a list, not {value!r}")
        if isinstance(param, click.Option) and param.is_flag and not isinstance(value, bool):
            raise click.BadParameter(f"must be true or false, not {value!r}")
        return param.type_cast_value(ctx, value)
    except ValidationError as exc:
        raise click.ClickException(f"{where}: {exc.reason}") from None
    except click.BadParameter as exc:
        raise click.ClickException(f"{where}: {exc.message}") from None


def configurable(section: str, *, jobs_param: str = "jobs_file") -> Callable[[click.Command], click.Command]:
    """Give every option of a command an environment variable and let a config file (and the
    jobs file's ``[section]`` table) supply the options not given on the command line or in
    the environment. Apply it to the finished command (outermost)."""
    prefix = f"DISTSCHED_{section.upper()}_"

    def decorate(command: click.Command) -> click.Command:
        options = [p for p in command.params if isinstance(p, click.Option) and p.name not in NOT_CONFIGURABLE
                   and not p.hidden and "--help" not in p.opts]
        by_key = {config_key(p): p for p in options}
        for key, param in by_key.items():
            param.envvar = [prefix + key.upper(), STORAGE_ENV] if key == "storage" else prefix + key.upper()
            param.show_envvar = True
        command.params.append(click.Option(
            ["--config", "config"], metavar="FILE", envvar=CONFIG_ENV, show_envvar=True, default=None,
            type=click.Path(dir_okay=False),
            help=f"Read options from this TOML file ([{section}] table; default ./{DEFAULT_CONFIG} if present). "
                 "Precedence: command line > environment > config file > the jobs file's table."))
        command.params.append(click.Option(
            ["--show-config", "show_config"], is_flag=True,
            help="Print every option's value and where it came from (command line, environment, config file, "
                 "jobs file, default), then exit."))
        callback = command.callback
        assert callback is not None

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            config = _find_config(kwargs.pop("config", None))
            show = kwargs.pop("show_config", False)
            sources: dict[str, str] = {}
            for key, param in by_key.items():
                source = ctx.get_parameter_source(param.name or "")
                if source is ParameterSource.COMMANDLINE:
                    sources[key] = "command line"
                elif source is ParameterSource.ENVIRONMENT:
                    sources[key] = "environment"
            given = set(sources)
            table = config.section(section) if config is not None else {}
            if config is not None:
                ctx.meta["distsched.plugin_settings"] = config.plugin_settings
                _check_keys(table, by_key, section, str(config.path))
                ctx.meta["distsched.config_settings"] = {k: v for k, v in table.items() if k not in by_key}
                ctx.meta["distsched.config_path"] = str(config.path)
                _apply(ctx, kwargs, table, by_key, given, f"{config.path}: [{section}]", sources)
                if kwargs.get(jobs_param) and sources.get("jobs", "").startswith(str(config.path)):
                    if not Path(kwargs[jobs_param]).is_absolute():  # relative to the config file's folder
                        kwargs[jobs_param] = str(config.path.parent / kwargs[jobs_param])
                given |= {k for k in table if k in by_key}
            plugin_sources = {(name, key): str(config.path) for name, table in config.plugin_settings.items()
                              for key in table} if config is not None else {}
            jobs_path: str | None = kwargs.get(jobs_param)
            if jobs_path:
                tables = _jobs_tables(jobs_path)
                jobs_table = tables.get(section) or {}
                _check_keys(jobs_table, by_key, section, jobs_path)
                _apply(ctx, kwargs, jobs_table, by_key, given, f"{jobs_path}: [{section}]", sources)
                # the jobs file's [plugins.<name>] tables, under the config file's key by key
                # (checked with the rest of the file when the command loads it)
                merged = dict(ctx.meta.get("distsched.plugin_settings") or {})
                for name, table in (tables.get("plugins") or {}).items():
                    if isinstance(table, dict):
                        merged[name] = {**table, **merged.get(name, {})}
                        plugin_sources.update({(name, key): jobs_path for key in table
                                               if (name, key) not in plugin_sources})
                ctx.meta["distsched.plugin_settings"] = merged
            if show:
                for key, param in by_key.items():
                    click.echo(f"{key:<20} {_show(kwargs.get(param.name or ''))!s:<40} ({sources.get(key, 'default')})")
                for key, value in sorted((ctx.meta.get("distsched.config_settings") or {}).items()):
                    click.echo(f"{key:<20} {value!r:<40} (executor setting, config file)")
                from ..masking import mask_settings

                for name, plugin_table in sorted((ctx.meta.get("distsched.plugin_settings") or {}).items()):
                    # `token = ***`, `webhook_urls = ["https://hooks.slack.com/***"]`
                    for key, value in sorted(mask_settings(plugin_table).items()):
                        click.echo(f"[plugins.{name}] {key} = {json.dumps(value)} "
                                   f"(plugin setting, {plugin_sources.get((name, key), 'config file')})")
                return None
            return callback(*args, **kwargs)

        command.callback = wrapper
        return command

    return decorate


def _check_keys(table: dict[str, Any], by_key: dict[str, click.Option], section: str, where: str) -> None:
    if section == "worker":  # other [worker] keys are executor settings: those the executors read
        settings = [key for key in table if key not in by_key]
        if settings:
            _check_settings(settings, list(by_key), where)
        return
    names = list(by_key)
    for key in table:
        if key not in by_key:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise click.ClickException(f"{where}: [{section}] {key}: unknown option{hint} "
                                       f"(options: {', '.join(sorted(names))})")


def _check_settings(settings: list[str], options: list[str], where: str) -> None:
    """Refuse a ``[worker]`` key that is no option and no setting a loaded executor declares
    (a typo: ``concurency``, ``http_alow``), with a did-you-mean. A key that an executor not
    declaring its settings may read is left to the command's check of the settings the worker
    will read (their values too), which warns about it once, naming this file."""
    from ..model.errors import DistschedError
    from ..plugin.manager import PluginManager
    from . import _allow_replace, _disabled, _extra_plugins

    ctx = click.get_current_context()
    try:
        manager = PluginManager(disabled=_disabled(ctx), plugins=_extra_plugins(ctx), allow_replace=_allow_replace(ctx))
        manager.executors.unknown_settings(settings, where=where, options=options)
    except DistschedError as exc:
        raise click.ClickException(str(exc)) from None


def _apply(ctx: click.Context, kwargs: dict[str, Any], table: dict[str, Any], by_key: dict[str, click.Option],
           given: set[str], where: str, sources: dict[str, str]) -> None:
    for key, value in table.items():
        param = by_key.get(key)
        if param is None or key in given or param.name is None:
            continue
        kwargs[param.name] = _convert(ctx, param, value, f"{where} {key}")
        sources[key] = where.replace(": [", " [")
        given.add(key)


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, str) and "://" in value:
        from ..facade import display_url

        return display_url(value)
    return "-" if value is None else str(value)


def _jobs_tables(path: str) -> dict[str, Any]:
    """The raw ``[scheduler]`` / ``[worker]`` / ``[plugins.<name>]`` tables of a jobs file
    (the file itself is validated when the command loads it)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # the command's own loading reports it, with every other problem
    return {k: v for k, v in data.items() if k in ("scheduler", "worker", "plugins") and isinstance(v, dict)}


def config_settings() -> dict[str, Any]:
    """The executor settings of the config file's ``[worker]`` table (its keys that are not
    options)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    return dict(ctx.meta.get("distsched.config_settings") or {})


def plugin_settings() -> dict[str, dict[str, Any]]:
    """The config file's ``[plugins.<name>]`` tables, for ``EngineConfig.plugin_settings``
    ({} without a config file)."""
    ctx = click.get_current_context(silent=True)
    return dict(ctx.meta.get("distsched.plugin_settings") or {}) if ctx is not None else {}


def config_settings_source() -> str:
    """The config file :func:`config_settings` come from (as given; "" without one)."""
    ctx = click.get_current_context(silent=True)
    return str(ctx.meta.get("distsched.config_path") or "") if ctx is not None else ""


__all__ = ["CONFIG_ENV", "ConfigFile", "config_key", "config_settings", "config_settings_source", "configurable", "find_config",
           "load_config", "plugin_settings"]
