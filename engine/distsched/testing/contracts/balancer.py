"""BalancerContract: never a full, draining or silent worker; None when nobody can take it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from ...model import Worker
from ...plugin.manager import BALANCER
from ...ports import Balancer
from .. import make_task
from ._harness import plugin_manager_for

TTL = 10.0
NOW = 1000.0


@st.composite
def worker_sets(draw: st.DrawFn) -> list[Worker]:
    count = draw(st.integers(0, 8))
    workers = []
    for i in range(count):
        capacity = draw(st.integers(1, 6))
        workers.append(Worker(
            id=f"w{i}", concurrency=1, capacity=capacity, load=draw(st.integers(0, capacity)),
            started_at=0.0, last_heartbeat=NOW - draw(st.sampled_from([0.0, 1.0, TTL + 1, 100.0])),
            draining=draw(st.booleans()),
        ))
    return workers


def describe_workers(workers: Sequence[Worker], *, now: float = NOW, ttl: float = TTL) -> str:
    """The workers in words, each with why it can or cannot accept a task at ``now``:
    ``w0 (load 3/3: full), w1 (load 0/2, draining), w2 (load 1/4, heard 11s ago: stale), w3
    (load 0/1: can accept)``; ``none`` for no workers."""
    return ", ".join(f"{w.id} ({_state(w, now, ttl)})" for w in workers) or "none"


def _state(worker: Worker, now: float, ttl: float) -> str:
    why = _why_not(worker, now, ttl)
    return f"load {worker.load}/{worker.usable_capacity}" + (f": {why}" if why else ": can accept")


def _why_not(worker: Worker, now: float, ttl: float) -> str:
    """Why ``worker.can_accept(now, ttl)`` is false ("full", "draining", "stale: ..."), or ""."""
    reasons = []
    if worker.load >= worker.usable_capacity:
        reasons.append("full")
    if worker.draining:
        reasons.append("draining")
    if not worker.is_alive(now, ttl):
        reasons.append(f"stale: heard {now - worker.last_heartbeat:g}s ago, ttl {ttl:g}s")
    return ", ".join(reasons)


def _name(chosen: object) -> str:
    return repr(chosen.id) if isinstance(chosen, Worker) else f"{chosen!r} (not a Worker)"


def selection_problem(chosen: object, workers: Sequence[Worker], *, now: float = NOW, ttl: float = TTL) -> str | None:
    """What is wrong with ``select()`` returning ``chosen`` from ``workers``, in words (what
    the balancer did and what the contract expects), or None when the choice is allowed."""
    eligible = [w.id for w in workers if w.can_accept(now, ttl)]
    expected = (f"choose among the workers whose can_accept(now, ttl) is true ({', '.join(eligible)}), or None"
                if eligible else "return None when no worker's can_accept(now, ttl) is true")
    if chosen is None:
        if eligible:
            return (f"select() returned None, but worker(s) {', '.join(eligible)} can accept the task: return one of "
                    f"them; None only when no worker's can_accept(now, ttl) is true")
        return None
    if not any(chosen is w for w in workers):
        return (f"select() returned {_name(chosen)}, which is not one of the Worker objects it was given: return one "
                f"of `workers` (the object itself) or None")
    assert isinstance(chosen, Worker)
    if chosen.id not in eligible:
        return (f"select() chose worker {chosen.id!r}, which cannot accept ({_why_not(chosen, now, ttl)}): "
                f"{expected}")
    return None


class BalancerContract:
    #: Set to True when the balancer claims the same choice for the same key and workers.
    deterministic = False

    @pytest.fixture
    def balancer_name(self) -> str:  # pragma: no cover - must be overridden
        raise NotImplementedError("a BalancerContract subclass must provide the balancer_name fixture")

    @pytest.fixture
    def make_balancer(self, request: pytest.FixtureRequest, balancer_name: str):
        """A function building a new balancer through the plugin manager (looked up, built,
        checked against the Balancer port)."""
        plugins = plugin_manager_for(request)
        plugins.registration(BALANCER, balancer_name)  # an unknown name fails here, clearly

        def make() -> Balancer:
            return asyncio.run(plugins.build(BALANCER, balancer_name))

        return make

    def test_never_picks_an_ineligible_worker(self, make_balancer) -> None:
        balancer = make_balancer()

        @settings(max_examples=200, deadline=None)
        @given(workers=worker_sets(), key=st.text(min_size=1, max_size=8))
        def check(workers: list[Worker], key: str) -> None:
            # said in words: the failing example reads the same whatever Hypothesis prints
            note(f"select(task with balance_key={key!r}, workers=[{describe_workers(workers)}], now={NOW}, ttl={TTL})")
            chosen = balancer.select(make_task("t", balance_key=key), workers, now=NOW, ttl=TTL)
            problem = selection_problem(chosen, workers)
            assert problem is None, f"{problem} (balance_key {key!r}; workers: {describe_workers(workers)})"

        check()

    def test_fills_every_free_slot_then_stops(self, make_balancer) -> None:
        balancer = make_balancer()
        workers = [Worker(id=f"w{i}", concurrency=1, capacity=3, started_at=0.0, last_heartbeat=NOW) for i in range(3)]
        for n in range(9):
            chosen = balancer.select(make_task(f"t{n}", balance_key=f"k{n}"), workers, now=NOW, ttl=TTL)
            problem = selection_problem(chosen, workers)
            assert problem is None, (f"{problem} (task {n + 1} of 9 on 3 workers of capacity 3, each chosen worker "
                                     f"taking its task; workers: {describe_workers(workers)})")
            assert chosen is not None
            chosen.accept()
        chosen = balancer.select(make_task("extra"), workers, now=NOW, ttl=TTL)
        assert chosen is None, (f"select() chose worker {_name(chosen)} for a 10th task, but every worker is full "
                                f"({describe_workers(workers)}): return None when no worker can accept")

    def test_deterministic_when_it_claims_to_be(self, make_balancer) -> None:
        if not self.deterministic:
            pytest.skip("this balancer does not claim determinism")
        workers = [Worker(id=f"w{i}", concurrency=1, capacity=100, started_at=0.0, last_heartbeat=NOW) for i in range(5)]
        for i in range(50):
            key = f"k{i}"
            first = make_balancer().select(make_task("t", balance_key=key), workers, now=NOW, ttl=TTL)
            second = make_balancer().select(make_task("t", balance_key=key), list(reversed(workers)), now=NOW, ttl=TTL)
            for chosen, order in ((first, workers), (second, list(reversed(workers)))):
                problem = selection_problem(chosen, order)
                assert problem is None, f"{problem} (balance_key {key!r}; workers: {describe_workers(order)})"
            assert _name(first) == _name(second), (
                f"the balancer claims determinism (deterministic = True) but, for balance_key {key!r}, a new balancer "
                f"chose worker {_name(first)} from workers {', '.join(w.id for w in workers)} and worker "
                f"{_name(second)} from the same workers in reverse order: the same key and workers must give the same "
                f"worker whatever their order (break ties by worker id, not by position or at random), or leave "
                f"deterministic = False")
