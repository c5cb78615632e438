"""Storage passwords never reach the terminal or the logs (issue 16.4), tried as an operator
would: real ``distsched`` processes at debug verbosity against a real ``redis-server`` (and a
Sentinel) that require a password."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from distsched.testing.redis_server import RedisSentinel, RedisServer

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Canary-Pw/se?cr#et@1"
SENTINEL_PASSWORD = "Sentinel-Canary-7x"


def _forms(secret: str) -> list[str]:
    """The secret as typed and as percent-encoded (both must stay hidden)."""
    return [secret, quote(secret, safe=""), "Canary-Pw", "Sentinel-Canary"]


@pytest.fixture
def jobs_file(tmp_path: Path) -> Path:
    (tmp_path / "secret_tasks.py").write_text(textwrap.dedent("""
        from distsched import task

        @task
        def tick():
            return "tock"
    """))
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent("""
        [worker]
        imports = ["secret_tasks"]

        [[jobs]]
        name = "tick"
        every = "0.3s"
        target = "tick"
    """))
    return path


def _distsched(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_STORAGE"}
    return subprocess.run([sys.executable, "-m", "distsched", "-vv", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _assert_hidden(proc: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        for form in _forms(secret):
            assert form not in proc.stdout, f"{form!r} printed on stdout:\n{proc.stdout}"
            assert form not in proc.stderr, f"{form!r} printed on stderr:\n{proc.stderr}"


@pytest.fixture
def password_server():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    with RedisServer(users={"default": PASSWORD}) as server:
        yield server


def test_run_and_status_with_a_password_never_print_it(password_server, jobs_file):
    url = password_server.url_for("default", PASSWORD, namespace=f"s{uuid.uuid4().hex[:8]}")
    assert quote(PASSWORD, safe="") in url
    proc = _distsched("run", str(jobs_file), "--storage", url, "--duration", "1.5", cwd=jobs_file.parent)
    assert proc.returncode == 0, proc.stderr
    assert any(" tick " in line and "succeeded" in line for line in proc.stdout.splitlines()), proc.stdout
    assert f"127.0.0.1:{password_server.port}" in proc.stderr and "default:***@" in proc.stderr
    assert "DEBUG" in proc.stderr  # the logs are in what was checked
    _assert_hidden(proc, PASSWORD)

    status = _distsched("status", "--storage", url, cwd=jobs_file.parent)
    assert status.returncode == 0, status.stderr
    assert re.search(r"^storage +redis://default:\*\*\*@127\.0\.0\.1:", status.stdout, re.M), status.stdout
    _assert_hidden(status, PASSWORD)

    wrong = _distsched("status", "--storage", url.replace(quote(PASSWORD, safe=""), "Canary-PwWrong"),
                       cwd=jobs_file.parent)
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    _assert_hidden(wrong, PASSWORD, "Canary-PwWrong")


@pytest.mark.parametrize("password", ["p?wCanary-Pw", "Pass#w/rdCanary-Pw", "se/cretCanary-Pw", "p@ss?Canary-Pw"])
def test_an_unencoded_password_is_refused_without_showing_it(password_server, jobs_file, password):
    url = f"redis://default:{password}@127.0.0.1:{password_server.port}/0"
    proc = _distsched("run", str(jobs_file), "--storage", url, "--duration", "0", cwd=jobs_file.parent)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "percent-encode" in proc.stderr and "default:***@" in proc.stderr, proc.stderr
    _assert_hidden(proc, password)


def test_the_sentinel_form_never_prints_either_password(jobs_file):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    with RedisServer(users={"app": PASSWORD}, default_user=False) as master, \
            RedisSentinel(master, service="secretmaster", password=SENTINEL_PASSWORD) as sentinel:
        url = sentinel.url_for("app", PASSWORD, sentinel_password=SENTINEL_PASSWORD,
                               namespace=f"s{uuid.uuid4().hex[:8]}")
        assert SENTINEL_PASSWORD in url
        proc = _distsched("run", str(jobs_file), "--storage", url, "--duration", "1.5", cwd=jobs_file.parent)
        assert proc.returncode == 0, proc.stderr
        assert any(" tick " in line and "succeeded" in line for line in proc.stdout.splitlines()), proc.stdout
        assert "sentinel_password=***" in proc.stderr and "app:***@" in proc.stderr
        _assert_hidden(proc, PASSWORD, SENTINEL_PASSWORD)

        wrong = _distsched("status", "--storage", url.replace(SENTINEL_PASSWORD, "Sentinel-CanaryWrong"),
                           cwd=jobs_file.parent)
        assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
        _assert_hidden(wrong, PASSWORD, SENTINEL_PASSWORD, "Sentinel-CanaryWrong")
