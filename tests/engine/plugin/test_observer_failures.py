"""An observer that fails on every event: each kind of failure is logged once with its
traceback, the repeats counted in one line a minute. It logged a traceback per event (a
plugin author's probe): a deployment's log drowned in them."""

from __future__ import annotations

import logging

from distsched import hookimpl
from distsched.model.events import WorkerJoined
from distsched.plugin import manager as manager_module
from distsched.plugin.manager import PluginManager


class _Failing:
    def __init__(self) -> None:
        self.seen = 0
        self.error: type[Exception] = RuntimeError

    @hookimpl
    def distsched_event(self, event):
        self.seen += 1
        raise self.error("observer bug")


def _records(caplog):
    return [r for r in caplog.records if r.name == "distsched.plugins" or "event observer" in r.getMessage()]


def test_a_failing_observer_is_logged_once_per_kind_of_failure_and_counted(caplog, monkeypatch):
    caplog.set_level(logging.WARNING)
    obs = _Failing()
    pm = PluginManager(plugins=[("failing", obs)])
    for _ in range(100):
        pm.notify(WorkerJoined(at=0.0, worker_id="w"))
    assert obs.seen == 100
    said = _records(caplog)
    assert len(said) == 1, [r.getMessage() for r in said]
    assert said[0].exc_info is not None and "event observer of plugin 'failing' failed on worker.joined" in \
        said[0].getMessage()
    # another kind of failure: its traceback once too
    obs.error = ValueError
    pm.notify(WorkerJoined(at=0.0, worker_id="w"))
    pm.notify(WorkerJoined(at=0.0, worker_id="w"))
    said = _records(caplog)
    assert len(said) == 2 and said[1].exc_info is not None and said[1].exc_info[0] is ValueError
    # once the interval passed, one line counts the repeats
    monkeypatch.setattr(manager_module, "OBSERVER_FAILURE_INTERVAL", 0.0)
    pm.notify(WorkerJoined(at=0.0, worker_id="w"))
    said = _records(caplog)
    assert len(said) == 3 and said[2].exc_info is None, [r.getMessage() for r in said]
    assert "failed 101 more time(s), the last on worker.joined: ValueError: observer bug" in said[2].getMessage()
