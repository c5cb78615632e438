"""Every benchmark runs once in a short mode so it cannot rot. Only correctness is asserted
(lost 0, duplicated 0, missed 0 - each script exits non-zero otherwise), never speed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distsched.testing.redis_server import redis_server_binary

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
pytestmark = [pytest.mark.slow, pytest.mark.redis,
              pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")]


def run(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args, "--json"], capture_output=True, text=True,
                          cwd=BENCH, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{script}: {figures}")
    return figures


def test_throughput_short():
    """Both modes (single: one ``await app.submit`` at a time; bulk: ``submit_many``) with
    their raw-Redis ceilings and Redis command counts."""
    figures = run("throughput.py", "-n", "2000")
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["executed"] == 2000
    for mode in ("single", "bulk"):
        f = figures["modes"][mode]
        assert f["lost"] == 0 and f["duplicated"] == 0 and f["executed"] == 2000, mode
        assert f["commands_per_task"] > 0 and f["enqueue_commands_per_submit"] > 0, mode
        assert f["raw_pipelined_per_s"] > 0 and f["raw_sequential_per_s"] > 0, mode
        assert set(f["kernel_us_per_task"]) == set(f["switches_per_task"]) == set(f["cpu_us_per_task"]), mode
        assert f["task_writes"] >= 2000, mode  # each task wrote (a retried one may write twice)
        assert 0 < f["submit_seconds"] <= f["seconds"], mode
        assert abs(f["drain_ms"] - (f["seconds"] - f["submit_seconds"]) * 1000) < 1.5, mode  # both rounded
        # the tasks' own writes (redis-py's incr sends INCRBY; the engine sends none) left out
        assert f["commands_per_task_by_command"].get("incrby", 0) == 0, mode


def test_throughput_short_over_the_unix_socket():
    """``--transport unix``: every distsched process reaches Redis through its socket
    (``redis+unix://``), and so do the raw ceilings and the tasks' own writes."""
    figures = run("throughput.py", "-n", "1000", "--mode", "single", "--transport", "unix")
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["executed"] == 1000
    assert figures["transport"] == "unix" and figures["task_writes"] >= 1000
    assert figures["raw_pipelined_per_s"] > 0 and figures["raw_sequential_per_s"] > 0
    conns = figures["distsched_connections"]  # the scheduler's and the workers'
    assert conns["unix"] >= 3 and conns["tcp"] == 0, conns


def test_lag_short():
    figures = run("lag.py", "--jobs", "5", "--duration", "3")
    assert figures["missed"] == 0 and figures["duplicated"] == 0 and figures["slots"] == 15
    loaded = figures["loaded"]  # the second window, under a sequential submitter's load
    assert loaded["missed"] == 0 and loaded["duplicated"] == 0 and loaded["slots"] == 15
    assert loaded["submitted"] > 0
    assert 0 < loaded["task_writes"] <= loaded["submitted"]  # the load tasks wrote, once each
    for f in (figures, loaded):  # the machine's stalls beside each window
        assert f["stalls"] >= 0 and f["stall_max_ms"] >= 0 and 0 <= f["late_slots_in_stalls"] <= f["late_slots"]
        assert len(f["late_seconds"]) == f["late_slots"]  # each late second, by worker
    assert figures["stall_probe"] in ("real-time", "normal")


def test_lag_short_probe():
    """``--probe``: the scheduler's and workers' loops are probed (their oversleeps over 4 ms,
    running or queued for a core), reported per process."""
    figures = run("lag.py", "--jobs", "5", "--duration", "3", "--no-load", "--probe")
    assert figures["missed"] == 0 and figures["duplicated"] == 0
    assert set(figures["probe"]) == {"scheduler", "worker1", "worker2"}
    for got in figures["probe"].values():
        assert got is not None, "the probe did not run in every process"
        assert got["oversleeps"] >= 0 and got["wall_ms"] >= 4 * got["oversleeps"]
        assert got["running_ms"] >= 0 and got["queued_ms"] >= 0
    for late in figures["late_seconds"]:
        assert set(late["probe"]) == set(late["workers"])


def test_lag_short_metrics_agree():
    """The workers' /metrics fire-lag histogram agrees with the benchmark's own figures."""
    figures = run("lag.py", "--jobs", "5", "--duration", "3", "--metrics", "--no-load")
    assert figures["missed"] == 0 and figures["duplicated"] == 0
    assert figures["metrics_count"] == figures["slots"] == 15
    low, high = figures["metrics_p99_bucket_ms"]
    assert figures["metrics_agree"] and low - 0.01 < figures["lag_p99_ms"] <= high + 0.01


def test_scale_short():
    figures = run("scale.py", "--jobs", "500", "--idle", "1")
    assert figures["redis_bytes_per_job"] > 0 and figures["tick_ms_10000_due"] > 0


def test_failover_short():
    figures = run("failover.py", "--kills", "1", "--handoffs", "1", "--jobs", "3")
    assert figures["missed"] == 0 and figures["doubled"] == 0


def test_http_short():
    figures = run("http_bench.py", "-n", "100", "--paced", "10")
    assert figures["burst_succeeded"] == 100 and figures["paced_succeeded"] == 10


def test_web_short():
    figures = run("web_bench.py", "--jobs", "2000", "--tasks", "4000", "--requests", "3", "-n", "2000", "--runs", "1")
    assert figures["part1"]["tasks"] == 4000 and figures["part1"]["counts"]["failed"] == 400
    assert set(figures["part1"]["calls"]) >= {"page /", "page /jobs", "api tasks", "api task", "page /workers"}
    assert figures["part2"]["lost"] == 0


@pytest.mark.cluster
@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not on PATH")
def test_cluster_short():
    """The same end-to-end run on one redis-server and on a Redis Cluster (3 + 3 nodes)."""
    figures = run("cluster.py", "-n", "1000")
    assert figures["lost"] == 0 and figures["duplicated"] == 0
    for kind in ("single", "cluster"):
        assert figures[kind]["executed"] == 1000 and figures[kind]["commands_per_task"] > 0, kind


def test_peers_short():
    """huey, taskiq and dramatiq, and the two skeletons (distsched's layout with nothing kept),
    beside distsched's single mode: each one's tasks all ran, and no skeleton process outlives
    its run. The peers are installed into a virtual environment of their own, from the package
    index: where it cannot be reached, peers.py says so (exit status 3) and this is skipped."""
    proc = subprocess.run([sys.executable, str(BENCH / "peers.py"), "-n", "300", "--runs", "1", "--json"],
                          capture_output=True, text=True, cwd=BENCH, timeout=400)
    if proc.returncode == 3:
        pytest.skip(f"the peers could not be installed: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["lost"] == 0 and figures["duplicated"] == 0
    assert figures["transport"] == "tcp"
    for system in ("distsched", "huey", "taskiq", "dramatiq", "skeleton", "skeleton-asyncio"):
        assert figures[system]["tasks_per_s"] > 0 and figures[system]["enqueue_median"] > 0, system
        assert figures[system]["cpu_us_per_task_all"] > 0 and figures[system]["cpu_us_per_task"]["redis"] > 0, system
    # the skeletons are bounds, never the fastest peer; their CPU is split by process
    assert figures["fastest_peer"] in ("huey", "taskiq", "dramatiq") and figures["ratio_to_fastest_peer"] > 0
    for skeleton in ("skeleton", "skeleton-asyncio"):
        assert set(figures[skeleton]["cpu_us_per_task"]) == {"producer", "leader", "worker1", "worker2", "redis"}
        assert figures[f"ratio_to_{skeleton}"] > 0 and figures[f"enqueue_ratio_to_{skeleton}"] > 0
        assert figures[skeleton]["left_running"] == 0, "a leader or worker outlived its consumer"


def test_redis_steps_short():
    """Each step of a task's path, as functions and as scripts: every step was seen."""
    figures = run("redis_steps.py", "--batch", "2", "--tasks", "20", "--reps", "1", "--split")
    for how in ("fcall", "evalsha"):
        b = figures["batches"]["2"][how]
        assert all(us > 0 for us in b["us_per_task"].values()), (how, b)
        assert b["calls_per_task"] == pytest.approx(3.0), (how, b)  # six calls of two tasks each
    split = figures["batches"]["2"]["fcall"]["split"]
    assert set(split) == set(figures["batches"]["2"]["fcall"]["us_per_task"])
    for step, f in split.items():  # every step runs commands, and its script's time is more than theirs
        assert f["commands_us"] > 0 and f["script_us"] > 0 and "fcall" not in f["commands"], (step, f)
    assert split["submit"]["commands"]["hset"][0] == pytest.approx(1.0), split["submit"]  # one HSET a new task


def test_submit_floor_short():
    """Every layer of a sequential submit, with the Python clients' floor: an LPUSH layer is one
    command per call, and the layers above the submit function add no Redis command to it."""
    figures = run("submit_floor.py", "-n", "200", "--reps", "1")
    layers = figures["layers"]
    for name in ("sync LPUSH", "asyncio LPUSH", "lean LPUSH"):
        assert layers[name]["commands"] == pytest.approx(1.0), (name, layers[name])
    # the same commands per call (a layer that added one would add 1.0), give or take a few a
    # layer: the look every few dozen writes that makes a growing index a skiplist
    # (docs/redis.md, "Small sorted sets") falls on different calls of each layer's run
    submits = [layers[name]["commands"] for name in ("lean submit", "store submit", "app submit")]
    assert max(submits) - min(submits) < 0.2 and min(submits) > 1, layers
    assert all(f["wall_us"] > 0 and f["client_cpu_us"] > 0 for f in layers.values()), layers
