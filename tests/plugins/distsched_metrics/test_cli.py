"""`--metrics` on the command line: bad values and a port in use are clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

EXAMPLE = str(Path(__file__).resolve().parents[3] / "examples" / "jobs.toml")


@pytest.mark.parametrize("command", [["run", EXAMPLE, "--duration", "0"], ["scheduler"], ["worker"]])
@pytest.mark.parametrize(("value", "message"), [
    ("9100", "must be HOST:PORT"), ("127.0.0.1:http", "port must be an integer"), (":9100", "with a host"),
])
def test_bad_addresses_name_the_option(distsched_cli, command, value, message):
    result = distsched_cli(*command, "--metrics", value)
    assert result.exit_code == 2
    assert "--metrics" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_a_port_in_use_stops_run_with_one_line_naming_the_plugin(distsched_cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = distsched_cli("run", EXAMPLE, "--duration", "0", "--metrics", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"could not serve metrics on 127.0.0.1:{port}: OSError" in result.output
    assert "plugin 'metrics'" in result.output and "Traceback" not in result.output


def test_help_mentions_metrics(distsched_cli):
    for command in ("run", "scheduler", "worker"):
        assert "--metrics HOST:PORT" in distsched_cli(command, "--help").output


def test_the_start_line_says_where_metrics_are_and_hides_the_password(distsched_cli):
    result = distsched_cli("run", EXAMPLE, "--storage", "memory://user:s3cret@x", "--duration", "0",
                           "--metrics", "127.0.0.1:0")
    assert result.exit_code == 0, result.output
    assert "on memory://user:***@x" in result.output and "s3cret" not in result.output
    assert "metrics on a free port" in result.output
