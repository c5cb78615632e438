"""Plugin discovery, attribution and failure isolation."""

import sys
import types

import pytest

from distsched import hookimpl
from distsched.plugin import manager as manager_mod
from distsched.plugin.errors import DuplicateRegistration, PluginError, UnknownName
from distsched.plugin.manager import PluginManager, check_returns
from distsched.ports import StorageBackend

BUILTINS = {"memory", "local", "balancers", "http", "redis"}


def test_builtins_are_found_through_entry_points_with_their_distribution():
    pm = PluginManager()
    assert BUILTINS <= set(pm.plugins)
    for name in BUILTINS:
        info = pm.plugins[name]
        assert info.dist == "distsched" and info.version and not info.error, info
    assert pm.plugins["memory"].provides == {"storage": ["memory"], "election": ["memory"]}
    assert pm.plugins["local"].provides == {"executor": ["local"]}
    assert set(pm.plugins["balancers"].provides["balancer"]) == {"least-tasks", "round-robin", "consistent-hash"}


def test_no_entry_points_gives_a_helpful_unknown_name_error():
    pm = PluginManager(entry_points=False)
    with pytest.raises(UnknownName, match=r"no memory:// .*|no storage plugin handles memory://"):
        pm.storage.for_url("memory://")
    with pytest.raises(UnknownName, match="is distsched installed"):
        pm.executors.get("local")


def test_unknown_names_list_what_is_available():
    pm = PluginManager()
    with pytest.raises(UnknownName) as err:
        pm.executors.get("htp", where="job 'x'")
    assert "job 'x': executor 'htp' is not registered (available: " in str(err.value)
    assert "local" in str(err.value)
    with pytest.raises(UnknownName, match=r"no storage plugin handles mysql://"):
        pm.storage.for_url("mysql://db")
    with pytest.raises(UnknownName, match="not a URL"):
        pm.storage.for_url("localhost:6379")


def test_disabled_plugins_are_not_loaded(monkeypatch):
    monkeypatch.setenv("DISTSCHED_DISABLE_PLUGINS", "balancers, http")
    pm = PluginManager()
    assert pm.plugins["balancers"].disabled and pm.plugins["http"].disabled
    assert len(pm.balancers) == 0
    assert "local" in pm.executors


class _Raiser:
    @hookimpl
    def distsched_register_executors(self, registry):
        raise RuntimeError("kaboom")


class _Dup:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("local", lambda ctx: None)


def test_a_raising_plugin_is_isolated_and_named():
    pm = PluginManager(plugins=[("raiser", _Raiser())])
    assert "kaboom" in pm.plugins["raiser"].error
    assert "raised in distsched_register_executors" in pm.plugins["raiser"].error
    assert "local" in pm.executors  # the others still work
    with pytest.raises(UnknownName, match="broken plugins: raiser: .*kaboom"):
        pm.executors.get("nope")


def test_duplicate_names_name_both_plugins():
    pm = PluginManager(plugins=[("dup", _Dup())])
    error = pm.plugins["dup"].error
    assert error and "executor 'local' registered by plugin 'local' (distsched" in error and "'dup'" in error
    with pytest.raises(DuplicateRegistration):
        pm.executors.current = pm.plugins["dup"].origin
        pm.executors.add("local", lambda ctx: None)


def test_a_misspelled_hook_is_refused_with_the_plugin_named():
    mod = types.ModuleType("typo_plugin")

    @hookimpl
    def distsched_register_executor(registry):  # missing "s"
        pass

    mod.distsched_register_executor = distsched_register_executor
    pm = PluginManager(plugins=[("typo", mod)])
    assert "not a valid distsched plugin" in pm.plugins["typo"].error
    assert "distsched_register_executor" in pm.plugins["typo"].error


def test_an_entry_point_that_fails_to_import_is_reported(monkeypatch):
    from importlib.metadata import EntryPoint

    real = manager_mod._entry_points()
    broken = EntryPoint(name="broken", value="distsched_no_such_module.hooks", group="distsched")
    monkeypatch.setattr(manager_mod, "_entry_points", lambda: (*real, broken))
    pm = PluginManager()
    error = pm.plugins["broken"].error
    assert "failed to import distsched_no_such_module.hooks" in error
    assert "DISTSCHED_DISABLE_PLUGINS=broken" in error
    assert "memory" in pm.storage.schemes()
    assert "distsched_no_such_module" not in sys.modules


def test_factory_errors_and_garbage_name_the_plugin():
    pm = PluginManager()
    reg = pm.storage.for_url("memory://")
    with pytest.raises(PluginError, match=r"storage 'memory' from plugin 'memory' \(distsched .*\) returned int"):
        check_returns(42, StorageBackend, reg, "StorageBackend")
    with pytest.raises(PluginError, match=r"storage 'memory' from plugin 'memory' \(distsched .*\) failed: ValidationError"):
        pm.call_factory(reg, "redis://not-memory", options={})


class _Observer:
    def __init__(self):
        self.seen = []

    @hookimpl
    def distsched_event(self, event):
        self.seen.append(event.kind)
        raise RuntimeError("observer bug")


def test_a_failing_observer_is_logged_and_swallowed(caplog):
    from distsched.model.events import WorkerJoined

    obs = _Observer()
    pm = PluginManager(plugins=[("obs", obs)])
    pm.notify(WorkerJoined(at=0.0, worker_id="w"))
    assert obs.seen == ["worker.joined"]
    assert "event observer of plugin 'obs' failed" in caplog.text


class _Override:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("local", lambda ctx: None, description="mine", replace=True)


def test_replace_wins_whichever_plugin_registers_first():
    for plugins in ([("override", _Override())],):
        pm = PluginManager(plugins=plugins)
        assert pm.executors.get("local").origin.plugin == "override"
        assert not pm.plugins["local"].error and not pm.plugins["override"].error
    # Registered before the built-in (no entry points first, then the built-in by hand).
    import distsched_local.hooks

    pm = PluginManager(entry_points=False, plugins=[("override", _Override()), ("local", distsched_local.hooks)])
    assert pm.executors.get("local").origin.plugin == "override"
    assert not pm.plugins["local"].error


def test_unknown_name_mentions_disabled_plugins():
    pm = PluginManager(disabled=["local"])
    with pytest.raises(UnknownName, match="disabled plugins: local"):
        pm.executors.get("local")
