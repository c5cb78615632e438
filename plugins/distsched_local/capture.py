"""What a task's code logs, captured for that task alone (``TaskResult.log``).

While the ``local`` executor runs a task, every :mod:`logging` record created in the task's
context - in its coroutine and the asyncio tasks it starts, in its sync function's pool
thread, in a thread it starts with its context copied - is also written, as one line, to
that attempt's :class:`Capture`. The records go where they went before (the capture is made
by a log record factory wrapping the one in place, not by a handler: no handler of the
application is added, removed or reordered, and ``logging.dictConfig`` cannot drop it).
Concurrent tasks of one worker each have their own context, so none sees another's lines.

A record is captured when its level is at or above the worker's ``log_capture_level``
(INFO by default), even when the process's logging shows less: the root logger's WARNING
(the worker without ``-v``) does not hide a task's INFO lines from its capture, while the
console and log files still show only what they showed. In a task's context, a logger whose
level comes from the root lets a record at or above ``log_capture_level`` be made; such a
record is captured and not handled: the record factory marks it (its logger's level drops
it) and ``Logger.handle`` gives a marked record to no handler - a record a task hands to a
logger itself (``logger.handle(record)``, as a queue or socket receiver does) is handled as
before. A record factory set after the worker starts must call the one in place (as
:func:`logging.setLogRecordFactory`'s documentation shows), or nothing is captured. A level the application set on the
logger or one of its parents (not the root) still decides - a logger set to ERROR stays
ERROR -, and so do ``logging.disable`` and a disabled logger. Outside a task a dropped
record costs one context-variable read more than before, and nothing is made. Each line reads
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
#: The levels ``log_capture_level`` takes, and its default.
CAPTURE_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
DEFAULT_CAPTURE_LEVEL = logging.INFO
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


def capture_level(value: Any) -> int:
    """The worker setting ``log_capture_level`` (None: INFO) as a :mod:`logging` level;
    ValidationError naming it."""
    if value is None:
        return DEFAULT_CAPTURE_LEVEL
    if isinstance(value, str) and value.strip().upper() in CAPTURE_LEVELS:
        return CAPTURE_LEVELS[value.strip().upper()]
    raise ValidationError("log_capture_level", f"must be one of {', '.join(CAPTURE_LEVELS)}, not {value!r:.80}")


class Capture:
    """The last ``limit`` bytes of one attempt's log lines at or above ``level``; thread-safe
    (a sync function's thread and the loop may write at once). Closed by :meth:`text`: a
    line a timed-out function logs afterwards is not kept."""

    __slots__ = ("level", "_limit", "_lines", "_size", "_dropped_lines", "_dropped_bytes", "_open", "_lock")

    def __init__(self, limit: int, level: int = DEFAULT_CAPTURE_LEVEL) -> None:
        #: The lowest level captured (``log_capture_level``).
        self.level = level
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
_get_capture = _current.get
_install_lock = threading.Lock()
_installed = False


#: The methods of :class:`logging.Logger` :func:`install` wraps.
_enabled_for = logging.Logger.isEnabledFor
_handle = logging.Logger.handle


def _made_for_capture(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` that ``logger``'s level drops may still be made for the
    task's capture: only when the level that drops it is the root logger's - not a level
    the application set on this logger or a parent, nor ``logging.disable``, nor a disabled
    logger."""
    if logger.disabled or logger.manager.disable >= level:
        return False
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.level:  # a level of its own: the application's choice
            return False
        node = node.parent
    return True


def _is_enabled_for(self: logging.Logger, level: int) -> bool:
    """``Logger.isEnabledFor``, and in a capturing task's context also true for a record at or
    above ``log_capture_level`` that only the root's level would drop."""
    if self.disabled:
        return False
    try:  # Logger.isEnabledFor's own fast path (its cache), without a second call
        if self._cache[level]:  # type: ignore[attr-defined]
            return True
    except (KeyError, AttributeError):  # not cached yet (or a logging without the cache)
        if _enabled_for(self, level):
            return True
    capture = _get_capture()  # outside a task: this read is all it costs more
    return capture is not None and level >= capture.level and _made_for_capture(self, level)


#: The attribute that marks a record made for a task's capture alone (never handled, so no
#: formatter or handler ever sees it).
_CAPTURE_ONLY = "_distsched_capture_only"


def _logger_named(name: Any) -> logging.Logger | None:
    """The logger of this name (``logging.getLogger``'s), without creating one."""
    if name == logging.root.name:
        return logging.root
    logger = logging.Logger.manager.loggerDict.get(name)
    return logger if isinstance(logger, logging.Logger) else None


def _handle_record(self: logging.Logger, record: logging.LogRecord) -> None:
    """``Logger.handle``, except for a record made for a task's capture alone (marked by the
    record factory): it goes to no handler, so the handlers show what they showed."""
    if _CAPTURE_ONLY not in record.__dict__:
        _handle(self, record)


def install() -> None:
    """Wrap the process's log record factory (once) so that records made in a task's
    context are captured too, and :class:`logging.Logger`'s ``isEnabledFor`` and ``handle``
    so that a task's records at or above its ``log_capture_level`` are made (for the
    capture) even when the root logger's level drops them, without reaching a handler."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            capture = _get_capture()
            if capture is not None:
                try:
                    level = record.levelno
                    if level >= capture.level:  # None for logging.makeLogRecord's
                        capture.add(line_of(record))
                        logger = _logger_named(record.name)
                        if logger is not None and not _enabled_for(logger, level) and _made_for_capture(logger, level):
                            record.__dict__[_CAPTURE_ONLY] = True  # made for the capture alone
                except Exception:  # never fail the task's logging call
                    pass
            return record

        logging.setLogRecordFactory(factory)
        logging.Logger.isEnabledFor = _is_enabled_for  # type: ignore[method-assign]
        logging.Logger.handle = _handle_record  # type: ignore[method-assign]
        _installed = True


def start(limit: int, level: int = DEFAULT_CAPTURE_LEVEL) -> tuple[Capture, Token[Capture | None]]:
    """Capture this context's records at or above ``level`` into a new :class:`Capture` of
    ``limit`` bytes: returns ``(capture, token)`` for :func:`stop`."""
    capture = Capture(limit, level)
    return capture, _current.set(capture)


def stop(state: tuple[Capture, Token[Capture | None]]) -> str | None:
    """End the capture :func:`start` began; its text (None: nothing logged)."""
    capture, token = state
    _current.reset(token)
    return capture.text()


__all__ = ["CAPTURE_LEVELS", "DEFAULT_CAPTURE_LEVEL", "DEFAULT_LOG_CAPTURE", "Capture", "capture_level", "capture_limit",
           "install", "line_of", "start", "stop"]
