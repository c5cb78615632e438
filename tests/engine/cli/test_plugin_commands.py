"""Plugins add ``distsched`` subcommands through ``distsched_cli_commands``."""

import textwrap

import pytest


@pytest.fixture
def plugin_modules(tmp_path, monkeypatch):
    """Writes importable plugin modules (loaded with ``-p MODULE``) into a folder on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        return name

    return write


GREET = """
    import click
    from distsched import hookimpl

    @click.command(name={name!r})
    @click.option("--who", default="world")
    def greet(who):
        '''Say hello ({tag}).'''
        click.echo("hello " + who + " from {tag}")

    @hookimpl
    def distsched_cli_commands():
        return [greet]
"""


def test_a_plugin_adds_a_command_that_runs_and_shows_in_help(distsched_cli, plugin_modules):
    mod = plugin_modules("greet_plugin_a", GREET.format(name="greet", tag="a"))
    result = distsched_cli("-p", mod, "greet", "--who", "ops")
    assert result.exit_code == 0, result.output
    assert "hello ops from a" in result.output
    assert "greet" in distsched_cli("-p", mod, "--help").output


def test_a_plugin_cannot_replace_a_builtin_command(distsched_cli, plugin_modules, caplog):
    mod = plugin_modules("greet_plugin_c", GREET.format(name="status", tag="c"))
    result = distsched_cli("-p", mod, "--help")
    assert result.exit_code == 0
    assert "hello" not in distsched_cli("-p", mod, "status", "--help").output
    assert any("built-in command" in r.getMessage() and mod in r.getMessage() for r in caplog.records)


def test_two_plugins_offering_one_name_fail_closed(distsched_cli, plugin_modules, caplog):
    a = plugin_modules("greet_plugin_d", GREET.format(name="greet", tag="d"))
    b = plugin_modules("greet_plugin_e", GREET.format(name="greet", tag="e"))
    result = distsched_cli("-p", a, "-p", b, "greet")
    assert result.exit_code != 0 and "hello" not in result.output
    message = " ".join(r.getMessage() for r in caplog.records)
    assert a in message and b in message and "neither is used" in message
