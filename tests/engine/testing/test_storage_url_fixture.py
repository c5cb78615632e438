"""``distsched_storage_url`` gives every test a store of its own on the URL given with
``--distsched-storage`` / ``$DISTSCHED_TEST_STORAGE`` (a Redis namespace, a PostgreSQL
schema) and removes it after the test: it gave them all the URL as given - one namespace,
shared and never cleaned."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from distsched.testing.pytest_plugin import private_storage_url

#: Two tests, each storing a job on the fixture's URL and saying which URL it got.
SUITE = textwrap.dedent('''
    import json, os

    import pytest


    @pytest.mark.parametrize("n", [1, 2])
    async def test_stores_a_job(distsched_storage_url, distsched_app, n):
        app = await distsched_app(distsched_storage_url, scheduler=False, worker=False)
        assert await app.jobs() == []                     # nothing of another test's
        await app.add_job(f"job{n}", every="1h", target="noop")
        with open(os.environ["SEEN"], "a") as out:
            out.write(json.dumps(distsched_storage_url) + "\\n")
''')


def _run_suite(tmp_path, url):
    (tmp_path / "test_suite.py").write_text(SUITE, encoding="utf-8")
    seen = tmp_path / "seen.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "distsched.testing.pytest_plugin",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", "--rootdir", str(tmp_path),
         "--distsched-storage", url, str(tmp_path / "test_suite.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**_env(), "SEEN": str(seen)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in seen.read_text().splitlines()]


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "DISTSCHED_TEST_STORAGE"}


def test_each_test_gets_its_own_redis_namespace_removed_after_it(redis_server, tmp_path):
    import redis

    given = redis_server.url_for(namespace="shared", retention="1h")
    urls = _run_suite(tmp_path, given)
    assert len(urls) == 2 and urls[0] != urls[1], urls
    for url in urls:
        assert "namespace=test_" in url and "namespace=shared" not in url and "retention=1h" in url, url
    client = redis.Redis(port=redis_server.port)
    left = sorted(key.decode() for key in client.scan_iter(match="{test_*"))
    client.close()
    assert left == [], f"the tests' namespaces were left behind: {left[:10]}"


def test_each_test_gets_its_own_namespace_removed_after_it_over_tls(tmp_path):
    """A rediss:// URL's TLS options (its CA) reach the clean-up too: it connected without
    them, failed the handshake and left the namespaces behind with a warning."""
    from distsched.testing.redis_server import RedisServer

    with RedisServer(tls=True) as server:
        urls = _run_suite(tmp_path, server.url_for(namespace="shared"))
        assert len(urls) == 2 and all(url.startswith("rediss://") and "ssl_ca_certs=" in url for url in urls), urls
        client = server.client()
        try:
            left = sorted(client.scan_iter(match="{test_*"))
        finally:
            client.close()
    assert left == [], f"the tests' namespaces were left behind: {left[:10]}"


def test_each_test_gets_its_own_postgres_schema_dropped_after_it(postgres_database, tmp_path):
    import asyncio

    import asyncpg

    urls = _run_suite(tmp_path, postgres_database.url_for(schema="shared"))
    assert len(urls) == 2 and urls[0] != urls[1] and all("schema=test_" in url for url in urls), urls

    async def schemas():
        conn = await asyncpg.connect(postgres_database.url)
        try:
            return [r[0] for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'test_%'")]
        finally:
            await conn.close()

    assert asyncio.run(schemas()) == []


@pytest.mark.parametrize(("given", "private"), [
    ("memory://shared", "memory://N"),
    ("redis://u:pw@h:1/0?namespace=shared&retention=1h", "redis://u:pw@h:1/0?retention=1h&namespace=N"),
    ("redis+cluster://h:1,h:2/", "redis+cluster://h:1,h:2/?namespace=N"),
    ("postgresql://pg@h/db?namespace=x&pool_size=2", "postgresql://pg@h/db?pool_size=2&schema=N"),
    ("mystore://h/x?ns=1", "mystore://h/x?ns=1"),        # another store's URL: as given, shared
])
def test_private_storage_url(given, private):
    assert private_storage_url(given, "N") == private
