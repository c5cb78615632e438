"""What makes most-free different from least-tasks: absolute free slots, not load ratio."""

from distsched_example.balancer import MostFreeBalancer

from distsched.testing import make_task, make_worker

NOW = 100.0
TTL = 10.0


def test_picks_the_worker_with_the_most_free_slots():
    small = make_worker("a-small", now=NOW, concurrency=1, capacity=4, load=0)  # 4 free, 0 %
    big = make_worker("b-big", now=NOW, concurrency=1, capacity=64, load=32)  # 32 free, 50 %
    assert MostFreeBalancer().select(make_task(), [small, big], now=NOW, ttl=TTL) is big


def test_ties_go_to_the_smallest_id_whatever_the_order():
    workers = [make_worker(f"w{i}", now=NOW, capacity=8) for i in (3, 1, 2)]
    for order in (workers, workers[::-1]):
        assert MostFreeBalancer().select(make_task(), order, now=NOW, ttl=TTL).id == "w1"


def test_skips_silent_draining_and_full_workers():
    silent = make_worker("silent", now=NOW - TTL - 1, capacity=100)
    draining = make_worker("draining", now=NOW, capacity=100, draining=True)
    full = make_worker("full", now=NOW, capacity=2, load=2)
    ok = make_worker("ok", now=NOW, capacity=2, load=1)
    balancer = MostFreeBalancer()
    assert balancer.select(make_task(), [silent, draining, full, ok], now=NOW, ttl=TTL) is ok
    assert balancer.select(make_task(), [silent, draining, full], now=NOW, ttl=TTL) is None
