"""Jobs files as the source of truth: the plan that makes the stored jobs equal a file.

Pure: :func:`plan_sync` compares the stored jobs with the wanted ones and says what to add,
update (with the fields that change, old and new) and - with ``prune`` - remove. The facade's
``sync_jobs`` computes the plan and applies it (unless it is a dry run).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .job import TaskConfig


@attrs.frozen(kw_only=True)
class FieldChange:
    """One field of a job that a sync changes: its name as in the jobs file, old and new value."""

    field: str
    old: Any
    new: Any


@attrs.frozen(kw_only=True)
class JobChange:
    name: str
    changes: tuple[FieldChange, ...]


@attrs.frozen(kw_only=True)
class SyncPlan:
    """What a sync does (or, for a dry run, would do).

    ``added``: names in the file and not stored; ``updated``: stored jobs the file changes,
    with the changed fields; ``removed``: stored jobs not in the file, removed because of
    ``prune``; ``kept``: stored jobs not in the file that stay (no ``prune``);
    ``unchanged``: jobs equal in both. ``applied`` is False for a dry run.

    An applied plan says what this sync itself wrote: ``concurrent`` names the jobs it was to
    add, update or remove that another node (a sync at the same moment: schedulers started
    together with one file) had already made as the file wants when this one came to write
    them - left as they were, and listed in ``unchanged`` too unless removed.
    """

    added: tuple[str, ...] = ()
    updated: tuple[JobChange, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    prune: bool = False
    applied: bool = False
    concurrent: tuple[str, ...] = ()

    @property
    def changes(self) -> int:
        """How many jobs the sync adds, updates or removes."""
        return len(self.added) + len(self.updated) + len(self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "updated": [{"name": c.name, "changes": [{"field": f.field, "old": _json(f.old), "new": _json(f.new)}
                                                     for f in c.changes]} for c in self.updated],
            "removed": list(self.removed), "kept": list(self.kept), "unchanged": list(self.unchanged),
            "prune": self.prune, "applied": self.applied, "concurrent": list(self.concurrent),
        }


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return _json(value.to_dict())
    if attrs.has(type(value)):
        return _json(attrs.asdict(value, recurse=False))
    return value


#: Field paths of a TaskConfig -> the name the jobs file uses for them.
_NAMES = {"misfire.mode": "misfire", "misfire.grace": "misfire_grace", "overlap.mode": "overlap",
          "overlap.max_instances": "max_instances", "overlap.max_backlog": "max_backlog"}


def job_view(config: TaskConfig) -> dict[str, Any]:
    """A job as flat ``{jobs-file field: value}`` (the trigger as one ``schedule`` field)."""
    out: dict[str, Any] = {"schedule": config.trigger}
    for name, value in (("spec", config.spec), ("misfire", config.misfire), ("overlap", config.overlap)):
        for field in attrs.fields(type(value)):
            key = f"{name}.{field.name}"
            out[_NAMES.get(key, field.name if name == "spec" else key)] = getattr(value, field.name)
    out["enabled"] = config.enabled
    out["description"] = config.description
    return out


def job_changes(old: TaskConfig, new: TaskConfig) -> tuple[FieldChange, ...]:
    """The fields that differ between two versions of a job, in a stable order."""
    a, b = job_view(old), job_view(new)
    return tuple(FieldChange(field=k, old=a.get(k), new=b.get(k)) for k in b if a.get(k) != b.get(k))


def plan_sync(stored: Iterable[TaskConfig], wanted: Iterable[TaskConfig], *, prune: bool) -> SyncPlan:
    """The plan that makes ``stored`` equal ``wanted`` (names must be distinct in ``wanted``)."""
    current = {c.name: c for c in stored}
    added: list[str] = []
    updated: list[JobChange] = []
    unchanged: list[str] = []
    names: set[str] = set()
    for config in wanted:
        names.add(config.name)
        old = current.get(config.name)
        if old is None:
            added.append(config.name)
        elif attrs.evolve(old, version=0) == attrs.evolve(config, version=0):
            unchanged.append(config.name)
        else:
            updated.append(JobChange(name=config.name, changes=job_changes(old, config)))
    extra = tuple(sorted(n for n in current if n not in names))
    return SyncPlan(added=tuple(added), updated=tuple(updated), unchanged=tuple(unchanged),
                    removed=extra if prune else (), kept=() if prune else extra, prune=prune)
