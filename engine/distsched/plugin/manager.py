"""Builds a plugin manager: entry-point discovery, registries with attribution, events.

There is no global manager: every engine and CLI command builds its own, so tests need no
reload tricks. Discovery scans the ``distsched`` entry-point group once per process.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from functools import lru_cache
from types import ModuleType
from typing import Any

import attrs
import pluggy

from .. import hookspecs
from ..config import DISABLE_ENV, PLUGINS_ENV
from .errors import PluginError, PluginLoadError
from .registry import (
    BalancerRegistry,
    ElectionRegistry,
    ExecutorRegistry,
    FunctionRegistry,
    Origin,
    Registry,
    StorageRegistry,
)

if sys.version_info >= (3, 12):
    from importlib.metadata import EntryPoint, entry_points
else:  # the backport is faster and de-duplicates distributions on older Pythons
    from importlib_metadata import EntryPoint, entry_points

log = logging.getLogger("distsched.plugins")
GROUP = "distsched"

_REGISTRATION_HOOKS = {
    "storage": "distsched_register_storage",
    "election": "distsched_register_election",
    "executor": "distsched_register_executors",
    "balancer": "distsched_register_balancers",
    "function": "distsched_register_functions",
}


@attrs.define
class PluginInfo:
    """What ``distsched plugins`` shows about one plugin."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    provides: dict[str, list[str]] = attrs.field(factory=dict)
    error: str | None = None
    disabled: bool = False

    @property
    def origin(self) -> Origin:
        return Origin(self.name, self.dist, self.version)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@lru_cache(maxsize=1)
def _entry_points() -> tuple[EntryPoint, ...]:
    return tuple(entry_points(group=GROUP))


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def modules_from_env() -> list[str]:
    """Extra plugin modules named in ``DISTSCHED_PLUGINS`` (comma-separated import paths)."""
    return [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]


def load_plugin_modules(names: Iterable[str]) -> list[tuple[str, Any]]:
    """Import plugin modules named on the command line or in ``DISTSCHED_PLUGINS`` (like
    pytest's ``-p NAME``): configuration given by the operator, never stored data."""
    import importlib

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
    to skip (default: ``DISTSCHED_DISABLE_PLUGINS``, comma-separated).
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        plugins: Iterable[Any] = (),
        disabled: Iterable[str] | None = None,
    ) -> None:
        self.hook_manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.hook_manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.disabled = set(disabled_from_env() if disabled is None else disabled)
        if entry_points:
            self._load_entry_points()
        for item in plugins:
            name, obj = item if isinstance(item, tuple) else (_default_name(item), item)
            self._register(name, obj, PluginInfo(name=name, module=_module_name(obj)))
        self.storage = StorageRegistry()
        self.election = ElectionRegistry()
        self.executors = ExecutorRegistry()
        self.balancers = BalancerRegistry()
        self.functions = FunctionRegistry()
        self._fill_registries()
        self._observers = self.hook_manager.hook.distsched_event.get_hookimpls()

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
        info.hooks = sorted(
            caller.name for caller in self.hook_manager.get_hookcallers(obj) or ()
        )
        self.plugins[name] = info

    # -- registration ---------------------------------------------------------------
    def _fill_registries(self) -> None:
        registries: dict[str, Registry] = {
            "storage": self.storage,
            "election": self.election,
            "executor": self.executors,
            "balancer": self.balancers,
            "function": self.functions,
        }
        for family, hook_name in _REGISTRATION_HOOKS.items():
            registry = registries[family]
            for impl in getattr(self.hook_manager.hook, hook_name).get_hookimpls():
                info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name, _module_name(impl.plugin))
                if info.error:
                    continue
                registry.current = info.origin
                before = set(registry.names())
                try:
                    impl.function(**{arg: registry for arg in impl.argnames})
                except Exception as exc:
                    info.error = f"{info.origin} raised in {hook_name}: {type(exc).__name__}: {exc}"
                    log.error("%s", info.error)
                    continue
                added = sorted(set(registry.names()) - before)
                if added:
                    info.provides.setdefault(family, []).extend(added)
        broken = {name: info.error for name, info in self.plugins.items() if info.error}
        disabled = [name for name, info in self.plugins.items() if info.disabled]
        for registry in registries.values():
            registry.broken = dict(broken)
            registry.disabled = list(disabled)

    # -- inspection -----------------------------------------------------------------
    def broken(self) -> dict[str, str]:
        return {name: info.error for name, info in self.plugins.items() if info.error}

    def describe(self) -> list[dict[str, Any]]:
        return [info.to_dict() for info in sorted(self.plugins.values(), key=lambda i: i.name)]

    def origin_of(self, plugin_name: str) -> str:
        info = self.plugins.get(plugin_name)
        return str(info.origin) if info else f"plugin {plugin_name!r}"

    def call_factory(self, registration: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a registered factory; an exception becomes a PluginError naming the plugin."""
        try:
            return registration.factory(*args, **kwargs)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"{registration.family} {registration.name!r} from {registration.origin} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc

    def cli_commands(self) -> list[tuple[str, Any]]:
        """What ``distsched_cli_commands`` returned: ``(origin, command)`` pairs, in plugin
        registration order. A plugin that raises or returns something that is not a list of
        click commands is logged, named, and left out."""
        import click

        found: list[tuple[str, Any]] = []
        for impl in self.hook_manager.hook.distsched_cli_commands.get_hookimpls():
            origin = self.origin_of(impl.plugin_name)
            try:
                commands = impl.function()
            except Exception as exc:
                log.error("%s raised in distsched_cli_commands: %s: %s", origin, type(exc).__name__, exc)
                continue
            if not isinstance(commands, (list, tuple)) or not all(isinstance(c, click.Command) for c in commands):
                log.error("%s: distsched_cli_commands must return a list of click commands, got %r", origin, commands)
                continue
            found.extend((origin, command) for command in commands)
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
        self._observers = self.hook_manager.hook.distsched_event.get_hookimpls()

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
        for impl in reversed(self.hook_manager.hook.distsched_serve.get_hookimpls()):
            origin = self.origin_of(impl.plugin_name)
            try:
                handle = impl.function(**{arg: {"engine": engine, "name": name, "address": address}[arg]
                                          for arg in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{origin} could not serve {name} on {address}: {type(exc).__name__}: {exc}") from exc
            if handle is not None:
                return handle, origin
        broken = self.broken()
        hint = ("; broken plugins: " + "; ".join(broken.values())) if broken else ""
        extra = f"pip install 'distsched[{name}]'" if name in ("metrics", "web") else "for metrics: pip install 'distsched[metrics]'"
        raise PluginError(f"no plugin serves {name!r} (asked to serve it on {address}); install the plugin "
                          f"that provides it ({extra}){hint}")

    # -- events ---------------------------------------------------------------------
    @property
    def has_observers(self) -> bool:
        return bool(self._observers)

    def notify(self, event: Any) -> None:
        """Call every observer with ``event``; each failure is logged and swallowed."""
        for impl in self._observers:
            try:
                impl.function(**{arg: event for arg in impl.argnames})
            except Exception:
                log.exception("event observer of %s failed on %s", self.origin_of(impl.plugin_name), event.kind)


def check_returns(obj: Any, protocol: type, registration: Any, what: str) -> Any:
    """Refuse a factory result that does not implement ``protocol``, naming the plugin."""
    if obj is None or not isinstance(obj, protocol):
        members = {n for n in vars(protocol) if not n.startswith("_")} | set(getattr(protocol, "__annotations__", {}))
        missing = [name for name in members if not hasattr(obj, name)] if obj is not None else []
        detail = f" (missing: {', '.join(sorted(missing))})" if missing else ""
        raise PluginError(
            f"{registration.family} {registration.name!r} from {registration.origin} returned "
            f"{type(obj).__name__}, which is not a {what}{detail}"
        )
    return obj


def _module_name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__


def _default_name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, ModuleType) else f"{type(obj).__name__}-{id(obj):x}"
