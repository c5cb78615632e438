"""The benchmarks' short modes on PostgreSQL (--storage postgres: a throwaway database on the
server at 127.0.0.1:5432). Only correctness is asserted (lost, duplicated, missed 0), never speed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distsched.testing.postgres_server import server_answers

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module", autouse=True)
def _server() -> None:
    reason = server_answers()
    if reason is not None:
        pytest.skip(reason)


def run(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args, "--storage", "postgres", "--json"],
                          capture_output=True, text=True, cwd=BENCH, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{script} (postgres): {figures}")
    assert figures["storage"] == "postgres"
    return figures


def test_throughput_short():
    figures = run("throughput.py", "-n", "2000")
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["executed"] == 2000


def test_throughput_short_over_the_unix_socket():
    """``--transport unix``: every distsched process reaches the server through its Unix socket
    (the directory the server reports), none over TCP."""
    figures = run("throughput.py", "-n", "500", "--mode", "single", "--transport", "unix")
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["executed"] == 500
    assert figures["transport"] == "unix"  # (one mode: its figures at the top level)
    connections = figures["distsched_connections"]
    assert connections["unix"] >= 3 and connections["tcp"] == 0, connections


def test_lag_short():
    figures = run("lag.py", "--jobs", "5", "--duration", "3")
    assert figures["missed"] == 0 and figures["duplicated"] == 0 and figures["slots"] == 15


def test_scale_short():
    figures = run("scale.py", "--jobs", "500", "--idle", "1")
    assert figures["bytes_per_job"] > 0 and figures["tick_ms_10000_due"] > 0


def test_failover_short():
    figures = run("failover.py", "--kills", "1", "--handoffs", "1", "--jobs", "3")
    assert figures["missed"] == 0 and figures["doubled"] == 0
