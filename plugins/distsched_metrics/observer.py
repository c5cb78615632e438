"""The metrics observer: engine events in, Prometheus metrics out.

Only the public event hook feeds it (``distsched_event``), in the process that emits the
events: a scheduler node counts what its leader did (dispatches, results, retries, skipped
slots, leadership, the workers it sees), a worker what it ran (fire lag, queue wait,
attempts, the results the store dropped as superseded). Every metric is listed in docs/metrics.md.

Label cardinality is bounded: ``job`` takes at most ``max_jobs`` distinct job names per
process (then ``_other``; tasks submitted without a job are ``_none``); ``outcome``,
``state``, ``reason`` and ``what`` come from small fixed sets; ``worker`` carries the ids of
the workers registered now (the series of a worker that left are removed).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from distsched import hookimpl
from distsched.model import events as ev

#: Distinct job names a process labels before it counts the others as ``_other``.
DEFAULT_MAX_JOBS = 100
OTHER = "_other"
NO_JOB = "_none"

#: Seconds; fine at the low end, where fire lag and dispatch lag live (milliseconds).
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
               0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 900.0, 3600.0)
TAKEOVER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)

OUTCOMES = frozenset({"succeeded", "failed", "timed_out"})
SKIP_REASONS = {"misfire: skipped": "misfire_skipped", "misfire: coalesced": "misfire_coalesced",
                "dst-gap": "dst_gap", "overlap: discarded": "overlap_discarded",
                "overlap: backlog full": "overlap_backlog_full"}
#: Reasons that carry a value without parentheses (``overlap: replaced by the slot at <ISO>``).
SKIP_PREFIXES = {"overlap: replaced by ": "overlap_replaced"}
LOSS_REASONS = ("shutdown", "lease lost", "fenced", "store unreachable", "store refusing writes", "error")


def skip_reason(reason: str) -> str:
    """A skipped slot's free-text reason -> one of a fixed set of label values."""
    known = SKIP_REASONS.get(reason.split(" (", 1)[0])
    if known is not None:
        return known
    return next((label for prefix, label in SKIP_PREFIXES.items() if reason.startswith(prefix)), "other")


def loss_reason(reason: str) -> str:
    for known in LOSS_REASONS:
        if reason.startswith(known):
            return known.replace(" ", "_")
    return "other"


class MetricsObserver:
    """Prometheus metrics of one engine, in their own registry (not the process-global
    one: each engine of a process - the tests run several - has its own)."""

    def __init__(self, *, max_jobs: int = DEFAULT_MAX_JOBS, registry: CollectorRegistry | None = None,
                 process: bool = True) -> None:
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 0:
            from distsched.model import ValidationError

            raise ValidationError("max_jobs", f"must be an integer >= 0, not {max_jobs!r}")
        self.max_jobs = max_jobs
        self._jobs: set[str] = set()
        self._workers: set[str] = set()
        #: labelled children by label values: ``labels()`` takes a lock and builds a key each time
        self._children: dict[tuple[Any, ...], Any] = {}
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=self.registry)
        r = self.registry
        # -- the worker's side (attempt.* events) ------------------------------------
        self.fire_lag = Histogram(
            "distsched_fire_lag_seconds", "Seconds from a schedule slot to the start of its task (worker).",
            buckets=LAG_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "distsched_queue_wait_seconds",
            "Seconds an attempt waited in its worker's queue once it was both dispatched and due (worker).",
            buckets=LAG_BUCKETS, registry=r)
        self.attempts = Counter(
            "distsched_attempts", "Attempts a worker ran, by job and outcome (worker).", ["job", "outcome"],
            registry=r)
        self.results_dropped = Counter(
            "distsched_results_dropped",
            "Of those attempts, the ones whose result the store dropped because the leader had declared the worker "
            "dead and requeued the attempt (lost) before it came: superseded, by job and outcome (worker).",
            ["job", "outcome"], registry=r)
        # -- the leader's side --------------------------------------------------------
        self.dispatch_lag = Histogram(
            "distsched_dispatch_lag_seconds",
            "Seconds from a task becoming ready (created, retry due, requeued; a slot minus fire_ahead) "
            "to the leader's dispatch.", buckets=LAG_BUCKETS, registry=r)
        self.dispatched = Counter("distsched_tasks_dispatched", "Tasks the leader dispatched.", registry=r)
        self.run_duration = Histogram(
            "distsched_run_duration_seconds", "Run time of each attempt whose result the leader applied, by job.",
            ["job"], buckets=DURATION_BUCKETS, registry=r)
        self.finished = Counter(
            "distsched_tasks_finished", "Tasks that reached a final state through a result, by job and outcome.",
            ["job", "outcome"], registry=r)
        self.retries = Counter(
            "distsched_retries", "Retries scheduled by the retry policy, by job and the failed attempt's outcome.",
            ["job", "outcome"], registry=r)
        self.requeued = Counter("distsched_tasks_requeued",
                                "Tasks put back to pending because their worker was lost.", registry=r)
        self.cancelled = Counter("distsched_tasks_cancelled", "Tasks cancelled (or replaced by a newer slot).",
                                 registry=r)
        self.skipped = Counter(
            "distsched_slots_skipped", "Schedule slots recorded as skipped or coalesced, by job and reason.",
            ["job", "reason"], registry=r)
        self.duplicates = Counter(
            "distsched_duplicates_suppressed",
            "Duplicates the store refused: slot (a slot task that already existed), result (a stale or "
            "repeated result).", ["what"], registry=r)
        self.is_leader = Gauge("distsched_leader", "1 while this scheduler node leads, else 0.", registry=r)
        self.term = Gauge("distsched_leader_term", "Fencing term of this node's latest term as leader.",
                          registry=r)
        self.elections = Counter("distsched_leader_elections", "Times this node became leader.", registry=r)
        self.losses = Counter("distsched_leader_losses", "Times this node stopped leading, by reason.",
                              ["reason"], registry=r)
        self.takeover = Histogram(
            "distsched_leader_takeover_seconds",
            "At each election of this node: seconds since it last saw the lease held by another node.",
            buckets=TAKEOVER_BUCKETS, registry=r)
        self.workers_alive = Gauge(
            "distsched_workers_alive",
            "Workers heard from within two heartbeat intervals (alive or draining), as the leader sees them "
            "and distsched status counts them (0 on a follower).", registry=r)
        self.workers_silent = Gauge(
            "distsched_workers_silent",
            "Workers silent for two heartbeat intervals but not yet reaped (given no task), as the leader sees "
            "them (0 on a follower).", registry=r)
        self.queue_depth = Gauge(
            "distsched_worker_queue_depth", "Tasks a worker holds, queued and running (leader's view).",
            ["worker"], registry=r)
        self.capacity = Gauge("distsched_worker_capacity", "Tasks a worker may hold (leader's view).",
                              ["worker"], registry=r)
        self.workers_joined = Counter("distsched_workers_joined", "Workers the leader saw join.", registry=r)
        self.workers_lost = Counter("distsched_workers_lost", "Workers the leader declared lost or saw leave.",
                                    registry=r)
        self.data_losses = Counter(
            "distsched_data_losses",
            "Times this node, leading, found the store's data gone (a Redis restarted empty, a FLUSHALL).",
            registry=r)
        self._handlers = {
            ev.AttemptStarted: self._attempt_started,
            ev.AttemptFinished: self._attempt_finished,
            ev.ResultDropped: self._result_dropped,
            ev.TaskDispatched: self._dispatched,
            ev.TaskFinished: self._finished,
            ev.TaskRetryScheduled: self._retry,
            ev.TaskSkipped: self._skipped,
            ev.TaskRequeued: lambda e: self.requeued.inc(),
            ev.TaskCancelled: lambda e: self.cancelled.inc(),
            ev.DuplicatesSuppressed: self._duplicates,
            ev.LeaderElected: self._elected,
            ev.LeadershipLost: self._lost,
            ev.WorkersSeen: self._workers_seen,
            ev.WorkerJoined: lambda e: self.workers_joined.inc(),
            ev.WorkerLost: lambda e: self.workers_lost.inc(),
            ev.StoreDataLost: lambda e: self.data_losses.inc(),
        }

    # -- the hook -----------------------------------------------------------------------
    @hookimpl
    def distsched_event(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # -- labels -------------------------------------------------------------------------
    def job(self, name: str | None) -> str:
        if name is None:
            return NO_JOB
        if name in self._jobs:
            return name
        if len(self._jobs) < self.max_jobs:
            self._jobs.add(name)
            return name
        return OTHER

    @staticmethod
    def outcome(value: str) -> str:
        return value if value in OUTCOMES else "other"

    def child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    # -- handlers -----------------------------------------------------------------------
    def _attempt_started(self, e: Any) -> None:
        if e.slot is not None and (e.due_at is None or e.due_at == e.slot):
            # an attempt due at its slot (not a retry, which is due later by its backoff)
            self.fire_lag.observe(e.at - e.slot)
        if e.dispatched_at is not None:
            due = e.dispatched_at if e.due_at is None else max(e.dispatched_at, e.due_at)
            self.queue_wait.observe(max(0.0, e.at - due))

    def _attempt_finished(self, e: Any) -> None:
        self.child(self.attempts, self.job(e.job), self.outcome(e.outcome)).inc()

    def _result_dropped(self, e: Any) -> None:
        self.child(self.results_dropped, self.job(e.job), self.outcome(e.outcome)).inc()

    def _dispatched(self, e: Any) -> None:
        self.dispatched.inc()
        if e.ready_at is not None:
            self.dispatch_lag.observe(max(0.0, e.at - e.ready_at))

    def _finished(self, e: Any) -> None:
        job = self.job(e.job)
        self.child(self.finished, job, self.outcome(e.state)).inc()
        self.child(self.run_duration, job).observe(e.duration)

    def _retry(self, e: Any) -> None:
        job = self.job(e.job)
        self.child(self.retries, job, self.outcome(e.outcome)).inc()
        self.child(self.run_duration, job).observe(e.duration)

    def _skipped(self, e: Any) -> None:
        self.skipped.labels(self.job(e.job), skip_reason(e.reason)).inc()

    def _duplicates(self, e: Any) -> None:
        self.duplicates.labels(e.what if e.what in ("slot", "result") else "other").inc(e.count)

    def _elected(self, e: Any) -> None:
        self.is_leader.set(1)
        self.term.set(e.term)
        self.elections.inc()
        if e.lease_seen_held_at is not None:
            self.takeover.observe(max(0.0, e.at - e.lease_seen_held_at))

    def _lost(self, e: Any) -> None:
        self.is_leader.set(0)
        self.losses.labels(loss_reason(e.reason)).inc()
        # A follower does not see the workers: no stale figures from the last term.
        self.workers_alive.set(0)
        self.workers_silent.set(0)
        for worker in self._workers:
            self.queue_depth.remove(worker)
            self.capacity.remove(worker)
        self._workers = set()

    def _workers_seen(self, e: Any) -> None:
        seen = set()
        alive = silent = 0
        for w in e.workers:
            seen.add(w.worker_id)
            # status's states: alive within the TTL, silent when not fresh (Worker.is_fresh)
            if w.alive:
                if w.fresh:
                    alive += 1
                else:
                    silent += 1
            self.queue_depth.labels(w.worker_id).set(w.load)
            self.capacity.labels(w.worker_id).set(w.capacity)
        for gone in self._workers - seen:
            self.queue_depth.remove(gone)
            self.capacity.remove(gone)
        self._workers = seen
        self.workers_alive.set(alive)
        self.workers_silent.set(silent)
