"""RetryPolicy: how many attempts a task gets and how long to wait between them."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .errors import ValidationError

BACKOFFS = ("fixed", "exponential")
#: Upper bounds that keep hostile or mistyped input from producing absurd schedules.
MAX_ATTEMPTS_LIMIT = 1000
MAX_DELAY_LIMIT = 7 * 24 * 3600.0


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
    """

    max_attempts: int = attrs.field(default=1, validator=_max_attempts)
    backoff: str = attrs.field(default="exponential", validator=_backoff)
    delay: float = attrs.field(default=1.0, validator=_finite_non_negative(MAX_DELAY_LIMIT))
    max_delay: float = attrs.field(default=300.0, validator=_finite_non_negative(MAX_DELAY_LIMIT))
    jitter: float = attrs.field(default=0.0, validator=_jitter)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.delay:
            raise ValidationError(
                "max_delay", f"must be >= delay ({self.delay:g}), not {self.max_delay:g}"
            )

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
        if self.backoff == "fixed":
            base = self.delay
        else:
            # 2.0 ** 1024 overflows float maths (attempt < max_attempts <= 1000 anyway); a
            # lower bound such as 64 would be wrong for a tiny ``delay``.
            base = self.delay * 2.0 ** min(attempt - 1, 1023)
        base = min(base, self.max_delay)
        if self.jitter:
            base = base * (1.0 + self.jitter * (2.0 * rand - 1.0))
        return min(max(base, 0.0), self.max_delay)

    def to_dict(self) -> dict[str, Any]:
        return {"max_attempts": self.max_attempts, "backoff": self.backoff, "delay": self.delay,
                "max_delay": self.max_delay, "jitter": self.jitter}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(**data)
