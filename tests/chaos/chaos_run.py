"""How the chaos tests run a profile: one subprocess of ``tests/chaos/run.py`` with ``--json``,
its summary lines printed to the terminal (not captured, so CI logs show every figure), its
figures returned.

The runs whose figures several tests share, or that take half a minute or more, are named in ``EARLY``
(by the fixture that returns them). A session that selects a test using one starts them at
the end of collection, in the background, one at a time (``Background``), while the suite's
in-process tests run; ``tests/chaos/conftest.py`` orders those first, the tests reading the
runs next, the other slow (multi-process) tests after them and the endurance profile last, so
no two multi-process runs share the machine. The fixture then waits for its run's result
(``early_profile``) instead of starting it; run alone (``pytest tests/chaos/test_chaos.py``),
the wait is the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
#: The seed of every profile the tests run (``CHAOS_SEED``, default 7).
SEED = int(os.environ.get("CHAOS_SEED", "7"))


def _command(profile: str, run_dir: Path, extra: Iterable[str]) -> list[str]:
    return [sys.executable, str(HERE / "run.py"), "--profile", profile, "--seed", str(SEED), "--json", "--quiet",
            "--workdir", str(run_dir), *extra]


def _figures(returncode: int, stdout: str, stderr: str, pytestconfig: Any) -> tuple[int, dict[str, Any]]:
    lines = stdout.strip().splitlines()
    assert lines, f"the harness printed no figures (exit {returncode}):\n{stderr[-4000:]}"
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(line for line in stderr.splitlines() if line.strip()))
    return returncode, json.loads(lines[-1])


def run_profile(profile: str, run_dir: Path, pytestconfig: Any, *extra: str,
                timeout: float = 300) -> tuple[int, dict[str, Any]]:
    """Run ``profile`` into ``run_dir`` (``extra``: more options of run.py); returns its exit
    status and its figures."""
    proc = subprocess.run(_command(profile, run_dir, extra), capture_output=True, text=True, timeout=timeout,
                          cwd=HERE.parent.parent)
    return _figures(proc.returncode, proc.stdout, proc.stderr, pytestconfig)


def has_faketime() -> bool:
    """libfaketime and ``faketime`` (Debian package faketime): the clock-skew faults need them."""
    from chaos_cluster import LIBFAKETIME

    return os.path.exists(LIBFAKETIME) and shutil.which("faketime") is not None


def has_redis() -> bool:
    """A ``redis-server`` on PATH."""
    from distsched.testing.redis_server import redis_server_binary

    return redis_server_binary() is not None


def has_postgres() -> bool:
    """PostgreSQL's server binaries (initdb, pg_ctl) and asyncpg: a throwaway cluster can run."""
    from distsched.testing.postgres_server import postgres_bindir

    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return False
    return postgres_bindir() is not None


@dataclass(frozen=True)
class Early:
    """A profile run that a fixture of that name returns; started early only where it can run."""

    profile: str
    extra: tuple[str, ...] = ()
    timeout: float = 300
    can_run: Callable[[], bool] = has_redis


#: The runs started early, by the name of the fixture that returns their figures, in the order
#: they are started.
EARLY: dict[str, Early] = {
    "smoke": Early("smoke", timeout=240),
    "fence_check": Early("fence-check", ("--mutate", "no-fence"), timeout=180),
    "pg_smoke": Early("smoke", ("--storage", "postgres"), can_run=has_postgres),
    "pg_fence_check": Early("fence-check", ("--storage", "postgres", "--mutate", "no-fence"), timeout=180,
                            can_run=has_postgres),
    "faults2": Early("faults2", can_run=lambda: has_redis() and has_faketime()),
    "skew_check": Early("skew-check", ("--mutate", "wall-clock"), can_run=lambda: has_redis() and has_faketime()),
    "everysec": Early("everysec"),
}


#: Starts its arguments as a process of a new session and exits at once, printing its pid: the
#: process is then no child of the test session (its parent is gone), so a test that walks this
#: process's descendants (the executor contract's check for processes an attempt left behind,
#: which also kills them) never sees a chaos run's processes.
_DETACH = ("import subprocess, sys; print(subprocess.Popen(sys.argv[1:], start_new_session=True, "
           "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
#: The detached shell: runs the command with its output in files, then writes its exit status.
_RUN_TO_FILES = '"$@" >"$0.out" 2>"$0.err"; echo $? >"$0.rc.tmp" && mv "$0.rc.tmp" "$0.rc"'
#: How often a wait for a detached run looks for its exit status (the run writes it last).
_POLL = 0.25


class Background:
    """The early runs of a session, one at a time in a thread; ``result`` waits for one. Each
    run is detached from the session's process tree (``_DETACH``) and reports through files."""

    def __init__(self, names: list[str], base: Path) -> None:
        self.names = names
        self.base = base
        self.results: dict[str, tuple[int, str, str]] = {}
        self.done = {name: threading.Event() for name in names}
        self.stopping = threading.Event()
        self.group: int | None = None  # the running run's process group
        self.thread = threading.Thread(target=self._run_all, name="chaos-early-runs", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run_dir(self, name: str) -> Path:
        return self.base / name / "run"

    def _run_all(self) -> None:
        for name in self.names:
            try:
                if self.stopping.is_set():
                    self.results[name] = (-1, "", "the session ended before this run started")
                else:
                    self.results[name] = self._run(name, EARLY[name])
            except Exception as exc:  # reported by the fixture that waits for it
                self.results[name] = (-1, "", f"the run could not start: {exc!r}")
            finally:
                self.done[name].set()

    def _run(self, name: str, early: Early) -> tuple[int, str, str]:
        prefix = self.base / name / "harness"
        prefix.parent.mkdir(parents=True, exist_ok=True)
        launcher = subprocess.run(
            [sys.executable, "-c", _DETACH, "sh", "-c", _RUN_TO_FILES, str(prefix),
             *_command(early.profile, self.run_dir(name), early.extra)],
            capture_output=True, text=True, timeout=30, cwd=HERE.parent.parent, check=True)
        self.group = int(launcher.stdout)
        rc_file = Path(f"{prefix}.rc")
        deadline = time.monotonic() + early.timeout
        note = ""
        while not rc_file.exists():
            if self.stopping.wait(_POLL) or time.monotonic() > deadline:
                note = (f"\nthe run took over {early.timeout:g}s: killed" if not self.stopping.is_set()
                        else "\nthe session ended: killed")
                self._kill()
                break
        self.group = None
        returncode = int(rc_file.read_text()) if rc_file.exists() else -1
        out = Path(f"{prefix}.out").read_text() if Path(f"{prefix}.out").exists() else ""
        err = Path(f"{prefix}.err").read_text() if Path(f"{prefix}.err").exists() else ""
        return returncode, out, err + note

    def _kill(self) -> None:
        if self.group is not None:
            try:
                os.killpg(self.group, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def result(self, name: str) -> tuple[int, str, str]:
        # each run is bounded by its own timeout, so the wait is too
        self.done[name].wait()
        return self.results[name]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


#: Where the session's ``Background`` is kept (``config.stash``), when one was started.
BACKGROUND_KEY = pytest.StashKey[Background]()


def early_profile(name: str, pytestconfig: Any, run_dir: Path) -> tuple[int, dict[str, Any]]:
    """The exit status and figures of the run ``EARLY[name]``: the background's, when the
    session started it, else run now into ``run_dir``."""
    background = pytestconfig.stash.get(BACKGROUND_KEY, None)
    if background is not None and name in background.done:
        return _figures(*background.result(name), pytestconfig)
    early = EARLY[name]
    return run_profile(early.profile, run_dir, pytestconfig, *early.extra, timeout=early.timeout)
