import os
import uuid
from collections.abc import Iterator

import pytest

from distsched.testing.redis_server import RedisServer, redis_server_version

# Our own suite opts in to distsched's pytest plugin exactly as a plugin author would.
pytest_plugins = ["distsched.testing.pytest_plugin"]

# The Redis 6.2 fixtures are this suite's own (its CI builds the binary with .ci/redis6):
# the plugin's ``redis_server`` runs the redis-server on PATH (Debian's 7.0 here).

#: The redis-server 6.x binary the Redis 6.2 tests run (``.ci/redis6`` builds one and prints its path).
REDIS6_ENV = "DISTSCHED_TEST_REDIS6"
REDIS6_HOW = f"build it with .ci/redis6 and export {REDIS6_ENV}=$(.ci/redis6)"


@pytest.fixture(scope="session")
def redis6_binary() -> str:
    """The path of a Redis 6.2 ``redis-server`` from ``$DISTSCHED_TEST_REDIS6``. Unset, the
    tests that need it are skipped, except under ``CI=true``: CI must run them, so there
    they fail. Set to anything but a runnable Redis 6.2 (7.0 by mistake), they fail."""
    path = os.environ.get(REDIS6_ENV, "")
    if not path:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{REDIS6_ENV} is not set, and CI=true: CI runs the Redis 6.2 tests ({REDIS6_HOW})",
                        pytrace=False)
        pytest.skip(f"{REDIS6_ENV} is not set: no Redis 6.2 to test on ({REDIS6_HOW})")
    try:
        version = redis_server_version(path)
    except RuntimeError as exc:
        pytest.fail(f"{REDIS6_ENV}={path}: {exc} ({REDIS6_HOW})", pytrace=False)
    if version[:2] != (6, 2):
        pytest.fail(f"{REDIS6_ENV}={path} is Redis {'.'.join(map(str, version))}, not 6.2 ({REDIS6_HOW})",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def redis6_server(redis6_binary: str) -> Iterator[RedisServer]:
    """A throwaway Redis 6.2 server for the session (never 6379): the Redis 6.2 twin of the
    plugin's ``redis_server``; each test takes a namespace of its own on it."""
    with RedisServer(binary=redis6_binary) as server:
        yield server


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store_url(request: pytest.FixtureRequest) -> str:
    """A store of the test's own on each of the three built-in backends in turn: a private
    ``memory://`` name (shared by the in-process commands of the test), a namespace on the
    suite's ``redis-server``, a schema in the throwaway PostgreSQL database."""
    tag = uuid.uuid4().hex[:12]
    if request.param == "memory":
        return f"memory://test-{tag}"
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url_for(namespace=f"t{tag}")
    return request.getfixturevalue("postgres_database").url_for(schema=f"t{tag}")
