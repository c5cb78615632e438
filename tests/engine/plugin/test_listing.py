"""What `distsched plugins` and the plugin manager say about a plugin module as a third-party
author writes it: descriptions, declared settings, an observer-only plugin, a hook function
left without @hookimpl, a bad name."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from distsched.plugin.manager import PluginManager

PLUGIN = textwrap.dedent('''
    from distsched import hookimpl
    from distsched.model import Outcome


    class Cmd:
        def __init__(self, context):
            pass

        async def run(self, task):
            return Outcome.success(None)


    @hookimpl
    def distsched_register_executors(registry):
        registry.add("cmd", Cmd, description="Runs an allowed command", settings=["cmd_output_limit"])
        registry.add("cmd-legacy", Cmd)


    @hookimpl
    def distsched_event(event):
        pass


    def distsched_register_balancers(registry):      # no @hookimpl: never called
        registry.add("sticky", object)


    def distsched_register_executor(registry):        # a typo, no @hookimpl either
        pass


    def helper():
        pass
''')

OBSERVER_ONLY = textwrap.dedent('''
    from distsched import hookimpl


    @hookimpl
    def distsched_event(event):
        pass
''')


@pytest.fixture
def plugin_modules(tmp_path, monkeypatch):
    (tmp_path / "acme_probe_hooks.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / "acme_probe_observer.py").write_text(OBSERVER_ONLY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    import sys

    sys.modules.pop("acme_probe_hooks", None)
    sys.modules.pop("acme_probe_observer", None)


def test_a_hook_function_without_hookimpl_is_warned_about_by_name(plugin_modules, caplog):
    import acme_probe_hooks

    with caplog.at_level(logging.WARNING, logger="distsched.plugins"):
        pm = PluginManager(entry_points=False, plugins=[("acme", acme_probe_hooks)])
    info = pm.plugins["acme"]
    assert info.warnings == [
        "distsched_register_balancers is not marked as a hook implementation, so it is never called: decorate it "
        "with @hookimpl (from distsched import hookimpl)",
        "distsched_register_executor is named like a hook but is neither a hook (did you mean "
        "distsched_register_executors?) nor marked @hookimpl: it is never called",
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("plugin 'acme': distsched_register_balancers is not marked") for m in logged), logged
    assert "sticky" not in pm.balancers
    # a marked plugin (and what it imports: hookimpl) gives no warning
    import acme_probe_observer

    assert PluginManager(entry_points=False, plugins=[("obs", acme_probe_observer)]).plugins["obs"].warnings == []


def test_plugins_shows_descriptions_settings_roles_and_warnings(plugin_modules, distsched_cli):
    result = distsched_cli("-p", "acme_probe_hooks", "-p", "acme_probe_observer", "plugins")
    lines = result.output.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("acme_probe_hooks ")))
    assert lines[at + 1:at + 7] == [
        "    executor   cmd, cmd-legacy",
        "        cmd: Runs an allowed command; settings: cmd_output_limit",
        "        cmd-legacy: settings: not declared",
        "    observer   distsched_event",
        "    warning: distsched_register_balancers is not marked as a hook implementation, so it is never called: "
        "decorate it with @hookimpl (from distsched import hookimpl)",
        "    warning: distsched_register_executor is named like a hook but is neither a hook (did you mean "
        "distsched_register_executors?) nor marked @hookimpl: it is never called",
    ], result.output
    at = lines.index(next(line for line in lines if line.startswith("acme_probe_observer ")))
    assert lines[at + 1] == "    observer   distsched_event", result.output  # it provides something
    assert "        local: Runs a Python function" in result.output and "; settings: log_capture" in result.output
    assert "        http: Makes one HTTP(S) request" in result.output
    assert "settings: http_allow, http_body_limit, secrets" in result.output


def test_plugins_json_has_registrations_roles_and_warnings(plugin_modules, distsched_cli):
    data = {p["name"]: p for p in json.loads(
        distsched_cli("-p", "acme_probe_hooks", "-p", "acme_probe_observer", "plugins", "--json").output)}
    acme = data["acme_probe_hooks"]
    assert acme["registered"] == {"executor": [
        {"name": "cmd", "description": "Runs an allowed command", "settings": ["cmd_output_limit"]},
        {"name": "cmd-legacy", "description": "", "settings": None},
    ]}
    assert acme["roles"] == ["observer"] and len(acme["warnings"]) == 2
    assert data["acme_probe_observer"]["roles"] == ["observer"] and data["acme_probe_observer"]["provides"] == {}
    assert data["memory"]["registered"]["storage"][0]["schemes"] == ["memory"]
    assert data["metrics"]["roles"] == ["server"]


def test_a_bad_name_is_refused_with_the_rule():
    from distsched import hookimpl

    class BadName:
        @hookimpl
        def distsched_register_balancers(self, registry):
            registry.add("bad name!", object)

    pm = PluginManager(entry_points=False, plugins=[("bad", BadName())])
    assert pm.plugins["bad"].error == (
        "plugin 'bad' raised in distsched_register_balancers: ValueError: plugin 'bad': balancer name 'bad name!' is "
        "not a valid name: a name is 1-128 letters, digits, '_', '-', '.' or ':', starting with a letter or digit")
