"""The wheel holds only distsched* top-level packages and declares the built-in entry points;
the tree compiles on the oldest Python the project claims."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if proc.returncode != 0 and "No module named 'hatchling'" in proc.stderr:
        pytest.skip("hatchling is not installed in this environment (pip install hatchling)")
    assert proc.returncode == 0, proc.stderr
    [path] = out.glob("distsched-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_top_level_names(wheel):
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert all(t.startswith("distsched") for t in top), top
    assert {"distsched", "distsched_memory", "distsched_local", "distsched_balancers"} <= top
    assert "engine" not in top and "plugins" not in top


def test_wheel_entry_points(wheel):
    [ep_file] = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(ep_file).decode()
    for line in ("memory = distsched_memory.hooks", "local = distsched_local.hooks",
                 "balancers = distsched_balancers.hooks", "distsched = distsched.cli:main"):
        assert line in text


def test_wheel_ships_package_data(wheel):
    names = wheel.namelist()
    assert "distsched/py.typed" in names
    lua = [n for n in names if n.endswith(".lua")]
    redis_lua = sorted((ROOT / "plugins" / "distsched_redis").rglob("*.lua"))
    assert len(lua) == len(redis_lua), "every Lua script of the Redis plugin is in the wheel"


def test_source_roots_are_not_importable():
    for name in ("engine", "plugins"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, cwd="/")
        assert proc.returncode != 0, f"`import {name}` must fail: it is a source root, not a package"


def _oldest_python() -> tuple[int, int]:
    """The oldest Python that pyproject.toml's ``requires-python`` admits."""
    found = re.search(r'^requires-python\s*=\s*">=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found, "requires-python is not of the form >=3.N"
    return int(found[1]), int(found[2])


def _interpreter(major: int, minor: int) -> str | None:
    """A Python major.minor that runs: this one, one pyenv installed, or one on PATH (a pyenv
    shim of a version not selected is on PATH but does not run)."""
    if sys.version_info[:2] == (major, minor):
        return sys.executable
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [str(p) for p in sorted(versions.glob(f"{major}.{minor}.*/bin/python"), reverse=True)]
    candidates.append(shutil.which(f"python{major}.{minor}") or "")
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, timeout=60,
                               text=True)
        if probe.returncode == 0 and probe.stdout.split() == [str(major), str(minor)]:
            return candidate
    return None


#: Compiles (in memory: nothing is written) every .py below the folders given; prints those that fail.
_COMPILE_ALL = """
import pathlib, sys
for root in sys.argv[1:]:
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            print(f"{path}:{exc.lineno}: {exc.msg}")
"""


def test_every_module_compiles_on_the_oldest_python_it_claims():
    """``requires-python`` admits 3.10, and tox runs the suite there: every module of the tree
    (tests and benchmarks too) must compile on it. Was: a test used an async comprehension
    inside a dict comprehension (allowed from 3.11), so on 3.10 the Redis tests stopped at
    collection, while the suite on 3.11+ (CI's) saw nothing."""
    major, minor = _oldest_python()
    python = _interpreter(major, minor)
    if python is None:
        pytest.skip(f"no Python {major}.{minor} here (on PATH as python{major}.{minor}, or under pyenv)")
    roots = [name for name in ("engine", "plugins", "tests", "benchmarks", "examples") if (ROOT / name).is_dir()]
    proc = subprocess.run([python, "-I", "-c", _COMPILE_ALL, *roots], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"does not compile on Python {major}.{minor}:\n{proc.stdout}"
