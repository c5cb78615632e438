"""The endurance profile's checks judge what they claim (no processes: synthetic figures).

A clean synthetic run passes every gate; one lost task, one doubled slot, a worker whose RSS
grows 15 %, Redis memory that keeps growing past the retention, or a fire lag that drifts
upwards each fails its own property - so a pass of ``--profile endurance`` is evidence.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_endurance import ENDURANCE_PROFILES, Tally, judge, unexplained  # noqa: E402

PROFILE = ENDURANCE_PROFILES["endurance-ci"]  # 300 s, retention 60 s, windows of 60 s
MIB = 2**20


def samples(*, worker_growth: float = 0.0, memory_growth: float = 0.0) -> list[dict]:
    out = []
    for k in range(61):
        rel = k * 5.0
        ramp = min(rel / 70.0, 1.0)  # memory reaches its bound after about the retention
        grow = 1 + memory_growth * max(0.0, rel - 120) / 180
        worker = 45 * 1024 * (1 + worker_growth * max(0.0, rel - 60) / 240)
        out.append({
            "t": 1000.0 + rel, "rel": rel, "leader": "s1-g1", "loading": True,
            "procs": {"s1-g1": {"role": "scheduler", "rss_kb": 48 * 1024, "cpu_s": rel * 0.1, "leader": True},
                      "s2-g1": {"role": "scheduler", "rss_kb": 40 * 1024, "cpu_s": rel * 0.01, "leader": False},
                      "w1-g1": {"role": "worker", "rss_kb": int(worker), "cpu_s": rel * 0.05, "leader": False}},
            "redis": {"used_memory": int((5 + 120 * ramp) * MIB * grow), "cpu_s": rel * 0.2},
            "counts": {"pending": 100, "running": 10, "succeeded": int(90_000 * ramp) + 1},
            "acked": int(rel * 1000), "verified": int(rel * 1000), "slots_checked": int(rel * 500),
            "harness_cpu_s": rel * 0.05, "loadavg": 3.0,
        })
    return out


META = {"seed": 1, "wall_seconds": 310.0, "load_started": 1000.0, "load_ended": 1300.0,
        "first_slot": 1002, "last_slot_checked": 1301, "non_terminal_count": 0, "slots_unresolved_at_end": 0,
        "kills": [{"kind": "leader", "takeover_s": 4.1}, {"kind": "worker"}], "exit_codes": {"s1-g1": 0}}


def tally(**changes: object) -> Tally:
    t = Tally(acked=300_000, verified=300_000, slots_checked=300 * 500)
    t.by_state["succeeded"] = 300_000
    t.slot_states["succeeded"] = 300 * 500
    for key, value in changes.items():
        setattr(t, key, value)
    return t


def lags(drift: float = 0.0) -> dict[int, list[float]]:
    return {w: [0.01 + drift * w] * 990 + [0.2 + drift * w] * 10 for w in range(5)}


def verdict(**kw: object) -> dict[str, bool]:
    fig, _ = judge(PROFILE, META, kw.pop("t", tally()), kw.pop("samples", samples()), kw.pop("lags", lags()))
    return fig["properties"]


def test_a_clean_run_passes_every_gate():
    assert all(verdict().values()), verdict()


def test_one_lost_task_fails_no_task_lost():
    t = tally(verified=299_999, lost=["e1-7"])
    assert verdict(t=t)["no_task_lost"] is False


def test_a_task_left_unread_fails_no_task_lost():
    assert verdict(t=tally(verified=299_999))["no_task_lost"] is False


def test_one_doubled_or_missing_slot_fails_slots():
    assert verdict(t=tally(slots_doubled=["e-001@1100000"]))["slots"] is False
    assert verdict(t=tally(slots_missing=["e-001@1100000"], slots_checked=300 * 500 - 1))["slots"] is False


def test_worker_rss_growing_15_percent_fails_rss_flat():
    assert verdict(samples=samples(worker_growth=0.15))["rss_flat"] is False
    assert verdict(samples=samples(worker_growth=0.05))["rss_flat"] is True


def test_redis_memory_growing_past_the_retention_fails():
    assert verdict(samples=samples(memory_growth=0.3))["redis_memory"] is False


def test_fire_lag_drifting_upwards_fails_fire_lag():
    assert verdict(lags=lags(drift=0.2))["fire_lag"] is False


def test_dispatches_are_explained_by_redeliveries_and_retries():
    @attrs.define
    class T:
        dispatches: int
        redeliveries: int = 0
        attempt: int = 1

    assert unexplained(T(dispatches=1)) == 0
    assert unexplained(T(dispatches=2, redeliveries=1)) == 0
    assert unexplained(T(dispatches=2, attempt=2)) == 0
    assert unexplained(T(dispatches=2)) == 1
