"""Builds a plugin manager: entry-point discovery, registries with attribution, events.

There is no global manager: every engine and CLI command builds its own, so tests need no
reload tricks. Discovery scans the ``distsched`` entry-point group once per process.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable
from functools import lru_cache
from types import ModuleType
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from .. import hookspecs
from ..config import ALLOW_REPLACE_ENV, DISABLE_ENV, PLUGINS_ENV
from ..model.errors import ValidationError
from ..model.events import Event
from ..ports import Balancer, Election, Executor, StorageBackend
from ..registry import (
    BalancerRegistry,
    Conflict,
    ElectionRegistry,
    ExecutorRegistry,
    FunctionRegistry,
    Origin,
    Registration,
    Registry,
    Replacement,
    SchemeRegistry,
    StorageRegistry,
)
from ..urls import redact_text
from .errors import PluginError, PluginLoadError
from .listing import ROLE_HOOKS

if sys.version_info >= (3, 12):
    from importlib.metadata import EntryPoint, entry_points
else:  # the backport is faster and de-duplicates distributions on older Pythons
    from importlib_metadata import EntryPoint, entry_points

T = TypeVar("T")
log = logging.getLogger("distsched.plugins")
GROUP = "distsched"

#: Registration hooks, in the order they are called, with the family each fills.
_REGISTRATION_HOOKS = {
    "storage": "distsched_register_storage",
    "election": "distsched_register_election",
    "executor": "distsched_register_executors",
    "balancer": "distsched_register_balancers",
    "function": "distsched_register_functions",
}
_FAMILY_OF_HOOK = {hook: family for family, hook in _REGISTRATION_HOOKS.items()}
#: What a plugin is, by the other hooks it implements (the kinds docs/plugins.md names).
_ROLES = {hook: role for role, hook in ROLE_HOOKS.items()}


@attrs.frozen
class Family(Generic[T]):
    """A family of plugin-provided things: the registry it lives in, the port its factories
    must return, and whether it is chosen by URL scheme (storage, election) or by name."""

    name: str
    #: The port (a runtime-checkable Protocol) a factory's result must implement.
    protocol: type
    by_url: bool = False


STORAGE: Family[StorageBackend] = Family("storage", StorageBackend, by_url=True)
ELECTION: Family[Election] = Family("election", Election, by_url=True)
EXECUTOR: Family[Executor] = Family("executor", Executor)
BALANCER: Family[Balancer] = Family("balancer", Balancer)


@attrs.define
class PluginInfo:
    """What ``distsched plugins`` shows about one plugin."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    provides: dict[str, list[str]] = attrs.field(factory=dict)
    #: What each registration hook registered, by family: ``name``, ``description`` and, for
    #: an executor, the ``settings`` it declared (None: not declared), for storage and
    #: election the URL ``schemes``.
    registered: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)
    #: What it is besides its registrations, by the other hooks it implements: ``observer``
    #: (distsched_event), ``server`` (distsched_serve), ``commands``
    #: (distsched_cli_commands), ``web routes`` (distsched_web_routes).
    roles: list[str] = attrs.field(factory=list)
    #: Problems that do not break it, such as a hook function not marked ``@hookimpl``.
    warnings: list[str] = attrs.field(factory=list)
    error: str | None = None
    disabled: bool = False
    #: Names this plugin provides that another plugin provides too (unusable), as
    #: :meth:`Conflict.to_dict`.
    conflicts: list[dict[str, Any]] = attrs.field(factory=list)
    #: Names taken over by one plugin from another (declared and allowed), as
    #: :meth:`Replacement.to_dict`.
    replacements: list[dict[str, Any]] = attrs.field(factory=list)
    #: The keys of its ``[plugins.<name>]`` table (``EngineConfig.plugin_settings``), never
    #: the values; None when it has none (see :meth:`PluginManager.note_settings`).
    settings: list[str] | None = None

    @property
    def origin(self) -> Origin:
        return Origin(self.name, self.dist, self.version)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@lru_cache(maxsize=1)
def _entry_points() -> tuple[EntryPoint, ...]:
    return tuple(entry_points(group=GROUP))


def _names_from_env(var: str) -> set[str]:
    return {n.strip() for n in os.environ.get(var, "").split(",") if n.strip()}


def disabled_from_env() -> set[str]:
    return _names_from_env(DISABLE_ENV)


def allow_replace_from_env() -> set[str]:
    return _names_from_env(ALLOW_REPLACE_ENV)


def modules_from_env() -> list[str]:
    """Extra plugin modules named in ``DISTSCHED_PLUGINS`` (comma-separated import paths)."""
    return [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]


def load_plugin_modules(names: Iterable[str]) -> list[tuple[str, Any]]:
    """Import plugin modules named on the command line or in ``DISTSCHED_PLUGINS`` (like
    pytest's ``-p NAME``): configuration given by the operator, never stored data. A module
    resolves relative to the current directory too, as ``python -m distsched`` and the
    ``[worker] imports`` of a jobs file do (the ``distsched`` console script alone did not
    look there)."""
    import importlib

    names = list(names)
    here = os.path.abspath(os.getcwd())
    if names and here not in sys.path:
        sys.path.insert(0, here)
    out = []
    for name in names:
        try:
            out.append((name, importlib.import_module(name)))
        except Exception as exc:
            raise PluginLoadError(f"plugin module {name!r} failed to import: {type(exc).__name__}: {exc}") from None
    return out


class PluginManager:
    """The hook machinery plus the registries the plugins filled in.

    ``entry_points=False`` skips discovery (bare tests); ``plugins`` are extra modules or
    objects to register (``(name, obj)`` pairs or plain objects); ``disabled`` names plugins
    to skip (default: ``DISTSCHED_DISABLE_PLUGINS``, comma-separated) - a name no plugin
    has is an error naming the known plugins; ``allow_replace`` names the names (or URL
    schemes) a plugin declaring ``replace=True`` may take over from another (default:
    ``DISTSCHED_ALLOW_REPLACE``) - a name nobody registered is an error.

    Hook implementations are called through pluggy's hook calling (``tryfirst``,
    ``trylast`` and ``wrapper=True`` work as pluggy documents); each plain implementation is
    guarded so that its exception is charged to its plugin (see :meth:`_guard`).
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        plugins: Iterable[Any] = (),
        disabled: Iterable[str] | None = None,
        allow_replace: Iterable[str] | None = None,
    ) -> None:
        self.hook_manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.hook_manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        #: id(command) -> the origin of the plugin whose distsched_cli_commands returned it.
        self._command_origins: dict[int, str] = {}
        #: The distsched_event implementations (kept current by _guard_plugin).
        self._observers: list[Any] = []
        #: id(handle) -> the origin of the plugin whose distsched_serve returned it.
        self._served_by: dict[int, str] = {}
        self.disabled = set(disabled_from_env() if disabled is None else disabled)
        self.allow_replace = set(allow_replace_from_env() if allow_replace is None else allow_replace)
        extra = [item if isinstance(item, tuple) else (_default_name(item), item) for item in plugins]
        self._check_disabled_names([ep.name for ep in _entry_points()] if entry_points else [],
                                   [name for name, _ in extra])
        self.storage = StorageRegistry()
        self.election = ElectionRegistry()
        self.executors = ExecutorRegistry()
        self.balancers = BalancerRegistry()
        self.functions = FunctionRegistry()
        self._registries: dict[str, Registry] = {
            "storage": self.storage, "election": self.election, "executor": self.executors,
            "balancer": self.balancers, "function": self.functions,
        }
        if entry_points:
            self._load_entry_points()
        for name, obj in extra:
            if name in self.plugins:  # an installed plugin's name: pluggy refused it with a dump
                if self.hook_manager.get_plugin(name) is obj:
                    continue  # the same module given twice
                raise PluginError(
                    f"plugin module {_module_name(obj)!r} cannot be loaded as {name!r}: "
                    f"{self.plugins[name].origin} has that name; give your module another name")
            self._register(name, obj, PluginInfo(name=name, module=_module_name(obj)))
        self._fill_registries()

    def _check_disabled_names(self, discovered: list[str], extra: list[str]) -> None:
        known = sorted(set(discovered) | set(extra))
        unknown = sorted(self.disabled - set(known))
        if unknown:
            raise PluginError(
                f"cannot disable {', '.join(repr(n) for n in unknown)} (--disable-plugin / {DISABLE_ENV}): "
                f"no plugin of that name (known plugins: {', '.join(known) or 'none'})")

    # -- discovery ------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        seen: dict[str, PluginInfo] = {}
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                dist=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            if ep.name in seen:
                other = seen[ep.name]
                if (other.dist, other.module) == (info.dist, info.module):
                    continue  # the same distribution seen twice on sys.path
                info.error = (
                    f"plugin name {ep.name!r} is provided by both {other.dist} and {info.dist}; "
                    f"uninstall one, or disable it with {DISABLE_ENV}={ep.name}"
                )
                self.plugins[f"{ep.name} ({info.dist})"] = info
                log.error("%s", info.error)
                continue
            seen[ep.name] = info
            self.plugins[ep.name] = info
            if ep.name in self.disabled:
                info.disabled = True
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # any import error of any plugin
                info.error = (
                    f"{info.origin} failed to import {ep.value}: {type(exc).__name__}: {exc}; "
                    f"disable it with {DISABLE_ENV}={ep.name}"
                )
                log.error("%s", info.error)
                continue
            self._register(ep.name, obj, info)

    def _register(self, name: str, obj: Any, info: PluginInfo) -> None:
        if name in self.disabled:
            info.disabled = True
            self.plugins[name] = info
            return
        try:
            self.hook_manager.register(obj, name=name)
            self.hook_manager.check_pending()
        except Exception as exc:
            if self.hook_manager.is_registered(obj):
                self.hook_manager.unregister(obj)
            info.error = f"{info.origin} is not a valid distsched plugin: {exc}"
            log.error("%s", info.error)
            self.plugins.setdefault(name, info)
            return
        self.plugins[name] = info
        info.hooks = self._guard_plugin(obj, name)
        info.roles = sorted({_ROLES[hook] for hook in info.hooks if hook in _ROLES})
        for warning in _unmarked_hooks(obj, info.hooks):
            info.warnings.append(warning)
            log.warning("%s: %s", info.origin, warning)

    def _guard_plugin(self, obj: Any, name: str) -> list[str]:
        """Guard every plain hook implementation of the registered plugin ``obj`` (see
        :meth:`_guard`); returns the names of the hooks it implements. Whatever registers a
        plugin with ``hook_manager`` (at start or later) calls this."""
        callers = self.hook_manager.get_hookcallers(obj) or ()
        for caller in callers:
            for impl in caller.get_hookimpls():
                if impl.plugin is obj and not (impl.wrapper or impl.hookwrapper):
                    # pluggy calls ``impl.function``; the guard around it charges an exception
                    # to this plugin instead of aborting the other plugins' implementations.
                    setattr(impl, "function", self._guard(caller.name, name, impl.function))  # noqa: B010
        self._observers = self.hook_manager.hook.distsched_event.get_hookimpls()
        return sorted(caller.name for caller in callers)

    def _guard(self, hook_name: str, plugin_name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` (a plain hook implementation of ``plugin_name``) as pluggy will call it.

        A registration hook: the registry is told which plugin registers (attribution), and
        keeps what it registered only when it returns; an exception marks the plugin broken.
        An observer: an exception is logged with the plugin's name and swallowed.
        """
        if hook_name == "distsched_event":
            failures = _ObserverFailures()

            def observe(*args: Any, **kwargs: Any) -> Any:
                try:
                    return function(*args, **kwargs)
                except Exception as exc:
                    event = args[0] if args else kwargs.get("event")
                    failures.log(exc, self.origin_of(plugin_name), getattr(event, "kind", event))
                    return None

            return observe
        if hook_name == "distsched_configure":
            def configure(*args: Any, **kwargs: Any) -> Any:
                try:
                    return function(*args, **kwargs)
                except ValidationError as exc:  # the plugin refused its table: name it as [worker] settings are
                    raise ValidationError(f"[plugins.{plugin_name}] {exc.field}", exc.reason, where=exc.where) from None
                except PluginError:
                    raise
                except Exception as exc:
                    raise _HookFailed(self.origin_of(plugin_name), exc) from exc

            return configure
        if hook_name == "distsched_cli_commands":
            def commands(*args: Any, **kwargs: Any) -> Any:
                import click

                origin = self.origin_of(plugin_name)
                try:
                    result = function(*args, **kwargs)
                except Exception as exc:
                    log.error("%s raised in %s: %s: %s", origin, hook_name, type(exc).__name__, exc)
                    return None
                if not isinstance(result, (list, tuple)) or not all(isinstance(c, click.Command) for c in result):
                    log.error("%s: %s must return a list of click commands, got %r", origin, hook_name, result)
                    return None
                for command in result:
                    self._command_origins[id(command)] = origin
                return list(result)

            return commands
        if hook_name == "distsched_serve":
            def serve(*args: Any, **kwargs: Any) -> Any:
                origin = self.origin_of(plugin_name)
                try:
                    handle = function(*args, **kwargs)
                except PluginError:
                    raise
                except Exception as exc:  # stops the call: the caller names the plugin
                    raise _HookFailed(origin, exc) from exc
                if handle is not None:
                    self._served_by[id(handle)] = origin
                return handle

            return serve
        family = _FAMILY_OF_HOOK.get(hook_name)
        if family is None:  # another hook: its caller decides what an exception means
            return function

        def register(*args: Any, **kwargs: Any) -> Any:
            info = self.plugins[plugin_name]
            if info.error:
                return None
            registry = self._registries[family]
            registry.begin(info.origin)
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                registry.rollback()
                info.error = f"{info.origin} raised in {hook_name}: {type(exc).__name__}: {exc}"
                log.error("%s", info.error)
                return None
            added = registry.commit()
            if added:
                info.provides.setdefault(family, []).extend(sorted({reg.name for reg in added}))
                info.registered.setdefault(family, []).extend(
                    _registration_dict(reg) for reg in sorted(added, key=lambda r: r.name))
            return result

        return register

    # -- registration ---------------------------------------------------------------
    def _fill_registries(self) -> None:
        for family, hook_name in _REGISTRATION_HOOKS.items():
            registry = self._registries[family]
            try:
                getattr(self.hook_manager.hook, hook_name)(registry=registry)
            except Exception as exc:  # only a wrapper can raise here: the plain ones are guarded
                wrappers = [impl.plugin_name for impl in getattr(self.hook_manager.hook, hook_name).get_hookimpls()
                            if impl.wrapper or impl.hookwrapper]
                for name in wrappers:
                    info = self.plugins[name]
                    info.error = info.error or (f"{info.origin} (a wrapper of {hook_name}) or another wrapper "
                                                f"raised: {type(exc).__name__}: {exc}")
                    log.error("%s", info.error)
        self._check_allow_replace()
        broken = self.broken()
        disabled = [name for name, info in self.plugins.items() if info.disabled]
        for registry in self._registries.values():
            registry.broken = dict(broken)
            registry.disabled = list(disabled)
            registry.set_allow_replace(self.allow_replace)
        for registry in self._registries.values():
            for conflict in registry.conflicts():
                log.error("%s", conflict.message())
                for reg in conflict.providers:
                    if reg.origin.plugin in self.plugins:
                        self.plugins[reg.origin.plugin].conflicts.append(conflict.to_dict())
            for replacement in registry.replacements():
                log.warning("%s %r of %s replaced by %s (declared by the plugin, allowed by the operator)",
                            replacement.family, replacement.key, ", ".join(str(r.origin) for r in replacement.replaced),
                            replacement.winner.origin)
                for reg in (replacement.winner, *replacement.replaced):
                    if reg.origin.plugin in self.plugins:
                        self.plugins[reg.origin.plugin].replacements.append(replacement.to_dict())

    def _check_allow_replace(self) -> None:
        if not self.allow_replace:
            return
        keys: set[str] = set()
        for registry in self._registries.values():
            for reg in registry.all_registrations():
                keys.add(reg.name)
                keys.update(reg.schemes)
        unknown = sorted(self.allow_replace - keys)
        if unknown:
            declared = sorted({reg.name for registry in self._registries.values()
                               for reg in registry.all_registrations() if reg.override})
            raise PluginError(
                f"cannot allow a replacement of {', '.join(repr(n) for n in unknown)} (--allow-replace / "
                f"{ALLOW_REPLACE_ENV}): no plugin registers that name (names declared with replace=True: "
                f"{', '.join(declared) or 'none'})")

    # -- inspection -----------------------------------------------------------------
    def broken(self) -> dict[str, str]:
        return {name: info.error for name, info in self.plugins.items() if info.error}

    def conflicts(self) -> list[Conflict]:
        """Every name (or scheme) two plugins provide, over all families: each is unusable."""
        return [c for registry in self._registries.values() for c in registry.conflicts()]

    def replacements(self) -> list[Replacement]:
        return [r for registry in self._registries.values() for r in registry.replacements()]

    def describe(self) -> list[dict[str, Any]]:
        return [info.to_dict() for info in sorted(self.plugins.values(), key=lambda i: i.name)]

    def origin_of(self, plugin_name: str) -> str:
        info = self.plugins.get(plugin_name)
        return str(info.origin) if info else f"plugin {plugin_name!r}"

    # -- plugin settings --------------------------------------------------------------
    def note_settings(self, tables: dict[str, dict[str, Any]]) -> list[str]:
        """Record which plugins have a ``[plugins.<name>]`` table (its keys, for ``distsched
        plugins``) and return a warning for each table no plugin of that name has - a typo:
        it is read by nothing. A disabled plugin's table is normal (no warning)."""
        import difflib

        for name, info in self.plugins.items():
            info.settings = sorted(tables[name]) if name in tables else None
        known = sorted(self.plugins)
        warnings = []
        for name in sorted(set(tables) - set(known)):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            warnings.append(f"[plugins.{name}]: no plugin named {name!r} is loaded{hint}, so nothing reads these "
                            f"settings (plugins: {', '.join(known) or 'none'})")
        return warnings

    def configure(self, config: Any) -> None:
        """Give every plugin the engine's configuration (``distsched_configure``), once per
        engine, after warning about a ``[plugins.<name>]`` table no plugin reads. A plugin
        refusing its table raises ``ValidationError`` naming ``[plugins.<name>] key``; any
        other failure a PluginError naming the plugin."""
        for warning in self.note_settings(config.plugin_settings):
            log.warning("%s", warning)
        try:
            self.hook_manager.hook.distsched_configure(config=config, plugins=self)
        except _HookFailed as failed:
            exc = failed.error
            raise PluginError(f"{failed.origin} failed to read its settings (distsched_configure): "
                              f"{type(exc).__name__}: {redact_text(str(exc))}") from exc

    # -- building what a plugin provides ----------------------------------------------
    def registration(self, family: Family[Any], key: str, *, where: str = "") -> Registration:
        """The usable registration of ``key`` (a URL for storage and election, else a name).
        Raises UnknownName or NameConflict, both naming what is available and why."""
        registry = self._registries[family.name]
        if family.by_url:
            assert isinstance(registry, SchemeRegistry)
            return registry.for_url(key, where=where or family.name)
        return registry.get(key, where=where)

    async def build(self, family: Family[T], key: str, *args: Any, where: str = "", failed: str = "failed",
                    subject: str | None = None, optional: dict[str, Any] | None = None, **kwargs: Any) -> T:
        """The one way to build what a plugin provides: look up the registration of ``key``,
        call its factory with ``args`` and ``kwargs``, await the result when it is awaitable,
        and check it implements the family's port.

        ``optional``: keywords added later to a factory's documented call (the storage
        factory's ``reader``), passed only to a factory that names them as parameters, so that a plugin written before them keeps working, as pluggy passes a
        hook implementation only the arguments it names.

        Raises UnknownName / NameConflict (lookup) or PluginError naming the plugin and its
        distribution (the factory raised, or returned something that is not the port), as
        ``<family> <name> from <plugin> <failed> <subject>: <error>``: ``subject`` is e.g. a
        redacted URL; any URL in the error's text is redacted too.
        """
        reg = self.registration(family, key, where=where)
        if optional:
            kwargs.update(_taken(reg.factory, optional))
        try:
            obj = reg.factory(*args, **kwargs)
            if inspect.isawaitable(obj):
                obj = await obj
        except PluginError:
            raise
        except Exception as exc:
            what = f"{failed} {subject}" if subject else failed
            raise PluginError(f"{reg.family} {reg.name!r} from {reg.origin} {what}: "
                              f"{type(exc).__name__}: {redact_text(str(exc))}") from exc
        checked: T = check_returns(obj, family.protocol, reg, family.protocol.__name__)
        return checked

    def cli_commands(self) -> list[tuple[str, Any]]:
        """What ``distsched_cli_commands`` returned, called through pluggy: ``(origin,
        command)`` pairs, in plugin registration order. A plugin that raises or returns
        something that is not a list of click commands is logged, named, and left out (by
        its guard, :meth:`_guard`)."""
        results = self.hook_manager.hook.distsched_cli_commands()
        found: list[tuple[str, Any]] = []
        for commands in reversed(results):  # pluggy calls the last registered first
            for command in commands:
                origin = self._command_origins.get(id(command), "a wrapper of distsched_cli_commands")
                found.append((origin, command))
        return found

    # -- run-time registration -------------------------------------------------------
    def register(self, obj: Any, name: str) -> None:
        """Register ``obj``'s hook implementations at run time, under ``name``, for this
        manager only: a server started through ``distsched_serve`` adds its event observer
        this way while it runs. Only hooks called from now on see it (``distsched_event``,
        ``distsched_serve``); the registration hooks already ran. A name in use is an error.
        """
        if name in self.plugins or self.hook_manager.has_plugin(name):
            raise PluginError(f"a plugin named {name!r} is already registered")
        self.hook_manager.register(obj, name=name)
        self._guard_plugin(obj, name)

    def unregister(self, name: str) -> None:
        """Remove what :meth:`register` added under ``name`` (nothing if it is not there)."""
        if name in self.plugins:
            raise PluginError(f"plugin {name!r} was loaded at start and cannot be unregistered")
        if self.hook_manager.has_plugin(name):
            self.hook_manager.unregister(name=name)
            self._observers = self.hook_manager.hook.distsched_event.get_hookimpls()

    def serve(self, engine: Any, name: str, address: str) -> tuple[Any, str]:
        """Ask the plugins to serve ``name`` on ``address`` beside ``engine`` (the
        ``distsched_serve`` hook, first non-None result); returns (handle, plugin origin).
        An exception becomes a PluginError naming the plugin; nobody serving ``name`` is a
        PluginError that names the broken plugins, if any."""
        try:
            handle = self.hook_manager.hook.distsched_serve(engine=engine, name=name, address=address)
        except _HookFailed as failed:
            exc = failed.error
            raise PluginError(f"{failed.origin} could not serve {name} on {address}: "
                              f"{type(exc).__name__}: {exc}") from exc
        if handle is not None:
            return handle, self._served_by.pop(id(handle), "a wrapper of distsched_serve")
        broken = self.broken()
        hint = ("; broken plugins: " + "; ".join(broken.values())) if broken else ""
        extra = f"pip install 'distsched[{name}]'" if name in ("metrics", "web") else "for metrics: pip install 'distsched[metrics]'"
        raise PluginError(f"no plugin serves {name!r} (asked to serve it on {address}); install the plugin "
                          f"that provides it ({extra}){hint}")

    # -- events ---------------------------------------------------------------------
    @property
    def has_observers(self) -> bool:
        """Whether any plugin observes events (cheap: read on every event emitted)."""
        return bool(self._observers)

    def notify(self, event: Event) -> None:
        """Call every observer with ``event`` through pluggy; each failure is logged with its
        plugin and swallowed (so is a failing wrapper's)."""
        try:
            self.hook_manager.hook.distsched_event(event=event)
        except Exception:
            log.exception("an event wrapper failed on %s", event.kind)


#: Seconds between two lines about one observer's repeated failures (the first failure of each
#: exception type is logged with its traceback at once).
OBSERVER_FAILURE_INTERVAL = 60.0


class _ObserverFailures:
    """How one observer's failures are logged: each exception type's first with its
    traceback, the rest as one line a :data:`OBSERVER_FAILURE_INTERVAL` counting them - an
    observer that fails on every event logged a traceback per event (a plugin author's probe)."""

    def __init__(self) -> None:
        self.seen: set[type] = set()
        self.since = 0  # failures not yet said
        self.said_at = float("-inf")

    def log(self, exc: Exception, origin: str, kind: Any) -> None:
        import time

        if type(exc) not in self.seen:
            self.seen.add(type(exc))
            self.said_at = time.monotonic()
            log.error("event observer of %s failed on %s (each new kind of failure is logged once with its "
                      "traceback; repeats are counted once a minute)", origin, kind, exc_info=exc)
            return
        self.since += 1
        if time.monotonic() - self.said_at >= OBSERVER_FAILURE_INTERVAL:
            log.error("event observer of %s failed %d more time(s), the last on %s: %s: %s", origin, self.since, kind,
                      type(exc).__name__, str(exc)[:300])
            self.since, self.said_at = 0, time.monotonic()


class _HookFailed(Exception):
    """A guarded hook implementation raised (carries its plugin's origin to the caller)."""

    def __init__(self, origin: str, error: Exception) -> None:
        super().__init__(f"{origin}: {type(error).__name__}: {error}")
        self.origin = origin
        self.error = error


#: The methods of a port the engine awaits directly, by port: an implementation's must be
#: coroutine functions (``async def``), or every call fails far from the plugin.
_COROUTINE_METHODS: dict[type, tuple[str, ...]] = {Executor: ("run",)}


def check_returns(obj: Any, protocol: type, registration: Registration, what: str) -> Any:
    """Refuse a factory result that does not implement ``protocol``, naming the plugin: a
    missing member, or (an Executor's ``run``) a method that must be ``async def`` and is not."""
    whose = f"{registration.family} {registration.name!r} from {registration.origin}"
    if obj is None or not isinstance(obj, protocol):
        members = {n for n in vars(protocol) if not n.startswith("_")} | set(getattr(protocol, "__annotations__", {}))
        missing = [name for name in members if not hasattr(obj, name)] if obj is not None else []
        detail = f" (missing: {', '.join(sorted(missing))})" if missing else ""
        raise PluginError(f"{whose} returned {type(obj).__name__}, which is not {_article(what)} {what}{detail}")
    for name in _COROUTINE_METHODS.get(protocol, ()):
        method = getattr(obj, name)
        if not inspect.iscoroutinefunction(method):
            raise PluginError(
                f"{whose} returned {type(obj).__name__}, whose {name} is not a coroutine function: {name} must be "
                f"a coroutine function (async def {name}(...)), which the worker awaits")
    return obj


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _registration_dict(reg: Registration) -> dict[str, Any]:
    """What ``distsched plugins`` shows of one registration."""
    out: dict[str, Any] = {"name": reg.name, "description": reg.description}
    if reg.schemes:
        out["schemes"] = list(reg.schemes)
    if reg.family == "executor":
        out["settings"] = None if reg.settings is None else list(reg.settings)
    return out


def _unmarked_hooks(obj: Any, implemented: Iterable[str]) -> list[str]:
    """Functions of plugin ``obj`` named like a hook (``distsched_...``) that pluggy does not
    take as one, because they lack ``@hookimpl``: without a word they would do nothing."""
    import difflib

    specs = [name for name in hookspecs.__all__ if name.startswith("distsched_")]
    done = set(implemented)
    found = []
    for name in sorted(vars(obj) if isinstance(obj, ModuleType) else dir(obj)):
        if not name.startswith("distsched_") or name in done:
            continue
        value = inspect.getattr_static(obj, name, None)
        if not (inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, (staticmethod, classmethod))):
            continue
        if isinstance(obj, ModuleType) and getattr(value, "__module__", obj.__name__) != obj.__name__:
            continue  # imported from elsewhere
        if name in specs:
            found.append(f"{name} is not marked as a hook implementation, so it is never called: decorate it with "
                         f"@hookimpl (from distsched import hookimpl)")
        else:
            close = difflib.get_close_matches(name, specs, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(f"{name} is named like a hook but is neither a hook{hint} nor marked @hookimpl: "
                         f"it is never called")
    return found


def _module_name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__


def _default_name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, ModuleType) else f"{type(obj).__name__}-{id(obj):x}"


__all__ = [
    "BALANCER", "ELECTION", "EXECUTOR", "GROUP", "STORAGE", "Family", "PluginInfo", "PluginManager",
    "allow_replace_from_env", "check_returns", "disabled_from_env", "load_plugin_modules", "modules_from_env",
]


def _taken(factory: Callable[..., Any], optional: dict[str, Any]) -> dict[str, Any]:
    """The keywords of ``optional`` that ``factory`` names as parameters (a ``**kwargs``
    does not count: it may hand them on to a call that refuses them). A callable whose
    signature cannot be read takes none."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    return {name: value for name, value in optional.items()
            if name in parameters and parameters[name].kind in (inspect.Parameter.KEYWORD_ONLY,
                                                                 inspect.Parameter.POSITIONAL_OR_KEYWORD)}
