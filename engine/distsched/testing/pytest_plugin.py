"""Opt-in pytest fixtures for distsched and its plugins.

Enable in your root ``conftest.py``::

    pytest_plugins = ["distsched.testing.pytest_plugin"]

Fixtures:

``distsched_plugins``         extra plugin modules/objects to register (override it to test an
                              uninstalled plugin); default none - entry points are loaded.
``distsched_plugin_manager``  a fresh PluginManager per test.
``distsched_storage_url``     the storage URL to test on: ``--distsched-storage`` or
                              ``$DISTSCHED_TEST_STORAGE``, default a private ``memory://`` store.
``redis_server``              a throwaway ``redis-server`` on a free loopback port (session
                              scope; skipped when the binary is missing). Never the shared 6379.
``redis_cluster``             a throwaway Redis Cluster (3 masters + 3 replicas, session scope;
                              ``url_for(namespace=...)`` gives its ``redis+cluster://`` URL); tests
                              that kill or fail over nodes start their own ``RedisClusterServer``.
``postgres_database``         a throwaway database ``distsched_test_<random>`` on the PostgreSQL server
                              at ``$DISTSCHED_TEST_POSTGRES`` (default postgres@127.0.0.1:5432), dropped
                              at the end (session scope; skipped when no server answers).
``distsched_app``             a factory: ``await distsched_app(storage_url, functions={...})`` gives a
                              started DistributeSchedule (scheduler + worker in this event loop),
                              stopped after the test (needs pytest-asyncio); ``worker=`` takes
                              False (no worker) or a ``WorkerConfig`` (its name, concurrency...).
``distsched_workers``         a factory of worker pools: ``await distsched_workers(url, 3, functions={...})``
                              starts N workers (no scheduler) on a store, stopped after the test.
``distsched_cli``             runs the ``distsched`` command in-process: ``distsched_cli("plugins")``
                              returns a click Result (exit_code, output).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("distsched")
    group.addoption("--distsched-storage", default=None, metavar="URL",
                    help="storage URL the distsched fixtures and contract suites run on (default memory://)")


@pytest.fixture
def distsched_plugins() -> list[Any]:
    return []


@pytest.fixture
def distsched_plugin_manager(distsched_plugins: list[Any]):
    from ..plugin.manager import PluginManager

    return PluginManager(plugins=distsched_plugins)


@pytest.fixture
def distsched_storage_url(request: pytest.FixtureRequest) -> str:
    url = request.config.getoption("--distsched-storage") or os.environ.get("DISTSCHED_TEST_STORAGE")
    return url or f"memory://test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH (install it: apt-get install redis-server)")
    from .redis_server import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are not on PATH (install them: apt-get install redis-server)")
    from .redis_cluster import RedisClusterServer

    with RedisClusterServer() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Any]:
    from .postgres_server import PostgresDatabase, server_answers

    reason = server_answers()
    if reason is not None:
        pytest.skip(reason + " (start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)")
    with PostgresDatabase() as database:
        yield database


@pytest.fixture
async def distsched_app(distsched_plugins: list[Any]) -> AsyncIterator[Any]:
    """A factory of *started* apps (scheduler and/or worker in this event loop), stopped
    after the test. Needs pytest-asyncio (``asyncio_mode = "auto"`` or a marker)."""
    from ..config import WorkerConfig
    from ..facade import DistributeSchedule

    started: list[Any] = []

    async def make(storage: str | None = None, *, scheduler: bool = True, worker: Any = True,
                   functions: dict[str, Any] | None = None, **kw: Any) -> Any:
        # worker: True / False, or a WorkerConfig for the app's worker (name, concurrency, ...)
        config = worker if isinstance(worker, WorkerConfig) else None
        app = DistributeSchedule(storage or f"memory://app-{uuid.uuid4().hex}", plugins=distsched_plugins,
                                 worker=config, **kw)
        for name, func in (functions or {}).items():
            app.task(func, name=name)
        await app.start(scheduler=scheduler, worker=bool(worker))
        started.append(app)
        return app

    yield make
    for app in reversed(started):
        await app.stop()


@pytest.fixture
async def distsched_workers(distsched_plugins: list[Any]) -> AsyncIterator[Any]:
    """A factory of worker pools: ``await distsched_workers(storage_url, 3, functions={...})``
    starts that many workers (no scheduler) in this event loop on the store and returns
    their apps; all are drained and stopped after the test (needs pytest-asyncio)."""
    from ..config import WorkerConfig
    from ..facade import DistributeSchedule

    started: list[Any] = []

    async def make(storage: str, count: int = 2, *, functions: dict[str, Any] | None = None,
                   concurrency: int = 4, **kw: Any) -> list[Any]:
        pool = []
        for i in range(count):
            app = DistributeSchedule(storage, plugins=distsched_plugins,
                                     worker=WorkerConfig(name=f"pool{i}", concurrency=concurrency), **kw)
            for name, func in (functions or {}).items():
                app.task(func, name=name)
            await app.start(scheduler=False, worker=True)
            started.append(app)
            pool.append(app)
        return pool

    yield make
    for app in reversed(started):
        await app.stop()


@pytest.fixture
def distsched_cli():
    from click.testing import CliRunner

    from ..cli import cli

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke
