"""The registries the registration hooks receive, with who registered what (public API).

A plugin's registration hook gets one of these and calls ``registry.add(...)``. The plugin
manager sets the *current plugin* before it calls each plugin's hook, so every
:class:`Registration` knows its plugin and distribution; a plugin whose hook raises keeps
none of the registrations it made in that call.

**Two providers of one name fail closed.** When two plugins register the same name (or
URL scheme) in one family, neither is used: looking the name up raises
:class:`~distsched.model.errors.NameConflict`, naming both distributions and how to disable
one, and ``distsched plugins`` shows the conflict on the name. The only way for one to take
the name over is explicit on both sides: the plugin declares it (``registry.add(...,
replace=True)``) *and* the operator allows it (``--allow-replace NAME`` or
``DISTSCHED_ALLOW_REPLACE=NAME``); then the declaring plugin's registration is used and the
other is shown as replaced.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from .config import ALLOW_REPLACE_ENV, DISABLE_ENV
from .model.errors import (
    DuplicateRegistration,
    NameConflict,
    PluginError,
    UnknownName,
    ValidationError,
)
from .tasks import duplicate_function
from .urls import redact_url

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


#: The origin of what the application itself registers (``@app.task``).
APP = Origin("<application>")


@attrs.frozen
class Registration:
    """One named thing a plugin registered: its family, name, factory and origin."""

    family: str
    name: str
    factory: Callable[..., Any]
    origin: Origin
    description: str = ""
    schemes: tuple[str, ...] = ()
    #: The plugin declared ``replace=True``: it may take the name over from another plugin,
    #: if the operator allows it (``DISTSCHED_ALLOW_REPLACE``).
    override: bool = False
    #: Executors only: ``validate(spec)`` checks a task spec when a job is added or a task
    #: submitted (raises ``distsched.model.ValidationError(field, reason)``); None: no check.
    validate: Callable[[Any], None] | None = None
    #: Executors only: ``check_settings(settings)`` checks the worker's settings (the jobs
    #: file's ``[worker]`` table) when a worker starts; a ValidationError stops the worker.
    check_settings: Callable[[Any], None] | None = None
    #: Executors only: the names of the worker settings (``[worker]`` keys) the executor
    #: reads, declared with ``registry.add(..., settings=[...])``; None: not declared (then a
    #: worker cannot tell a typo from a setting this executor reads).
    settings: tuple[str, ...] | None = None


@attrs.frozen
class Conflict:
    """Two or more plugins provide one name (or scheme) of a family and none may replace the
    others: the name is unusable."""

    family: str
    #: ``"name"`` or ``"scheme"``.
    kind: str
    key: str
    providers: tuple[Registration, ...]

    @property
    def label(self) -> str:
        return f"{self.family} {self.key!r}" if self.kind == "name" else f"{self.family} scheme '{self.key}://'"

    def message(self, where: str = "") -> str:
        prefix = f"{where}: " if where else ""
        who = " and ".join(str(r.origin) for r in self.providers)
        plugins = ", ".join(r.origin.plugin for r in self.providers)
        msg = (f"{prefix}{self.label} is provided by {who}: the name is unusable until one of them is "
               f"disabled (--disable-plugin NAME or {DISABLE_ENV}=NAME, NAME one of: {plugins})")
        replacers = [r for r in self.providers if r.override]
        if len(replacers) == 1:
            msg += (f", or until the operator lets {replacers[0].origin}, which declares replace=True, take it "
                    f"over (--allow-replace {self.key} or {ALLOW_REPLACE_ENV}={self.key})")
        return msg

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "kind": self.kind, "key": self.key,
                "providers": [_origin_dict(r) for r in self.providers], "message": self.message()}


@attrs.frozen
class Replacement:
    """A name one plugin took over from another, declared by the plugin and allowed by the
    operator."""

    family: str
    kind: str
    key: str
    winner: Registration
    replaced: tuple[Registration, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "kind": self.kind, "key": self.key, "by": _origin_dict(self.winner),
                "replaced": [_origin_dict(r) for r in self.replaced]}


def _origin_dict(reg: Registration) -> dict[str, Any]:
    return {"plugin": reg.origin.plugin, "dist": reg.origin.dist, "version": reg.origin.version}


class Registry:
    """Named factories of one family (storage, election, executor, balancer, function)."""

    family = "thing"
    #: The key spaces a registration is looked up by (a scheme registry adds ``"scheme"``).
    kinds: tuple[str, ...] = ("name",)

    def __init__(self, *, allow_replace: Iterable[str] = ()) -> None:
        #: (kind, key) -> every registration of that key, in registration order.
        self._candidates: dict[tuple[str, str], list[Registration]] = {}
        #: (kind, key) -> the usable registration.
        self._resolved: dict[tuple[str, str], Registration] = {}
        self._conflicts: dict[tuple[str, str], Conflict] = {}
        self._replacements: dict[tuple[str, str], Replacement] = {}
        self.allow_replace: frozenset[str] = frozenset(allow_replace)
        self.current: Origin = APP
        self._staged: list[Registration] | None = None
        #: Set by the plugin manager: broken and disabled plugins, mentioned when a name is
        #: unknown.
        self.broken: dict[str, str] = {}
        self.disabled: list[str] = []

    # -- staging (the plugin manager brackets each plugin's hook call) -------------------
    def begin(self, origin: Origin) -> None:
        """Registrations from now on come from ``origin`` and are kept only on :meth:`commit`."""
        self.current = origin
        self._staged = []

    def commit(self) -> list[Registration]:
        """Keep what the current plugin registered since :meth:`begin`; returns it."""
        staged, self._staged = self._staged or [], None
        for reg in staged:
            self._store(reg)
        self.current = APP
        return staged

    def rollback(self) -> None:
        """Drop what the current plugin registered since :meth:`begin` (its hook raised)."""
        self._staged = None
        self.current = APP

    # -- adding ---------------------------------------------------------------------------
    def keys(self, reg: Registration) -> list[tuple[str, str]]:
        return [("name", reg.name)]

    def _add(self, reg: Registration) -> None:
        if not isinstance(reg.name, str) or not _NAME_RE.fullmatch(reg.name):  # not match: "$" takes a final "\n"
            raise ValueError(f"{self.current}: {self.family} name {reg.name!r} is not a valid name: a name is 1-128 "
                             f"letters, digits, '_', '-', '.' or ':', starting with a letter or digit")
        if not callable(reg.factory):
            raise TypeError(f"{self.current}: {self.family} {reg.name!r}: factory {reg.factory!r} is not callable")
        pending = self._staged if self._staged is not None else []
        for key in self.keys(reg):
            for old in [*self._candidates.get(key, ()), *(r for r in pending if key in self.keys(r))]:
                if old.origin == reg.origin and not reg.override:
                    what = f"{self.family} {key[1]!r}" if key[0] == "name" else f"{self.family} scheme {key[1]!r}"
                    raise DuplicateRegistration(f"{what} registered twice by {reg.origin}"
                                                f" (pass replace=True to replace your own registration)")
        if self._staged is not None:
            self._staged[:] = [r for r in self._staged if not (r.name == reg.name and r.origin == reg.origin)]
            self._staged.append(reg)
        else:
            self._store(reg)

    def _store(self, reg: Registration) -> None:
        for key in self.keys(reg):
            cands = [r for r in self._candidates.get(key, ()) if r.origin != reg.origin]
            cands.append(reg)
            self._candidates[key] = cands
            self._resolve(key)

    def _resolve(self, key: tuple[str, str]) -> None:
        cands = self._candidates[key]
        self._resolved.pop(key, None)
        self._conflicts.pop(key, None)
        self._replacements.pop(key, None)
        if len(cands) == 1:
            self._resolved[key] = cands[0]
            return
        replacers = [r for r in cands if r.override]
        if len(replacers) == 1 and key[1] in self.allow_replace:
            winner = replacers[0]
            self._resolved[key] = winner
            self._replacements[key] = Replacement(self.family, key[0], key[1], winner,
                                                  tuple(r for r in cands if r is not winner))
            return
        self._conflicts[key] = Conflict(self.family, key[0], key[1], tuple(sorted(cands, key=lambda r: r.origin.plugin)))

    def add(self, name: str, factory: Callable[..., Any], *, description: str = "", replace: bool = False) -> None:
        """Register ``factory`` under ``name``. ``replace=True`` declares that this plugin may
        take the name over from another plugin; it does so only when the operator allows it
        (``DISTSCHED_ALLOW_REPLACE=name``); otherwise two providers make the name unusable."""
        self._add(Registration(self.family, name, factory, self.current, description, override=replace))

    def set_allow_replace(self, names: Iterable[str]) -> None:
        self.allow_replace = frozenset(names)
        for key in list(self._candidates):
            self._resolve(key)

    # -- looking up -----------------------------------------------------------------------
    def get(self, name: str, *, where: str = "") -> Registration:
        """The usable registration of ``name``. Raises NameConflict (two providers) or
        UnknownName (none)."""
        found = self._resolved.get(("name", name))
        if found is not None:
            return found
        conflict = self._conflicts.get(("name", name))
        if conflict is not None:
            raise NameConflict(conflict.message(where))
        raise UnknownName(self._unknown(f"{self.family} {name!r}", where))

    def _unknown(self, what: str, where: str) -> str:
        prefix = f"{where}: " if where else ""
        available = ", ".join(sorted(self.names())) or "none"
        msg = f"{prefix}{what} is not registered (available: {available})"
        msg += self._plugin_notes()
        if not self.broken and not self._candidates:
            msg += (
                " - is distsched installed? (no plugins found in entry-point group 'distsched'; "
                "run `pip install -e .` in the repository)"
            )
        return msg

    def _plugin_notes(self) -> str:
        notes = ""
        if self._conflicts:
            notes += "; unusable (provided twice): " + ", ".join(c.label for c in self.conflicts())
        if self.broken:
            notes += "; broken plugins: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.broken.items()))
        if self.disabled:
            notes += f"; disabled plugins: {', '.join(sorted(self.disabled))}"
        return notes

    def names(self) -> list[str]:
        """The usable names (a name in conflict is not one)."""
        return sorted(key for kind, key in self._resolved if kind == "name")

    def conflicts(self) -> list[Conflict]:
        return [self._conflicts[k] for k in sorted(self._conflicts)]

    def replacements(self) -> list[Replacement]:
        return [self._replacements[k] for k in sorted(self._replacements)]

    def all_registrations(self) -> list[Registration]:
        """Every registration, usable or not (in conflict, replaced)."""
        seen: dict[int, Registration] = {}
        for cands in self._candidates.values():
            for reg in cands:
                seen.setdefault(id(reg), reg)
        return list(seen.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and ("name", name) in self._resolved

    def __iter__(self) -> Iterator[Registration]:
        return iter([reg for (kind, _), reg in sorted(self._resolved.items()) if kind == "name"])

    def __len__(self) -> int:
        return len(self.names())


class SchemeRegistry(Registry):
    """A registry whose entries are chosen by URL scheme (a scheme is a name too: two plugins
    handling one scheme make it unusable)."""

    kinds = ("name", "scheme")

    def keys(self, reg: Registration) -> list[tuple[str, str]]:
        return [("name", reg.name), *(("scheme", s) for s in reg.schemes)]

    def add(  # type: ignore[override]
        self,
        name: str,
        *,
        schemes: tuple[str, ...] | list[str],
        factory: Callable[..., Any],
        description: str = "",
        replace: bool = False,
    ) -> None:
        """Register ``factory`` under ``name`` for URLs of ``schemes``; ``replace`` as in
        :meth:`Registry.add`."""
        schemes = tuple(schemes)
        if not schemes or not all(isinstance(s, str) and _SCHEME_RE.match(s) for s in schemes):
            raise ValueError(f"{self.current}: {self.family} {name!r}: schemes must be lowercase URL schemes, not {schemes!r}")
        self._add(Registration(self.family, name, factory, self.current, description, schemes, override=replace))

    def for_url(self, url: str, *, where: str = "storage") -> Registration:
        """The usable registration for ``url``'s scheme. Raises NameConflict or UnknownName."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not scheme:
            raise UnknownName(
                f"{where}: {redact_url(url)!r} is not a URL; expected SCHEME://... "
                f"(schemes: {', '.join(self.schemes()) or 'none'})"
            )
        found = self._resolved.get(("scheme", scheme))
        if found is not None:
            return found
        conflict = self._conflicts.get(("scheme", scheme))
        if conflict is not None:
            raise NameConflict(conflict.message(where))
        available = ", ".join(f"{s}://" for s in self.schemes()) or "none"
        msg = f"{where}: no {self.family} plugin handles {scheme}:// (available: {available})"
        raise UnknownName(msg + self._plugin_notes())

    def schemes(self) -> list[str]:
        return sorted(key for kind, key in self._resolved if kind == "scheme")


class StorageRegistry(SchemeRegistry):
    """What ``distsched_register_storage`` receives."""

    family = "storage"


class ElectionRegistry(SchemeRegistry):
    """What ``distsched_register_election`` receives."""

    family = "election"


class ExecutorRegistry(Registry):
    """What ``distsched_register_executors`` receives: executors by name.
    ``add(name, factory, description=..., validate=..., check_settings=..., settings=...)``:
    the optional ``validate(spec)`` runs wherever a job is added or a task submitted, in any
    process (no worker needed), and refuses a spec its executor could never run by raising
    ``distsched.model.ValidationError(field, reason)``. The optional ``check_settings(settings)``
    runs when a worker starts, with its settings (the ``[worker]`` table): a ValidationError
    stops the worker, naming the setting. The optional ``settings`` names the worker settings
    the executor reads (``()`` for none): a ``[worker]`` key that no executor declares is
    refused as unknown - a typo - as long as every executor declares its own."""

    family = "executor"

    def add(self, name: str, factory: Callable[..., Any], *, description: str = "", replace: bool = False,
            validate: Callable[[Any], None] | None = None,
            check_settings: Callable[[Any], None] | None = None,
            settings: Iterable[str] | None = None) -> None:
        if validate is not None and not callable(validate):
            raise TypeError(f"{self.current}: executor {name!r}: validate {validate!r} is not callable")
        if check_settings is not None and not callable(check_settings):
            raise TypeError(f"{self.current}: executor {name!r}: check_settings {check_settings!r} is not callable")
        declared: tuple[str, ...] | None = None
        if settings is not None:
            declared = (settings,) if isinstance(settings, str) else tuple(settings)
            if isinstance(settings, str) or not all(isinstance(key, str) and key for key in declared):
                raise TypeError(f"{self.current}: executor {name!r}: settings must be a list of setting names, "
                                f"not {settings!r}")
        self._add(Registration(self.family, name, factory, self.current, description, override=replace,
                               validate=validate, check_settings=check_settings, settings=declared))

    def unknown_settings(self, settings: Any, *, where: str = "worker", options: Iterable[str] = (),
                         sources: Mapping[str, str] | None = None) -> list[str]:
        """Refuse a worker setting no usable executor declares (``add(..., settings=...)``):
        a ValidationError naming ``where`` (or the one source, in ``sources``, of the keys
        refused), the key, the closest of ``options`` (the worker's own options) and the
        declared settings, and what those are. When a usable executor does not declare its
        settings, a key no other one declares may be its own: such keys are not refused but
        returned (sorted), for the caller to warn about."""
        declared: set[str] = set()
        undeclared = False
        for reg in self:
            if reg.settings is None:
                undeclared = True
            else:
                declared.update(reg.settings)
        unknown = sorted(str(key) for key in settings if key not in declared)
        if not unknown or undeclared:
            return unknown
        names = sorted(declared | set(options))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, names, n=1)
            if close:
                hints.append(f"did you mean {close[0]!r}?" if len(unknown) == 1 else f"{key}: did you mean {close[0]!r}?")
        raise ValidationError(f"[worker] {', '.join(unknown)}",
                              f"unknown setting{'s' if len(unknown) > 1 else ''} ({'; '.join(hints + [''])}"
                              f"the loaded executors read: {', '.join(sorted(declared)) or 'none'}; "
                              f"the worker's options: {', '.join(sorted(options)) or 'none'})",
                              where=_source(unknown, sources, where))

    def check_settings(self, settings: Any, *, where: str = "worker", options: Iterable[str] = (),
                       sources: Mapping[str, str] | None = None) -> None:
        """Refuse an unknown setting (:meth:`unknown_settings`; one it cannot judge is logged
        as a WARNING naming the executors that do not declare theirs, once per key), then run
        every usable executor's ``check_settings`` on a worker's settings: the first refusal
        -> ValidationError naming ``where``, the setting (``[worker] NAME``: the checker's
        ``ValidationError`` names the setting, ``NAME``) and the reason; a checker that fails
        otherwise -> PluginError naming its plugin. ``sources`` (key -> where it came from: a
        config file, a jobs file) names a key's own source instead of ``where``: settings
        merged from several places are checked together, each key named by its place."""
        unjudged = self.unknown_settings(settings, where=where, options=options, sources=sources)
        by_source: dict[str, list[str]] = {}
        for key in unjudged:
            by_source.setdefault(_source([key], sources, where), []).append(key)
        who = ", ".join(f"{reg.name!r} from {reg.origin}" for reg in self if reg.settings is None)
        for source, keys in by_source.items():
            log.warning("%s: [worker] %s: no executor declares %s; executor(s) %s do not declare their settings "
                        "and may read %s - a typo is read by nothing", source, ", ".join(keys),
                        "this setting" if len(keys) == 1 else "these settings", who,
                        "it" if len(keys) == 1 else "them")
        for reg in self:
            if reg.check_settings is None:
                continue
            try:
                reg.check_settings(settings)
            except ValidationError as exc:
                # the field is the setting's name: "[worker] " is added here, for every executor
                # (one that adds it itself, as the built-in http did, is not prefixed twice)
                field = exc.field.removeprefix("[worker] ")
                key = field.split(" ", 1)[0]
                raise ValidationError(f"[worker] {field}", exc.reason, where=_source([key], sources, where)) from None
            except Exception as exc:
                raise PluginError(f"{where}: the settings check of executor {reg.name!r} from {reg.origin} "
                                  f"failed: {type(exc).__name__}: {exc}") from exc

    def validate(self, spec: Any, *, where: str = "") -> None:
        """Check ``spec`` with its executor's validator: unknown executor -> UnknownName; one
        two plugins provide -> NameConflict; refused -> ValidationError naming ``where``, the
        field and the reason; a validator that fails otherwise -> PluginError naming its plugin."""
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


def _source(keys: Iterable[str], sources: Mapping[str, str] | None, where: str) -> str:
    """Where ``keys`` came from (``sources``: key -> place): their one place, else ``where``."""
    places = {(sources or {}).get(key, where) for key in keys}
    return places.pop() if len(places) == 1 else where


class BalancerRegistry(Registry):
    """What ``distsched_register_balancers`` receives."""

    family = "balancer"


class FunctionRegistry(Registry):
    """Callables the ``local`` executor may run. ``add(name, func)``; also fed by the
    facade's ``@app.task`` decorator. Implements :class:`distsched.ports.FunctionLookup`."""

    family = "function"

    def add(self, name: str, factory: Callable[..., Any], *, description: str = "", replace: bool = False) -> None:
        """Register ``factory`` under ``name`` (see :meth:`Registry.add`). The same function
        registered again under its name by the same registrant is a no-op; another function
        under that name raises DuplicateRegistration naming both (``module:qualname``) unless
        ``replace=True``."""
        if not replace:
            for old in self._same_origin(name):
                if old.factory is factory:
                    return
                raise duplicate_function(name, old.factory, factory, "" if self.current == APP else str(self.current))
        if not description:
            description = (inspect.getdoc(factory) or "").split("\n", 1)[0]
        super().add(name, factory, description=description, replace=replace)

    def _same_origin(self, name: str) -> list[Registration]:
        """The registrations of ``name`` by the current registrant, stored or staged."""
        pending = self._staged if self._staged is not None else []
        return [r for r in [*self._candidates.get(("name", name), ()), *pending]
                if r.name == name and r.origin == self.current]

    def function(self, name: str) -> Callable[..., Any]:
        """The callable registered as ``name``. Raises NameConflict or UnknownName."""
        return self.get(name).factory

    def merged(self, other: FunctionRegistry) -> FunctionRegistry:
        """A registry holding this one's functions (conflicts included) and ``other``'s; a
        name of ``other`` that this one has too is refused (DuplicateRegistration)."""
        out = FunctionRegistry(allow_replace=self.allow_replace)
        out.broken = dict(self.broken)
        out.disabled = list(self.disabled)
        for reg in self.all_registrations():
            out._store(reg)
        for reg in other.all_registrations():
            taken = out._candidates.get(("name", reg.name))
            if taken:
                raise DuplicateRegistration(
                    f"function {reg.name!r} registered by {taken[0].origin} and by {reg.origin}; "
                    f"register it under another name")
            out._store(reg)
        return out


__all__ = [
    "APP", "BalancerRegistry", "Conflict", "ElectionRegistry",
    "ExecutorRegistry", "FunctionRegistry", "Origin", "Registration", "Registry", "Replacement",
    "SchemeRegistry", "StorageRegistry",
]
