"""Text output of the ``distsched`` commands that print tables (``jobs list``)."""

from __future__ import annotations

import textwrap
from datetime import timezone
from typing import Any

import click

from ..model.times import to_datetime

MEMORY_NOTE = ("note: memory:// storage lives only inside one process, so this command sees a new, empty "
               "store - not the one of a `distsched run` or `scheduler` elsewhere. Give the shared store with "
               "--storage redis://HOST:6379/0 (or $DISTSCHED_STORAGE).")

#: Column widths of ``jobs list``; longer names, schedules and targets wrap onto more lines.
NAME_WIDTH, SCHEDULE_WIDTH, TARGET_WIDTH = 24, 34, 36


def is_memory(url: str) -> bool:
    return url.split("://", 1)[0].lower() == "memory"


def note_memory(url: str, empty: bool) -> None:
    """:data:`MEMORY_NOTE` on stderr when a command read nothing (``empty``) from a
    ``memory://`` store: in a command of its own, that store is a new one, never the store of
    a ``distsched run`` or ``scheduler`` elsewhere."""
    if empty and is_memory(url):
        click.echo(MEMORY_NOTE, err=True)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def when(at: float | None, *, date: bool = True) -> str:
    """UTC time of ``at`` (``-`` for none): ``YYYY-MM-DD HH:MM:SS`` or ``HH:MM:SS``; a time
    no date can show as its number (``1000000000000.0 (no date)``)."""
    if at is None:
        return "-"
    when_ = to_datetime(at, timezone.utc)
    if when_ is None:  # no date can show it: the number, as stored
        return f"{at!r} (no date)"
    return when_.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def next_cell(row: dict[str, Any]) -> str:
    """The NEXT column of ``jobs list``: the next fire time (UTC), ``-`` for none, or the
    state of a job that does not fire - ``paused``, ``disabled`` or both - in place of the
    time it keeps stored (an old time, not one it will fire at) - and ``ended`` for a job
    whose end_date left it no slot (it stays stored until removed)."""
    if row.get("ended"):
        return "ended"
    held = [word for word, on in (("paused", row["paused"]), ("disabled", not row["enabled"])) if on]
    if held:
        return ", ".join(held)
    return when(row["next_fire_at"]) if row["next_fire_at"] else "-"


def jobs_table(rows: list[dict[str, Any]]) -> list[str]:
    """``jobs list`` as lines: name, schedule in words, executor:target and the next fire
    time (UTC) or, for a job that does not fire, its state (:func:`next_cell`); a long name,
    schedule or target wraps within its column."""
    if not rows:
        return []
    lines = [f"{'NAME':<{NAME_WIDTH}} {'SCHEDULE':<{SCHEDULE_WIDTH}} {'TARGET':<{TARGET_WIDTH}} NEXT (UTC)"]
    for row in rows:
        nxt = next_cell(row)
        name = _wrap(row["name"], NAME_WIDTH)
        schedule = _wrap(row["schedule"], SCHEDULE_WIDTH)
        target = _wrap(f"{row['executor']}:{row['target']}", TARGET_WIDTH)
        for i in range(max(len(name), len(schedule), len(target))):
            cells = [part[i] if i < len(part) else "" for part in (name, schedule, target)]
            tail = f" {nxt}" if i == 0 else ""
            lines.append(f"{cells[0]:<{NAME_WIDTH}} {cells[1]:<{SCHEDULE_WIDTH}} {cells[2]:<{TARGET_WIDTH}}{tail}".rstrip())
    return lines
