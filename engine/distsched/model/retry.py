"""RetryPolicy: how many attempts a task gets and how long to wait between them."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import attrs

from .errors import ValidationError
from .newer import init_fields, refuse_newer

BACKOFFS = ("fixed", "exponential")
#: Upper bounds that keep hostile or mistyped input from producing absurd schedules.
MAX_ATTEMPTS_LIMIT = 1000
MAX_DELAY_LIMIT = 7 * 24 * 3600.0
#: At most this many names in ``retry_on`` / ``dont_retry_on``, and delays in ``intervals``.
MAX_NAMES = 64
MAX_INTERVALS = 100
#: An exception class's bare name, as the worker reports it in ``error_type`` (``type(exc).__name__``).
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: The ``error_type`` of an attempt whose function raised :class:`Retry`: dotted, so that no
#: exception's bare name can be taken for it.
RETRY_REQUESTED = "distsched.Retry"
#: Names that would never match (an ``error_type`` is the concrete class of what was raised).
_TOO_BROAD = ("Exception", "BaseException")


def _finite_non_negative(limit: float):
    def check(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(attribute.name, f"must be a number of seconds, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValidationError(attribute.name, f"must be a finite number >= 0, not {value!r}")
        if value > limit:
            raise ValidationError(attribute.name, f"must be at most {limit:g} seconds, not {value!r}")

    return check


def _max_attempts(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("max_attempts", f"must be an integer, not {value!r}")
    if not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise ValidationError("max_attempts", f"must be between 1 and {MAX_ATTEMPTS_LIMIT}, not {value}")


def _backoff(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in BACKOFFS:
        raise ValidationError("backoff", f"must be one of {', '.join(BACKOFFS)}, not {value!r}")


def _tuple(value: Any) -> Any:
    """A list (a stored or a TOML array) as the tuple the frozen policy holds; anything else
    is left for the validator to refuse."""
    return tuple(value) if isinstance(value, list) else value


def _names(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    name = attribute.name
    if not isinstance(value, tuple):
        raise ValidationError(name, f"must be a list of exception class names, not {value!r:.80}")
    if len(value) > MAX_NAMES:
        raise ValidationError(name, f"must hold at most {MAX_NAMES} names, not {len(value)}")
    for item in value:
        if item == RETRY_REQUESTED:  # retry_on = ["distsched.Retry"]: arq's rule, only a requested retry
            if name == "dont_retry_on":
                raise ValidationError(name, f"{RETRY_REQUESTED} cannot be refused: a retry the task asks for "
                                            "is always made while attempts are left")
            continue
        if not isinstance(item, str) or not _NAME_RE.fullmatch(item):
            bare = item.rsplit(".", 1)[-1] if isinstance(item, str) and _NAME_RE.fullmatch(item.rsplit(".", 1)[-1]) \
                else "ConnectionError"
            raise ValidationError(name, f"{item!r:.80} is not an exception class's bare name (letters, digits "
                                        f"and _, not starting with a digit, 1-128 characters: write {bare} - the "
                                        f"worker reports the bare name of the class raised)")
        if item in _TOO_BROAD:
            raise ValidationError(name, f"{item} matches no failure: a name matches an exception of exactly "
                                        f"that class (not its subclasses); to retry every exception, leave "
                                        f"retry_on out")


def _intervals(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, tuple):
        raise ValidationError("intervals", f"must be a list of delays in seconds, not {value!r:.80}")
    if len(value) > MAX_INTERVALS:
        raise ValidationError("intervals", f"must hold at most {MAX_INTERVALS} delays, not {len(value)}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item) \
                or not 0 <= item <= MAX_DELAY_LIMIT:
            raise ValidationError("intervals", f"each delay must be a number of seconds from 0 to "
                                               f"{MAX_DELAY_LIMIT:g}, not {item!r:.80}")


def _jitter(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValidationError("jitter", f"must be a fraction between 0 and 1, not {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Attempts and backoff for one job.

    ``max_attempts`` counts every attempt, the first included (1 = never retry).
    The delay before attempt ``n + 1`` after attempt ``n`` failed is ``delay`` (``fixed``) or
    ``delay * 2 ** (n - 1)`` (``exponential``), capped at ``max_delay``; ``jitter`` spreads it
    by up to that fraction either way (0.1 = +-10 %). Crash re-deliveries (a worker died) are
    not attempts and are not counted here.

    ``intervals`` (RQ's ``Retry(interval=[...])``) lists the delays instead: the ``n``-th after
    attempt ``n`` failed, the last one repeated; it excludes ``backoff`` and ``delay`` (each
    interval is at most ``max_delay``; ``jitter`` spreads them too).

    ``retry_on`` / ``dont_retry_on`` (Celery's ``autoretry_for`` / ``dont_autoretry_for``) filter
    failures by the ``error_type`` their attempt reported - for a raised exception, its class's
    bare name (``type(exc).__name__``): a name matches exactly that class, not its subclasses
    (the leader, which applies the policy, has no class to ask). With ``retry_on`` set, only a
    failure whose type is listed is retried; one in ``dont_retry_on`` never is. A timed-out
    attempt's type is ``Timeout``. An attempt whose function raised :class:`Retry` (type
    ``distsched.Retry``) is retried whatever the filters say, within ``max_attempts``: so
    ``retry_on = ["distsched.Retry"]`` retries only what the task asks for (arq's rule).
    """

    max_attempts: int = attrs.field(default=1, validator=_max_attempts)
    backoff: str = attrs.field(default="exponential", validator=_backoff)
    delay: float = attrs.field(default=1.0, validator=_finite_non_negative(MAX_DELAY_LIMIT))
    max_delay: float = attrs.field(default=300.0, validator=_finite_non_negative(MAX_DELAY_LIMIT))
    jitter: float = attrs.field(default=0.0, validator=_jitter)
    retry_on: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_names)
    dont_retry_on: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_names)
    intervals: tuple[float, ...] = attrs.field(default=(), converter=_tuple, validator=_intervals)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.delay and not self.intervals:
            raise ValidationError(
                "max_delay", f"must be >= delay ({self.delay:g}), not {self.max_delay:g}"
            )
        if self.intervals:
            if self.backoff != "exponential" or self.delay != 1.0:
                raise ValidationError("intervals", "cannot be combined with backoff or delay (intervals lists "
                                                   "every delay itself: leave backoff and delay out)")
            if self.max_attempts == 1:
                raise ValidationError("intervals", "are never used with max_attempts = 1 (the default): set "
                                                   "max_attempts - RQ's Retry(max=3, interval=[...]) is max_attempts = 4")
            longest = max(self.intervals)
            if longest > self.max_delay:
                raise ValidationError("intervals", f"{longest:g} is more than max_delay ({self.max_delay:g}): "
                                                   f"raise max_delay or shorten the interval")
        both = sorted(set(self.retry_on) & set(self.dont_retry_on))
        if both:
            raise ValidationError("dont_retry_on", f"{both[0]} is in retry_on too: a name goes in one list")

    def refusal(self, error_type: str | None) -> str | None:
        """Why a failure of type ``error_type`` is not retried by the filters
        (``retry_on`` / ``dont_retry_on``), as an operator reads it; None when they let it."""
        if error_type == RETRY_REQUESTED:
            return None  # the task asked for it
        shown = error_type or "a failure without a type"
        if error_type is not None and error_type in self.dont_retry_on:
            return f"not retried: {shown} is in dont_retry_on"
        if self.retry_on and error_type not in self.retry_on:
            return f"not retried: {shown} is not in retry_on ({', '.join(self.retry_on)})"
        return None

    def delay_after(
        self, attempt: int, *, rand: float = 0.5, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, after attempt ``attempt`` (1-based) failed.

        Returns ``None`` when the policy says stop (``attempt >= max_attempts``).
        ``rand`` is a number in [0, 1) supplied by the caller (the model reads no random
        source); 0.5 means no jitter. ``retry_after`` (a server's hint) is honoured when it is
        sooner than ``max_delay``; a later hint is capped at ``max_delay``.
        """
        if attempt < 1:
            raise ValidationError("attempt", f"must be >= 1, not {attempt}")
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self.max_delay)
        if self.intervals:
            base = float(self.intervals[min(attempt, len(self.intervals)) - 1])
        elif self.backoff == "fixed":
            base = self.delay
        else:
            # 2.0 ** 1024 overflows float maths (attempt < max_attempts <= 1000 anyway); a
            # lower bound such as 64 would be wrong for a tiny ``delay``.
            base = self.delay * 2.0 ** min(attempt - 1, 1023)
        base = min(base, self.max_delay)
        if self.jitter:
            base = base * (1.0 + self.jitter * (2.0 * rand - 1.0))
        return min(max(base, 0.0), self.max_delay)

    def words(self) -> str:
        """The policy in one line, as ``explain`` and the dashboard show it."""
        if self.max_attempts == 1:
            out = "1 attempt (no retry)"
        elif self.intervals:
            waits = ", ".join(f"{v:g}s" for v in self.intervals)
            out = f"{self.max_attempts} attempts, waits {waits}" + (" (the last repeats)" if len(self.intervals) > 1
                                                                      else "")
        else:
            out = (f"{self.max_attempts} attempts, {self.backoff} backoff from {self.delay:g}s, "
                   f"at most {self.max_delay:g}s")
        if self.jitter and self.max_attempts > 1:
            out += f", jitter {self.jitter:g}"
        if self.retry_on:
            out += f"; retried only on {', '.join(self.retry_on)}"
        if self.dont_retry_on:
            out += f"; never on {', '.join(self.dont_retry_on)}"
        return out

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON; the fields this version added are left out when empty, so a
        policy without them is stored as before (and read by an earlier version)."""
        out: dict[str, Any] = {"max_attempts": self.max_attempts, "backoff": self.backoff, "delay": self.delay,
                               "max_delay": self.max_delay, "jitter": self.jitter}
        if self.retry_on:
            out["retry_on"] = list(self.retry_on)
        if self.dont_retry_on:
            out["dont_retry_on"] = list(self.dont_retry_on)
        if self.intervals:
            out["intervals"] = list(self.intervals)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, field: str = "retry") -> RetryPolicy:
        """A policy from its stored dict (``to_dict()``). A field this version does not know
        (a newer node's) is refused naming it (``<field>.<name>``): ignored, the task would
        be retried otherwise than stored (``distsched.model.newer``)."""
        refuse_newer("retry", data, init_fields(cls), field)
        return cls(**data)


class Retry(Exception):  # noqa: N818 - the name Celery's, RQ's and arq's users know
    """Raised by a task function to ask for another attempt: ``raise distsched.Retry(after=30)``.

    The attempt counts against the job's ``max_attempts`` (none left: the task fails, saying
    so); it is retried whatever ``retry_on`` / ``dont_retry_on`` say. ``after`` (seconds, or a
    ``timedelta``) is the delay before the next attempt, capped at the policy's ``max_delay``;
    without it the policy's own delay applies. ``reason`` is recorded as the attempt's error.
    """

    def __init__(self, reason: str = "", *, after: float | timedelta | None = None) -> None:
        if isinstance(after, timedelta):
            after = after.total_seconds()
        if after is not None and (isinstance(after, bool) or not isinstance(after, (int, float))
                                  or not math.isfinite(after) or not 0 <= after <= MAX_DELAY_LIMIT):
            raise ValidationError("after", f"must be a number of seconds from 0 to {MAX_DELAY_LIMIT:g} or a "
                                           f"timedelta, not {after!r:.80}")
        self.reason = str(reason)
        self.after = None if after is None else float(after)
        super().__init__(self.reason)

    def message(self) -> str:
        """The attempt's error: ``retry requested (after 30s): the upstream is busy``."""
        when = f" (after {self.after:g}s)" if self.after is not None else ""
        return f"retry requested{when}" + (f": {self.reason}" if self.reason else "")
