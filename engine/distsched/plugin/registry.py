"""Typed registries the registration hooks fill in, with who registered what.

The plugin manager sets the *current plugin* before it calls each plugin's hook, so every
:class:`Registration` knows its plugin and distribution; a duplicate name is an error that
names both.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ..model.errors import ValidationError
from ..urls import redact_url
from .errors import DuplicateRegistration, PluginError, UnknownName

log = logging.getLogger("distsched.plugins")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*$")


@attrs.frozen
class Origin:
    """Where a registration came from: the plugin (entry-point) name and its distribution."""

    plugin: str
    dist: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.dist:
            return f"plugin {self.plugin!r} ({self.dist} {self.version or '?'})"
        return f"plugin {self.plugin!r}"


APP = Origin("<application>")


@attrs.frozen
class Registration:
    family: str
    name: str
    factory: Callable[..., Any]
    origin: Origin
    description: str = ""
    schemes: tuple[str, ...] = ()
    #: Registered with ``replace=True``: it wins over the plain registration of the same
    #: name whichever plugin happens to register first.
    override: bool = False
    #: Executors only: ``validate(spec)`` checks a task spec when a job is added or a task
    #: submitted (raises ``distsched.model.ValidationError(field, reason)``); None: no check.
    validate: Callable[[Any], None] | None = None
    #: Executors only: ``check_settings(settings)`` checks the worker's settings (the jobs
    #: file's ``[worker]`` table) when a worker starts; a ValidationError stops the worker.
    check_settings: Callable[[Any], None] | None = None


class Registry:
    """Named factories of one family (storage, election, executor, balancer, function)."""

    family = "thing"

    def __init__(self) -> None:
        self._items: dict[str, Registration] = {}
        self.current: Origin = APP
        #: Set by the plugin manager: broken and disabled plugins, mentioned when a name is
        #: unknown.
        self.broken: dict[str, str] = {}
        self.disabled: list[str] = []

    def _add(self, reg: Registration, replace: bool) -> bool:
        """Store ``reg``; False when an earlier ``replace=True`` registration keeps the name."""
        if not isinstance(reg.name, str) or not _NAME_RE.match(reg.name):
            raise ValueError(f"{self.current}: {self.family} name {reg.name!r} is not a valid name")
        if not callable(reg.factory):
            raise TypeError(f"{self.current}: {self.family} {reg.name!r}: factory {reg.factory!r} is not callable")
        old = self._items.get(reg.name)
        if old is not None and old.override and not replace:
            log.info("%s %r of %s is overridden by %s", self.family, reg.name, reg.origin, old.origin)
            return False
        if old is not None and not replace:
            raise DuplicateRegistration(
                f"{self.family} {reg.name!r} registered by {old.origin} and by {reg.origin}; "
                f"pass replace=True to override on purpose, or disable one with DISTSCHED_DISABLE_PLUGINS"
            )
        if old is not None:
            log.info("%s %r of %s is overridden by %s", self.family, reg.name, old.origin, reg.origin)
        self._items[reg.name] = reg
        return True

    def add(self, name: str, factory: Callable[..., Any], *, description: str = "", replace: bool = False) -> None:
        self._add(Registration(self.family, name, factory, self.current, description, override=replace), replace)

    def get(self, name: str, *, where: str = "") -> Registration:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self._unknown(f"{self.family} {name!r}", where)) from None

    def _unknown(self, what: str, where: str) -> str:
        prefix = f"{where}: " if where else ""
        available = ", ".join(sorted(self.names())) or "none"
        msg = f"{prefix}{what} is not registered (available: {available})"
        msg += self._plugin_notes()
        if not self.broken and not self._items:
            msg += (
                " - is distsched installed? (no plugins found in entry-point group 'distsched'; "
                "run `pip install -e .` in the repository)"
            )
        return msg

    def _plugin_notes(self) -> str:
        notes = ""
        if self.broken:
            notes += "; broken plugins: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.broken.items()))
        if self.disabled:
            notes += f"; disabled plugins: {', '.join(sorted(self.disabled))}"
        return notes

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class SchemeRegistry(Registry):
    """A registry whose entries are chosen by URL scheme."""

    def __init__(self) -> None:
        super().__init__()
        self._schemes: dict[str, Registration] = {}

    def add(  # type: ignore[override]
        self,
        name: str,
        *,
        schemes: tuple[str, ...] | list[str],
        factory: Callable[..., Any],
        description: str = "",
        replace: bool = False,
    ) -> None:
        schemes = tuple(schemes)
        if not schemes or not all(isinstance(s, str) and _SCHEME_RE.match(s) for s in schemes):
            raise ValueError(f"{self.current}: {self.family} {name!r}: schemes must be lowercase URL schemes, not {schemes!r}")
        reg = Registration(self.family, name, factory, self.current, description, schemes, override=replace)
        for scheme in schemes:
            old = self._schemes.get(scheme)
            if old is not None and old.override and not replace:
                log.info("%s scheme %r of %s is overridden by %s", self.family, scheme, reg.origin, old.origin)
                return
            if old is not None and not replace and old.name != name:
                raise DuplicateRegistration(
                    f"{self.family} scheme {scheme!r} registered by {old.origin} (as {old.name!r}) "
                    f"and by {reg.origin} (as {name!r})"
                )
        if self._add(reg, replace):
            for scheme in schemes:
                self._schemes[scheme] = reg

    def for_url(self, url: str, *, where: str = "storage") -> Registration:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not scheme:
            raise UnknownName(
                f"{where}: {redact_url(url)!r} is not a URL; expected SCHEME://... "
                f"(schemes: {', '.join(sorted(self._schemes)) or 'none'})"
            )
        try:
            return self._schemes[scheme]
        except KeyError:
            available = ", ".join(f"{s}://" for s in sorted(self._schemes)) or "none"
            msg = f"{where}: no {self.family} plugin handles {scheme}:// (available: {available})"
            raise UnknownName(msg + self._plugin_notes()) from None

    def schemes(self) -> list[str]:
        return sorted(self._schemes)


class StorageRegistry(SchemeRegistry):
    family = "storage"


class ElectionRegistry(SchemeRegistry):
    family = "election"


class ExecutorRegistry(Registry):
    """Executors by name. ``add(name, factory, description=..., validate=...)``: the optional
    ``validate(spec)`` runs wherever a job is added or a task submitted, in any process (no
    worker needed), and refuses a spec its executor could never run by raising
    ``distsched.model.ValidationError(field, reason)``. The optional ``check_settings(settings)``
    runs when a worker starts, with its settings (the ``[worker]`` table): a ValidationError
    stops the worker, naming the setting."""

    family = "executor"

    def add(self, name: str, factory: Callable[..., Any], *, description: str = "", replace: bool = False,
            validate: Callable[[Any], None] | None = None,
            check_settings: Callable[[Any], None] | None = None) -> None:
        if validate is not None and not callable(validate):
            raise TypeError(f"{self.current}: executor {name!r}: validate {validate!r} is not callable")
        if check_settings is not None and not callable(check_settings):
            raise TypeError(f"{self.current}: executor {name!r}: check_settings {check_settings!r} is not callable")
        self._add(Registration(self.family, name, factory, self.current, description, override=replace,
                               validate=validate, check_settings=check_settings), replace)

    def check_settings(self, settings: Any, *, where: str = "worker") -> None:
        """Run every executor's ``check_settings`` on a worker's settings: the first refusal
        -> ValidationError naming ``where``, the setting and the reason; a checker that fails
        otherwise -> PluginError naming its plugin."""
        for reg in self:
            if reg.check_settings is None:
                continue
            try:
                reg.check_settings(settings)
            except ValidationError as exc:
                raise ValidationError(exc.field, exc.reason, where=where) from None
            except Exception as exc:
                raise PluginError(f"{where}: the settings check of executor {reg.name!r} from {reg.origin} "
                                  f"failed: {type(exc).__name__}: {exc}") from exc

    def validate(self, spec: Any, *, where: str = "") -> None:
        """Check ``spec`` with its executor's validator: unknown executor -> UnknownName;
        refused -> ValidationError naming ``where``, the field and the reason; a validator
        that fails otherwise -> PluginError naming its plugin."""
        reg = self.get(spec.executor, where=where)
        if reg.validate is None:
            return
        try:
            reg.validate(spec)
        except ValidationError as exc:
            raise ValidationError(exc.field, exc.reason, where=where or None) from None
        except Exception as exc:
            prefix = f"{where}: " if where else ""
            raise PluginError(f"{prefix}the validator of executor {reg.name!r} from {reg.origin} failed: "
                              f"{type(exc).__name__}: {exc}") from exc


class BalancerRegistry(Registry):
    family = "balancer"


class FunctionRegistry(Registry):
    """Callables the ``local`` executor may run. ``add(name, func)``; also fed by the
    facade's ``@app.task`` decorator."""

    family = "function"

    def add(self, name: str, factory: Callable[..., Any], *, description: str = "", replace: bool = False) -> None:
        if not description:
            description = (inspect.getdoc(factory) or "").split("\n", 1)[0]
        super().add(name, factory, description=description, replace=replace)

    def merged(self, other: FunctionRegistry) -> FunctionRegistry:
        """A registry holding this one's functions and ``other``'s (duplicates refused)."""
        out = FunctionRegistry()
        out.broken = dict(self.broken)
        for reg in list(self) + list(other):
            out.current = reg.origin
            out._add(reg, replace=False)
        return out
