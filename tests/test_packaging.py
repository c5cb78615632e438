"""The wheel holds only distsched* top-level packages and declares the built-in entry points."""

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
