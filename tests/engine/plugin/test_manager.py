"""Plugin discovery, attribution and failure isolation."""

import asyncio
import sys
import types

import pytest

from distsched import hookimpl
from distsched.plugin import manager as manager_mod
from distsched.plugin.errors import NameConflict, PluginError, UnknownName
from distsched.plugin.manager import BALANCER, EXECUTOR, STORAGE, PluginManager, check_returns
from distsched.ports import Balancer, ExecutorContext, StorageBackend
from distsched.registry import FunctionRegistry

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


def test_two_providers_of_a_name_fail_closed():
    pm = PluginManager(plugins=[("dup", _Dup())])
    # Neither plugin is broken; the name is unusable, and says why and what to do.
    assert not pm.plugins["dup"].error and not pm.plugins["local"].error
    assert "local" not in pm.executors and "local" not in pm.executors.names()
    with pytest.raises(NameConflict) as err:
        pm.executors.get("local", where="job 'x'")
    message = str(err.value)
    assert message.startswith("job 'x': executor 'local' is provided by ")
    assert "plugin 'local' (distsched " in message and "plugin 'dup'" in message
    assert "--disable-plugin NAME or DISTSCHED_DISABLE_PLUGINS=NAME, NAME one of: dup, local" in message
    assert "allow-replace" not in message  # nobody declared replace=True
    [conflict] = pm.conflicts()
    assert (conflict.family, conflict.key) == ("executor", "local")
    for name in ("dup", "local"):
        assert [c["key"] for c in pm.plugins[name].conflicts] == ["local"]
    with pytest.raises(NameConflict):
        asyncio.run(pm.build(EXECUTOR, "local", ExecutorContext(functions=FunctionRegistry())))
    # Disabling either one gives the name back to the other.
    assert PluginManager(plugins=[("dup", _Dup())], disabled=["dup"]).executors.get("local").origin.plugin == "local"
    assert PluginManager(plugins=[("dup", _Dup())], disabled=["local"]).executors.get("local").origin.plugin == "dup"


class _SameSchemeTwice:
    @hookimpl
    def distsched_register_storage(self, registry):
        registry.add("mymem", schemes=("memory",), factory=lambda url, *, options: None)


def test_two_providers_of_a_url_scheme_fail_closed():
    pm = PluginManager(plugins=[("mymem", _SameSchemeTwice())])
    assert "memory" not in pm.storage.schemes()
    with pytest.raises(NameConflict, match=r"storage: storage scheme 'memory://' is provided by .*'memory'.*'mymem'"):
        pm.storage.for_url("memory://x")


def test_a_replacement_needs_the_plugin_and_the_operator(monkeypatch):
    # Declared by the plugin only: still a conflict, and the message says how to allow it.
    pm = PluginManager(plugins=[("override", _Override())])
    with pytest.raises(NameConflict, match=r"lets plugin 'override', which declares replace=True, take it over "
                                           r"\(--allow-replace local or DISTSCHED_ALLOW_REPLACE=local\)"):
        pm.executors.get("local")
    # Allowed by the operator only: still a conflict.
    assert "local" not in PluginManager(plugins=[("dup", _Dup())], allow_replace=["local"]).executors
    # Both: the declaring plugin wins whichever registers first, and both show it.
    import distsched_local.hooks

    for plugins in ([("override", _Override()), ("local", distsched_local.hooks)],
                    [("local", distsched_local.hooks), ("override", _Override())]):
        pm = PluginManager(entry_points=False, plugins=plugins, allow_replace=["local"])
        assert pm.executors.get("local").origin.plugin == "override"
        assert pm.conflicts() == []
        [replaced] = pm.plugins["local"].replacements
        assert replaced["by"]["plugin"] == "override" and replaced["replaced"][0]["plugin"] == "local"
    monkeypatch.setenv("DISTSCHED_ALLOW_REPLACE", "local")
    assert PluginManager(plugins=[("override", _Override())]).executors.get("local").origin.plugin == "override"


def test_misspelled_plugin_names_are_errors_naming_the_known_ones(monkeypatch):
    with pytest.raises(PluginError, match=r"cannot disable 'balancer' .*no plugin of that name ") as err:
        PluginManager(disabled=["balancer"])
    known = str(err.value).split("(known plugins: ", 1)[1].rstrip(")").split(", ")
    assert {"balancers", "http", "local", "memory", "redis"} <= set(known) and known == sorted(known)
    monkeypatch.setenv("DISTSCHED_DISABLE_PLUGINS", "htp")
    with pytest.raises(PluginError, match=r"cannot disable 'htp' \(--disable-plugin / DISTSCHED_DISABLE_PLUGINS\)"):
        PluginManager()
    monkeypatch.delenv("DISTSCHED_DISABLE_PLUGINS")
    with pytest.raises(PluginError, match=r"cannot allow a replacement of 'lokal' .*declared with replace=True: local"):
        PluginManager(plugins=[("override", _Override())], allow_replace=["lokal"])


class _Twice:
    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("twice-a", lambda ctx: None)
        registry.add("twice-b", lambda ctx: None)
        registry.add("twice-a", lambda ctx: None)


class _RaisesAfterRegistering:
    @hookimpl
    def distsched_register_balancers(self, registry):
        registry.add("half-done", lambda: None)
        raise RuntimeError("late failure")


def test_a_plugin_whose_hook_raises_keeps_none_of_that_calls_registrations():
    pm = PluginManager(plugins=[("twice", _Twice()), ("late", _RaisesAfterRegistering())])
    assert "executor 'twice-a' registered twice by plugin 'twice'" in pm.plugins["twice"].error
    assert "twice-a" not in pm.executors and "twice-b" not in pm.executors
    assert "late failure" in pm.plugins["late"].error and "half-done" not in pm.balancers
    assert pm.plugins["twice"].provides == {} and pm.plugins["late"].provides == {}


calls: list[str] = []


class _Plain:
    @hookimpl
    def distsched_register_balancers(self, registry):
        calls.append("plain")
        registry.add("plain", lambda: None)


class _First:
    @hookimpl(tryfirst=True)
    def distsched_register_balancers(self, registry):
        calls.append("first")


class _Last:
    @hookimpl(trylast=True)
    def distsched_register_balancers(self, registry):
        calls.append("last")
        raise RuntimeError("the last one is broken")


class _Wrapper:
    @hookimpl(wrapper=True)
    def distsched_register_balancers(self, registry):
        calls.append(f"wrapper before: {sorted(registry.names())}")
        result = yield
        calls.append(f"wrapper after: {sorted(registry.names())}")
        return result


def test_hooks_are_called_through_pluggy_with_tryfirst_trylast_and_wrappers():
    calls.clear()
    pm = PluginManager(entry_points=False, plugins=[("last", _Last()), ("plain", _Plain()), ("first", _First()),
                                                    ("wrapper", _Wrapper())])
    # One call of the hook: the wrapper around all of them, tryfirst first, trylast last; the
    # broken trylast one is charged to its plugin and does not stop the call.
    assert calls == ["wrapper before: []", "first", "plain", "last", "wrapper after: ['plain']"]
    assert "raised in distsched_register_balancers: RuntimeError: the last one is broken" in pm.plugins["last"].error
    assert pm.plugins["plain"].provides == {"balancer": ["plain"]} and not pm.plugins["wrapper"].error


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
    with pytest.raises(PluginError, match=r"storage 'memory' from plugin 'memory' \(distsched .*\) could not open "
                                          r"memory://x: ValidationError"):
        asyncio.run(pm.build(STORAGE, "memory://x", "redis://not-memory", options={}, failed="could not open",
                             subject="memory://x"))
    with pytest.raises(PluginError, match=r"storage 'memory' from plugin 'memory' \(distsched .*\) failed: "
                                          r"ValidationError: .*'redis://u:\*\*\*@not-memory'"):
        asyncio.run(pm.build(STORAGE, "memory://x", "redis://u:s3cret@not-memory", options={}))  # redacted


class _Builds:
    @hookimpl
    def distsched_register_balancers(self, registry):
        registry.add("async-made", self.make_async)
        registry.add("garbage", lambda: "not a balancer")

    async def make_async(self):
        await asyncio.sleep(0)
        return _Builds.Pick()

    class Pick:
        def select(self, task, workers, *, now, ttl):
            return None


def test_build_awaits_an_awaitable_and_checks_the_port():
    pm = PluginManager(plugins=[("builds", _Builds())])
    made = asyncio.run(pm.build(BALANCER, "async-made"))
    assert isinstance(made, Balancer) and isinstance(made, _Builds.Pick)
    with pytest.raises(PluginError, match=r"balancer 'garbage' from plugin 'builds' returned str, which is not a "
                                          r"Balancer \(missing: select\)"):
        asyncio.run(pm.build(BALANCER, "garbage"))
    with pytest.raises(UnknownName, match=r"job 'j': balancer 'nope' is not registered \(available: "):
        asyncio.run(pm.build(BALANCER, "nope", where="job 'j'"))


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


def test_unknown_name_mentions_disabled_plugins():
    pm = PluginManager(disabled=["local"])
    with pytest.raises(UnknownName, match="disabled plugins: local"):
        pm.executors.get("local")


async def test_a_name_in_conflict_is_refused_at_submit_and_fails_a_task_that_gets_through():
    import uuid

    from distsched import DistributeSchedule
    from distsched.testing import make_task

    # (unroutable_wait 0: the worker, whose 'local' is unusable, gets the task and fails it
    # naming the conflict; with the default wait the leader parks it, no worker having 'local')
    app = DistributeSchedule(f"memory://conflict-{uuid.uuid4().hex}", plugins=[("dup", _Dup())],
                             unroutable_wait=0)
    app.task(lambda: 1, name="one")
    with pytest.raises(NameConflict, match=r"executor 'local' is provided by plugin 'dup' and plugin 'local' \(distsched"):
        await app.submit("one")
    # A task stored before the conflict appeared (written straight into the store here).
    storage = await app.storage()
    await storage.tasks.submit([make_task("old-task", target="one")])
    async with app.running():
        result = await app.result("old-task", timeout=10)
    assert result.outcome == "failed" and result.error_type == "NameConflict"
    assert "plugin 'dup' and plugin 'local' (distsched" in result.error and "--disable-plugin" in result.error
    task = await storage.tasks.get("old-task")
    assert task.state.value == "failed" and task.attempt == 1  # not retried: another attempt cannot help


class _EventWrapper:
    def __init__(self):
        self.seen = []

    @hookimpl(wrapper=True)
    def distsched_event(self, event):
        self.seen.append(f"before {event.kind}")
        result = yield
        self.seen.append(f"after {event.kind}")
        return result


def test_observers_are_called_through_pluggy_and_a_wrapper_sees_around_them(caplog):
    from distsched.model.events import WorkerJoined

    wrapper, failing = _EventWrapper(), _Observer()
    pm = PluginManager(plugins=[("wrapper", wrapper), ("failing", failing)])
    pm.notify(WorkerJoined(at=0.0, worker_id="w"))
    assert wrapper.seen == ["before worker.joined", "after worker.joined"]
    assert failing.seen == ["worker.joined"] and "event observer of plugin 'failing' failed" in caplog.text


class _Openers:
    """Three storage factories a third party might have written: before ``reader`` existed,
    with it, and with ``**kwargs`` handed on to a constructor that takes none."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def distsched_register_storage(self, registry):
        from distsched_memory.storage import MemoryStorage

        def before(url, *, options):
            self.calls.append(("before", url))
            return MemoryStorage.open("memory://")

        def knows(url, *, options, reader=False):
            self.calls.append(("knows", reader))
            return MemoryStorage.open("memory://")

        def hands_on(url, **kw):
            self.calls.append(("hands-on", sorted(kw)))
            return MemoryStorage.open("memory://")

        registry.add("before", schemes=("before",), factory=before)
        registry.add("knows", schemes=("knows",), factory=knows)
        registry.add("hands-on", schemes=("hands-on",), factory=hands_on)


@pytest.mark.parametrize("reader", [False, True])
async def test_a_storage_factory_gets_reader_only_when_it_names_it(reader):
    """``reader`` came after 0.1: a factory written before it (or one with ``**kwargs``) is
    called as before, one that names it learns whether the process only reads."""
    from distsched import DistributeSchedule

    openers = _Openers()
    for url in ("before://x", "knows://x", "hands-on://x"):
        app = DistributeSchedule(url, plugins=[("openers", openers)], reader=reader)
        await app.storage()
        await app.stop()
    assert openers.calls == [("before", "before://x"), ("knows", reader), ("hands-on", ["options"])]


class _SyncRun:
    """An executor plugin whose ``run`` is a plain ``def``: the worker would await an Outcome."""

    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("x6", lambda context: _SyncRun.Executor())
        registry.add("no-run", lambda context: object())

    class Executor:
        def run(self, task):
            from distsched.model import Outcome

            return Outcome.success(1)


def test_an_executor_whose_run_is_not_async_is_refused_naming_the_plugin():
    pm = PluginManager(plugins=[("syncrun", _SyncRun())])
    context = ExecutorContext(functions=FunctionRegistry())
    with pytest.raises(PluginError, match=r"^executor 'x6' from plugin 'syncrun' returned Executor, whose run is not a "
                                          r"coroutine function: run must be a coroutine function \(async def run"):
        asyncio.run(pm.build(EXECUTOR, "x6", context))
    with pytest.raises(PluginError, match=r"returned object, which is not an Executor \(missing: run\)"):
        asyncio.run(pm.build(EXECUTOR, "no-run", context))


class _ChecksSettings:
    """A third-party executor whose check_settings names the setting alone (as hooks.md says)."""

    @hookimpl
    def distsched_register_executors(self, registry):
        registry.add("cmd", lambda context: None, check_settings=self.check, settings=["cmd_output_limit", "cmd_shell"])

    @staticmethod
    def check(settings):
        from distsched.model import ValidationError

        if settings.get("cmd_output_limit", 1) <= 0:
            raise ValidationError("cmd_output_limit", "must be a positive integer")
        if settings.get("cmd_shell") == "":
            raise ValidationError("[worker] cmd_shell", "must not be empty")  # prefixed itself: not twice


def test_a_settings_refusal_reads_the_same_for_every_executor():
    from distsched.model import ValidationError

    pm = PluginManager(plugins=[("cmd", _ChecksSettings())])
    with pytest.raises(ValidationError) as caught:
        pm.executors.check_settings({"cmd_output_limit": -1}, where="worker")
    assert str(caught.value) == "worker: [worker] cmd_output_limit: must be a positive integer"
    assert caught.value.field == "[worker] cmd_output_limit"
    with pytest.raises(ValidationError) as caught:
        pm.executors.check_settings({"cmd_shell": ""}, where="jobs.toml")
    assert str(caught.value) == "jobs.toml: [worker] cmd_shell: must not be empty"
    with pytest.raises(ValidationError) as caught:
        pm.executors.check_settings({"http_allow": ["http://x/"]}, where="worker")  # the built-in http's
    assert str(caught.value).startswith("worker: [worker] http_allow: 'http://x/' is not a host name")
    assert str(caught.value).count("http_allow") == 1
