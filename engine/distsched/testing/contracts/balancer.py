"""BalancerContract: never a full, draining or silent worker; None when nobody can take it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
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
            eligible = {w.id for w in workers if w.can_accept(NOW, TTL)}
            chosen = balancer.select(make_task("t", balance_key=key), workers, now=NOW, ttl=TTL)
            if eligible:
                assert chosen is not None and chosen.id in eligible
            else:
                assert chosen is None

        check()

    def test_fills_every_free_slot_then_stops(self, make_balancer) -> None:
        balancer = make_balancer()
        workers = [Worker(id=f"w{i}", concurrency=1, capacity=3, started_at=0.0, last_heartbeat=NOW) for i in range(3)]
        for n in range(9):
            chosen = balancer.select(make_task(f"t{n}", balance_key=f"k{n}"), workers, now=NOW, ttl=TTL)
            assert chosen is not None
            chosen.accept()
        assert all(w.load == 3 for w in workers)
        assert balancer.select(make_task("extra"), workers, now=NOW, ttl=TTL) is None

    def test_deterministic_when_it_claims_to_be(self, make_balancer) -> None:
        if not self.deterministic:
            pytest.skip("this balancer does not claim determinism")
        workers = [Worker(id=f"w{i}", concurrency=1, capacity=100, started_at=0.0, last_heartbeat=NOW) for i in range(5)]
        first = [make_balancer().select(make_task("t", balance_key=f"k{i}"), workers, now=NOW, ttl=TTL).id for i in range(50)]
        second = [make_balancer().select(make_task("t", balance_key=f"k{i}"), list(reversed(workers)), now=NOW, ttl=TTL).id
                  for i in range(50)]
        assert first == second
