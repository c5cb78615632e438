"""lag.py's window figures from the workers' start events, without processes: the late
seconds name each worker's first and last start, so a late worker is told from a late leader."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def lag():
    sys.path.insert(0, str(BENCH))
    try:
        import lag

        yield lag
    finally:
        sys.path.remove(str(BENCH))


def test_a_late_second_names_each_workers_first_and_last_start(lag):
    start = 1000.0
    started = {
        # second 1000: worker1 on time, worker2 late (its first start counts; a retry is a duplicate)
        "j0@1000000": [(1000.002, "a0", "worker1")],
        "j1@1000000": [(1000.012, "a1", "worker2"), (1000.050, "a1b", "worker1")],
        "j2@1000000": [(1000.015, "a2", "worker2")],
        # second 1001: both on time
        "j0@1001000": [(1001.001, "b0", "worker1")],
        "j1@1001000": [(1001.003, "b1", "worker2")],
        "j2@1001000": [(1001.004, "b2", "worker2")],
        "load-task": [(1000.5, "x", "worker1")],  # not a slot: left out
    }
    got = lag.window(started, 3, start, start + 2)
    assert got["slots"] == 6 and got["missed"] == 0 and got["duplicated"] == 1
    assert got["late_seconds"] == [{"slot": 1000.0, "workers": {"worker1": [2.0, 2.0, 1], "worker2": [12.0, 15.0, 2]}}]
    assert round(got["lag_max_ms"], 1) == 15.0
