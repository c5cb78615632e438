"""examples/deploy (issue 17.6): the systemd units, the Dockerfile and compose.yaml are
parsed and every distsched command, option and environment variable they use is checked
against the real command line; the image is built where a Docker engine is available."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from distsched.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
#: Variables distsched reads that are not options' (plugins' ones included).
OTHER_ENV = {"DISTSCHED_STORAGE", "DISTSCHED_CONFIG", "DISTSCHED_WEB_TOKEN", "DISTSCHED_PLUGINS",
             "DISTSCHED_DISABLE_PLUGINS", "DISTSCHED_METRICS_MAX_JOBS"}


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]} (keys may repeat, as systemd allows)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: not 'Key=value' in a section: {raw!r}"
        key, value = line.split("=", 1)
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"{path.name}:{number}: bad key {key!r}"
        current.append((key.strip(), value.strip()))
    return sections


def _root() -> click.Context:
    return click.Context(cli, info_name="distsched")


def check_command(argv: list[str]) -> click.Command:
    """Parse ``distsched ARGS`` with the real command line: an unknown command or option, or
    a bad value, fails here. Returns the subcommand."""
    root = _root()
    command = cli.get_command(root, argv[0])
    assert command is not None, f"distsched has no command {argv[0]!r}"
    command.make_context(argv[0], list(argv[1:]), parent=root, resilient_parsing=False)
    return command


def known_env() -> set[str]:
    names = set(OTHER_ENV)
    for command in cli.commands.values():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names.update([envvar] if isinstance(envvar, str) else (envvar or []))
    return names


def _web_available() -> bool:
    return cli.get_command(_root(), "web") is not None


def _distsched_args(argv: list[str], where: str) -> list[str]:
    if argv and argv[0] == "web" and not _web_available():
        pytest.skip(f"{where}: `distsched web` comes with the web plugin, not installed here")
    return argv


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit(unit):
    sections = parse_unit(unit)
    assert {"Unit", "Service", "Install"} <= set(sections), unit.name
    service = dict(sections["Service"])
    assert dict(sections["Unit"]).get("Description"), "a Description"
    assert dict(sections["Install"]).get("WantedBy") == "multi-user.target"
    assert service.get("Restart") == "on-failure" and service.get("User") == "distsched"
    exec_start = shlex.split(service["ExecStart"].replace("%i", "1"))
    assert exec_start[0] == "/opt/distsched/bin/distsched", exec_start
    command = check_command(_distsched_args(exec_start[1:], unit.name))
    assert command.name in ("scheduler", "worker", "web")
    for key, value in sections["Service"]:
        if key == "Environment":
            name = value.split("=", 1)[0]
            assert not name.startswith("DISTSCHED_") or name in known_env(), f"{unit.name}: unknown {name}"
    if "--config" in exec_start:
        config = exec_start[exec_start.index("--config") + 1]
        assert config == "/etc/distsched/distsched.toml"
    if command.name == "worker":
        assert int(service["TimeoutStopSec"]) > 30, "systemd must wait longer than the worker's drain_timeout"


@pytest.mark.parametrize("role", ["scheduler", "worker"])
def test_the_example_config_file_is_valid(distsched_cli, role, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISTSCHED_STORAGE", raising=False)
    result = distsched_cli(role, "--config", str(DEPLOY / "distsched.toml"), "--show-config")
    assert result.exit_code == 0, result.output
    assert "distsched.toml [" in result.stdout  # values came from the file
    if role == "scheduler":
        assert re.search(r"^prune\s+True", result.stdout, re.M)


def test_compose_file():
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = data["services"]
    assert set(services) >= {"redis", "scheduler-1", "scheduler-2", "worker-1", "worker-2", "web"}
    assert services["redis"]["healthcheck"]["test"][-1] == "ping"
    roles = {"scheduler": 0, "worker": 0, "web": 0}
    for name, service in services.items():
        if name == "redis":
            continue
        assert service["build"]["dockerfile"] == "examples/deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve().is_file()
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["DISTSCHED_STORAGE"].startswith("redis://redis:6379/")
        unknown = [k for k in env if k.startswith("DISTSCHED_") and k not in known_env()]
        assert not unknown, f"{name}: unknown variables {unknown}"
        argv = service["command"]
        roles[argv[0]] += 1
        if argv[0] == "web":
            assert "DISTSCHED_WEB_TOKEN" in env, "the dashboard listens beyond loopback: it needs the token"
            if not _web_available():
                continue
        check_command(argv)
        if "--jobs" in argv:
            assert argv[argv.index("--jobs") + 1] == "/app/jobs.toml"
    assert roles == {"scheduler": 2, "worker": 2, "web": 1}
    node_ids = [s["command"][s["command"].index("--node-id") + 1] for n, s in services.items() if n.startswith("scheduler")]
    assert len(set(node_ids)) == 2


def test_dockerfile_copies_what_exists():
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    assert lines[0].startswith("#") and any(line.startswith("FROM python:3.") for line in lines)
    for line in lines:
        if line.startswith("COPY "):
            sources = shlex.split(line)[1:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert 'ENTRYPOINT ["distsched"]' in lines
    assert any(line.startswith("USER ") and "root" not in line for line in lines), "the roles do not run as root"


def _docker_engine() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                               timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 20 s"
    if probe.returncode != 0 or not probe.stdout.strip():
        return f"no Docker engine: {(probe.stderr or probe.stdout).strip().splitlines()[-1:]}"
    return None


@pytest.mark.slow
def test_the_image_builds_and_runs():
    why = _docker_engine()
    if why is not None:
        pytest.skip(why)
    tag = "distsched-deploy-test:latest"
    build = subprocess.run(["docker", "build", "-q", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr
    try:
        run = subprocess.run(["docker", "run", "--rm", tag, "scheduler", "--help"], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0 and "--lease-ttl" in run.stdout, run.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120)
