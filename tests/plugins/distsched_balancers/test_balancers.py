"""The built-in balancers, loaded through the real plugin system (entry points)."""

from __future__ import annotations

import asyncio
import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import Task, TaskSpec, Worker
from distsched.plugin.manager import BALANCER, PluginManager
from distsched.ports import Balancer

NAMES = ["consistent-hash", "least-tasks", "round-robin"]
NOW = 1_000.0
TTL = 10.0


@functools.cache
def manager() -> PluginManager:
    return PluginManager()


def make(name: str) -> Balancer:
    return asyncio.run(manager().build(BALANCER, name))


def worker(
    wid: str,
    *,
    load: int = 0,
    capacity: int = 4,
    draining: bool = False,
    age: float = 0.0,
) -> Worker:
    return Worker(
        id=wid,
        concurrency=1,
        capacity=capacity,
        started_at=0.0,
        last_heartbeat=NOW - age,
        load=load,
        draining=draining,
    )


def task(tid: str = "t1", key: str | None = None) -> Task:
    return Task(id=tid, spec=TaskSpec(target="f", balance_key=key), created_at=0.0)


@functools.cache
def keyed_tasks(n: int = 10_000) -> tuple[Task, ...]:
    return tuple(task(f"task-{i}", key=f"job-{i}") for i in range(n))


def pick(balancer: Balancer, t: Task, workers: list[Worker]) -> Worker | None:
    return balancer.select(t, workers, now=NOW, ttl=TTL)


def assignments(balancer: Balancer, workers: list[Worker]) -> list[str]:
    out = []
    for t in keyed_tasks():
        chosen = pick(balancer, t, workers)
        assert chosen is not None
        out.append(chosen.id)
    return out


# -- discovery -------------------------------------------------------------------------


def test_plugin_is_discovered_with_its_distribution():
    info = manager().plugins["balancers"]
    assert info.error is None
    assert info.dist == "distsched"
    assert info.module == "distsched_balancers.hooks"
    assert info.hooks == ["distsched_register_balancers"]
    assert sorted(info.provides["balancer"]) == NAMES
    assert list(info.provides) == ["balancer"]


@pytest.mark.parametrize("name", NAMES)
def test_registration_has_origin_description_and_a_fresh_balancer(name):
    registration = manager().balancers.get(name)
    assert registration.origin.plugin == "balancers"
    assert registration.origin.dist == "distsched"
    assert registration.description.strip()
    first, second = make(name), make(name)
    assert isinstance(first, Balancer)
    assert first is not second  # one per leader term: no state shared between terms


def test_describe_lists_the_three_names():
    rows = {row["name"]: row for row in manager().describe()}
    assert sorted(rows["balancers"]["provides"]["balancer"]) == NAMES


# -- eligibility (all balancers) -------------------------------------------------------

BAD = {
    "full": dict(load=4, capacity=4),
    "over-full": dict(load=9, capacity=4),
    "draining": dict(draining=True),
    "stale": dict(age=TTL + 0.5),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reason", sorted(BAD))
def test_never_picks_an_ineligible_worker(name, reason):
    # The bad worker is otherwise the most attractive one: idle, and first by id.
    bad = worker("a-bad", **BAD[reason])
    good = worker("z-good", load=3, capacity=4)
    balancer = make(name)
    for i in range(50):
        chosen = pick(balancer, task(f"t{i}", key=f"k{i}"), [bad, good])
        assert chosen is good
    assert pick(balancer, task("alone"), [bad]) is None


@pytest.mark.parametrize("name", NAMES)
def test_none_when_no_worker(name):
    assert pick(make(name), task(), []) is None


@pytest.mark.parametrize("name", NAMES)
def test_none_when_every_worker_is_ineligible(name):
    workers = [worker(f"w{i}", **BAD[reason]) for i, reason in enumerate(sorted(BAD))]
    balancer = make(name)
    for i in range(20):
        assert pick(balancer, task(f"t{i}", key=f"k{i}"), workers) is None


@pytest.mark.parametrize("name", NAMES)
def test_fills_workers_to_capacity_then_returns_none(name):
    # The leader accepts each pick on the same Worker objects; the balancer must notice.
    workers = [worker("w1", capacity=2), worker("w2", capacity=3), worker("w3", capacity=1)]
    balancer = make(name)
    for i in range(6):
        chosen = pick(balancer, task(f"t{i}", key="same-key"), workers)
        assert chosen is not None
        chosen.accept(f"t{i}")
    assert [w.load for w in workers] == [2, 3, 1]
    assert pick(balancer, task("t-extra", key="same-key"), workers) is None


@st.composite
def worker_sets(draw) -> list[Worker]:
    ids = draw(
        st.lists(st.text(alphabet="abcw0129-", min_size=1, max_size=4), max_size=8, unique=True)
    )
    out = []
    for wid in ids:
        capacity = draw(st.integers(1, 5))
        out.append(
            worker(
                wid,
                capacity=capacity,
                load=draw(st.integers(0, capacity + 1)),
                draining=draw(st.booleans()),
                age=draw(
                    st.sampled_from([-2.0, 0.0, TTL, TTL + 1e-6, 3 * TTL]) | st.floats(0.0, 2 * TTL)
                ),
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    workers=worker_sets(),
    keys=st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=10),
    accept=st.booleans(),
)
def test_property_only_eligible_workers_are_picked(name, workers, keys, accept):
    balancer = make(name)
    for i, key in enumerate(keys):
        eligible = [w for w in workers if w.can_accept(NOW, TTL)]
        chosen = pick(balancer, task(f"t{i}", key=key), workers)
        if not eligible:
            assert chosen is None
            continue
        assert chosen is not None
        assert any(chosen is w for w in eligible)
        assert not chosen.draining
        assert chosen.load < chosen.capacity
        assert NOW - chosen.last_heartbeat <= TTL
        if accept:
            chosen.accept(f"t{i}")


# -- least-tasks -----------------------------------------------------------------------


def test_least_tasks_picks_the_least_loaded():
    workers = [worker("a", load=3), worker("b", load=1), worker("c", load=2)]
    assert pick(make("least-tasks"), task(), workers).id == "b"


def test_least_tasks_compares_load_relative_to_capacity():
    small = worker("small", load=1, capacity=4)  # 25 % full
    big = worker("big", load=8, capacity=64)  # 12.5 % full
    assert pick(make("least-tasks"), task(), [small, big]) is big


def test_least_tasks_skips_an_idle_but_ineligible_worker():
    workers = [
        worker("idle-draining", draining=True),
        worker("idle-stale", age=TTL * 2),
        worker("busy", load=3),
    ]
    assert pick(make("least-tasks"), task(), workers).id == "busy"


def test_least_tasks_ties_are_deterministic():
    # Same ratio: fewer tasks first; same ratio and load: smallest id.
    balancer = make("least-tasks")
    a = worker("a", load=2, capacity=8)
    b = worker("b", load=1, capacity=4)
    assert pick(balancer, task(), [a, b]) is b
    assert pick(balancer, task(), [b, a]) is b
    x, y, z = worker("x"), worker("y"), worker("z")
    for order in ([x, y, z], [z, y, x], [y, z, x]):
        assert pick(balancer, task(), order) is x


def test_least_tasks_keeps_the_load_balanced():
    workers = [worker(f"w{i}", capacity=100) for i in range(5)]
    balancer = make("least-tasks")
    for i in range(123):
        pick(balancer, task(f"t{i}"), workers).accept()
        loads = [w.load for w in workers]
        assert max(loads) - min(loads) <= 1


# -- round-robin -----------------------------------------------------------------------


def test_round_robin_visits_every_eligible_worker_once_per_cycle():
    workers = [worker(wid, capacity=1000) for wid in ("c", "a", "e", "b", "d")]
    balancer = make("round-robin")
    picks = [pick(balancer, task(f"t{i}"), workers).id for i in range(15)]
    for cycle in range(3):
        assert picks[cycle * 5 : (cycle + 1) * 5] == ["a", "b", "c", "d", "e"]


def test_round_robin_skips_ineligible_workers():
    workers = [
        worker("a"),
        worker("b", draining=True),
        worker("c", load=4, capacity=4),
        worker("d", age=TTL + 1),
        worker("e"),
    ]
    balancer = make("round-robin")
    picks = [pick(balancer, task(f"t{i}"), workers).id for i in range(6)]
    assert picks == ["a", "e", "a", "e", "a", "e"]


def test_round_robin_is_independent_of_list_order_and_remembers_its_position():
    ids = ["w1", "w2", "w3", "w4"]
    balancer = make("round-robin")
    rng = random.Random(7)
    picks = []
    for i in range(12):
        workers = [worker(wid) for wid in ids]  # fresh objects every call, as from storage
        rng.shuffle(workers)
        picks.append(pick(balancer, task(f"t{i}"), workers).id)
    assert picks == ids * 3


def test_round_robin_keeps_going_when_membership_changes():
    balancer = make("round-robin")
    workers = [worker("a"), worker("c")]
    assert pick(balancer, task(), workers).id == "a"
    workers.append(worker("b"))  # joins between a and c
    assert [pick(balancer, task(), workers).id for _ in range(4)] == ["b", "c", "a", "b"]
    workers = [w for w in workers if w.id != "c"]  # c leaves while it is next
    assert [pick(balancer, task(), workers).id for _ in range(3)] == ["a", "b", "a"]


@settings(max_examples=100, deadline=None)
@given(workers=worker_sets(), rounds=st.integers(1, 3))
def test_property_round_robin_cycles_are_fair(workers, rounds):
    eligible = sorted(w.id for w in workers if w.can_accept(NOW, TTL))
    balancer = make("round-robin")
    picks = [pick(balancer, task(f"t{i}"), workers) for i in range(len(eligible) * rounds)]
    assert [w.id for w in picks] == eligible * rounds


# -- consistent-hash -------------------------------------------------------------------


def ids(n: int, prefix: str = "worker-") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_consistent_hash_same_key_same_worker():
    workers = [worker(wid, capacity=1000) for wid in ids(8)]
    balancer = make("consistent-hash")
    first = pick(balancer, task("a", key="job-x"), workers)
    for i in range(50):
        assert pick(balancer, task(f"other-{i}", key="job-x"), workers) is first


def test_consistent_hash_falls_back_to_the_task_id():
    workers = [worker(wid, capacity=1000) for wid in ids(8)]
    balancer = make("consistent-hash")
    t = task("one-off-17", key=None)
    assert pick(balancer, t, workers) is pick(balancer, task("one-off-17", key=None), workers)
    assert pick(balancer, t, workers) is pick(balancer, task("other", key="one-off-17"), workers)
    spread = {pick(balancer, task(f"one-off-{i}"), workers).id for i in range(200)}
    assert len(spread) == 8


def test_consistent_hash_is_deterministic_and_independent_of_list_order():
    names = ids(12, prefix="node-")
    reference = assignments(make("consistent-hash"), [worker(w, capacity=10**6) for w in names])
    rng = random.Random(3)
    reused = make("consistent-hash")
    for _ in range(3):
        shuffled = [worker(w, capacity=10**6) for w in names]
        rng.shuffle(shuffled)
        assert assignments(make("consistent-hash"), shuffled) == reference  # a fresh instance
        assert assignments(reused, shuffled) == reference  # and a reused one


def test_consistent_hash_spreads_keys_evenly():
    n = 10
    counts: dict[str, int] = {}
    for wid in assignments(make("consistent-hash"), [worker(w, capacity=10**6) for w in ids(n)]):
        counts[wid] = counts.get(wid, 0) + 1
    assert len(counts) == n
    share = 10_000 / n
    assert all(0.5 * share <= c <= 1.6 * share for c in counts.values()), counts


@pytest.mark.parametrize("n", [1, 2, 4, 9, 19, 39])
@pytest.mark.parametrize("prefix", ["worker-", "10.0.3."])
def test_consistent_hash_join_moves_about_one_in_n_plus_one_keys_all_to_the_new_worker(n, prefix):
    before = assignments(
        make("consistent-hash"), [worker(w, capacity=10**6) for w in ids(n, prefix)]
    )
    balancer = make("consistent-hash")
    joined = [worker(w, capacity=10**6) for w in ids(n, prefix)] + [
        worker("newcomer", capacity=10**6)
    ]
    after = assignments(balancer, joined)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(a == "newcomer" for _, a in moved)
    assert after.count("newcomer") == len(moved)
    fraction = len(moved) / len(before)
    expected = 1 / (n + 1)
    assert 0.5 * expected <= fraction <= 1.6 * expected, (fraction, expected)


@pytest.mark.parametrize("n", [2, 5, 10, 20])
def test_consistent_hash_leave_moves_only_the_leavers_keys(n):
    names = ids(n)
    leaver = names[n // 2]
    balancer = make("consistent-hash")
    before = assignments(balancer, [worker(w, capacity=10**6) for w in names])
    remaining = [worker(w, capacity=10**6) for w in names if w != leaver]
    after = assignments(balancer, remaining)
    assert after == assignments(make("consistent-hash"), remaining)
    assert leaver in before
    for b, a in zip(before, after, strict=True):
        if b == leaver:
            assert a != leaver
        else:
            assert a == b


@pytest.mark.parametrize("reason", sorted(BAD))
def test_consistent_hash_ineligible_owner_spills_to_where_the_key_would_go_if_it_left(reason):
    names = ids(6)
    busy = names[2]
    balancer = make("consistent-hash")
    everyone = [worker(w, capacity=10**6) for w in names]
    normal = assignments(balancer, everyone)
    with_busy = [
        worker(w, **BAD[reason]) if w == busy else worker(w, capacity=10**6) for w in names
    ]
    spilled = assignments(balancer, with_busy)
    without_busy = assignments(make("consistent-hash"), [w for w in everyone if w.id != busy])
    assert busy not in spilled
    assert spilled == without_busy
    assert [a for a, b in zip(normal, spilled, strict=True) if a != b and a != busy] == []


def test_consistent_hash_walks_past_several_ineligible_workers():
    names = ids(5)
    balancer = make("consistent-hash")
    healthy = "worker-3"
    workers = [
        worker(w, capacity=1000) if w == healthy else worker(w, draining=True) for w in names
    ]
    for t in keyed_tasks()[:500]:
        assert pick(balancer, t, workers).id == healthy


@pytest.fixture
def ring_builds(monkeypatch):
    from distsched_balancers import consistent_hash

    builds: list[frozenset[str]] = []
    real = consistent_hash.build_ring

    def counting(worker_ids, vnodes):
        builds.append(frozenset(worker_ids))
        return real(worker_ids, vnodes)

    monkeypatch.setattr(consistent_hash, "build_ring", counting)
    return builds


def test_consistent_hash_rebuilds_the_ring_only_when_membership_changes(ring_builds):
    balancer = make("consistent-hash")
    names = ids(6)
    rng = random.Random(1)
    for i in range(200):  # loads, draining flags and list order change; membership does not
        workers = [worker(w, load=rng.randrange(5), draining=rng.random() < 0.2) for w in names]
        rng.shuffle(workers)
        pick(balancer, task(f"t{i}"), workers)
    assert ring_builds == [frozenset(names)]
    pick(balancer, task("x"), [worker(w) for w in [*names, "joiner"]])
    pick(balancer, task("y"), [worker(w) for w in [*names, "joiner"]])
    assert ring_builds == [frozenset(names), frozenset([*names, "joiner"])]


def test_consistent_hash_workers_dropping_out_of_the_list_cost_no_rebuild(ring_builds):
    # A caller may pass only the workers that have room: the list shrinks and grows back as
    # workers fill up and drain. Answers must equal those of a ring built for that exact list.
    names = ids(10)
    balancer = make("consistent-hash")
    pick(balancer, task(), [worker(w) for w in names])
    assert len(ring_builds) == 1
    rng = random.Random(5)
    for round_ in range(30):
        present = [w for w in names if rng.random() < 0.6] or names[:1]
        workers = [worker(w, capacity=10**6) for w in present]
        tasks = keyed_tasks()[round_ * 50 : round_ * 50 + 50]
        builds = len(ring_builds)
        mine = [pick(balancer, t, workers).id for t in tasks]
        assert len(ring_builds) == builds  # no rebuild
        fresh = make("consistent-hash")
        assert mine == [pick(fresh, t, workers).id for t in tasks]


def test_consistent_hash_rebuilds_when_most_of_the_ring_is_gone(ring_builds):
    balancer = make("consistent-hash")
    names = ids(40)
    pick(balancer, task(), [worker(w) for w in names])
    pick(balancer, task(), [worker(w) for w in names[:2]])
    assert ring_builds == [frozenset(names), frozenset(names[:2])]
