"""The metrics plugin's settings from the config file: ``[plugins.metrics] max_jobs`` (the
environment variable ``DISTSCHED_METRICS_MAX_JOBS`` still works and wins)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from distsched import DistributeSchedule
from distsched.model import ValidationError


def _app(table: dict | None, serve: bool = True) -> DistributeSchedule:
    return DistributeSchedule(f"memory://metrics-{uuid.uuid4().hex}",
                              serve={"metrics": "127.0.0.1:0"} if serve else {},
                              plugin_settings={"metrics": table} if table is not None else {})


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DISTSCHED_METRICS_MAX_JOBS", raising=False)


async def test_the_job_label_limit_comes_from_the_plugins_table():
    from distsched_metrics import observer_for

    app = _app({"max_jobs": 1})
    async with app.running():
        observer = observer_for(app.engine)
        assert observer.max_jobs == 1
        assert observer.job("a") == "a" and observer.job("b") == "_other"


async def test_the_environment_variable_wins_over_the_table(monkeypatch):
    from distsched_metrics import observer_for

    monkeypatch.setenv("DISTSCHED_METRICS_MAX_JOBS", "3")
    app = _app({"max_jobs": 1})
    async with app.running():
        assert observer_for(app.engine).max_jobs == 3


@pytest.mark.parametrize("table, message", [
    ({"max_jobs": -1}, "[plugins.metrics] max_jobs: must be an integer >= 0, not -1"),
    ({"max_jobs": "many"}, "[plugins.metrics] max_jobs: must be an integer >= 0, not 'many'"),
    ({"max_jobs": True}, "[plugins.metrics] max_jobs: must be an integer >= 0, not True"),
    ({"max_job": 5}, "[plugins.metrics] max_job: unknown setting (did you mean 'max_jobs'?"),
])
async def test_a_bad_table_is_refused_at_start_even_when_no_metrics_are_served(table, message):
    app = _app(table, serve=False)
    with pytest.raises(ValidationError) as caught:
        await app.start()
    await app.stop()
    assert str(caught.value).startswith(message)


def test_a_scheduler_refuses_a_bad_max_jobs_from_the_config_file(tmp_path):
    (tmp_path / "d.toml").write_text('[plugins.metrics]\nmax_jobs = "lots"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTSCHED_")}
    proc = subprocess.run([sys.executable, "-m", "distsched", "scheduler", "--config", "d.toml", "--fail-fast"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "[plugins.metrics] max_jobs: must be an integer >= 0, not 'lots'" in proc.stderr
    assert "Traceback" not in proc.stderr
