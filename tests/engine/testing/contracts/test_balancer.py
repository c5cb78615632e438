"""The balancer contract says, in words, what a failing balancer did and what it should do,
with the workers it was given (the failing example reads the same whatever Hypothesis's
own printing of the arguments shows)."""

from __future__ import annotations

import random

import pytest

from distsched import hookimpl
from distsched.testing import make_worker
from distsched.testing.contracts import BalancerContract
from distsched.testing.contracts.balancer import describe_workers, selection_problem


class TakesTheFirst:
    """Ignores can_accept: picks a full, draining or silent worker."""

    def select(self, task, workers, *, now, ttl):
        return workers[0] if workers else None


class NeverChooses:
    def select(self, task, workers, *, now, ttl):
        return None


class RandomAmongEligible:
    """Correct choices, but at random: not deterministic."""

    def __init__(self):
        self.random = random.Random()

    def select(self, task, workers, *, now, ttl):
        eligible = [w for w in workers if w.can_accept(now, ttl)]
        return self.random.choice(eligible) if eligible else None


def test_a_balancer_that_ignores_can_accept_is_told_which_worker_and_why():
    with pytest.raises(AssertionError) as caught:
        BalancerContract().test_never_picks_an_ineligible_worker(TakesTheFirst)
    message = str(caught.value)
    assert "select() chose worker 'w0', which cannot accept (" in message, message
    assert any(why in message for why in ("full", "draining", "stale: heard")), message
    assert "can_accept(now, ttl) is true" in message and "workers: w0 (load " in message, message
    # the example in words, as a Hypothesis note: readable even where its own repr is empty
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "select(task with balance_key=" in notes and "workers=[w0 (load " in notes, notes


def test_a_balancer_that_never_chooses_is_told_who_could_take_the_task():
    with pytest.raises(AssertionError, match=r"select\(\) returned None, but worker\(s\) w0, w1, w2 can accept the "
                                             r"task: return one of them"):
        BalancerContract().test_fills_every_free_slot_then_stops(NeverChooses)


def test_a_full_worker_chosen_while_filling_is_named():
    with pytest.raises(AssertionError, match=r"select\(\) chose worker 'w0', which cannot accept \(full\): choose "
                                             r"among the workers whose can_accept\(now, ttl\) is true \(w1, w2\), or "
                                             r"None \(task 4 of 9"):
        BalancerContract().test_fills_every_free_slot_then_stops(TakesTheFirst)


def test_a_balancer_that_claims_determinism_wrongly_is_told_the_key_and_both_choices():
    contract = BalancerContract()
    contract.deterministic = True
    with pytest.raises(AssertionError, match=r"claims determinism \(deterministic = True\) but, for balance_key 'k\d+', "
                                             r"a new balancer chose worker 'w\d' from workers w0, w1, w2, w3, w4 and "
                                             r"worker 'w\d' from the same workers in reverse order"):
        for _ in range(20):  # random: a run may agree by chance on every key - not 20 times
            contract.test_deterministic_when_it_claims_to_be(RandomAmongEligible)


def test_the_problems_are_said_in_words():
    full = make_worker("full", concurrency=1, capacity=1, load=1, now=1000.0)
    gone = make_worker("gone", now=900.0)
    draining = make_worker("leaving", draining=True, now=1000.0)
    free = make_worker("free", now=1000.0)
    workers = [full, gone, draining, free]
    assert describe_workers(workers) == ("full (load 1/1: full), gone (load 0/64: stale: heard 100s ago, ttl 10s), "
                                         "leaving (load 0/64: draining), free (load 0/64: can accept)")
    assert describe_workers([]) == "none"
    assert selection_problem(free, workers) is None
    assert selection_problem(None, [full]) is None
    assert selection_problem("free", workers) == ("select() returned 'free' (not a Worker), which is not one of the "
                                                  "Worker objects it was given: return one of `workers` (the object "
                                                  "itself) or None")
    assert selection_problem(gone, workers).startswith("select() chose worker 'gone', which cannot accept (stale: ")


class _Plugin:
    @hookimpl
    def distsched_register_balancers(self, registry):
        registry.add("takes-the-first", TakesTheFirst)


class TestThroughThePluginManager(BalancerContract):
    """The contract as a plugin's test suite runs it (the balancer found by name)."""

    @pytest.fixture
    def distsched_plugins(self):
        return [("takes-first-plugin", _Plugin())]

    @pytest.fixture
    def balancer_name(self):
        return "takes-the-first"

    def test_never_picks_an_ineligible_worker(self, make_balancer) -> None:
        with pytest.raises(AssertionError, match=r"select\(\) chose worker 'w0', which cannot accept"):
            super().test_never_picks_an_ineligible_worker(make_balancer)

    def test_fills_every_free_slot_then_stops(self, make_balancer) -> None:
        with pytest.raises(AssertionError, match=r"select\(\) chose worker 'w0', which cannot accept \(full\)"):
            super().test_fills_every_free_slot_then_stops(make_balancer)
