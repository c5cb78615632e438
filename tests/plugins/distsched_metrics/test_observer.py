"""The metrics observer alone: engine events in, Prometheus samples out."""

from __future__ import annotations

import pytest

from distsched.model import events as ev
from distsched.model.errors import ValidationError
from distsched_metrics.observer import MetricsObserver, loss_reason, skip_reason


@pytest.fixture
def obs() -> MetricsObserver:
    return MetricsObserver(process=False)


def value(obs: MetricsObserver, name: str, **labels: str) -> float | None:
    return obs.registry.get_sample_value(name, labels)


def test_fire_lag_and_queue_wait_come_from_attempt_started(obs):
    obs.distsched_event(ev.AttemptStarted(at=100.004, task_id="j@100000", job="j", attempt_id="j@100000#1",
                                          worker_id="w", slot=100.0, due_at=100.0, dispatched_at=99.8))
    assert value(obs, "distsched_fire_lag_seconds_count") == 1
    assert value(obs, "distsched_fire_lag_seconds_sum") == pytest.approx(0.004)
    assert value(obs, "distsched_fire_lag_seconds_bucket", le="0.003") == 0
    assert value(obs, "distsched_fire_lag_seconds_bucket", le="0.005") == 1
    # dispatched 0.2 s ahead: the wait counts from the slot, not from the dispatch
    assert value(obs, "distsched_queue_wait_seconds_sum") == pytest.approx(0.004)


def test_a_retry_of_a_slot_task_is_not_fire_lag(obs):
    obs.distsched_event(ev.AttemptStarted(at=105.0, task_id="j@100000", job="j", attempt_id="j@100000#2",
                                          worker_id="w", slot=100.0, due_at=104.9, dispatched_at=104.7))
    assert value(obs, "distsched_fire_lag_seconds_count") == 0
    assert value(obs, "distsched_queue_wait_seconds_sum") == pytest.approx(0.1)


def test_outcomes_retries_and_durations_by_job(obs):
    obs.distsched_event(ev.TaskFinished(at=1, task_id="a@1", job="a", state="succeeded", attempt=1, duration=0.5))
    obs.distsched_event(ev.TaskFinished(at=1, task_id="b@1", job="b", state="failed", attempt=3, duration=2.0,
                                        error="boom"))
    obs.distsched_event(ev.TaskRetryScheduled(at=1, task_id="b@1", job="b", failed_attempt=2, outcome="timed_out",
                                              duration=3.0, delay=1.0))
    obs.distsched_event(ev.AttemptFinished(at=1, task_id="x", job=None, attempt_id="x#1", worker_id="w",
                                           outcome="succeeded", duration=0.1))
    assert value(obs, "distsched_tasks_finished_total", job="a", outcome="succeeded") == 1
    assert value(obs, "distsched_tasks_finished_total", job="b", outcome="failed") == 1
    assert value(obs, "distsched_retries_total", job="b", outcome="timed_out") == 1
    assert value(obs, "distsched_run_duration_seconds_count", job="b") == 2
    assert value(obs, "distsched_run_duration_seconds_sum", job="b") == pytest.approx(5.0)
    assert value(obs, "distsched_attempts_total", job="_none", outcome="succeeded") == 1


def test_job_labels_are_bounded():
    obs = MetricsObserver(max_jobs=2, process=False)
    for name in ("a", "b", "c", "d", "a"):
        obs.distsched_event(ev.TaskFinished(at=1, task_id=f"{name}@1", job=name, state="succeeded", attempt=1,
                                            duration=0.1))
    assert value(obs, "distsched_tasks_finished_total", job="a", outcome="succeeded") == 2
    assert value(obs, "distsched_tasks_finished_total", job="b", outcome="succeeded") == 1
    assert value(obs, "distsched_tasks_finished_total", job="_other", outcome="succeeded") == 2
    assert value(obs, "distsched_tasks_finished_total", job="c", outcome="succeeded") is None
    with pytest.raises(ValidationError, match="max_jobs"):
        MetricsObserver(max_jobs=-1, process=False)


@pytest.mark.parametrize(("reason", "label"), [
    ("misfire: coalesced", "misfire_coalesced"), ("misfire: skipped", "misfire_skipped"), ("dst-gap", "dst_gap"),
    ("overlap: discarded (3 instance(s) still live)", "overlap_discarded"), ("something new", "other"),
    ("overlap: backlog full (max_backlog = 100)", "overlap_backlog_full"),
    ("overlap: replaced by the slot at 2026-12-07T21:00:00Z", "overlap_replaced"),
])
def test_skip_reasons_are_a_fixed_set(obs, reason, label):
    assert skip_reason(reason) == label
    obs.distsched_event(ev.TaskSkipped(at=1, task_id="j@1", job="j", slot=1.0, reason=reason))
    assert value(obs, "distsched_slots_skipped_total", job="j", reason=label) == 1


def test_duplicates_dispatch_and_requeues(obs):
    obs.distsched_event(ev.DuplicatesSuppressed(at=1, what="slot", count=3))
    obs.distsched_event(ev.DuplicatesSuppressed(at=2, what="result", count=1))
    obs.distsched_event(ev.TaskDispatched(at=10.25, task_id="t", job=None, worker_id="w", attempt_id="t#1",
                                          ready_at=10.0))
    obs.distsched_event(ev.TaskRequeued(at=1, task_id="t", job=None, worker_id="w", reason="lost"))
    assert value(obs, "distsched_duplicates_suppressed_total", what="slot") == 3
    assert value(obs, "distsched_duplicates_suppressed_total", what="result") == 1
    assert value(obs, "distsched_tasks_dispatched_total") == 1
    assert value(obs, "distsched_dispatch_lag_seconds_sum") == pytest.approx(0.25)
    assert value(obs, "distsched_tasks_requeued_total") == 1


def test_leadership_and_takeover(obs):
    obs.distsched_event(ev.LeaderElected(at=50.0, node_id="n1", term=7, lease_seen_held_at=49.9))
    assert value(obs, "distsched_leader") == 1
    assert value(obs, "distsched_leader_term") == 7
    assert value(obs, "distsched_leader_elections_total") == 1
    assert value(obs, "distsched_leader_takeover_seconds_sum") == pytest.approx(0.1)
    obs.distsched_event(ev.LeadershipLost(at=60.0, node_id="n1", term=7, reason="store unreachable: OSError: x"))
    assert value(obs, "distsched_leader") == 0
    assert value(obs, "distsched_leader_losses_total", reason="store_unreachable") == 1
    assert loss_reason("lease lost") == "lease_lost" and loss_reason("??") == "other"
    # a store answering but refusing writes (Redis maxmemory): its own label, not "other"
    assert loss_reason("store refusing writes: OutOfMemoryError: command not allowed") == "store_refusing_writes"


def test_worker_gauges_follow_the_registered_workers(obs):
    def seen(*workers):
        return ev.WorkersSeen(at=1, workers=tuple(
            ev.WorkerLoad(worker_id=w, load=load, capacity=64, alive=alive, draining=False)
            for w, load, alive in workers))

    obs.distsched_event(seen(("w1", 5, True), ("w2", 0, True), ("w3", 2, False)))
    assert value(obs, "distsched_workers_alive") == 2
    assert value(obs, "distsched_worker_queue_depth", worker="w1") == 5
    assert value(obs, "distsched_worker_capacity", worker="w3") == 64
    obs.distsched_event(seen(("w1", 1, True)))  # w2 and w3 left: their series go
    assert value(obs, "distsched_workers_alive") == 1
    assert value(obs, "distsched_worker_queue_depth", worker="w1") == 1
    assert value(obs, "distsched_worker_queue_depth", worker="w2") is None
    obs.distsched_event(ev.LeadershipLost(at=2, node_id="n", term=1, reason="shutdown"))
    assert value(obs, "distsched_workers_alive") == 0
    assert value(obs, "distsched_worker_queue_depth", worker="w1") is None


def test_a_silent_worker_is_counted_silent_not_alive(obs):
    """Alive within the TTL but not fresh (no heartbeat for two intervals: ``silent`` in
    ``distsched status``, given no task) is not counted alive; draining ones are."""
    obs.distsched_event(ev.WorkersSeen(at=1, workers=(
        ev.WorkerLoad(worker_id="w1", load=0, capacity=64, alive=True, draining=False),
        ev.WorkerLoad(worker_id="w2", load=0, capacity=64, alive=True, draining=True),
        ev.WorkerLoad(worker_id="w3", load=2, capacity=64, alive=True, draining=False, fresh=False),
        ev.WorkerLoad(worker_id="w4", load=0, capacity=64, alive=False, draining=False, fresh=False))))
    assert value(obs, "distsched_workers_alive") == 2
    assert value(obs, "distsched_workers_silent") == 1
    obs.distsched_event(ev.LeadershipLost(at=2, node_id="n", term=1, reason="shutdown"))
    assert value(obs, "distsched_workers_silent") == 0


def test_a_store_that_lost_its_data_is_counted(obs):
    """``store.data_lost`` (the leader's store found its data gone) had no metric: only a log
    line said a Redis restarted empty."""
    assert value(obs, "distsched_data_losses_total") == 0
    obs.distsched_event(ev.StoreDataLost(at=1, node_id="n"))
    assert value(obs, "distsched_data_losses_total") == 1


def test_a_dropped_result_is_counted_apart_from_the_attempts(obs):
    """An attempt a worker ran to success whose result the store then dropped (the worker had
    been declared dead): still one attempt run, and one result dropped."""
    obs.distsched_event(ev.AttemptFinished(at=1, task_id="t", job="j", attempt_id="t#1", worker_id="w-old",
                                           outcome="succeeded", duration=0.1))
    obs.distsched_event(ev.ResultDropped(at=2, task_id="t", job="j", attempt_id="t#1", worker_id="w-old",
                                         outcome="succeeded"))
    assert value(obs, "distsched_attempts_total", job="j", outcome="succeeded") == 1
    assert value(obs, "distsched_results_dropped_total", job="j", outcome="succeeded") == 1
