"""Opt-in pytest fixtures for distsched and its plugins.

Enable in your root ``conftest.py``::

    pytest_plugins = ["distsched.testing.pytest_plugin"]

Fixtures:

``distsched_plugins``         extra plugin modules/objects to register (override it to test an
                              uninstalled plugin); default none - entry points are loaded.
``distsched_plugin_manager``  a fresh PluginManager per test.
``distsched_storage_url``     the storage URL to test on: ``--distsched-storage`` or
                              ``$DISTSCHED_TEST_STORAGE`` made private to the test (a fresh Redis
                              ``namespace=``, PostgreSQL ``schema=``, ``memory://NAME``; removed
                              after it where it can be: :func:`private_storage_url`), default a
                              private ``memory://`` store.
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


#: The URL option that makes a shared store private to one test, by URL scheme (the
#: built-in stores'): a URL of another scheme is used as given, shared by every test.
PRIVATE_OPTIONS = {
    **dict.fromkeys(("redis", "rediss", "redis+unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
                     "rediss+cluster"), "namespace"),
    "postgresql": "schema", "postgres": "schema",
}
#: Other names of those options (replaced too): a PostgreSQL URL's ``namespace=`` is its schema.
_ALIASES = {"schema": ("schema", "namespace"), "namespace": ("namespace",)}


def private_storage_url(url: str, name: str | None = None) -> str:
    """``url`` made private to one test, under ``name`` (default a fresh ``test_<random>``):
    ``memory://NAME``; a Redis URL's ``namespace=`` or a PostgreSQL URL's ``schema=`` set to
    ``name`` (replacing the one given, the rest of the URL kept). Another scheme's URL is
    returned unchanged: every test shares its store."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    name = name or f"test_{uuid.uuid4().hex}"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return f"memory://{name}"
    option = PRIVATE_OPTIONS.get(scheme)
    if option is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _ALIASES[option]]
    return urlunsplit(parts._replace(query=urlencode([*query, (option, name)], safe="/,:")))


def _remove_private_store(url: str, name: str) -> None:
    """Remove what a test left under its private ``name`` on ``url``'s store, where that is
    one command: a Redis namespace's keys (``redis://``, ``rediss://``, ``redis+unix://``;
    not through Sentinel or a Cluster), a PostgreSQL schema (``DROP SCHEMA ... CASCADE``).
    A failure is a warning, not the test's failure."""
    import warnings
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from ..urls import redact_url

    scheme = url.split("://", 1)[0].lower()
    parts = urlsplit(url)
    try:
        if scheme in ("redis", "rediss", "redis+unix"):
            import redis

            options = dict(parse_qsl(parts.query))
            # redis-py reads the TLS options under the same names (a rediss:// URL's CA and
            # client certificate), and a Unix socket's database as db=; distsched's own go.
            kept = {k: v for k, v in options.items() if k.startswith("ssl_") and scheme == "rediss"}
            if options.get("db") and scheme == "redis+unix":
                kept["db"] = options["db"]
            plain = urlunsplit(parts._replace(scheme={"redis+unix": "unix"}.get(scheme, scheme),
                                              query=urlencode(kept)))
            client = redis.Redis.from_url(plain, socket_timeout=5)
            try:
                keys = list(client.scan_iter(match="{" + name + "}:*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start:start + 500])
            finally:
                client.close()
        elif scheme in ("postgresql", "postgres"):
            import asyncio

            import asyncpg

            libpq = [(k, v) for k, v in parse_qsl(parts.query) if k in ("host", "port", "user", "sslmode")]
            dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(libpq)))

            async def drop() -> None:
                conn = await asyncpg.connect(dsn, timeout=10)
                try:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                finally:
                    await conn.close()

            asyncio.run(drop())
    except Exception as exc:  # the test ran: a store left behind is said, not failed
        warnings.warn(f"distsched_storage_url: could not remove the test's {PRIVATE_OPTIONS[scheme]} {name!r} "
                      f"from {redact_url(url)}: {type(exc).__name__}: {exc}", stacklevel=1)


@pytest.fixture
def distsched_storage_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The storage URL a test runs on: ``--distsched-storage URL`` or ``$DISTSCHED_TEST_STORAGE``
    made private to this test by :func:`private_storage_url` (a fresh namespace or schema,
    removed after the test where :func:`_remove_private_store` can), else a private
    ``memory://`` store. A URL of another scheme is used as given: its store is shared."""
    given = request.config.getoption("--distsched-storage") or os.environ.get("DISTSCHED_TEST_STORAGE")
    if not given:
        yield f"memory://test-{uuid.uuid4().hex}"
        return
    name = f"test_{uuid.uuid4().hex}"
    url = private_storage_url(given, name)
    yield url
    if url != given and given.split("://", 1)[0].lower() in PRIVATE_OPTIONS:
        _remove_private_store(url, name)


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


#: The fixtures are found by name once the plugin is enabled (``pytest_plugins``), not
#: imported; a plugin's own fixture may build on ``private_storage_url``.
__all__ = ["private_storage_url"]
