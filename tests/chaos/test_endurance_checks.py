"""The endurance profile's checks judge what they claim (no processes: synthetic figures).

A clean synthetic run passes every gate; one lost task, one doubled slot, a worker whose RSS
grows 15 %, Redis memory that keeps growing past the retention, or a fire lag that drifts
upwards each fails its own property - so a pass of ``--profile endurance`` is evidence.
And the sweeper's accounting holds when the quiesce cancels it mid-read (the memory store,
its reads held open).
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


# -- PostgreSQL (--storage postgres): the same checks, the store's on-disk size in place of
# Redis's used_memory ------------------------------------------------------------------------
PG_META = {**META, "storage": "postgres"}


def pg_samples(*, size_growth: float = 0.0, dead_growth: float = 0.0) -> list[dict]:
    """As :func:`samples`, with a PostgreSQL sampler's figures: the schema's size reaches its
    bound after about the retention, then grows by ``size_growth`` over the rest of the run."""
    out = []
    for s in samples():
        rel = s["rel"]
        ramp = min(rel / 70.0, 1.0)
        grow = 1 + size_growth * max(0.0, rel - 120) / 180
        tasks = int((1 + 150 * ramp) * MIB * grow)
        s = {k: v for k, v in s.items() if k != "redis"}
        s["postgres"] = {"total_bytes": tasks + 2 * MIB, "tasks_bytes": tasks, "tasks_heap_bytes": tasks * 2 // 3,
                         "tasks_index_bytes": tasks // 3, "tasks_live": int(90_000 * ramp) + 110,
                         "tasks_dead": int(5_000 * (1 + dead_growth * rel / 300)), "tasks_autovacuums": int(rel // 60),
                         "database_bytes": tasks + 10 * MIB, "cpu_s": rel * 0.3}
        out.append(s)
    return out


def pg_judge(**kw: object) -> tuple[dict, list]:
    return judge(PROFILE, PG_META, kw.pop("t", tally()), kw.pop("samples", pg_samples()), kw.pop("lags", lags()))


def test_a_clean_postgres_run_passes_every_gate():
    fig, props = pg_judge()
    assert all(fig["properties"].values()), fig["properties"]
    assert "postgres_size" in fig["properties"] and "redis_memory" not in fig["properties"]
    size = fig["postgres_size"]
    assert abs(size["plateau_growth"]) < 0.01 and "estimate_mib" not in size
    assert size["bytes_per_stored_task"]["min"] > 0
    assert size["tasks_dead"]["max"] == 5_000 and size["tasks_autovacuums"] == 5
    assert fig["cpu"]["postgres"]["cores"] > 0 and "redis" not in fig["cpu"]
    line = next(pr.line for pr in props if pr.key == "postgres_size")
    assert line.startswith("PostgreSQL on-disk size of schema 'endure'") and "tasks table" in line


def test_postgres_size_growing_past_the_retention_fails():
    assert pg_judge(samples=pg_samples(size_growth=0.3))[0]["properties"]["postgres_size"] is False
    assert pg_judge(samples=pg_samples(size_growth=0.05))[0]["properties"]["postgres_size"] is True


def test_the_postgres_plateau_uses_the_same_windows_as_redis():
    # the same growth, as Redis used_memory or as PostgreSQL's size: the same verdict and figure
    for growth in (0.0, 0.08, 0.3):
        redis = judge(PROFILE, META, tally(), samples(memory_growth=growth), lags())[0]["redis_memory"]
        pg = pg_judge(samples=pg_samples(size_growth=growth))[0]["postgres_size"]
        assert (redis["plateau_growth"] < 0.10) == (pg["plateau_growth"] < 0.10)
        assert abs(redis["plateau_growth"] - pg["plateau_growth"]) < 0.02, (growth, redis, pg)


def test_postgres_samples_without_a_size_fail_the_plateau():
    # the sampler could not read the size (an error every time): no figure, a failure, not a pass
    broken = [{**s, "postgres": {"error": "TimeoutError: no answer in 5 s"}} for s in pg_samples()]
    fig, _ = pg_judge(samples=broken)
    assert fig["properties"]["postgres_size"] is False and fig["postgres_size"]["plateau_growth"] is None


def test_a_redis_run_is_judged_as_before():
    fig, props = judge(PROFILE, META, tally(), samples(), lags())
    assert "redis_memory" in fig["properties"] and "estimate_mib" in fig["redis_memory"]
    line = next(pr.line for pr in props if pr.key == "redis_memory")
    assert line.startswith("Redis used_memory (retention 60 s): start 5 MiB, peak 125 MiB (estimate ")


class _HeldReads:
    """The memory store's tasks, with each ``get_many`` held until released: a read in flight."""

    def __init__(self, tasks: object) -> None:
        import asyncio

        self._tasks = tasks
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def get_many(self, ids: list[str]) -> list[object]:
        self.reading.set()
        await self.release.wait()
        return await self._tasks.get_many(ids)  # type: ignore[attr-defined]


async def test_a_sweep_cancelled_mid_read_puts_back_what_it_took(tmp_path):
    # The quiesce cancels the sweeper, then sweeps what is left. A pass cancelled while its read
    # was in flight had taken its ids off the queues: they were counted nowhere (CI: acked
    # 150,000, read back terminal 149,969, lost 0, non-terminal 0).
    import asyncio
    import time
    import types
    import uuid

    from chaos_endurance import Endurance

    from distsched import DistributeSchedule
    from distsched.model import TaskSpec

    app = DistributeSchedule(f"memory://sweep-{uuid.uuid4().hex}")
    try:
        e = Endurance(PROFILE, 1, tmp_path, verbose=False)
        e.t.acked = 30
        ids = [f"e1-{i}" for i in range(30)]
        await app.submit_many([TaskSpec(target="noop")] * 30, task_ids=ids)
        storage = await app.storage()
        held = _HeldReads(storage.tasks)
        e.storage = types.SimpleNamespace(tasks=held)
        e.pending_ranges.append((time.monotonic() - 1, 0, 20, 1.0))  # 20 acked, due
        e.recheck.extend((time.monotonic() - 1, tid, 2.0, 1.0) for tid in ids[20:])  # 10 to read again
        e.first_slot = e.next_slot = 10**12  # no slot due for ages
        sweep = asyncio.create_task(e.sweep_once())
        await asyncio.wait_for(held.reading.wait(), 10)
        sweep.cancel()
        await asyncio.gather(sweep, return_exceptions=True)
        assert sorted(entry[1] for entry in e.recheck) == sorted(ids)
        held.release.set()
        await e.sweep_once(final=True)
        # pending (no worker here): every one read back and kept for another read
        assert sorted(entry[1] for entry in e.recheck) == sorted(ids)
        assert e.t.rechecks == 30 and not e.t.lost and not e.t.unverified
    finally:
        await app.engine.close()


async def test_a_sweep_cancelled_mid_read_puts_back_the_slots_it_took(tmp_path):
    import asyncio
    import types
    import uuid

    from chaos_endurance import Endurance

    from distsched import DistributeSchedule

    app = DistributeSchedule(f"memory://sweep-{uuid.uuid4().hex}")
    try:
        e = Endurance(PROFILE, 1, tmp_path, verbose=False)
        held = _HeldReads((await app.storage()).tasks)
        e.storage = types.SimpleNamespace(tasks=held)
        e.first_slot = e.next_slot = 1_000
        e.last_slot = 1_001  # two slots of every job due
        sweep = asyncio.create_task(e.sweep_once())
        await asyncio.wait_for(held.reading.wait(), 10)
        sweep.cancel()
        await asyncio.gather(sweep, return_exceptions=True)
        assert len(e.slot_recheck) == 2 * PROFILE.jobs
        assert {entry[2] for entry in e.slot_recheck} == {1_000, 1_001}
    finally:
        await app.engine.close()
