"""Rebuilding model objects from data that was validated when it was first created.

A store reads back tasks it wrote itself: running every validator again (a spec's payload
check serialises all its arguments) would cost more than reading the record. ``unchecked``
builds an instance field by field, with the class's defaults, and runs no validator,
converter or ``__attrs_post_init__``. Use it only for data the engine wrote; anything that
crossed a trust boundary (a jobs file, a submission, a worker's result) goes through the
normal constructor.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import attrs

T = TypeVar("T")
_MISSING = object()


@cache
def _builder(cls: type) -> Any:
    """A function ``build(values)`` for ``cls``, generated once (as attrs generates
    ``__init__``): one plain attribute store per field, defaults and factories inlined."""
    env: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "_cls": cls, "_M": _MISSING}
    frozen = not _plain_setattr(cls)
    lines = ["def build(values):", "    inst = _new(_cls)", "    get = values.get"]
    if frozen:
        lines.append("    _s = _set.__get__(inst)")

    def store(name: str, expr: str) -> str:
        return f"    _s({name!r}, {expr})" if frozen else f"    inst.{name} = {expr}"

    for i, field in enumerate(attrs.fields(cls)):
        name = field.name
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            env[f"_f{i}"] = default.factory
            lines += [f"    v = get({name!r}, _M)", store(name, f"_f{i}() if v is _M else v")]
        elif default is attrs.NOTHING:
            lines.append(store(name, f"values[{name!r}]"))
        else:
            env[f"_d{i}"] = default
            lines.append(store(name, f"get({name!r}, _d{i})"))
    lines.append("    return inst")
    exec("\n".join(lines), env)  # noqa: S102 - source built from the class's own field names
    return env["build"]


def _plain_setattr(cls: type) -> bool:
    """True when assigning an attribute of ``cls`` runs no validator or converter hook."""
    return all(field.validator is None and field.converter is None for field in attrs.fields(cls)) and \
        getattr(cls, "__attrs_own_setattr__", False) is False


def unchecked(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of attrs class ``cls`` with ``values`` (defaults for the others), built
    without validators. Raises ``KeyError`` for a missing mandatory field."""
    return _builder(cls)(values)  # type: ignore[no-any-return, arg-type]
