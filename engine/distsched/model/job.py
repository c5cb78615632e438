"""TaskConfig (a job): a trigger, the call it makes, and its misfire and overlap policies.

The config is the aggregate that creates tasks: ``create_task(slot, now)`` gives the task for
a schedule slot a deterministic id, and ``plan(...)`` decides, for the slots that came due,
which ones fire and which are recorded as skipped (misfire policy, DST gap).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import attrs

from .errors import ValidationError
from .newer import init_fields, refuse_newer
from .spec import TaskSpec, check_name
from .task import Task, slot_task_id
from .times import valid_time
from .trigger import Slot, Trigger, trigger_from_dict

MISFIRE_MODES = ("skip", "fire-once", "fire-all")
OVERLAP_MODES = ("parallel", "serial", "discard", "replace")
#: At most this many slots are planned for one job in one pass; the rest come next pass.
MAX_SLOTS_PER_PASS = 1000
MAX_DESCRIPTION = 4096


def _choice(options: tuple[str, ...], field: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            raise ValidationError(field, f"must be one of {', '.join(options)}, not {value!r}")

    return check


def _grace(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 366 * 86400:
        raise ValidationError("misfire_grace", f"must be a number of seconds >= 0, not {value!r}")


#: A stored NaN (PostgreSQL's float8 takes it; float("nan") reads it from Redis) sorted after
#: every slot: the job never came due again, without a word; 1e12 (year 33658) took down
#: `jobs list` and the dashboard's jobs pages ("year 33658 is out of range").
_time_or_none = attrs.validators.optional(valid_time)


def jitter_delay(job: str, slot: float, jitter: float) -> float:
    """How long the start of ``job``'s slot at ``slot`` is delayed, from 0 to ``jitter``
    seconds (to the millisecond): a pseudo-random draw that is a function of the job's name
    and the slot alone (a hash of the slot's task id), so that every leader - the one that
    takes over after a failover, or an ``explain`` anywhere - computes the same start."""
    if not jitter:
        return 0.0
    digest = hashlib.sha256(slot_task_id(job, slot).encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0 ** 64  # [0, 1)
    return min(jitter, round(fraction * jitter, 3))


def _just_before(t: float) -> float:
    """The latest time before ``t`` that a trigger tells apart from it, so that the slot at
    ``t`` is the first one after it. A cron trigger reads a time to the microsecond (a
    datetime): the float just below ``t`` reads as ``t`` itself while a float holds less
    than a microsecond, so 1 us before; after year 2514 (2**34 s) a float no longer holds
    one (``t - 1e-6 == t``: the slot at ``t`` was skipped), so the float just below."""
    return min(t - 1e-6, math.nextafter(t, -math.inf))


@attrs.frozen(kw_only=True)
class MisfirePolicy:
    """What happens to slots that came due while no leader ran.

    A slot fired no later than ``grace`` seconds after its time is on time. Older slots are
    *missed*: ``skip`` records them as skipped; ``fire-once`` runs one task for all of them
    (the on-time slot if there is one, else the latest missed one) and records the others as
    coalesced; ``fire-all`` runs every one.
    """

    mode: str = attrs.field(default="fire-once", validator=_choice(MISFIRE_MODES, "misfire"))
    grace: float = attrs.field(default=60.0, validator=_grace)


def _max_instances(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ValidationError("max_instances", f"must be an integer between 1 and 10000, not {value!r}")


#: A ``serial`` job's default ``max_backlog``: slots that may wait beyond ``max_instances``.
#: Measured with a backlog (a serial job every 1 s behind a downtime, misfire fire-all): Redis
#: holds 2-2.6 KB per waiting task, and the leader reads the job's live tasks whole at each of
#: its dispatches (86 ms at 2,000 waiting, 333 ms at 10,000 on Redis; 5 ms at 100). (Every
#: store holds waiting slots out of the ready queue: before, more than ``dispatch_batch``
#: (500) of them held back every task behind them.) 100 keeps each of those small - a job
#: that falls 100 slots behind is not catching up - while a short burst (a slow run, a
#: downtime of up to 100 intervals with ``fire-all``) still waits and runs.
DEFAULT_MAX_BACKLOG = 100
MAX_BACKLOG_LIMIT = 1_000_000


def _max_backlog(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BACKLOG_LIMIT:
        raise ValidationError("max_backlog", f"must be an integer between 0 and {MAX_BACKLOG_LIMIT}: the "
                                             f"number of slots of a serial job that may wait, not {value!r}")


@attrs.frozen(kw_only=True)
class OverlapPolicy:
    """What happens when a slot fires while ``max_instances`` tasks of the job are still live.

    ``parallel``  no limit: every slot runs (``max_instances`` is ignored);
    ``serial``    the new task waits (pending) until a live one finishes - at most
                  ``max_backlog`` of them wait: a slot fired beyond that is recorded as
                  skipped (``overlap: backlog full (max_backlog = N)``), by the store in
                  the step that fires it;
    ``discard``   the new slot is recorded as skipped;
    ``replace``   the oldest live task is cancelled and the new one runs.
    """

    mode: str = attrs.field(default="parallel", validator=_choice(OVERLAP_MODES, "overlap"))
    max_instances: int = attrs.field(default=1, validator=_max_instances)
    #: Read by ``serial`` only (as ``max_instances`` is ignored by ``parallel``).
    max_backlog: int = attrs.field(default=DEFAULT_MAX_BACKLOG, validator=_max_backlog)

    @property
    def serial_backlog(self) -> int | None:
        """``max_backlog`` of a ``serial`` job (None for the other modes): what a firing carries."""
        return self.max_backlog if self.mode == "serial" else None

    def decide(self, live: int) -> str:
        """``fire``, ``queue``, ``discard`` or ``replace`` for a new slot, given live tasks."""
        if self.mode == "parallel" or live < self.max_instances:
            return "fire"
        return {"serial": "queue", "discard": "discard", "replace": "replace"}[self.mode]


@attrs.frozen
class PlannedSlot:
    """A slot the leader must record: ``fire`` it, or record it skipped with ``reason``."""

    at: float
    fire: bool
    reason: str | None = None


@attrs.frozen
class FirePlan:
    slots: tuple[PlannedSlot, ...]
    #: The job's next slot after this pass (None: the trigger is exhausted).
    next_fire_at: float | None


@attrs.define(kw_only=True)
class TaskConfig:
    """A job definition. ``version`` is the store's optimistic version (0 = never stored)."""

    name: str = attrs.field()
    trigger: Trigger | None = None
    spec: TaskSpec
    enabled: bool = attrs.field(default=True)
    misfire: MisfirePolicy = attrs.field(factory=MisfirePolicy)
    overlap: OverlapPolicy = attrs.field(factory=OverlapPolicy)
    description: str = attrs.field(default="")
    version: int = 0

    @name.validator
    def _check_name(self, attribute: attrs.Attribute, value: Any) -> None:
        check_name("name", value)

    @enabled.validator
    def _check_enabled(self, attribute: attrs.Attribute, value: Any) -> None:
        # a stored "false" (written by something other than distsched) was true to every
        # reader: the pages and jobs list said enabled, a sync or an update stored it enabled
        if not isinstance(value, bool):
            raise ValidationError("enabled", f"must be true or false, not {value!r}")

    @description.validator
    def _check_description(self, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
            raise ValidationError("description", f"must be text of at most {MAX_DESCRIPTION} characters")

    def __attrs_post_init__(self) -> None:
        if self.spec.balance_key is None:
            self.spec = attrs.evolve(self.spec, balance_key=self.name)

    # -- schedule ------------------------------------------------------------------
    def next_fire_after(self, t: float) -> float | None:
        """The first slot strictly after ``t`` (UNIX seconds), skipped or not."""
        if self.trigger is None:
            return None
        slot = self.trigger.next_after(t)
        return None if slot is None else slot.at

    def start_at(self, slot: float) -> float:
        """When the task of the slot at ``slot`` may start: the slot itself delayed by the
        trigger's ``jitter`` (:func:`jitter_delay`); the slot stays its identity."""
        jitter = getattr(self.trigger, "jitter", 0.0)
        return round(slot + jitter_delay(self.name, slot, jitter), 3) if jitter else slot

    def ended(self, next_fire_at: float | None) -> bool:
        """The job has an ``end_date`` and no slot left inside it (its stored next slot is
        none, or after the end): listed as ended, not with a next time."""
        end = getattr(self.trigger, "end", None)
        return end is not None and (next_fire_at is None or next_fire_at > end)

    def upcoming(self, after: float, count: int) -> list[Slot]:
        """The next ``count`` slots after ``after`` (for ``distsched explain``)."""
        out: list[Slot] = []
        t = after
        while self.trigger is not None and len(out) < count:
            slot = self.trigger.next_after(t)
            if slot is None:
                break
            out.append(slot)
            t = slot.at
        return out

    def plan(self, next_fire_at: float, until: float, limit: int = MAX_SLOTS_PER_PASS, *,
             now: float | None = None) -> FirePlan:
        """Decide the fate of every slot from ``next_fire_at`` up to ``until``.

        Applies the DST gap policy (via the trigger) and the misfire policy, a slot's lateness
        measured at ``now`` (default ``until``; a leader plans up to ``fire_ahead`` beyond
        ``now``, and a slot not yet come is never late). Every slot in the range comes back,
        fired or skipped with a reason, so none is silently lost. At most ``limit`` slots are
        planned; ``next_fire_at`` of the plan then points at the rest.
        """
        if self.trigger is None:
            return FirePlan((), None)
        due: list[Slot] = []
        slot: Slot | None = self.trigger.next_after(_just_before(next_fire_at))
        while slot is not None and slot.at <= until and len(due) < limit:
            due.append(slot)
            slot = self.trigger.next_after(slot.at)
        nxt = slot.at if slot is not None else None
        now = until if now is None else now
        grace = self.misfire.grace
        mode = self.misfire.mode
        runnable = [s for s in due if s.skip is None]
        missed = [s for s in runnable if now - s.at > grace]
        on_time = [s for s in runnable if now - s.at <= grace]
        keep: set[float] = {s.at for s in on_time}
        reasons: dict[float, str] = {s.at: s.skip for s in due if s.skip}
        if mode == "fire-all":
            keep.update(s.at for s in missed)
        elif mode == "fire-once":
            # When ``limit`` cut the range short, a later pass plans the later due slots and
            # fires the one run: firing the latest missed slot of this part too would run twice.
            more_due = nxt is not None and nxt <= until
            if missed and not on_time and not more_due:
                keep.add(missed[-1].at)
            for s in missed:
                if s.at not in keep:
                    reasons[s.at] = "misfire: coalesced"
        else:
            for s in missed:
                reasons[s.at] = "misfire: skipped"
        planned = tuple(
            PlannedSlot(s.at, True) if s.at in keep else PlannedSlot(s.at, False, reasons.get(s.at, "skipped"))
            for s in due
        )
        return FirePlan(planned, nxt)

    # -- tasks ---------------------------------------------------------------------
    def create_task(self, slot: float, now: float) -> Task:
        """The task for schedule slot ``slot``, with the deterministic id of that slot.

        It may not start before its slot (``not_before``) - delayed by the job's jitter
        (:meth:`start_at`): a leader that fires a little ahead lets the worker start it on time."""
        serial = self.overlap.max_instances if self.overlap.mode == "serial" else None
        return Task(id=slot_task_id(self.name, slot), spec=self.spec, job=self.name, slot=slot,
                    created_at=now, not_before=self.start_at(slot), serial_limit=serial)

    def skipped_task(self, slot: float, reason: str, now: float) -> Task:
        return Task.skipped(id=slot_task_id(self.name, slot), spec=self.spec, job=self.name,
                            slot=slot, reason=reason, now=now)

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trigger": self.trigger.to_dict() if self.trigger is not None else None,
            "spec": self.spec.to_dict(),
            "enabled": self.enabled,
            "misfire": {"mode": self.misfire.mode, "grace": self.misfire.grace},
            "overlap": {"mode": self.overlap.mode, "max_instances": self.overlap.max_instances,
                        "max_backlog": self.overlap.max_backlog},
            "description": self.description,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskConfig:
        """A job from its stored dict (``to_dict()``). A field this version does not know -
        of the job, its trigger, misfire or overlap policy, its spec or retry policy: a
        newer node's - is refused naming it (``ValidationError``; the store puts the job
        aside): ignored, the job would fire, run or retry otherwise than stored
        (``distsched.model.newer``)."""
        refuse_newer("job", data, _JOB_FIELDS)
        misfire = data.get("misfire", {})
        overlap = data.get("overlap", {})
        if isinstance(misfire, dict):
            refuse_newer("misfire", misfire, init_fields(MisfirePolicy), "misfire")
        if isinstance(overlap, dict):
            refuse_newer("overlap", overlap, init_fields(OverlapPolicy), "overlap")
        return cls(
            name=data["name"],
            trigger=trigger_from_dict(data["trigger"]) if data.get("trigger") else None,
            spec=TaskSpec.from_dict(data["spec"]),
            enabled=data.get("enabled", True),
            misfire=MisfirePolicy(**misfire),
            overlap=OverlapPolicy(**overlap),
            description=data.get("description", ""),
            version=data.get("version", 0),
        )


#: The fields of a job's stored dict (``TaskConfig.to_dict``).
_JOB_FIELDS = frozenset(("name", "trigger", "spec", "enabled", "misfire", "overlap", "description", "version"))


@attrs.define(kw_only=True)
class JobState:
    """A job's schedule progress, kept by the store beside the config.

    ``next_fire_at`` is the next slot not yet handled; ``last_slot`` is the high-water mark:
    the latest slot already fired or recorded. A new leader resumes from there.
    ``last_outcome`` (a final TaskState value), ``last_outcome_at`` (store time) and
    ``last_task`` describe the job's task that finished last (skipped slots excepted).
    """

    name: str
    next_fire_at: float | None = attrs.field(validator=_time_or_none)
    last_slot: float | None = attrs.field(default=None, validator=_time_or_none)
    paused: bool = False
    last_outcome: str | None = None
    last_outcome_at: float | None = attrs.field(default=None, validator=_time_or_none)
    last_task: str | None = None
