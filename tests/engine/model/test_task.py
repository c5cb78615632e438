"""Task: the lifecycle state machine, attempts, stale results, re-deliveries, serialisation."""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from distsched.model import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    RetryPolicy,
    StaleAttempt,
    Task,
    TaskResult,
    TaskSpec,
    TaskState,
    ValidationError,
    slot_task_id,
)
from distsched.model.task import ASSIGNED, DEFAULT_MAX_REDELIVERIES

T0 = 1_700_000_000.0


def make_task(*, max_attempts: int = 3, delay: float = 1.0, max_delay: float = 60.0,
              backoff: str = "exponential", jitter: float = 0.0, timeout: float = 30.0,
              id: str = "t1", now: float = T0) -> Task:
    spec = TaskSpec(
        target="f",
        timeout=timeout,
        retry=RetryPolicy(max_attempts=max_attempts, backoff=backoff, delay=delay,
                          max_delay=max_delay, jitter=jitter),
    )
    return Task(id=id, spec=spec, created_at=now)


def result_for(task: Task, outcome: str, now: float, *, attempt_id: str | None = None,
               retryable: bool = True, retry_after: float | None = None) -> TaskResult:
    return TaskResult(
        task_id=task.id,
        attempt_id=task.attempt_id if attempt_id is None else attempt_id,
        outcome=outcome,
        started_at=now - 1.0,
        finished_at=now,
        worker_id=task.worker_id,  # the attempt's own worker
        error=None if outcome == "succeeded" else "boom",
        retryable=retryable,
        retry_after=retry_after,
    )


# -- the transition table ------------------------------------------------------------------


def test_transition_table_covers_every_state_and_terminal_states_are_dead_ends():
    assert set(TRANSITIONS) == set(TaskState)
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
        assert state.terminal
    for state in set(TaskState) - TERMINAL:
        assert TRANSITIONS[state], state
        assert not state.terminal
    # Every non-terminal state can be cancelled.
    assert all(TaskState.CANCELLED in TRANSITIONS[s] for s in set(TaskState) - TERMINAL)
    assert ASSIGNED == {TaskState.DISPATCHED, TaskState.RUNNING}


def test_state_str_is_the_value():
    assert str(TaskState.TIMED_OUT) == "timed_out"
    assert TaskState("pending") is TaskState.PENDING


# -- a stateful model of one task ----------------------------------------------------------

OUTCOMES = st.sampled_from(["succeeded", "failed", "timed_out"])
WORKERS = st.sampled_from(["w1", "w2", "w3"])
RETRY_AFTER = st.sampled_from([None, None, None, 0.0, 3.0, 1e9])
RANDS = st.sampled_from([0.0, 0.3, 0.5, 0.999])
MAX_REDELIVERIES = 3


class TaskLifecycle(RuleBasedStateMachine):
    """Drives one real Task through every method, in every state, with current and stale
    attempt ids. Each rule computes what the lifecycle allows and checks the task did that:
    a refused call (InvalidTransition / StaleAttempt) must leave the task untouched, an
    accepted one must make a move listed in TRANSITIONS."""

    @initialize(
        max_attempts=st.integers(min_value=1, max_value=4),
        backoff=st.sampled_from(["fixed", "exponential"]),
        delay=st.sampled_from([0.0, 0.5, 1.0, 7.0]),
        jitter=st.sampled_from([0.0, 0.25, 1.0]),
    )
    def create(self, max_attempts, backoff, delay, jitter):
        self.now = T0
        self.task = make_task(max_attempts=max_attempts, backoff=backoff, delay=delay,
                              max_delay=max(delay, 10.0), jitter=jitter, now=self.now)
        self.seen_attempt_ids: set[str] = {self.task.attempt_id}
        self.max_dispatches = 0
        self.frozen: dict | None = None  # snapshot taken when the task became terminal

    # -- checking helpers ------------------------------------------------------------
    def call(self, fn, *args, **kwargs):
        """Call a task method; check the move it made, or that a refusal changed nothing."""
        before_state = self.task.state
        before = self.task.to_dict()
        try:
            value = fn(*args, **kwargs)
        except (InvalidTransition, StaleAttempt) as exc:
            assert self.task.to_dict() == before, f"a refused call changed the task: {exc}"
            return exc
        after_state = self.task.state
        assert not before_state.terminal, f"a terminal task accepted {fn.__name__}"
        assert after_state in TRANSITIONS[before_state], (before_state, after_state)
        assert self.task.updated_at == self.now
        return value

    def stale_id(self, data) -> str:
        current = self.task.dispatches
        k = data.draw(st.integers(min_value=0, max_value=current + 2).filter(lambda k: k != current))
        return data.draw(st.sampled_from([f"{self.task.id}#{k}", f"other#{current}"]))

    def do_dispatch(self, worker):
        task = self.task
        state, dispatches, old_id = task.state, task.dispatches, task.attempt_id
        # A retry may be dispatched before its not_before (the worker waits for it).
        outcome = self.call(task.dispatch, worker, self.now)
        if state in (TaskState.PENDING, TaskState.RETRYING):
            assert outcome == task.attempt_id
            assert task.state is TaskState.DISPATCHED
            assert task.dispatches == dispatches + 1
            assert task.attempt_id != old_id
            assert task.attempt_id not in self.seen_attempt_ids
            self.seen_attempt_ids.add(task.attempt_id)
            assert task.worker_id == worker
            assert task.dispatched_at == self.now and task.started_at is None
        else:
            assert isinstance(outcome, InvalidTransition)

    def do_start(self, attempt_id):
        state = self.task.state
        outcome = self.call(self.task.start, attempt_id, self.now)
        if attempt_id != self.task.attempt_id:
            assert isinstance(outcome, StaleAttempt)
        elif state is TaskState.DISPATCHED:
            assert outcome is None
            assert self.task.state is TaskState.RUNNING
            assert self.task.started_at == self.now
        else:
            assert isinstance(outcome, InvalidTransition)

    def do_finish(self, outcome, retryable, retry_after, rand, attempt_id):
        task = self.task
        state, attempt = task.state, task.attempt
        policy = task.spec.retry
        result = result_for(task, outcome, self.now, attempt_id=attempt_id,
                            retryable=retryable, retry_after=retry_after)
        returned = self.call(task.finish, result, self.now, rand=rand)
        if attempt_id != task.attempt_id:
            # A result of another attempt is always refused, whatever the state.
            assert isinstance(returned, StaleAttempt)
            return
        if state not in ASSIGNED:
            assert isinstance(returned, InvalidTransition)
            return
        assert returned is task.state
        assert task.result == result
        if outcome == "succeeded":
            assert task.state is TaskState.SUCCEEDED
            assert task.finished_at == self.now
            assert task.attempt == attempt
            return
        delay = policy.delay_after(attempt, rand=rand, retry_after=retry_after) if retryable else None
        if delay is None:
            expected = TaskState.TIMED_OUT if outcome == "timed_out" else TaskState.FAILED
            assert task.state is expected
            assert task.finished_at == self.now
            assert task.attempt == attempt
            assert not retryable or attempt == policy.max_attempts
        else:
            assert task.state is TaskState.RETRYING
            assert task.attempt == attempt + 1
            assert task.not_before == self.now + delay
            assert task.worker_id is None
            assert task.finished_at is None

    def do_requeue(self):
        task = self.task
        state, attempt, redeliveries = task.state, task.attempt, task.redeliveries
        dispatches, not_before = task.dispatches, task.not_before
        outcome = self.call(task.requeue, "worker lost", self.now, max_redeliveries=MAX_REDELIVERIES)
        if state not in ASSIGNED:
            assert isinstance(outcome, InvalidTransition)
            return
        # A crash re-delivery never consumes the retry budget nor creates an attempt.
        assert task.attempt == attempt
        assert task.dispatches == dispatches
        assert task.worker_id is None
        if redeliveries >= MAX_REDELIVERIES:
            assert task.state is TaskState.FAILED
            assert task.redeliveries == redeliveries
            assert task.finished_at == self.now
            assert "gave up" in task.reason
        else:
            assert task.state is TaskState.PENDING
            assert task.redeliveries == redeliveries + 1
            # due at once, but never before its time (a task dispatched ahead of it)
            assert task.not_before == max(not_before, self.now)
            assert task.reason == "worker lost"

    def do_cancel(self):
        state = self.task.state
        outcome = self.call(self.task.cancel, "user", self.now)
        if state.terminal:
            assert isinstance(outcome, InvalidTransition)
        else:
            assert self.task.state is TaskState.CANCELLED
            assert self.task.reason == "user"
            assert self.task.finished_at == self.now

    # -- rules: the lifecycle's own moves --------------------------------------------
    @rule(dt=st.sampled_from([0.0, 0.25, 1.0, 5.0, 100.0]))
    def advance(self, dt):
        self.now += dt

    @precondition(lambda self: self.task.state is TaskState.RETRYING)
    @rule()
    def wait_until_due(self):
        self.now = max(self.now, self.task.not_before)

    @precondition(lambda self: self.task.state in (TaskState.PENDING, TaskState.RETRYING))
    @rule(worker=WORKERS)
    def dispatch(self, worker):
        self.do_dispatch(worker)

    @precondition(lambda self: self.task.state is TaskState.DISPATCHED)
    @rule()
    def start(self):
        self.do_start(self.task.attempt_id)

    @precondition(lambda self: self.task.state in ASSIGNED)
    @rule(outcome=OUTCOMES, retryable=st.booleans(), retry_after=RETRY_AFTER, rand=RANDS)
    def finish(self, outcome, retryable, retry_after, rand):
        self.do_finish(outcome, retryable, retry_after, rand, self.task.attempt_id)

    @precondition(lambda self: self.task.state in ASSIGNED)
    @rule()
    def requeue(self):
        self.do_requeue()

    @precondition(lambda self: not self.task.terminal)
    @rule(really=st.integers(min_value=0, max_value=3))
    def cancel(self, really):
        if really == 3:  # rarer than the other moves, so that runs get long
            self.do_cancel()

    @precondition(lambda self: self.task.state in (TaskState.PENDING, TaskState.RETRYING))
    @rule(worker=WORKERS, started=st.booleans(), end=st.sampled_from(["finish"] * 3 + ["requeue"]),
          outcome=OUTCOMES, retryable=st.booleans(), retry_after=RETRY_AFTER, rand=RANDS)
    def attempt_cycle(self, worker, started, end, outcome, retryable, retry_after, rand):
        """A whole attempt in one step (due -> dispatch -> start? -> finish or requeue), so
        that runs reach retries, exhausted budgets and give-ups."""
        self.now = max(self.now, self.task.not_before)
        self.do_dispatch(worker)
        if started:
            self.now += 0.5
            self.do_start(self.task.attempt_id)
        self.now += 1.0
        if end == "requeue":
            self.do_requeue()
        else:
            self.do_finish(outcome, retryable, retry_after, rand, self.task.attempt_id)

    # -- rules: stale ids and calls in the wrong state --------------------------------
    @precondition(lambda self: self.task.dispatches > 0)
    @rule(data=st.data(), outcome=OUTCOMES, retryable=st.booleans(), use_finish=st.booleans())
    def stale(self, data, outcome, retryable, use_finish):
        attempt_id = self.stale_id(data)
        if use_finish:
            self.do_finish(outcome, retryable, None, 0.5, attempt_id)
        else:
            self.do_start(attempt_id)

    @rule(method=st.sampled_from(["dispatch", "start", "finish", "requeue", "cancel"]),
          worker=WORKERS, outcome=OUTCOMES, retryable=st.booleans(), retry_after=RETRY_AFTER,
          rand=RANDS)
    def any_call(self, method, worker, outcome, retryable, retry_after, rand):
        """Any method in any state (terminal ones included): the model decides."""
        if method == "dispatch":
            self.do_dispatch(worker)
        elif method == "start":
            self.do_start(self.task.attempt_id)
        elif method == "finish":
            self.do_finish(outcome, retryable, retry_after, rand, self.task.attempt_id)
        elif method == "requeue":
            self.do_requeue()
        else:
            self.do_cancel()

    # -- invariants ------------------------------------------------------------------
    @invariant()
    def state_is_a_task_state(self):
        assert isinstance(self.task.state, TaskState)
        assert self.task.terminal == (self.task.state in TERMINAL)

    @invariant()
    def attempt_within_budget(self):
        assert 1 <= self.task.attempt <= self.task.spec.retry.max_attempts

    @invariant()
    def dispatches_only_grow(self):
        assert self.task.dispatches >= self.max_dispatches
        self.max_dispatches = self.task.dispatches
        assert self.task.attempt_id == f"{self.task.id}#{self.task.dispatches}"

    @invariant()
    def redeliveries_bounded(self):
        assert 0 <= self.task.redeliveries <= MAX_REDELIVERIES

    @invariant()
    def terminal_never_changes(self):
        if self.frozen is not None:
            assert self.task.to_dict() == self.frozen
        elif self.task.terminal:
            self.frozen = self.task.to_dict()

    @invariant()
    def a_worker_holds_every_assigned_task(self):
        if self.task.state in ASSIGNED:
            assert self.task.worker_id is not None
        elif self.task.state in (TaskState.PENDING, TaskState.RETRYING):
            assert self.task.worker_id is None


TaskLifecycle.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_task_lifecycle = TaskLifecycle.TestCase


# -- explicit scenarios --------------------------------------------------------------------


def test_happy_path():
    task = make_task()
    assert task.state is TaskState.PENDING and task.attempt_id == "t1#0"
    attempt = task.dispatch("w1", T0 + 1)
    assert attempt == "t1#1"
    task.start(attempt, T0 + 2)
    assert task.deadline() == T0 + 2 + 30.0
    assert task.deadline(grace=5) == T0 + 37.0
    assert task.finish(result_for(task, "succeeded", T0 + 3), T0 + 3) is TaskState.SUCCEEDED
    assert task.terminal and task.finished_at == T0 + 3 and task.deadline() is None


def test_result_may_overtake_the_start_record():
    task = make_task()
    task.dispatch("w1", T0)
    result = result_for(task, "succeeded", T0 + 5)
    assert task.finish(result, T0 + 5) is TaskState.SUCCEEDED
    assert task.started_at == result.started_at
    with pytest.raises(InvalidTransition):
        task.start(task.attempt_id, T0 + 6)


def test_the_last_attempt_times_are_the_workers_not_the_records():
    """A slot dispatched ahead is taken by its worker (the record's started_at) before its
    time and recorded by the leader (finished_at) after its worker finished: a listing shows
    when the attempt itself ran, from its result - also while the task waits to retry."""
    task = make_task(max_attempts=2, delay=5.0)
    task.not_before = T0 + 10
    task.start(task.dispatch("w1", T0 + 9.5), T0 + 9.6)
    assert task.last_attempt_times(T0 + 9.8) == (None, None)  # held by its worker until its time
    assert task.last_attempt_times(T0 + 10.5) == (T0 + 10, None)  # running: since its time
    ran = TaskResult(task_id=task.id, attempt_id=task.attempt_id, outcome="failed", started_at=T0 + 10.001,
                     finished_at=T0 + 10.003, worker_id="w1", error="boom")
    assert task.finish(ran, T0 + 10.2) is TaskState.RETRYING
    assert task.last_attempt_times() == (T0 + 10.001, T0 + 10.003)
    task.start(task.dispatch("w1", T0 + 15.3), T0 + 15.4)
    assert task.last_attempt_times(T0 + 15.5) == (T0 + 15.4, None)  # the new attempt runs: not the old result
    again = TaskResult(task_id=task.id, attempt_id=task.attempt_id, outcome="succeeded", started_at=T0 + 15.2,
                       finished_at=T0 + 15.5, worker_id="w1")
    assert task.finish(again, T0 + 15.9) is TaskState.SUCCEEDED
    assert (task.started_at, task.finished_at) == (T0 + 15.4, T0 + 15.9)
    assert task.last_attempt_times() == (T0 + 15.2, T0 + 15.5)
    cancelled = make_task()
    cancelled.cancel("no longer wanted", T0 + 1)
    assert cancelled.last_attempt_times() == (None, cancelled.finished_at)  # never ran: the record's


def test_a_task_held_for_its_slot_has_not_started():
    """A slot dispatched ahead (fire_ahead) is taken by its worker at once and held until its
    time: it reads ``running`` (the stored state) but has not started - no start time, and
    ``held_until`` says until when - and cancelled before its slot it never started (the
    listing showed its take time as its start)."""
    task = make_task()
    task.not_before = T0 + 30
    task.start(task.dispatch("w1", T0 + 1), T0 + 1.5)
    assert task.state is TaskState.RUNNING
    assert task.held_until(T0 + 2) == T0 + 30 and task.attempt_began(T0 + 2) is None
    assert task.last_attempt_times(T0 + 2) == (None, None)
    assert task.last_attempt_times() == (None, None), "without a clock: not known to have started"
    assert task.held_until(T0 + 30) is None and task.attempt_began(T0 + 31) == T0 + 30, "its time came: it runs"
    cancelled = attrs.evolve(task)
    cancelled.cancel("cancelled by user", T0 + 5)
    assert cancelled.last_attempt_times(T0 + 40) == (None, T0 + 5) and cancelled.held_until(T0 + 6) is None
    late = attrs.evolve(task)
    late.cancel("cancelled by user", T0 + 35)  # after its time: it had begun at its time
    assert late.last_attempt_times(T0 + 40) == (T0 + 30, T0 + 35)
    lost = attrs.evolve(task)
    lost.requeue("worker w1 lost", T0 + 5)  # lost before its time: that attempt never started
    assert lost.not_before == T0 + 30 and lost.attempt_began(T0 + 5) is None
    on_time = make_task()
    on_time.start(on_time.dispatch("w1", T0), T0 + 0.1)  # taken at or after its time: the take
    assert on_time.held_until(T0 + 1) is None and on_time.last_attempt_times(T0 + 1) == (T0 + 0.1, None)
    on_time.requeue("worker w1 lost", T0 + 9)  # (the requeue moves not_before to now)
    assert on_time.attempt_began(T0 + 9) == T0 + 0.1, "a lost attempt that ran keeps its take"


def test_deadline_counts_from_dispatch_until_started():
    task = make_task(timeout=10.0)
    assert task.deadline() is None
    task.dispatch("w1", T0 + 1)
    assert task.deadline() == T0 + 11


def test_deadline_of_a_task_dispatched_ahead_counts_from_its_not_before():
    task = make_task(timeout=10.0)
    task.not_before = T0 + 30  # a slot dispatched ahead; its worker holds it until then
    task.dispatch("w1", T0 + 1)
    assert task.deadline(grace=5) == T0 + 45
    task.start(task.attempt_id, T0 + 2)  # taken at once
    assert task.deadline(grace=5) == T0 + 45
    late = make_task(timeout=10.0)
    late.not_before = T0 + 30
    late.start(late.dispatch("w1", T0 + 29), T0 + 33)  # taken after its time: from the take
    assert late.deadline() == T0 + 43


def test_retry_sets_not_before_from_the_policy_and_an_early_dispatch_keeps_it():
    task = make_task(max_attempts=3, delay=4.0, backoff="exponential")
    task.dispatch("w1", T0)
    assert task.finish(result_for(task, "failed", T0 + 1), T0 + 1) is TaskState.RETRYING
    assert task.attempt == 2 and task.not_before == T0 + 1 + 4.0
    # The leader may dispatch a little ahead; the worker starts it at not_before.
    task.dispatch("w2", T0 + 4.9)
    assert task.state is TaskState.DISPATCHED and task.dispatches == 2 and task.not_before == T0 + 5
    assert task.finish(result_for(task, "timed_out", T0 + 6), T0 + 6) is TaskState.RETRYING
    assert task.attempt == 3 and task.not_before == T0 + 6 + 8.0
    task.dispatch("w3", T0 + 20)
    assert task.finish(result_for(task, "timed_out", T0 + 21), T0 + 21) is TaskState.TIMED_OUT
    assert task.attempt == 3


def test_retry_after_hint_sets_not_before():
    task = make_task(max_attempts=2, delay=1.0, max_delay=60.0)
    task.dispatch("w1", T0)
    task.finish(result_for(task, "failed", T0, retry_after=42.0), T0)
    assert task.not_before == T0 + 42.0


def test_non_retryable_failure_ends_at_once():
    task = make_task(max_attempts=5)
    task.dispatch("w1", T0)
    assert task.finish(result_for(task, "failed", T0, retryable=False), T0) is TaskState.FAILED
    assert task.attempt == 1


def test_stale_result_is_refused_and_changes_nothing():
    task = make_task(max_attempts=3)
    first = task.dispatch("w1", T0)
    task.requeue("worker lost", T0 + 1)
    second = task.dispatch("w2", T0 + 2)
    assert first != second
    before = task.to_dict()
    with pytest.raises(StaleAttempt):
        task.finish(result_for(task, "succeeded", T0 + 3, attempt_id=first), T0 + 3)
    with pytest.raises(StaleAttempt):
        task.start(first, T0 + 3)
    assert task.to_dict() == before
    task.start(second, T0 + 4)
    assert task.state is TaskState.RUNNING


def test_result_of_the_current_attempt_after_requeue_is_refused():
    # The worker was declared lost but its result arrives before the re-dispatch.
    task = make_task()
    task.dispatch("w1", T0)
    result = result_for(task, "succeeded", T0 + 2)
    task.requeue("worker lost", T0 + 1)
    with pytest.raises(InvalidTransition):
        task.finish(result, T0 + 2)
    assert task.state is TaskState.PENDING and task.result is None


@pytest.mark.parametrize("outcome, state", [("succeeded", TaskState.SUCCEEDED), ("failed", TaskState.RETRYING),
                                            ("timed_out", TaskState.TIMED_OUT)])
def test_a_finished_attempt_clears_the_reason_of_a_requeue(outcome, state):
    # requeued when its worker was lost, then run on another worker: the requeue's reason
    # said why it waited again, not why it ended (tasks show read "succeeded (worker w1 lost)")
    task = make_task(max_attempts=2 if outcome != "timed_out" else 1)
    task.dispatch("w1", T0)
    task.requeue("worker w1 lost (declared dead)", T0 + 1)
    assert task.reason == "worker w1 lost (declared dead)"
    task.start(task.dispatch("w2", T0 + 2), T0 + 2)
    assert task.finish(result_for(task, outcome, T0 + 3), T0 + 3) is state
    assert task.reason is None


def test_requeue_does_not_consume_the_retry_budget_and_gives_up_after_max_redeliveries():
    task = make_task(max_attempts=2)
    for i in range(DEFAULT_MAX_REDELIVERIES):
        task.dispatch("w1", T0 + i)
        assert task.requeue("worker lost", T0 + i) is TaskState.PENDING
        assert task.attempt == 1
    assert task.redeliveries == DEFAULT_MAX_REDELIVERIES
    task.dispatch("w1", T0 + 100)
    assert task.requeue("worker lost", T0 + 100) is TaskState.FAILED
    assert task.terminal and "gave up after 10 re-deliveries" in task.reason
    assert task.attempt == 1


def test_a_task_requeued_before_its_time_keeps_its_time():
    # a slot dispatched ahead (fire_ahead) whose worker left before the slot: it is dispatched
    # again, and must still start at its time, not at the requeue
    task = make_task()
    task.not_before = T0 + 30
    task.start(task.dispatch("w1", T0 + 1), T0 + 1)
    assert task.requeue("worker left", T0 + 2) is TaskState.PENDING
    assert task.not_before == T0 + 30
    late = make_task()
    late.start(late.dispatch("w1", T0), T0)
    late.requeue("worker lost", T0 + 5)  # lost after its time: due at once
    assert late.not_before == T0 + 5


@pytest.mark.parametrize("state", [TaskState.PENDING, TaskState.RETRYING])
def test_requeue_outside_a_worker_is_refused(state):
    task = make_task()
    task.state = state
    with pytest.raises(InvalidTransition):
        task.requeue("x", T0)


def test_terminal_task_refuses_every_method():
    task = make_task()
    task.cancel("user", T0)
    frozen = task.to_dict()
    with pytest.raises(InvalidTransition):
        task.dispatch("w1", T0 + 1)
    with pytest.raises(InvalidTransition):
        task.cancel("again", T0 + 1)
    with pytest.raises(InvalidTransition):
        task.requeue("lost", T0 + 1)
    with pytest.raises((InvalidTransition, StaleAttempt)):
        task.start(task.attempt_id, T0 + 1)
    with pytest.raises((InvalidTransition, StaleAttempt)):
        task.finish(result_for(task, "succeeded", T0 + 1), T0 + 1)
    assert task.to_dict() == frozen


def test_invalid_transition_names_the_task_and_states():
    task = make_task()
    with pytest.raises(InvalidTransition) as exc:
        task.start(task.attempt_id, T0)
    assert exc.value.task_id == "t1"
    assert exc.value.current == "pending"
    assert exc.value.target == "running"


def test_skipped_constructor():
    spec = TaskSpec(target="f")
    task = Task.skipped(id="j@1000", spec=spec, job="j", slot=1.0, reason="dst-gap", now=T0)
    assert task.state is TaskState.SKIPPED and task.terminal
    assert task.reason == "dst-gap" and task.finished_at == T0 and task.slot == 1.0


@pytest.mark.parametrize("bad", ["", None, 5])
def test_id_must_be_a_non_empty_string(bad):
    with pytest.raises(ValidationError) as exc:
        Task(id=bad, spec=TaskSpec(target="f"), created_at=T0)
    assert exc.value.field == "id"


def test_state_given_as_a_string_is_converted():
    task = Task(id="t", spec=TaskSpec(target="f"), created_at=T0, state="running")
    assert task.state is TaskState.RUNNING
    assert task.updated_at == task.not_before == T0


# -- slot ids ------------------------------------------------------------------------------


@given(ms=st.integers(min_value=0, max_value=4_102_444_800_000),
       name=st.sampled_from(["j", "nightly-report", "a.b:c_d"]))
def test_slot_task_id_is_deterministic_and_millisecond_exact(ms, name):
    slot = ms / 1000
    assert slot_task_id(name, slot) == slot_task_id(name, slot) == f"{name}@{ms}"
    assert slot_task_id(name, slot) != slot_task_id(name, (ms + 1) / 1000)


# -- serialisation -------------------------------------------------------------------------


def test_round_trip_of_a_task_with_a_result():
    task = make_task(max_attempts=3)
    task.dispatch("w1", T0)
    task.start(task.attempt_id, T0 + 1)
    task.finish(result_for(task, "failed", T0 + 2), T0 + 2)
    task.version = 7
    task.serial_limit = 2
    data = json.loads(json.dumps(task.to_dict()))
    again = Task.from_dict(data)
    assert again == task
    assert again.result == task.result and again.state is TaskState.RETRYING


@given(
    steps=st.lists(st.sampled_from(["dispatch", "start", "fail", "succeed", "requeue", "cancel"]),
                   max_size=8),
    args=st.lists(st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none()), max_size=3),
)
@settings(max_examples=40)
def test_round_trip_in_any_reachable_state(steps, args):
    task = Task(id="t", spec=TaskSpec(target="f", args=args, retry=RetryPolicy(max_attempts=3, delay=0.0)),
                job="j", slot=T0, created_at=T0)
    now = T0
    for step in steps:
        now += 1
        try:
            if step == "dispatch":
                task.dispatch("w", now)
            elif step == "start":
                task.start(task.attempt_id, now)
            elif step in ("fail", "succeed"):
                outcome = "failed" if step == "fail" else "succeeded"
                task.finish(result_for(task, outcome, now), now)
            elif step == "requeue":
                task.requeue("lost", now)
            else:
                task.cancel("user", now)
        except (InvalidTransition, StaleAttempt):
            pass
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task


def test_a_lost_attempt_counts_only_when_configured():
    from distsched.model import RetryPolicy, Task, TaskSpec, TaskState

    task = Task(id="t", spec=TaskSpec(target="f", retry=RetryPolicy(max_attempts=2)), created_at=0.0)
    task.dispatch("w", 1.0)
    task.requeue("lost", 2.0)
    assert (task.state, task.attempt, task.redeliveries) == (TaskState.PENDING, 1, 1)
    task.dispatch("w", 3.0)
    task.requeue("lost", 4.0, consume_attempt=True)
    assert (task.state, task.attempt) == (TaskState.PENDING, 2)
    task.dispatch("w", 5.0)
    task.requeue("lost", 6.0, consume_attempt=True)
    assert task.state is TaskState.FAILED and "no attempt left (2 of 2)" in task.reason


def test_a_result_from_another_worker_than_the_attempts_is_refused():
    task = make_task()
    task.dispatch("w2", T0)
    stray = attrs.evolve(result_for(task, "succeeded", T0 + 1), worker_id="w1")
    with pytest.raises(StaleAttempt, match="was dispatched to 'w2'"):
        task.finish(stray, T0 + 1)
    assert task.state is TaskState.DISPATCHED and task.result is None
