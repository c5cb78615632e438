"""Worker: capacity, draining, heartbeats, load accounting, validation, serialisation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import ValidationError, Worker, WorkerFull
from distsched.model.worker import DEFAULT_HEARTBEAT_TTL, MAX_EXECUTORS, MAX_FUNCTIONS

T0 = 1_700_000_000.0


def worker(**kwargs) -> Worker:
    return Worker(id=kwargs.pop("id", "w1"), started_at=kwargs.pop("started_at", T0), **kwargs)


def test_defaults():
    w = worker()
    assert w.concurrency == 8 and w.capacity == 64 and w.load == 0
    assert w.last_heartbeat == T0 and not w.draining
    assert worker(concurrency=20).capacity == 80


def test_can_accept_respects_capacity():
    w = worker(concurrency=1, capacity=2)
    assert w.can_accept()
    w.accept("a")
    assert w.can_accept() and w.free == 1
    w.accept("b")
    assert not w.can_accept() and w.free == 0
    with pytest.raises(WorkerFull):
        w.accept("c")
    assert w.load == 2
    w.complete("a")
    assert w.can_accept() and w.load == 1


def test_draining_worker_accepts_nothing():
    w = worker(draining=True)
    assert not w.can_accept()
    assert not w.can_accept(now=T0)
    with pytest.raises(WorkerFull):
        w.accept("a")
    assert w.load == 0


def test_a_heartbeat_far_ahead_or_nan_is_no_sign_of_life():
    """Heartbeats are written in the store's clock: one more than a TTL ahead of it (+inf, a
    day ahead) is a broken record, which would otherwise never be reaped."""
    w = worker()
    assert w.is_alive(T0 - DEFAULT_HEARTBEAT_TTL)  # the leader's clock a little behind
    assert not w.is_alive(T0 - DEFAULT_HEARTBEAT_TTL - 0.001)
    for broken in (float("inf"), T0 + 86400, float("nan")):
        w.last_heartbeat = broken
        assert not w.is_alive(T0) and not w.can_accept(now=T0)


def test_heartbeat_ttl():
    w = worker()
    assert w.is_alive(T0 + DEFAULT_HEARTBEAT_TTL)
    assert not w.is_alive(T0 + DEFAULT_HEARTBEAT_TTL + 0.001)
    assert w.can_accept(now=T0 + 5)
    assert not w.can_accept(now=T0 + 11)
    assert w.can_accept(now=T0 + 11, ttl=30)
    # Without a clock, only capacity and draining count.
    assert w.can_accept()
    w.heartbeat(T0 + 10)
    assert w.can_accept(now=T0 + 11)


def test_heartbeat_never_goes_back_and_may_report_load():
    w = worker()
    w.heartbeat(T0 + 10, load=5)
    w.heartbeat(T0 + 3)
    assert w.last_heartbeat == T0 + 10 and w.load == 5


def test_complete_never_goes_negative():
    w = worker()
    w.complete()
    assert w.load == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 10_001}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 2.0}, "concurrency"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": 1_000_001}, "capacity"),
        ({"capacity": "10"}, "capacity"),
        ({"concurrency": 8, "capacity": 7}, "capacity"),
        ({"concurrency": 100, "capacity": 64}, "capacity"),
        ({"host": 5}, "host"),
        ({"pid": []}, "pid"),
        ({"pid": True}, "pid"),
        ({"load": "1"}, "load"),
        ({"signed": "no"}, "signed"),
        ({"functions": 5}, "functions"),
        ({"functions": "add"}, "functions"),
        ({"functions": ["add", 1]}, "functions"),
        ({"executors": 5}, "executors"),
        ({"executors": "local"}, "executors"),
        ({"executors": ["local", None]}, "executors"),
        ({"functions": [f"f{i}" for i in range(4097)]}, "functions"),
        ({"functions": ["f" * 129]}, "functions"),
        ({"functions": ["\x1b[2Jf"]}, "functions"),
        ({"functions": [""]}, "functions"),
        ({"executors": ["<b>local</b>"]}, "executors"),
        ({"executors": ["local\n"]}, "executors"),
        ({"executors": [f"e{i}" for i in range(257)]}, "executors"),
        ({"heartbeat_interval": "x"}, "heartbeat_interval"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"heartbeat_interval": float("nan")}, "heartbeat_interval"),
        ({"heartbeat_interval": float("inf")}, "heartbeat_interval"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        worker(**kwargs)
    assert exc.value.field == field


@given(
    concurrency=st.integers(min_value=1, max_value=16),
    extra=st.integers(min_value=0, max_value=16),
    ops=st.lists(st.sampled_from(["accept", "complete", "drain", "undrain"]), max_size=60),
)
@settings(max_examples=60)
def test_load_never_exceeds_capacity(concurrency, extra, ops):
    w = worker(concurrency=concurrency, capacity=concurrency + extra)
    for op in ops:
        before = w.load
        if op == "accept":
            could = w.can_accept()
            try:
                w.accept()
            except WorkerFull:
                assert not could and w.load == before
            else:
                assert could and w.load == before + 1
        elif op == "complete":
            w.complete()
            assert w.load == max(0, before - 1)
        else:
            w.draining = op == "drain"
        assert 0 <= w.load <= w.capacity
        assert w.free == w.capacity - w.load
        assert w.can_accept() == (not w.draining and w.load < w.capacity)


def test_round_trip_through_json():
    w = worker(host="node-1", pid=4242, concurrency=4, capacity=10, draining=True)
    w.heartbeat(T0 + 3, load=2)
    again = Worker.from_dict(json.loads(json.dumps(w.to_dict())))
    assert again == w


@pytest.mark.parametrize("functions", [[f"app.f{i}" for i in range(50_000)], ["f" * 1_000_000], 5, {"a": 1}])
def test_an_error_about_advertised_names_stays_short(functions):
    """The message quotes the offending name cut, not a list or name of megabytes (it is the
    quarantine's reason and an ERROR line)."""
    with pytest.raises(ValidationError, match="^functions: must") as exc:
        worker(functions=functions)
    assert len(str(exc.value)) < 250


def test_the_most_advertised_names_are_taken_and_routed_by():
    names = [f"app.tasks.{'x' * 100}{i:05d}" for i in range(MAX_FUNCTIONS)]
    w = worker(functions=names, executors=[f"e{i}" for i in range(MAX_EXECUTORS - 1)] + ["local"])
    assert w.may_offer(names[-1]) and not w.may_offer("app.tasks.other") and w.may_have("local")
    w.functions = ("other",)  # the lookup follows a changed list
    assert w.may_offer("other") and not w.may_offer(names[-1])
    assert Worker.from_dict(json.loads(json.dumps(w.to_dict()))) == w
