"""``Status``: what ``app.status()`` and ``distsched status`` report about a deployment - the
lease and its leader, the scheduler nodes, the workers, the tasks - all measured on the
store's clock, so an age is never counted from another machine's clock (or from 1970).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from .config import EngineConfig
from .model import Worker
from .model.worker import heard_within
from .ports import JobPage, LeaseInfo, Quarantined, SchedulerNode


@attrs.frozen(kw_only=True)
class LeaderStatus:
    """The lease: its holder and term, how long it has been held (``lease_age``: since it was
    acquired), seconds since its last renewal, and until it expires (negative: ``expired``).

    ``renewal_overdue``: the lease has not expired, but its last renewal is older than
    ``renewal_overdue_after`` (two of the holder's renew intervals) - the holder may be dead,
    and nobody else can lead until the lease expires. A live holder renews every renew
    interval, as a worker heartbeats (a worker silent for two of its intervals is shown
    ``silent``). ``renew_interval``: the holder's, as its lease record gives it (None: a
    record written by an older node; the interval is then estimated, see
    :func:`renewal_overdue_after`)."""

    node_id: str
    term: int
    acquired_at: float
    lease_age: float
    renewed_age: float
    expires_in: float
    expired: bool
    renewal_overdue: bool = False
    #: Seconds after a renewal from which the next one is overdue (None: the record gives
    #: neither a renew interval nor a lease TTL to measure it by). See
    #: :func:`renewal_overdue_after`.
    renewal_overdue_after: float | None = None
    renew_interval: float | None = None


@attrs.frozen(kw_only=True)
class SchedulerStatus:
    """A scheduler node as it registered itself; ``alive`` while its heartbeat is within the
    lease TTL of the store's clock (younger than it, and not further ahead). ``heartbeat_age``:
    see :func:`heartbeat_age` (negative: that far ahead of the store's clock). ``role`` is what
    it last reported; ``state`` is ``leader`` or ``standby`` (that role) while it is alive,
    else ``silent``: a leader killed keeps ``role: leader`` beside the node that took over."""

    id: str
    host: str
    pid: int
    role: str
    started_at: float
    heartbeat_age: float | None
    alive: bool
    state: str = "standby"


#: How many jobs a status counts at most on a store that does not count them itself (no
#: ``JobRepository.count``, optional: a third-party store): it reads them (one page of
#: ``JobRepository.page``), so its cost stays that of this many jobs however many are stored.
JOBS_COUNTED = 200


@attrs.frozen(kw_only=True)
class JobCount:
    """The jobs stored: ``total``, of which ``enabled`` (a disabled job never fires). Every
    one where the store counts them (``JobRepository.count``: the built-in stores); else up
    to :data:`JOBS_COUNTED`, and ``more``: more are stored than that (``total`` is then that
    limit, ``enabled`` None). A store that lost its data (a Redis restarted empty) shows 0."""

    total: int
    enabled: int | None
    more: bool = False


def job_count(page: JobPage) -> JobCount:
    """The count a status shows, from the first page of jobs (``JOBS_COUNTED`` at most)."""
    if page.next_after is not None:
        return JobCount(total=len(page.jobs), enabled=None, more=True)
    return JobCount(total=len(page.jobs), enabled=sum(1 for config, _ in page.jobs if config.enabled))


#: How many serial jobs a status names with their held slots (the most first); ``total``
#: and ``jobs`` count them all.
HELD_SHOWN = 10


@attrs.frozen(kw_only=True)
class JobBacklog:
    """A serial job's slots waiting their turn, held by the store out of the ready queue
    (``TaskRepository.held_slots``): how many, and the age of the earliest one's slot
    (None: not yet due)."""

    job: str
    waiting: int
    oldest_age: float | None


@attrs.frozen(kw_only=True)
class HeldSlots:
    """The pending tasks that wait their turn behind serial jobs (``Status.counts`` counts
    them as ``pending``; ``Status.oldest_pending_age`` leaves them out): ``total`` of them,
    behind ``jobs`` serial jobs, the :data:`HELD_SHOWN` with the most named in ``backlogs``."""

    total: int
    jobs: int
    backlogs: tuple[JobBacklog, ...] = ()


def held_status(held: dict[str, tuple[int, float]], now: float) -> HeldSlots:
    """``Status.held`` from ``TaskRepository.held_slots()`` read at ``now`` (store time)."""
    ordered = sorted(held.items(), key=lambda item: (-item[1][0], item[0]))[:HELD_SHOWN]
    return HeldSlots(total=sum(n for n, _ in held.values()), jobs=len(held),
                     backlogs=tuple(JobBacklog(job=job, waiting=n, oldest_age=now - at if at <= now else None)
                                    for job, (n, at) in ordered))


@attrs.frozen(kw_only=True)
class ParkedTasks:
    """The tasks that wait for a worker that may run them (``unroutable_wait``), parked by the
    store out of the ready queue (``TaskRepository.parked``), per thing they wait for: ``key``
    (``local:<function>`` or an executor), how many (``waiting``), and the seconds until the
    earliest one's wait runs out (``fails_in``; 0 when it has: the leader fails it now)."""

    key: str
    waiting: int
    fails_in: float


def parked_status(parked: dict[str, tuple[int, float]], now: float) -> tuple[ParkedTasks, ...]:
    """``Status.parked`` from ``TaskRepository.parked()`` read at ``now`` (store time), the
    most first."""
    ordered = sorted(parked.items(), key=lambda item: (-item[1][0], item[0]))
    return tuple(ParkedTasks(key=key, waiting=n, fails_in=max(0.0, until - now)) for key, (n, until) in ordered)


def backlog_words(mode: str, max_instances: int, max_backlog: int, waiting: int | None) -> str | None:
    """A job's backlog as ``jobs list`` and the dashboard say it: ``serial, 37 waiting of
    100`` (``max_backlog``), ``... - full: new slots are skipped`` at its limit; None for a
    job that is not serial and has no held slot. ``waiting`` None: the store cannot count
    them (no ``TaskRepository.held_slots``)."""
    if mode != "serial":
        return None if not waiting else f"{mode}, {waiting} slot(s) still waiting from when it was serial"
    head = "serial" if max_instances == 1 else f"serial ({max_instances} at a time)"
    if max_backlog == 0:
        return f"{head}, no backlog (max_backlog 0): a slot fired while it runs is skipped"
    if waiting is None:
        return f"{head}, at most {max_backlog} waiting"
    if backlog_full(max_backlog, waiting):
        return f"{head}, {waiting} waiting of {max_backlog} - full: new slots are skipped"
    return f"{head}, {waiting} waiting of {max_backlog}"


def backlog_full(max_backlog: int, waiting: int | None) -> bool:
    """A serial job at its ``max_backlog``: the store records its next slots skipped."""
    return waiting is not None and max_backlog > 0 and waiting >= max_backlog


def job_backlog(mode: str, max_instances: int, max_backlog: int, waiting: int | None) -> dict[str, Any] | None:
    """A job's backlog as ``jobs list --json`` and the dashboard give it: its slots waiting
    their turn (``waiting``: None on a store that cannot count them), of its ``max_backlog``,
    ``full`` at it (new slots are recorded skipped), in words (:func:`backlog_words`). None
    for a job that is not serial and has none waiting."""
    serial = mode == "serial"
    if not serial and not waiting:
        return None
    return {"waiting": waiting, "max_backlog": max_backlog if serial else None,
            "full": serial and backlog_full(max_backlog, waiting),
            "words": backlog_words(mode, max_instances, max_backlog, waiting)}


#: The worker states in which it is registered and heard from within the TTL (not reaped).
LIVE_WORKER_STATES = ("alive", "draining", "silent")


@attrs.frozen(kw_only=True)
class WorkerStatus:
    """A worker: ``state`` is ``alive``, ``draining``, ``silent`` (it missed a heartbeat: none
    for two of its intervals - maybe killed; the leader gives it no task, and reaps it at the
    TTL), ``stale`` (no heartbeat within the TTL of the store's clock - older, or far ahead of
    it, a broken record - not reaped yet) or ``stopped`` (deregistered on a clean stop, until
    the leader reaps it; or a reap that raced its last pull kept it for the next pass: no
    heartbeat age then). A worker the leader reaped - declared dead, or stopped - is removed
    from the store: it is not in the status at all. ``heartbeat_age``:
    see :func:`heartbeat_age` (negative: that far ahead of the store's clock)."""

    id: str
    host: str
    pid: int
    state: str
    heartbeat_age: float | None
    load: int
    capacity: int
    concurrency: int
    draining: bool
    queued: int
    started_at: float
    #: Execution slots held by timed-out sync calls still running (``Worker.blocked``).
    blocked: int = 0
    #: The worker checks the leader's signatures.
    signed: bool = False
    #: The executors it advertised (``Worker.executors``): the leader sends it only tasks of
    #: these. Empty: not said - a worker of an earlier version, which gets every task.
    executors: tuple[str, ...] = ()
    #: The functions its ``local`` executor runs (``Worker.functions``): the leader sends it
    #: only ``local`` tasks of these (when it says its executors).
    functions: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Status:
    """A deployment at one moment of store time (``now``)."""

    now: float
    leader: LeaderStatus | None
    schedulers: tuple[SchedulerStatus, ...]
    workers: tuple[WorkerStatus, ...]
    counts: dict[str, int]
    #: The age of the oldest task the leader may dispatch now: the slots held behind serial
    #: jobs (``held``, counted as pending) are left out.
    oldest_pending_age: float | None
    #: The jobs stored (None: not counted).
    jobs: JobCount | None = None
    #: Records the store moved aside because they could not be decoded: how many, and the
    #: newest few (see ``distsched.ports.Quarantine``).
    quarantined: int = 0
    quarantine: tuple[Quarantined, ...] = ()
    #: ``signed`` (the leader signs and every live worker checks), ``unsigned`` (nobody
    #: signs: anyone who can write to the store can run tasks on the workers) or ``mixed``.
    signing: str = "unsigned"
    #: With no lease to show (``leader`` None): the live scheduler nodes whose own record says
    #: they lead. A store shows no lease for a lease record it cannot read (a warning in the
    #: log) until the holder's next renewal writes it again; with a node here the leader is
    #: unknown, not absent.
    leader_claimed_by: tuple[str, ...] = ()
    #: What the store itself says is wrong with it now (``StorageBackend.warnings``: it
    #: refuses writes - full, a read-only replica or standby -, or may evict records); the
    #: leader only sees its writes refused, the reads a status makes still succeed.
    store_warnings: tuple[str, ...] = ()
    #: The pending tasks that wait their turn behind serial jobs (None: the store cannot
    #: count them, no ``TaskRepository.held_slots``).
    held: HeldSlots | None = None
    #: The tasks that wait, parked, for a worker that may run them, per function or executor
    #: (None: the store cannot park, no ``TaskRepository.parked``).
    parked: tuple[ParkedTasks, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def signing_state(schedulers: tuple[SchedulerStatus, ...], workers: tuple[WorkerStatus, ...],
                  leader: LeaderStatus | None, signed_nodes: set[str]) -> str:
    """``signed`` when the leader (or, without one, every live scheduler) signs and every live
    worker checks; ``unsigned`` when none does; ``mixed`` otherwise."""
    live_nodes = [s.id for s in schedulers if s.alive]
    signers = [leader.node_id] if leader is not None and not leader.expired else live_nodes
    flags = [n in signed_nodes for n in signers] + [w.signed for w in workers if w.state in LIVE_WORKER_STATES]
    if flags and all(flags):
        return "signed"
    if not any(flags):
        return "unsigned"
    return "mixed"


def leader_claimed_by(leader: LeaderStatus | None, schedulers: tuple[SchedulerStatus, ...]) -> tuple[str, ...]:
    """``Status.leader_claimed_by``: with no lease to show, the live nodes reporting leading."""
    if leader is not None:
        return ()
    return tuple(n.id for n in schedulers if n.role == "leader" and n.alive)


def _default(name: str) -> float:
    default = attrs.fields_dict(EngineConfig)[name].default
    assert isinstance(default, float)
    return default


#: The share of the lease TTL a holder renews at by default (``EngineConfig``: 3 s of 10 s).
DEFAULT_RENEW_SHARE = _default("renew_interval") / _default("lease_ttl")


def recorded_renew_interval(info: LeaseInfo) -> float | None:
    """The holder's renew interval as its lease record gives it: None when it gives none (a
    record written by a node of an older version) or one that is no interval (not a
    positive, finite number of seconds: a record broken by something other than distsched)."""
    interval = info.renew_interval
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        return None
    return float(interval) if math.isfinite(interval) and interval > 0 else None


def renewal_overdue_after(info: LeaseInfo, renew_interval: float | None = None) -> float | None:
    """Seconds after the lease's last renewal from which the next one is overdue: two of the
    holder's renew intervals - ``renew_interval`` when the caller knows it, else the one the
    lease record gives (:func:`recorded_renew_interval`). A record written by a node of an
    older version gives none: the interval is then taken as the default share of the lease
    TTL the record gives (its expiry minus its last renewal): 3 s of 10 s, so 6 s for the
    default lease and 1.2 s for a 2 s one. None when there is no recorded interval and the
    record gives no TTL (not a positive, finite time)."""
    interval = renew_interval if renew_interval is not None else recorded_renew_interval(info)
    if interval is None:
        ttl = info.expires_at - info.renewed_at
        if not math.isfinite(ttl) or ttl <= 0:
            return None
        interval = ttl * DEFAULT_RENEW_SHARE
    return round(2 * interval, 3)


def leader_status(info: LeaseInfo | None, renew_interval: float | None = None) -> LeaderStatus | None:
    """The lease as a status shows it; ``renew_interval``: the holder's, when the caller knows
    it (else the record's, see :func:`renewal_overdue_after`)."""
    if info is None:
        return None
    renewed_age = max(0.0, info.now - info.renewed_at)
    overdue_after = renewal_overdue_after(info, renew_interval)
    return LeaderStatus(node_id=info.holder, term=info.term, acquired_at=info.acquired_at,
                        lease_age=max(0.0, info.now - info.acquired_at),
                        renewed_age=renewed_age,
                        expires_in=info.expires_at - info.now, expired=info.expired,
                        renewal_overdue=not info.expired and overdue_after is not None and renewed_age > overdue_after,
                        renewal_overdue_after=overdue_after, renew_interval=recorded_renew_interval(info))


def heartbeat_age(heartbeat: float, now: float, ttl: float) -> float | None:
    """Seconds since ``heartbeat``, on the store's clock. A heartbeat ahead of it by up to
    ``ttl`` (two reads of the store's clock, by two nodes) is 0; one further ahead keeps its
    negative age - a broken record, shown as "ahead", never as a beat just now; None for a
    heartbeat that is not a finite time (NaN, an infinity)."""
    age = now - heartbeat
    if not math.isfinite(age):
        return None
    return 0.0 if -ttl <= age < 0 else age


def scheduler_status(node: SchedulerNode, now: float, ttl: float) -> SchedulerStatus:
    alive = heard_within(node.last_heartbeat, now, ttl)
    return SchedulerStatus(id=node.id, host=node.host, pid=node.pid, role=node.role, started_at=node.started_at,
                           heartbeat_age=heartbeat_age(node.last_heartbeat, now, ttl), alive=alive,
                           state=("leader" if node.role == "leader" else "standby") if alive else "silent")


def worker_status(worker: Worker, now: float, ttl: float, queued: int, interval: float) -> WorkerStatus:
    """``interval``: the heartbeat interval of a worker that registered none."""
    if worker.last_heartbeat <= 0:
        state, age = "stopped", None
    else:
        # the leader's rules (Worker.is_alive, is_fresh): a heartbeat far ahead of the store's
        # clock is no sign of life - the leader reaps such a worker, and status must not call
        # it alive; one older than two intervals gets no task
        age = heartbeat_age(worker.last_heartbeat, now, ttl)
        if not worker.is_alive(now, ttl):
            state = "stale"
        elif not worker.is_fresh(now, interval, ttl):
            state = "silent"
        else:
            state = "draining" if worker.draining else "alive"
    return WorkerStatus(id=worker.id, host=worker.host, pid=worker.pid, state=state, heartbeat_age=age,
                        load=worker.load, capacity=worker.capacity, concurrency=worker.concurrency,
                        draining=worker.draining, queued=queued, started_at=worker.started_at,
                        blocked=worker.blocked, signed=worker.signed, executors=worker.executors,
                        functions=worker.functions)


__all__ = ["HELD_SHOWN", "JOBS_COUNTED", "LIVE_WORKER_STATES", "HeldSlots", "JobBacklog", "JobCount", "LeaderStatus", "ParkedTasks", "SchedulerStatus", "Status", "WorkerStatus", "backlog_full", "backlog_words", "heartbeat_age", "held_status", "job_backlog", "parked_status", "signing_state"]
