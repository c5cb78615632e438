"""The sender: a bounded queue filled by the event hook, emptied by one thread that sends.

The hook only appends to the queue under a lock (never waits on the network, never blocks
the event loop); a full queue counts the alert as dropped. The thread sends the first alert
after a quiet spell at once, then at most one message per ``min_interval`` per channel: what
came in between goes out as one digest (``max_items`` listed, the others counted). A drop,
or a channel that fails, is one WARNING per message, not one per alert. A message that
could not be sent is not retried: the task history keeps every failure.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
import weakref
from collections import deque
from typing import Any, Protocol

from distsched import hookimpl

from .alerts import Alert, Digest, alert_for, body, payload, subject
from .settings import Settings

log = logging.getLogger("distsched.alerts")
#: Every alerter of the process: at exit, each sends what it holds (waiting up to EXIT_WAIT).
_ALL: weakref.WeakSet[Alerter] = weakref.WeakSet()
EXIT_WAIT = 5.0


class Channel(Protocol):
    name: str

    def send(self, digest: Digest) -> None: ...


def _host() -> str:
    try:
        return socket.gethostname() or "?"
    except OSError:  # pragma: no cover
        return "?"


def _scrub(text: str, settings: Settings) -> str:
    """An error text with the SMTP password (should a server echo it) replaced by ***."""
    from distsched.masking import mask_text

    if settings.smtp_password:
        text = text.replace(settings.smtp_password, "***")
    return mask_text(text)


class EmailChannel:
    """One mail per digest to every ``email_to`` address (stdlib smtplib)."""

    def __init__(self, settings: Settings, host: str) -> None:
        self.settings = settings
        self.host = host
        self.name = f"email to {len(settings.email_to)} address(es) via {settings.smtp_host}:{settings.smtp_port}"

    def send(self, digest: Digest) -> None:
        import smtplib
        import ssl
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        s = self.settings
        message = EmailMessage()
        message["Subject"] = subject(digest, s)
        message["From"] = s.email_from
        message["To"] = ", ".join(s.email_to)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=s.email_from.rpartition("@")[2].rstrip(">") or None)
        message.set_content(body(digest, s, self.host))
        client: smtplib.SMTP
        if s.smtp_security == "ssl":
            client = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout)
        with client:
            if s.smtp_security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if s.smtp_user and s.smtp_password:
                client.login(s.smtp_user, s.smtp_password)
            client.send_message(message)


class WebhookChannel:
    """One HTTP POST of JSON per digest to one URL (httpx, in the sender thread)."""

    def __init__(self, settings: Settings, url: str, host: str) -> None:
        from urllib.parse import urlsplit

        self.settings = settings
        self.url = url
        self.host = host
        parts = urlsplit(url)
        # never the path or the query: a Slack webhook's path is its token
        self.name = f"webhook {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def send(self, digest: Digest) -> None:
        import httpx

        response = httpx.post(self.url, json=payload(digest, self.settings, self.host),
                              timeout=self.settings.timeout, follow_redirects=False)
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code} {response.reason_phrase}")


class Alerter:
    """One engine's alerts: :meth:`observe` (the hook's side) and the sender thread, started
    at the first alert (a process that never alerts - a worker, ``distsched status`` - starts
    no thread)."""

    def __init__(self, settings: Settings, channels: list[Any] | None = None) -> None:
        self.settings = settings
        host = _host()
        self.channels: list[Any] = channels if channels is not None else (
            ([EmailChannel(settings, host)] if settings.email_to else [])
            + [WebhookChannel(settings, url, host) for url in settings.webhook_urls])
        self._kinds = frozenset({"task.finished", "leader.lost", *settings.events})
        self._queue: deque[Alert] = deque()
        self._dropped = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._flush = False
        #: Alerts the thread holds for the end of the window (read by flush()).
        self._held = 0
        _ALL.add(self)
        #: Messages sent and failed, per channel name (for tests and a curious operator).
        self.sent: dict[str, int] = {}
        self.failed: dict[str, int] = {}

    # -- the hook's side: quick, never blocking on I/O ------------------------------------
    @hookimpl
    def distsched_event(self, event: Any) -> None:
        kind = event.kind
        if kind not in self._kinds:
            return
        if kind == "leader.lost" and event.reason.startswith("shutdown"):
            self.flush()  # the scheduler stops: what waits for its window goes out now
            return
        alert = alert_for(event, self.settings)
        if alert is not None:
            self.offer(alert)

    def offer(self, alert: Alert) -> None:
        with self._cond:
            if self._stopping:
                return
            if len(self._queue) >= self.settings.queue_size:
                self._dropped += 1
            else:
                self._queue.append(alert)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="distsched-alerts", daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self) -> None:
        """Send what is pending now, not at the end of its window."""
        with self._cond:
            if self._queue or self._dropped or self._held:
                self._flush = True
                self._cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Send what is pending now (not waiting for the window) and end the thread; wait
        for it up to ``timeout`` seconds (None: do not wait)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify()
        if thread is not None and timeout is not None:
            thread.join(timeout)

    # -- the sender thread ------------------------------------------------------------------
    def _run(self) -> None:
        settings = self.settings
        next_send = 0.0
        while True:
            digest = Digest(limit=settings.max_items)
            with self._cond:
                while True:
                    while self._queue:
                        digest.add(self._queue.popleft())
                    digest.dropped += self._dropped
                    self._dropped = 0
                    self._held = digest.total
                    now = time.monotonic()
                    if self._stopping or (digest.total and (now >= next_send or self._flush)):
                        break
                    self._cond.wait(next_send - now if digest.total else None)
                stopping, self._flush, self._held = self._stopping, False, 0
            if digest.total:
                self._send(digest)
                next_send = time.monotonic() + settings.min_interval
            if stopping:
                return

    def _send(self, digest: Digest) -> None:
        if digest.dropped:
            log.warning("alerts: %d alert(s) dropped since the last message: the queue of %d (queue_size) was full; "
                        "the message counts them", digest.dropped, self.settings.queue_size)
        for channel in self.channels:
            try:
                channel.send(digest)
            except Exception as exc:  # one WARNING per message and channel, never a traceback
                self.failed[channel.name] = self.failed.get(channel.name, 0) + 1
                reason = _scrub(f"{type(exc).__name__}: {exc}".splitlines()[0][:300], self.settings)
                log.warning("alerts: could not send %d alert(s) by %s: %s (not retried; next message in %gs at "
                            "the earliest)", digest.total, channel.name, reason, self.settings.min_interval)
            else:
                self.sent[channel.name] = self.sent.get(channel.name, 0) + 1


@atexit.register
def _at_exit() -> None:
    for alerter in list(_ALL):
        alerter.stop()
    deadline = time.monotonic() + EXIT_WAIT
    for alerter in list(_ALL):
        thread = alerter._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))


__all__ = ["EXIT_WAIT", "Alerter", "Channel", "EmailChannel", "WebhookChannel"]
