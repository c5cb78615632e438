"""How the chaos tests run a profile: one subprocess of ``tests/chaos/run.py`` with ``--json``,
its summary lines printed to the terminal (not captured, so CI logs show every figure), its
figures returned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The seed of every profile the tests run (``CHAOS_SEED``, default 7).
SEED = int(os.environ.get("CHAOS_SEED", "7"))


def run_profile(profile: str, run_dir: Path, pytestconfig: Any, *extra: str,
                timeout: float = 300) -> tuple[int, dict[str, Any]]:
    """Run ``profile`` into ``run_dir`` (``extra``: more options of run.py); returns its exit
    status and its figures."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "run.py"), "--profile", profile, "--seed", str(SEED), "--json", "--quiet",
         "--workdir", str(run_dir), *extra],
        capture_output=True, text=True, timeout=timeout, cwd=HERE.parent.parent,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"the harness printed no figures (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(line for line in proc.stderr.splitlines() if line.strip()))
    return proc.returncode, json.loads(lines[-1])
