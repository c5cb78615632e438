"""Fields of a stored record that a newer distsched node wrote and this one does not know.

Rolling upgrades: a node of the next version adds fields to the records it writes (this
version added ``log`` to results, ``retry_of`` to specs, ``retry_on`` and ``intervals`` to
retry policies, ``start_date``/``end_date``/``jitter`` to triggers). A node of this version
reading such a record decides by the record's kind, never by the field (it cannot know what
a field it has never seen means):

* **informational kinds** (:data:`IGNORED`: a worker's or a scheduler's registration, a
  task's result - stored or reported -, an attempt record, a quarantine entry): the field is
  dropped (:func:`ignore_newer`) and the record read without it, with ONE WARNING per
  (record kind, field name) per process. Nothing of what runs when hangs on them: a result
  is recorded by the fields this node knows (its outcome, error, retryable, retry_after), a
  worker is routed to by the functions and executors it advertises and checks what it
  receives itself. Refusing them instead would lose a newer worker's every result (its task
  timed out and ran again) and every worker.
* **kinds that decide what runs when** (:data:`REFUSED`: a job's config and its trigger,
  misfire and overlap policies, a task, its spec and its retry policy): the record is
  refused (:func:`refuse_newer`, a :class:`ValidationError` naming the field), so that the
  store puts it aside like any record it cannot decode (``distsched quarantine list`` names
  the field) - a job fired on another schedule, a task run with another timeout or retried
  another way than the node that wrote it promised, without a word, is worse than a job
  that does not fire until every node runs the version that wrote it.

A field of a known name with a bad value is refused as before, whatever the kind. A signed
record (``distsched.signing``) is checked on the fields this node knows: see there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from ..__about__ import __version__
from .errors import ValidationError

log = logging.getLogger("distsched.upgrade")

#: The record kinds read without a field they do not know (one WARNING per kind and field).
IGNORED = ("worker", "scheduler", "result", "attempt", "quarantine entry")
#: The record kinds refused (put aside naming the field) for a field they do not know.
REFUSED = ("job", "trigger", "misfire", "overlap", "task", "spec", "retry")

#: (kind, field) pairs already warned about in this process. Bounded: a store written by a
#: hostile client could hold a million distinct names; past the bound, one last WARNING says
#: that further ones are dropped without a word.
_warned: set[tuple[str, str]] = set()
MAX_WARNED = 1000


def ignore_newer(kind: str, data: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """``data`` without the fields ``known`` does not hold (the same dict, changed in place:
    a decoder's own copy), each logged as a WARNING the first time this process meets it in
    a record of ``kind``. Cheap when there is none (the leader reads thousands a second)."""
    if known.issuperset(data):
        return data
    for name in [name for name in data if name not in known]:
        del data[name]
        _warn(kind, name)
    return data


def _warn(kind: str, name: Any) -> None:
    key = (kind, name if isinstance(name, str) else repr(name))
    if key in _warned:
        return
    if len(_warned) >= MAX_WARNED:
        if len(_warned) == MAX_WARNED:
            _warned.add(("", ""))
            log.warning("%d fields unknown to this version were met in stored records; "
                        "further ones are dropped without a warning", MAX_WARNED)
        return
    _warned.add(key)
    log.warning("%s record: ignored its field %.80r, which this version (distsched %s) does not know: "
                "a newer distsched node wrote it; the record is read without it", kind, name, __version__)


def refuse_newer(kind: str, data: Mapping[str, Any], known: frozenset[str], field: str = "") -> None:
    """Raise :class:`ValidationError` naming the first field of ``data`` (a record of
    ``kind``) that ``known`` does not hold, as ``field.<name>`` (``field``: where the record
    sits in the one read, "trigger", "spec.retry"...). Nothing when every field is known."""
    if known.issuperset(data):
        return
    for name in data:
        if name not in known:
            where = f"{field}." if field else ""
            raise ValidationError(
                f"{where}{str(name)[:80]}",
                f"unknown to this version (distsched {__version__}): a newer distsched node wrote this {kind} "
                f"record, and ignoring the field could change what runs when: upgrade this node")


_FIELDS: dict[type, frozenset[str]] = {}


def init_fields(cls: type) -> frozenset[str]:
    """The names the constructor of the attrs class ``cls`` takes: what its records hold."""
    known = _FIELDS.get(cls)
    if known is None:
        known = _FIELDS[cls] = frozenset(f.alias for f in attrs.fields(cls) if f.init)
    return known


def newer_fields_warned() -> frozenset[tuple[str, str]]:
    """The (kind, field) pairs this process warned about (for tests and diagnostics)."""
    return frozenset(_warned - {("", "")})


__all__ = ["IGNORED", "MAX_WARNED", "REFUSED", "ignore_newer", "init_fields", "newer_fields_warned", "refuse_newer"]
