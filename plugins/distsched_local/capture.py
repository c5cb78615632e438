"""What a task's code logs, captured for that task alone (``TaskResult.log``).

While the ``local`` executor runs a task, every :mod:`logging` record created in the task's
context - in its coroutine and the asyncio tasks it starts, in its sync function's pool
thread, in a thread it starts with its context copied - is also written, as one line, to
that attempt's :class:`Capture`. The records go where they went before (the capture is made
by a log record factory wrapping the one in place, not by a handler: no handler of the
application is added, removed or reordered, and ``logging.dictConfig`` cannot drop it).
Concurrent tasks of one worker each have their own context, so none sees another's lines.

A record is captured when its logger's level lets it through (the worker's ``-v`` / your
logger's ``setLevel``): a record the level drops is never made. Each line reads
``TIME LEVEL LOGGER: MESSAGE`` (UTC, milliseconds) plus, for a record with an exception,
the place it was raised and its last line. The capture keeps the last ``limit`` bytes
(UTF-8) and says how many earlier lines and bytes it dropped; its text has the secrets of
URLs and ``password=...`` pairs masked (:func:`distsched.masking.mask_text`) before it
leaves the worker. The task's arguments are never written by it.
"""

from __future__ import annotations

import collections
import logging
import threading
import traceback
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any

from distsched.masking import mask_text
from distsched.model import MAX_LOG_BYTES, ValidationError

#: Bytes of a task's log kept with its result unless the worker's ``log_capture`` says.
DEFAULT_LOG_CAPTURE = 16 * 1024
#: Longest line kept whole (characters): a longer message is cut, saying how much.
_LINE_CHARS = 4096


def capture_limit(value: Any) -> int:
    """The worker setting ``log_capture`` (None: the default); ValidationError naming it."""
    if value is None:
        return DEFAULT_LOG_CAPTURE
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LOG_BYTES:
        raise ValidationError("log_capture", f"must be a number of bytes from 0 (no capture) to {MAX_LOG_BYTES}, "
                                             f"not {value!r:.80}")
    return value


class Capture:
    """The last ``limit`` bytes of one attempt's log lines; thread-safe (a sync function's
    thread and the loop may write at once). Closed by :meth:`text`: a line a timed-out
    function logs afterwards is not kept."""

    __slots__ = ("_limit", "_lines", "_size", "_dropped_lines", "_dropped_bytes", "_open", "_lock")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lines: collections.deque[tuple[str, int]] = collections.deque()
        self._size = 0
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self._open = True
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        encoded = line.encode("utf-8", "backslashreplace")
        size = len(encoded) + 1  # and its newline
        if size > self._limit:  # one line bigger than the whole capture: its start, cut
            keep = encoded[:max(0, self._limit - 48)].decode("utf-8", "ignore")
            line = f"{keep}... [{len(encoded) - len(keep.encode())} more bytes]"
            size = len(line.encode("utf-8", "backslashreplace")) + 1
        with self._lock:
            if not self._open:
                return
            self._lines.append((line, size))
            self._size += size
            while self._size > self._limit and self._lines:
                _, dropped = self._lines.popleft()
                self._size -= dropped
                self._dropped_lines += 1
                self._dropped_bytes += dropped

    def text(self) -> str | None:
        """The captured lines (None: none was logged), secrets masked; closes the capture."""
        with self._lock:
            self._open = False
            lines = [line for line, _ in self._lines]
            dropped, dropped_bytes = self._dropped_lines, self._dropped_bytes
        if not lines and not dropped:
            return None
        if dropped:
            lines.insert(0, f"[log truncated: {dropped} earlier line{'s' if dropped != 1 else ''} "
                            f"({dropped_bytes} bytes) dropped; the last {self._limit} bytes are kept]")
        return mask_text("\n".join(lines))


def _exception_lines(exc: BaseException) -> list[str]:
    """Where ``exc`` was raised and its last line (``ValueError: bad``)."""
    out = []
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if frames:
        last = frames[-1]
        out.append(f'  File "{last.filename}", line {last.lineno}, in {last.name}')
    only = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n").splitlines()
    out.extend(f"  {line}" for line in only[-3:])
    return out


def line_of(record: logging.LogRecord) -> str:
    """One record as a captured line: ``TIME LEVEL LOGGER: MESSAGE`` (+ its exception)."""
    at = datetime.fromtimestamp(record.created, timezone.utc)
    try:
        message = record.getMessage()
    except Exception as exc:  # bad format arguments: logging itself would report them
        message = f"{record.msg!r:.200} (its arguments did not format: {type(exc).__name__})"
    if len(message) > _LINE_CHARS:
        message = f"{message[:_LINE_CHARS]}... [{len(message) - _LINE_CHARS} more characters]"
    line = f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z {record.levelname} {record.name}: {message}"
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None:
        line = "\n".join([line, *_exception_lines(exc_info[1])])
    return line


#: The capture of the attempt running in this context (None: no task, or capture off).
_current: ContextVar[Capture | None] = ContextVar("distsched_local_capture", default=None)
_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Wrap the process's log record factory (once) so that records made in a task's
    context are captured too."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            capture = _current.get()
            if capture is not None:
                try:
                    capture.add(line_of(record))
                except Exception:  # never fail the task's logging call
                    pass
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def start(limit: int) -> tuple[Capture, Token[Capture | None]]:
    """Capture this context's records into a new :class:`Capture` of ``limit`` bytes:
    returns ``(capture, token)`` for :func:`stop`."""
    capture = Capture(limit)
    return capture, _current.set(capture)


def stop(state: tuple[Capture, Token[Capture | None]]) -> str | None:
    """End the capture :func:`start` began; its text (None: nothing logged)."""
    capture, token = state
    _current.reset(token)
    return capture.text()


__all__ = ["DEFAULT_LOG_CAPTURE", "Capture", "capture_limit", "install", "line_of", "start", "stop"]
