"""TaskResult: the immutable record of what one attempt of a task produced.

Whatever a task or an executor hands back is made safe to store here, the same way for every
backend: error texts are valid UTF-8 and capped (:data:`MAX_ERROR_CHARS`), and
:func:`json_problem` says why a value cannot be stored as JSON (a lone surrogate, an integer
too long to print, NaN, a non-JSON type, more than :data:`MAX_RESULT_BYTES`). A captured log
(``TaskResult.log``) is cleaned the same way, its control characters (but newlines and tabs)
escaped, and capped at :data:`MAX_LOG_CHARS`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from .errors import ValidationError
from .newer import ignore_newer, init_fields

#: Longest error text kept (characters); a longer one is cut, saying how much was cut.
MAX_ERROR_CHARS = 8 * 1024
#: Longest ``error_type`` kept.
MAX_ERROR_TYPE_CHARS = 200
#: Largest JSON result value kept; a bigger one makes its attempt fail.
MAX_RESULT_BYTES = 1024 * 1024
#: Most of a task's log a worker may keep with an attempt's result (its ``log_capture``
#: setting, in bytes of UTF-8): a quarter of what a result value may hold.
MAX_LOG_BYTES = 256 * 1024
#: Longest captured log a result holds (characters): :data:`MAX_LOG_BYTES` and room for the
#: line that says what was dropped; a longer one is cut like an error.
MAX_LOG_CHARS = MAX_LOG_BYTES + 1024
_INT64 = (-(1 << 63), (1 << 64) - 1)
#: Control characters a log line must not carry to a terminal or a page (an ANSI escape
#: sequence, a carriage return rewriting the line); newline and tab stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: Any, limit: int = MAX_ERROR_CHARS) -> str | None:
    """``text`` as valid UTF-8 of at most ``limit`` characters (None stays None).

    Lone surrogates and other unencodable code points become ``\\udcff``-style escapes; a
    longer text is cut with ``... [N more characters]`` at the end."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = safe_str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        cut = len(text) - limit
        text = f"{text[:limit]}... [{cut} more characters]"
    return text


def clean_error(text: Any, limit: int = MAX_ERROR_CHARS) -> str | None:
    """An error text (or error type) as a result keeps it: its control characters but newline
    and tab shown as ``\\xNN`` - an exception message holding an ANSI escape sequence or a
    carriage return must not rewrite the terminal of whoever reads it (``tasks show``,
    ``run``'s lines, a log, a mail) - then :func:`clean_text` (valid UTF-8, at most ``limit``
    characters; escaped first, so a second pass finds nothing more to escape)."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = safe_str(text)
    return clean_text(escape_controls(text), limit)


def clean_log(text: Any) -> str | None:
    """A captured log as a result keeps it: :func:`clean_text` (valid UTF-8, at most
    :data:`MAX_LOG_CHARS`), its control characters but newline and tab shown as ``\\xNN``
    (none stays none)."""
    text = clean_text(text, MAX_LOG_CHARS)
    return None if text is None else escape_controls(text)


def escape_controls(text: str) -> str:
    """``text`` with its control characters but newline and tab shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe_str(obj: Any) -> str:
    """``str(obj)``, or a placeholder naming its type when its ``__str__`` raises (a task's
    exception must never lose its result because it cannot be printed)."""
    try:
        text = str(obj)
        if not isinstance(text, str):  # pragma: no cover - str() enforces this already
            raise TypeError(f"__str__ returned {type(text).__name__}")
        return text
    except (Exception, KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
        return f"<{type(obj).__name__} object: str() raised {type(exc).__name__}>"


def error_text(exc: BaseException) -> str:
    """How a task's exception is recorded: ``Kind: message``, or ``Kind`` alone when its
    message is empty (``raise ValueError()``)."""
    kind = type(exc).__name__
    text = safe_str(exc)
    return f"{kind}: {text}" if text else kind


def json_problem(value: Any, limit: int = MAX_RESULT_BYTES) -> tuple[str, str] | None:
    """Why ``value`` cannot be stored as a JSON result, as ``(error_type, reason)`` with
    ``error_type`` ``"ResultNotJSON"`` or ``"ResultTooLarge"``; None when it can.

    The check every backend relies on (the worker applies it before a result leaves it):
    strict JSON (no NaN or Infinity, str keys), valid UTF-8 text (no lone surrogates),
    integers short enough to print, at most ``limit`` bytes encoded."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return None
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return "ResultNotJSON", f"it holds text that is not valid UTF-8 ({exc.reason} at position {exc.start})"
    except (TypeError, ValueError, RecursionError) as exc:
        return "ResultNotJSON", f"it is not JSON: {clean_text(safe_str(exc), 300)}"
    if len(encoded) > limit:
        return "ResultTooLarge", f"it is {len(encoded)} bytes of JSON; the limit is {limit}"
    return None


#: The outcomes an attempt can have. ``timed_out`` is set by the worker (or by the leader's
#: double check) when the attempt exceeded the job's timeout.
OUTCOMES = ("succeeded", "failed", "timed_out")


def _outcome(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in OUTCOMES:
        raise ValidationError("outcome", f"must be one of {', '.join(OUTCOMES)}, not {value!r}")


@attrs.frozen(kw_only=True)
class Outcome:
    """What an executor reports for one run, before the worker adds identity and timing.

    Executors return this (or raise: an exception becomes a failed, retryable outcome).
    ``retryable`` tells the retry policy whether another attempt can help (a 404 cannot);
    ``retry_after`` is a server's hint in seconds (HTTP ``Retry-After``); ``meta`` holds
    executor-specific JSON facts such as a status code or a body excerpt.
    """

    ok: bool
    value: Any = None
    error: str | None = attrs.field(default=None, converter=clean_error)
    error_type: str | None = attrs.field(default=None, converter=lambda t: clean_error(t, MAX_ERROR_TYPE_CHARS))
    retryable: bool = True
    retry_after: float | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def success(cls, value: Any = None, **meta: Any) -> Outcome:
        return cls(ok=True, value=value, meta=meta)

    @classmethod
    def failure(
        cls,
        error: str,
        *,
        error_type: str = "Error",
        retryable: bool = True,
        retry_after: float | None = None,
        **meta: Any,
    ) -> Outcome:
        if error == f"{error_type}: ":  # an exception with an empty message, worded "Kind: message"
            error = error_type
        return cls(
            ok=False,
            error=error,
            error_type=error_type,
            retryable=retryable,
            retry_after=retry_after,
            meta=meta,
        )


@attrs.frozen(kw_only=True)
class TaskResult:
    """The result of one attempt: identity (task and attempt), outcome, timing, payload.

    Times are UNIX seconds (float, UTC). ``attempt_id`` is ``"<task_id>#<dispatch>"`` and lets
    the store refuse a late result from a superseded attempt.
    """

    task_id: str
    attempt_id: str
    outcome: str = attrs.field(validator=_outcome)
    started_at: float
    finished_at: float
    worker_id: str | None = None
    value: Any = None
    error: str | None = attrs.field(default=None, converter=clean_error)
    error_type: str | None = attrs.field(default=None, converter=lambda t: clean_error(t, MAX_ERROR_TYPE_CHARS))
    retryable: bool = True
    retry_after: float | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)
    #: The worker's signature of this result (``distsched.signing``); None unsigned.
    signature: str | None = None
    #: What the task's code logged during this attempt (the ``local`` executor's capture:
    #: its last ``log_capture`` bytes, secrets masked); None: nothing captured (another
    #: executor, capture off, or a result of an earlier version).
    log: str | None = attrs.field(default=None, converter=clean_log)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    def with_log(self, log: str | None) -> TaskResult:
        """This result with ``log`` (cleaned: :func:`clean_log`) as its captured log; nothing
        else is converted again (``attrs.evolve`` would cut a cut error once more)."""
        from .trusted import unchecked

        values = {field.name: getattr(self, field.name) for field in attrs.fields(TaskResult)}
        values["log"] = clean_log(log)
        return unchecked(TaskResult, values)

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @classmethod
    def from_outcome(
        cls,
        outcome: Outcome,
        *,
        task_id: str,
        attempt_id: str,
        started_at: float,
        finished_at: float,
        worker_id: str | None = None,
    ) -> TaskResult:
        return cls(
            task_id=task_id,
            attempt_id=attempt_id,
            outcome="succeeded" if outcome.ok else "failed",
            started_at=started_at,
            finished_at=finished_at,
            worker_id=worker_id,
            value=outcome.value,
            error=outcome.error,
            error_type=outcome.error_type,
            retryable=outcome.retryable,
            retry_after=outcome.retry_after,
            meta=dict(outcome.meta),
        )

    @classmethod
    def timed_out(
        cls,
        *,
        task_id: str,
        attempt_id: str,
        started_at: float,
        finished_at: float,
        timeout: float,
        worker_id: str | None = None,
    ) -> TaskResult:
        return cls(
            task_id=task_id,
            attempt_id=attempt_id,
            outcome="timed_out",
            started_at=started_at,
            finished_at=finished_at,
            worker_id=worker_id,
            error=f"timed out after {timeout:g}s (attempt took {max(0.0, finished_at - started_at):.1f}s)",
            error_type="Timeout",
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        """A result from its dict (``to_dict()``: a worker's report, or the one a task
        stored), validated. A field this version does not know (a newer worker's) is
        dropped, with one WARNING per field per process (``distsched.model.newer``): the
        result is recorded by the fields this node knows. (A signed result: see
        ``distsched.signing``.)"""
        return cls(**ignore_newer("result", dict(data), init_fields(cls)))
