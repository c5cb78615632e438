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


def test_probe_figures_split_a_late_workers_oversleep_into_running_and_queued(lag):
    """``--probe``: a loop's oversleeps (start, end, running ms, queued ms) summed per window,
    and on a late second those between the slot and each worker's first start."""
    probes = {
        "worker1": [(999.5, 999.51, 1.0, 8.0)],  # before the window: left out
        "worker2": [(1000.001, 1000.02, 4.0, 14.0), (1001.5, 1001.506, 1.0, 4.0)],
        "scheduler": [],
    }
    late = [{"slot": 1000.0, "workers": {"worker1": [2.0, 2.0, 1], "worker2": [12.0, 15.0, 2]}}]
    got = lag.probe_window(probes, 1000.0, 1002.0, late)
    none = {"oversleeps": 0, "wall_ms": 0.0, "running_ms": 0.0, "queued_ms": 0.0, "asleep_ms": 0.0}
    assert got == {"worker1": none, "scheduler": none,
                   "worker2": {"oversleeps": 2, "wall_ms": 25.0, "running_ms": 5.0, "queued_ms": 18.0,
                               "asleep_ms": 2.0}}
    assert late[0]["probe"] == {"worker1": none, "worker2": {"oversleeps": 1, "wall_ms": 19.0, "running_ms": 4.0,
                                                             "queued_ms": 14.0, "asleep_ms": 1.0}}
    assert lag.probe_window({"worker1": None}, 1000.0, 1002.0, []) == {"worker1": None}  # not probed
