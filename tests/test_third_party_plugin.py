"""A third-party plugin, built and installed the way a user installs one from PyPI, works.

A fresh virtual environment (created once for the module) gets distsched from this
repository (a real, non-editable install) and the example plugin
``examples/plugins/distsched-example``. In that environment:

* ``distsched plugins --json`` lists ``example`` with its distribution, version, executor
  and balancer;
* ``distsched run`` runs a job through the plugin's ``echo`` executor and ``most-free``
  balancer, and the plugin's observer writes the ``task.finished`` event to its file;
* the plugin's own test suite (built on ``distsched.testing``'s contract suites) passes;
* a disabled plugin is shown as disabled and a job that needs it is refused with the
  missing name, and a broken plugin next to it is reported without breaking anything else;
* two more packages built here, registering an executor named ``local`` like the built-in
  (one plainly, one with ``replace=True``), make the name unusable - shown by ``distsched
  plugins``, a job using it refused naming both distributions - until one is disabled, or
  the operator allows the declared replacement.

Everything runs in subprocesses with timeouts; nothing waits on a sleep.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "plugins" / "distsched-example"

#: Upper bounds, not expected durations (the whole module takes ~30-40 s with a warm pip cache).
VENV_TIMEOUT = 120
PIP_TIMEOUT = 300
CLI_TIMEOUT = 60
SUITE_TIMEOUT = 180

#: pip output that means the package index cannot be reached: skip rather than fail.
OFFLINE_SIGNS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
)

JOBS = """\
[[jobs]]
name = "echo-job"
every = "1s"
executor = "echo"
balancer = "most-free"
target = "hello"
args = [1, "two"]
kwargs = { three = 3 }
timeout = "5s"
"""


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class Venv:
    """A virtual environment and a clean way to run its programs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / ("python.exe" if os.name == "nt" else "python")
        self.distsched_exe = self.bin / ("distsched.exe" if os.name == "nt" else "distsched")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Nothing of the outer test run leaks in: no DISTSCHED_* settings (storage URL,
        # disabled plugins), no PYTHONPATH, no pytest variables. No .pyc or cache files are
        # written next to the sources in the repository.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DISTSCHED_", "PYTHON", "PYTEST_", "VIRTUAL_ENV"))}
        env["PATH"] = str(self.bin) + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(self.path)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(extra or {})
        return env

    def run(self, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        try:
            return subprocess.run(cmd, env=self.env(env), cwd=cwd or self.path, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`{' '.join(cmd)}` did not finish within {timeout}s\n"
                        f"stdout:\n{_tail(_text(exc.stdout))}\nstderr:\n{_tail(_text(exc.stderr))}")

    def pip_install(self, *args: str | Path) -> None:
        proc = self.run(self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args,
                        timeout=PIP_TIMEOUT)
        if proc.returncode != 0:
            what = " ".join(str(a) for a in args)
            if any(sign in proc.stderr for sign in OFFLINE_SIGNS):
                pytest.skip(f"cannot install {what} into a fresh virtual environment: the package index "
                            f"is unreachable (offline?):\n{_tail(proc.stderr, 5)}")
            pytest.fail(f"pip install {what} failed:\n{_tail(proc.stderr)}")

    def distsched(self, *args: str | Path, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.distsched_exe, *args, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """distsched (from this repository, non-editable) + the example plugin + the test kit."""
    started = time.monotonic()
    path = tmp_path_factory.mktemp("third-party") / "venv"
    try:
        proc = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True, text=True,
                              timeout=VENV_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot create a virtual environment with `{sys.executable} -m venv`: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot create a virtual environment with `{sys.executable} -m venv` "
                    f"(on Debian/Ubuntu: apt-get install python3-venv):\n{_tail(proc.stderr, 5)}")
    env = Venv(path)
    # hatchling first, so both projects build in this environment (--no-build-isolation):
    # one download of the build backend instead of one isolated build env per project.
    env.pip_install("hatchling>=1.21")
    env.pip_install("--no-build-isolation", f"{ROOT}[testing]", PLUGIN)
    print(f"venv with distsched and distsched-example ready in {time.monotonic() - started:.1f}s")
    return env


@pytest.fixture
def jobs_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo.toml"
    path.write_text(JOBS)
    return path


def _plugins(proc: subprocess.CompletedProcess[str], returncode: int = 0) -> dict[str, dict]:
    assert proc.returncode == returncode, proc.stderr
    return {item["name"]: item for item in json.loads(proc.stdout)}


def _task_lines(stdout: str, job: str) -> list[list[str]]:
    # "HH:MM:SS.mmm  echo-job  attempt 1  succeeded  0.001s"
    return [fields for fields in (line.split() for line in stdout.splitlines()) if fields[1:2] == [job]]


def test_distsched_plugins_lists_the_installed_plugin(venv: Venv) -> None:
    plugins = _plugins(venv.distsched("plugins", "--json"))
    example = plugins["example"]
    assert (example["dist"], example["version"]) == ("distsched-example", "0.1.0")
    assert example["module"] == "distsched_example.hooks"
    assert example["provides"] == {"executor": ["echo"], "balancer": ["most-free"]}
    assert example["hooks"] == ["distsched_configure", "distsched_event", "distsched_register_balancers",
                                "distsched_register_executors"]
    assert example["error"] is None and example["disabled"] is False
    # The built-ins are discovered next to it, from the installed distsched wheel.
    assert {"memory", "local", "balancers"} <= plugins.keys()
    assert plugins["local"]["dist"] == "distsched"


def test_run_uses_the_plugins_executor_balancer_and_observer(venv: Venv, jobs_file: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    proc = venv.distsched("run", jobs_file, "--duration", "3",
                          env={"DISTSCHED_EXAMPLE_EVENTS": str(events)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = _task_lines(proc.stdout, "echo-job")
    assert lines, f"no finished attempt of echo-job in the output:\n{proc.stdout}\n{proc.stderr}"
    assert all(fields[4] == "succeeded" for fields in lines), proc.stdout
    assert "0 failed" in proc.stderr

    assert events.exists(), "the plugin's observer wrote no events"
    records = [json.loads(line) for line in events.read_text().splitlines()]
    finished = [r for r in records if r["kind"] == "task.finished" and r["job"] == "echo-job"]
    assert finished, records
    assert {r["state"] for r in finished} == {"succeeded"}
    dispatched = {r["task_id"] for r in records if r["kind"] == "task.dispatched"}
    assert {r["task_id"] for r in finished} <= dispatched
    assert len(finished) == len(lines)  # one event per attempt the CLI printed


def test_a_scheduler_gives_the_plugin_its_table_from_the_config_file(venv: Venv, tmp_path: Path) -> None:
    # The observer reads [plugins.example] events through distsched_configure (the public
    # API only) in a real scheduler process; `distsched plugins` shows the keys, not values.
    events = tmp_path / "events.jsonl"
    config = tmp_path / "distsched.toml"
    config.write_text(f"[plugins.example]\nevents = {json.dumps(str(events))}\n")
    listed = _plugins(venv.distsched("plugins", "--json", "--config", config))
    assert listed["example"]["settings"] == ["events"]
    assert str(events) not in json.dumps(listed)
    proc = subprocess.Popen([str(venv.distsched_exe), "scheduler", "--config", str(config)], cwd=tmp_path,
                            env=venv.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from distsched.testing.processes import wait_until

        wait_until(lambda: events.exists() and "leader.elected" in events.read_text(), CLI_TIMEOUT,
                   what="the example observer's leader.elected line")
    finally:
        proc.terminate()
        proc.communicate(timeout=CLI_TIMEOUT)
    config.write_text("[plugins.example]\nevent = \"typo.jsonl\"\n")
    refused = venv.distsched("scheduler", "--config", config, "--fail-fast", cwd=tmp_path)
    assert refused.returncode == 1
    assert "[plugins.example] event: unknown setting (the example plugin reads: events)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_plugins_own_test_suite_passes(venv: Venv, tmp_path: Path) -> None:
    # Run from tmp_path (hypothesis keeps its database in the working directory) without the
    # cache provider, so the repository gets no .pytest_cache or .hypothesis.
    proc = venv.run(venv.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", PLUGIN / "tests",
                    cwd=tmp_path, timeout=SUITE_TIMEOUT)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary


@pytest.mark.parametrize("how", ["env", "option"])
def test_a_disabled_plugin_is_shown_and_a_job_needing_it_is_refused(
    venv: Venv, jobs_file: Path, tmp_path: Path, how: str
) -> None:
    if how == "env":
        args, env = [], {"DISTSCHED_DISABLE_PLUGINS": "example"}
    else:
        args, env = ["--disable-plugin", "example"], {}
    example = _plugins(venv.distsched(*args, "plugins", "--json", env=env))["example"]
    assert example["disabled"] is True
    assert example["dist"] == "distsched-example" and example["provides"] == {}

    proc = venv.distsched(*args, "run", jobs_file, "--duration", "3", env=env, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "job 'echo-job': executor 'echo' is not registered (available: " in proc.stderr, proc.stderr
    assert "balancer 'most-free' is not registered" in proc.stderr
    assert _task_lines(proc.stdout, "echo-job") == []


def test_a_broken_plugin_is_reported_and_does_not_break_the_others(
    venv: Venv, jobs_file: Path, tmp_path: Path
) -> None:
    # A second "installed" distribution whose hooks module cannot be imported: a dist-info
    # directory with an entry point, on PYTHONPATH (no pip install: the shared venv stays clean).
    site = tmp_path / "site"
    (site / "distsched_broken").mkdir(parents=True)
    (site / "distsched_broken" / "__init__.py").write_text("")
    (site / "distsched_broken" / "hooks.py").write_text("import distsched_broken_missing_dependency\n")
    info = site / "distsched_broken-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: distsched-broken\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[distsched]\nbroken = distsched_broken.hooks\n")
    env = {"PYTHONPATH": str(site)}

    plugins = _plugins(venv.distsched("plugins", "--json", env=env), returncode=1)
    error = plugins["broken"]["error"]
    assert "distsched-broken 0.3.0" in error and "distsched_broken_missing_dependency" in error, error
    assert "DISTSCHED_DISABLE_PLUGINS=broken" in error
    assert plugins["example"]["error"] is None
    text = venv.distsched("plugins", env=env)
    assert text.returncode == 1 and "[BROKEN]" in text.stdout, "a broken plugin fails the check"

    proc = venv.distsched("run", jobs_file, "--duration", "2", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = _task_lines(proc.stdout, "echo-job")
    assert lines and all(fields[4] == "succeeded" for fields in lines), proc.stdout


# -- docs/plugins.md: its code samples use the real API ------------------------------------
def _load_samples(tmp_path: Path) -> list[ModuleType]:
    page = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 6, "docs/plugins.md lost its Python samples"
    modules = []
    for i, block in enumerate(blocks):
        if "hookimpl" in block and "import hookimpl" not in block:
            block = "from distsched import hookimpl\n" + block  # a fragment continuing the hooks module
        path = tmp_path / f"plugins_md_sample_{i}.py"
        path.write_text(block)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def test_the_plugins_page_samples_work_with_the_real_api(tmp_path: Path) -> None:
    from distsched.model import Outcome
    from distsched.plugin.manager import PluginManager
    from distsched.plugin.registry import FunctionRegistry
    from distsched.ports import ExecutorContext
    from distsched.testing import make_task, make_worker

    modules = _load_samples(tmp_path)
    hook_modules = [(m.__name__, m) for m in modules if any(n.startswith("distsched_") for n in vars(m))]
    pm = PluginManager(entry_points=False, plugins=hook_modules)
    assert pm.broken() == {}
    assert "acme" in pm.executors and "acme-sync" in pm.functions
    assert pm.storage.for_url("mysql://db/x").name == "mysql"
    assert pm.election.for_url("mysql://db/x").name == "mysql"

    [executor_cls] = [m.AcmeExecutor for m in modules if hasattr(m, "AcmeExecutor")]
    executor = executor_cls(ExecutorContext(functions=FunctionRegistry(), settings={"acme_endpoint": "e"}))
    ok = asyncio.run(executor.run(make_task(executor="acme", target="nightly")))
    bad = asyncio.run(executor.run(make_task(executor="acme", target="unknown")))
    assert ok == Outcome.success({"job": "nightly"}, endpoint="e")
    assert not bad.ok and bad.retryable is False

    [balancer_cls] = [m.MostFreeBalancer for m in modules if hasattr(m, "MostFreeBalancer")]
    workers = [make_worker("a", now=10.0, capacity=4, load=3), make_worker("b", now=10.0, capacity=4, load=1),
               make_worker("c", now=10.0, capacity=9, draining=True)]
    assert balancer_cls().select(make_task(), workers, now=10.0, ttl=5.0).id == "b"


# -- two providers of one name (issue 12.7) ---------------------------------------------------
SHADOW_HOOKS = '''
from distsched import hookimpl


@hookimpl
def distsched_register_executors(registry):
    registry.add("local", _make, description="a third party's executor under the built-in's name"{replace})


def _make(context):
    from .executor import Shadow

    return Shadow()
'''

SHADOW_EXECUTOR = '''
import os

from distsched.model import Outcome


class Shadow:
    async def run(self, task):
        with open(os.environ["{env}"], "a", encoding="utf-8") as out:
            out.write(task.id + "\\n")
        return Outcome.success("{dist} ran it")
'''

LOCAL_JOBS = """\
[worker]
imports = ["conflict_tasks"]

[[jobs]]
name = "local-job"
every = "1s"
target = "hello"
timeout = "5s"
"""


def _write_package(root: Path, dist: str, *, replace: bool) -> Path:
    package = dist.replace("-", "_")
    src = root / dist / "src" / package
    src.mkdir(parents=True)
    (root / dist / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.21"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{dist}"\nversion = "1.0.0"\ndependencies = ["distsched"]\n\n'
        f'[project.entry-points.distsched]\n{package.removeprefix("distsched_")} = "{package}.hooks"\n\n'
        f'[tool.hatch.build.targets.wheel]\npackages = ["src/{package}"]\n')
    (src / "__init__.py").write_text("")
    (src / "hooks.py").write_text(SHADOW_HOOKS.format(replace=", replace=True" if replace else ""))
    env = f"{package.upper()}_LOG"
    (src / "executor.py").write_text(SHADOW_EXECUTOR.format(env=env, dist=dist))
    return root / dist


@pytest.fixture(scope="class")
def installed(venv: Venv, tmp_path_factory: pytest.TempPathFactory):
    """The venv with distsched-shadow and distsched-takeover installed (for one class)."""
    root = tmp_path_factory.mktemp("conflicting-plugins")
    packages = [_write_package(root, "distsched-shadow", replace=False),
                _write_package(root, "distsched-takeover", replace=True)]
    venv.pip_install("--no-build-isolation", "--no-deps", *packages)
    yield venv
    venv.run(venv.python, "-m", "pip", "uninstall", "-y", "-q", "distsched-shadow", "distsched-takeover")


class TestTwoProvidersOfOneName:
    """Two third-party packages, built and installed into the fresh environment, register an
    executor named ``local`` next to the built-in: ``distsched-shadow`` plainly,
    ``distsched-takeover`` with ``replace=True``. Each test disables one of them (or both);
    they are uninstalled after the class."""

    @pytest.fixture
    def jobs(self, tmp_path: Path) -> Path:
        (tmp_path / "conflict_tasks.py").write_text("import distsched\n\n\n@distsched.task\ndef hello():\n    return 'hi'\n")
        path = tmp_path / "local.toml"
        path.write_text(LOCAL_JOBS)
        return path

    @staticmethod
    def _logs(tmp_path: Path) -> dict[str, str]:
        return {"DISTSCHED_SHADOW_LOG": str(tmp_path / "shadow.log"),
                "DISTSCHED_TAKEOVER_LOG": str(tmp_path / "takeover.log")}

    def test_plugins_shows_the_conflict_on_the_name(self, installed: Venv) -> None:
        env = {"DISTSCHED_DISABLE_PLUGINS": "takeover"}
        plugins = _plugins(installed.distsched("plugins", "--json", env=env), returncode=1)
        for name in ("local", "shadow"):
            assert plugins[name]["error"] is None, plugins[name]  # neither is "broken"
            [conflict] = plugins[name]["conflicts"]
            assert (conflict["family"], conflict["key"]) == ("executor", "local")
            assert {p["dist"] for p in conflict["providers"]} == {"distsched", "distsched-shadow"}
        text = installed.distsched("plugins", env=env)
        assert text.returncode == 1, "a conflict fails the check"
        assert "local [CONFLICT with shadow: unusable]" in text.stdout
        assert "local [CONFLICT with local: unusable]" in text.stdout
        assert "CONFLICTS: 1 name(s) provided by more than one plugin" in text.stdout
        assert "[BROKEN]" not in text.stdout

    def test_a_job_using_the_name_fails_naming_both_distributions(self, installed: Venv, jobs: Path,
                                                                  tmp_path: Path) -> None:
        env = {"DISTSCHED_DISABLE_PLUGINS": "takeover", **self._logs(tmp_path)}
        proc = installed.distsched("run", jobs, "--duration", "2", env=env, cwd=tmp_path)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert ("job 'local-job': executor 'local' is provided by plugin 'local' (distsched 0.2.0.dev0) and "
                "plugin 'shadow' (distsched-shadow 1.0.0): the name is unusable until one of them is disabled "
                "(--disable-plugin NAME or DISTSCHED_DISABLE_PLUGINS=NAME, NAME one of: local, shadow)") in proc.stderr
        assert _task_lines(proc.stdout, "local-job") == []
        assert not (tmp_path / "shadow.log").exists()

    def test_a_declared_replacement_needs_the_operators_consent(self, installed: Venv, jobs: Path,
                                                               tmp_path: Path) -> None:
        env = {"DISTSCHED_DISABLE_PLUGINS": "shadow", **self._logs(tmp_path)}
        refused = installed.distsched("run", jobs, "--duration", "2", env=env, cwd=tmp_path)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert ("or until the operator lets plugin 'takeover' (distsched-takeover 1.0.0), which declares "
                "replace=True, take it over (--allow-replace local or DISTSCHED_ALLOW_REPLACE=local)") in refused.stderr
        assert not (tmp_path / "takeover.log").exists()

        allowed = installed.distsched("--allow-replace", "local", "run", jobs, "--duration", "2", env=env,
                                      cwd=tmp_path)
        assert allowed.returncode == 0, allowed.stderr
        lines = _task_lines(allowed.stdout, "local-job")
        assert lines and all(fields[4] == "succeeded" for fields in lines), allowed.stdout
        assert len((tmp_path / "takeover.log").read_text().split()) == len(lines)  # the takeover ran them all
        listed = _plugins(installed.distsched("plugins", "--json", env={**env, "DISTSCHED_ALLOW_REPLACE": "local"}))
        assert listed["local"]["replacements"][0]["by"]["dist"] == "distsched-takeover"
        assert listed["local"]["conflicts"] == [] and listed["takeover"]["conflicts"] == []

    def test_disabling_both_gives_the_name_back_to_the_builtin(self, installed: Venv, jobs: Path,
                                                               tmp_path: Path) -> None:
        env = self._logs(tmp_path)
        proc = installed.distsched("--disable-plugin", "shadow", "--disable-plugin", "takeover", "run", jobs,
                                   "--duration", "2", env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        lines = _task_lines(proc.stdout, "local-job")
        assert lines and all(fields[4] == "succeeded" for fields in lines), proc.stdout
        assert not (tmp_path / "shadow.log").exists() and not (tmp_path / "takeover.log").exists()

    def test_a_misspelled_disabled_plugin_is_an_error_naming_the_known_ones(self, installed: Venv) -> None:
        proc = installed.distsched("--disable-plugin", "shadw", "plugins")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert ("cannot disable 'shadw' (--disable-plugin / DISTSCHED_DISABLE_PLUGINS): no plugin of that name "
                "(known plugins: ") in proc.stderr
        known = proc.stderr.split("(known plugins: ", 1)[1].split(")", 1)[0].split(", ")
        assert {"balancers", "example", "local", "memory", "shadow", "takeover"} <= set(known) and known == sorted(known)
