"""Events -> alerts -> the text of a message (a mail, a webhook's body).

An alert carries what the event says and nothing of the task's arguments (an event has
none: they may hold secrets). Texts from the tasks (an error) are cut to their first line,
their control characters shown escaped (a mail header or a chat line cannot be forged with
a newline or a terminal escape), and their secret-looking pairs masked
(``distsched.masking.mask_text``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import attrs

from .settings import Settings

#: Longest text of one field of an alert (an error's first line).
MAX_FIELD_CHARS = 300


def one_line(text: Any, limit: int = MAX_FIELD_CHARS) -> str:
    """The first line of ``text``, control characters escaped (``\\x1b``), masked, cut."""
    from distsched.masking import mask_text

    text = "" if text is None else str(text)
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    cleaned = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in first)
    cleaned = mask_text(cleaned)
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + "..."
    return cleaned


@attrs.frozen(kw_only=True)
class Alert:
    """One thing to tell: ``what`` (one of :data:`~distsched_alerts.settings.EVENTS`), when,
    a one-line ``title`` and the ``fields`` (name, value) shown under it."""

    what: str
    at: float
    title: str
    fields: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.what, "at": self.at, "title": self.title, **dict(self.fields)}


def alert_for(event: Any, settings: Settings) -> Alert | None:
    """The alert ``event`` calls for under ``settings``, or None."""
    kind = event.kind
    if kind == "task.finished":
        what = f"task.{event.state}"
        if what not in settings.events:
            return None
        job = one_line(event.job) if event.job else "(no job: a submitted task)"
        error_type = getattr(event, "error_type", None)
        worker = getattr(event, "worker_id", None)
        reason = getattr(event, "reason", None)  # its retry policy's filters ended it: why
        ended = f"({one_line(reason)})" if reason else "(no retry left)"
        fields = [("job", job), ("task", one_line(event.task_id)), ("attempt", f"{event.attempt} {ended}"),
                  ("outcome", event.state), ("error type", one_line(error_type) if error_type else "-"),
                  ("error", one_line(event.error) if event.error else "-"),
                  ("worker", one_line(worker) if worker else "-")]
        if settings.dashboard_url:
            fields.append(("link", f"{settings.dashboard_url}/tasks/{quote(event.task_id, safe='')}"))
        outcome = "timed out" if event.state == "timed_out" else "failed"
        detail = f": {one_line(error_type, 80)}" if error_type else ""
        return Alert(what=what, at=event.at, title=f"{job} {outcome}{detail}", fields=tuple(fields))
    if kind not in settings.events:
        return None
    if kind == "record.quarantined":
        return Alert(what=kind, at=event.at, title=f"{event.record} {one_line(event.key, 120)} {event.action}",
                     fields=(("record", event.record), ("key", one_line(event.key)), ("action", event.action),
                             ("reason", one_line(event.reason))))
    if kind == "leader.lost":
        if event.reason.startswith("shutdown"):
            return None
        return Alert(what=kind, at=event.at, title=f"leadership lost by {one_line(event.node_id, 120)}",
                     fields=(("node", one_line(event.node_id)), ("term", str(event.term)),
                             ("reason", one_line(event.reason))))
    if kind == "worker.lost":
        if event.reason == "worker left" and not event.requeued:
            return None
        return Alert(what=kind, at=event.at, title=f"worker {one_line(event.worker_id, 120)} lost",
                     fields=(("worker", one_line(event.worker_id)), ("requeued", f"{event.requeued} task(s)"),
                             ("reason", one_line(event.reason) or "-")))
    if kind == "store.data_lost":
        return Alert(what=kind, at=event.at, title="the store lost its data",
                     fields=(("node", one_line(event.node_id)),))
    return None


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


@attrs.define
class Digest:
    """The alerts of one window: the first ``limit`` listed, the others counted."""

    limit: int
    items: list[Alert] = attrs.field(factory=list)
    more: int = 0
    dropped: int = 0

    @property
    def total(self) -> int:
        return len(self.items) + self.more + self.dropped

    def add(self, alert: Alert) -> None:
        if len(self.items) < self.limit:
            self.items.append(alert)
        else:
            self.more += 1


def subject(digest: Digest, settings: Settings) -> str:
    """One line: the first alert's title, and how many more."""
    prefix = f"{settings.subject_prefix} " if settings.subject_prefix else ""
    if not digest.items:
        return f"{prefix}{digest.total} alert(s) dropped"
    first = digest.items[0].title
    rest = digest.total - 1
    return f"{prefix}{first}" + (f" (and {rest} more)" if rest else "")


def body(digest: Digest, settings: Settings, host: str) -> str:
    """The text of a message: each listed alert with its fields, then what was not listed."""
    total = digest.total
    lines = [f"distsched on {host}: {total} alert{'s' if total != 1 else ''}", ""]
    for number, alert in enumerate(digest.items, 1):
        lines.append(f"{number}. {alert.title}")
        lines.append(f"   {'at':<11} {_when(alert.at)}")
        lines += [f"   {name:<11} {value}" for name, value in alert.fields]
        lines.append("")
    if digest.more or digest.dropped:
        rest = digest.more + digest.dropped
        note = (f" ({digest.dropped} of them dropped before they were read: the alert queue of "
                f"{settings.queue_size} was full)") if digest.dropped else ""
        lines.append(f"... and {rest} more{note}.")
        lines.append("")
    lines.append(f"At most one message every {settings.min_interval:g} s; the task history has every attempt "
                 "(distsched tasks list --state failed).")
    return "\n".join(lines) + "\n"


def payload(digest: Digest, settings: Settings, host: str, items: Sequence[Alert] | None = None) -> dict[str, Any]:
    """A webhook's JSON body: ``{"text": ...}`` (Slack, Mattermost), with ``alerts`` too
    for ``webhook_format = "json"``."""
    text = f"{subject(digest, settings)}\n{body(digest, settings, host)}"
    if settings.webhook_format == "text":
        return {"text": text}
    return {"text": text, "host": host, "count": digest.total, "more": digest.more, "dropped": digest.dropped,
            "alerts": [a.to_dict() for a in (digest.items if items is None else items)]}


__all__ = ["MAX_FIELD_CHARS", "Alert", "Digest", "alert_for", "body", "one_line", "payload", "subject"]
