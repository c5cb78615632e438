"""Worker: a process that executes tasks from its own queue, within its capacity."""

from __future__ import annotations

from typing import Any

import attrs

from .errors import ValidationError, WorkerFull
from .newer import ignore_newer, init_fields
from .spec import NAME_RE
from .times import valid_time

DEFAULT_CONCURRENCY = 8
DEFAULT_HEARTBEAT_TTL = 10.0
#: The most tasks a worker runs at once, and holds (queued + running).
MAX_CONCURRENCY = 10_000
MAX_CAPACITY = 1_000_000
#: The most function and executor names a worker may advertise. Each name is one a registry
#: accepts (``NAME_RE``: at most 128 characters, no space, control character or markup). The
#: leader reads every worker's record each pass (every few hundred ms), so a record is bounded
#: at decode: 4,096 names of 128 characters are 0.5 MB. A worker whose application registers
#: more functions refuses to start, naming the field; a record beyond them (written by hand or
#: by a peer) is refused like any undecodable one and put aside.
MAX_FUNCTIONS = 4096
MAX_EXECUTORS = 256


def check_capacity(concurrency: int, capacity: int) -> None:
    """A worker's configured capacity holds at least what it runs at once: refused before it
    starts (a worker under it could never register)."""
    if capacity < concurrency:
        raise ValidationError("capacity", f"must be at least concurrency ({concurrency}), not {capacity}")


def _positive_int(limit: int):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValidationError(attribute.name, f"must be an integer between 1 and {limit}, not {value!r}")

    return check


def _of_type(kind: type, text: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise ValidationError(attribute.name, f"must be {text}, not {value!r}")

    return check


def _names(field: str, what: str, limit: int, value: Any) -> tuple[str, ...]:
    """A list of at most ``limit`` registry names (the error quotes only the offending name,
    cut: the list may be megabytes)."""
    if not isinstance(value, (list, tuple)):
        raise ValidationError(field, f"must be a list of {what} names, not {value!r:.80}")
    if len(value) > limit:
        raise ValidationError(field, f"must list at most {limit} {what} names, not {len(value)}")
    for name in value:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):  # match: "$" takes a final "\n"
            raise ValidationError(field, f"must be a list of {what} names (1-128 characters of letters, digits, "
                                         f"'_', '-', '.', ':'): {name!r:.80} is not one")
    return tuple(value)


def _function_names(value: Any) -> tuple[str, ...]:
    return _names("functions", "function", MAX_FUNCTIONS, value)


def _executor_names(value: Any) -> tuple[str, ...]:
    return _names("executors", "executor", MAX_EXECUTORS, value)


def _interval(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 < value < float("inf")):
        raise ValidationError("heartbeat_interval", f"must be a number of seconds > 0, not {value!r}")


def heard_within(heartbeat: float, now: float, ttl: float) -> bool:
    """A heartbeat within ``ttl`` of ``now`` (the store's clock, which heartbeats are written
    in), either side. One more than ``ttl`` ahead of it is no sign of life but a broken record
    (``+inf``, a year ahead: a worker that would never be reaped and kept getting tasks), and
    NaN is none either. The leader's rule for workers, and ``status``'s for every node."""
    return -ttl <= now - heartbeat <= ttl


@attrs.define(kw_only=True)
class Worker:
    """A registered worker and its load.

    ``concurrency`` is how many tasks it executes at once; ``capacity`` is how many it may
    hold (queued + running); ``functions`` are the names its ``local`` executor runs, and
    ``executors`` the executors it has.
    ``load`` is the number it holds now. ``blocked`` is how many of its execution slots are held by attempts that are over but cannot be stopped (a timed-out
    sync function's thread runs on): its capacity shrinks in proportion, and a worker whose
    every slot is blocked accepts nothing. A worker is healthy while its last heartbeat is
    younger than the heartbeat TTL and it is not draining.
    """

    id: str
    host: str = attrs.field(default="", validator=_of_type(str, "text"))
    pid: int = attrs.field(default=0, validator=_of_type(int, "an integer"))
    concurrency: int = attrs.field(default=DEFAULT_CONCURRENCY, validator=_positive_int(MAX_CONCURRENCY))
    capacity: int = attrs.field(validator=_positive_int(MAX_CAPACITY))
    load: int = attrs.field(default=0, validator=_of_type(int, "an integer"))
    # a start time no date can show took down the dashboard's overview and workers pages
    started_at: float = attrs.field(validator=valid_time)
    last_heartbeat: float = attrs.field()
    draining: bool = False
    blocked: int = attrs.field(default=0, validator=attrs.validators.and_(
        attrs.validators.instance_of(int), attrs.validators.ge(0)))
    #: The worker checks the leader's signatures (it has a signing key).
    signed: bool = attrs.field(default=False, validator=_of_type(bool, "true or false"))
    #: The function names its ``local`` executor can run (advertised at registration, so the
    #: leader sends a ``local`` task to a worker that offers its function).
    functions: tuple[str, ...] = attrs.field(default=(), converter=_function_names)
    #: The executors it has (advertised at registration, so the leader sends a task to a
    #: worker that has its executor). Empty: not said - a worker of an earlier version, taken
    #: to have every executor and to offer every function.
    executors: tuple[str, ...] = attrs.field(default=(), converter=_executor_names)
    #: Seconds between its heartbeats, as it registered (None: not said; the leader then
    #: assumes its own setting). The leader chooses no worker silent for two of them.
    heartbeat_interval: float | None = attrs.field(default=None, validator=_interval)
    #: ``functions`` as a set, and the tuple it was built from: the leader asks ``may_offer``
    #: per worker and function each pass, which scanned the tuple (0.5 ms for 50,000 names).
    #: Not part of the record (no init, no equality, not stored).
    _function_set: tuple[tuple[str, ...], frozenset[str]] | None = attrs.field(
        init=False, default=None, eq=False, repr=False)

    def may_have(self, executor: str) -> bool:
        """It has the executor, or may have it: a worker of an earlier version does not say."""
        return not self.executors or executor in self.executors

    def may_offer(self, function: str) -> bool:
        """Its ``local`` executor runs ``function``, or may: it advertises the function (and
        has ``local``), or it is a worker of an earlier version, which says neither its
        functions nor its executors. A worker that says its executors and no function (one
        dedicated to a plugin's executor) offers none."""
        if not self.functions:
            return not self.executors
        index = self._function_set
        if index is None or index[0] is not self.functions:
            index = self._function_set = (self.functions, frozenset(self.functions))
        return function in index[1] and (not self.executors or "local" in self.executors)

    def is_fresh(self, now: float, default_interval: float, ttl: float = DEFAULT_HEARTBEAT_TTL) -> bool:
        """Its last heartbeat is younger than two of its heartbeat intervals (at most ``ttl``):
        a worker that missed more than one beat may be dead (``kill -9``) - do not send it
        work, though it is reaped only after ``ttl``."""
        interval = self.heartbeat_interval or default_interval
        return self.is_alive(now, min(ttl, 2 * interval))

    @capacity.default
    def _capacity_default(self) -> int:
        # Room for a batch in the queue while `concurrency` tasks run.
        return max(self.concurrency * 4, 64)

    @last_heartbeat.default
    def _hb_default(self) -> float:
        return self.started_at

    def __attrs_post_init__(self) -> None:
        check_capacity(self.concurrency, self.capacity)

    @property
    def usable_capacity(self) -> int:
        """``capacity`` shrunk by the share of execution slots that are blocked."""
        if not self.blocked:
            return self.capacity
        free_slots = max(0, self.concurrency - self.blocked)
        return self.capacity * free_slots // self.concurrency

    @property
    def free(self) -> int:
        return max(0, self.usable_capacity - self.load)

    def is_alive(self, now: float, ttl: float = DEFAULT_HEARTBEAT_TTL) -> bool:
        """:func:`heard_within` ``ttl`` of ``now``."""
        return heard_within(self.last_heartbeat, now, ttl)

    def can_accept(self, now: float | None = None, ttl: float = DEFAULT_HEARTBEAT_TTL) -> bool:
        """True when the worker is healthy (if ``now`` is given), not draining and not full."""
        if self.draining or self.load >= self.usable_capacity:
            return False
        return now is None or self.is_alive(now, ttl)

    def accept(self, task_id: str = "") -> None:
        """Take one more task; refuses beyond capacity or while draining."""
        if self.draining:
            raise WorkerFull(f"worker {self.id!r} is draining and accepts no task {task_id!r}")
        if self.load >= self.usable_capacity:
            raise WorkerFull(f"worker {self.id!r} is full ({self.load}/{self.usable_capacity}); cannot accept {task_id!r}")
        self.load += 1

    def complete(self, task_id: str = "") -> None:
        """One task it held is finished or taken away."""
        self.load = max(0, self.load - 1)

    def heartbeat(self, now: float, load: int | None = None) -> None:
        self.last_heartbeat = max(self.last_heartbeat, now)
        if load is not None:
            self.load = load

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda field, value: field.init)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Worker:
        """A worker from its stored record, validated. A field this version does not know
        (a newer worker's registration) is dropped, with one WARNING per field per process
        (``distsched.model.newer``): the worker is routed to by what this node knows."""
        return cls(**ignore_newer("worker", dict(data), init_fields(cls)))
