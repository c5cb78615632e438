"""URL parsing: every option, and errors that name the problem without the password."""

import asyncio

import pytest

from distsched.model import ValidationError
from distsched_postgres.url import parse


def test_defaults_and_every_option() -> None:
    s = parse("postgresql://app:s%40cret@db.example:6543/sched?sslmode=require&schema=prod"
              "&pool_size=20&pool_min=2&retention=1d&results_max=500&migrate=false&connect_timeout=2s"
              "&command_timeout=60&application_name=me")
    assert (s.host, s.port, s.database, s.user, s.password) == ("db.example", 6543, "sched", "app", "s@cret")
    assert (s.schema, s.pool_size, s.pool_min, s.retention, s.results_max, s.migrate) == \
        ("prod", 20, 2, 86400.0, 500, False)
    assert (s.connect_timeout, s.command_timeout) == (2.0, 60.0)
    # the driver gets the credentials and the libpq options, never distsched's own
    assert s.dsn() == "postgresql://app:s%40cret@db.example:6543/sched?application_name=me&sslmode=require"
    assert "s@cret" not in s.redacted and "***" in s.redacted and "s@cret" not in repr(s)
    d = parse("postgres://localhost/db")
    assert (d.port, d.schema, d.pool_size, d.migrate, d.user) == (5432, "distsched", 10, True, None)
    assert parse("postgresql://h/db?namespace=team-a").schema == "team-a"
    assert parse("postgresql://h/db", {"schema": "x"}).schema == "x", "engine options count too"


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://h", "database name is missing"),
    ("postgresql:///db", "host is missing"),
    ("postgresql://h:99999/db", "port"),
    ("postgresql://h/db?schema=bad%20name", "schema"),
    ("postgresql://h/db?schema=a&namespace=b", "give one"),
    ("postgresql://h/db?pool_size=1", "pool_size must be between 2"),
    ("postgresql://h/db?pool_size=4&pool_min=5", "must not exceed pool_size"),
    ("postgresql://h/db?sslmode=maybe", "sslmode must be one of"),
    ("postgresql://h/db?retention=soon", "retention must be a number"),
    ("postgresql://h/db?migrate=perhaps", "migrate must be true or false"),
    ("postgresql://h/db?colour=blue", "unknown option(s) colour"),
    ("postgresql://h/db?schema=a&schema=a", "given twice"),
    ("postgresql://a,b/db", "several hosts"),
    ("mysql://h/db", "unsupported scheme"),
])
def test_bad_urls_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match="storage") as info:
        parse(url.replace("://", "://u:hunter2@", 1) if "@" not in url and url.count("/") > 2 else url)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)


def test_channels_and_lock_keys_are_per_schema() -> None:
    a, b = parse("postgresql://h/db?schema=a"), parse("postgresql://h/db?schema=b")
    assert a.channel("activity") != b.channel("activity")
    assert a.channel("q", "w1") != a.channel("q", "w2")
    assert len(a.channel("q", "w" * 500)) <= 63, "a channel is an identifier: at most 63 bytes"
    assert a.lock_key() != b.lock_key() and -2**63 <= a.lock_key() < 2**63


def test_a_unix_socket_is_named_as_libpq_names_it() -> None:
    # the directory as the host, percent-encoded (not lowercased: it is a path), or no host and
    # the host option; the port names the socket file, and the driver gets both as options
    for url in ("postgresql://app:pw@%2FVar%2Frun%2Fpostgresql:5433/sched?sslmode=disable",
                "postgresql://app:pw@:5433/sched?host=/Var/run/postgresql&sslmode=disable"):
        s = parse(url)
        assert (s.host, s.unix_socket, s.database, s.user) == ("/Var/run/postgresql", True, "sched", "app")
        assert s.dsn() == "postgresql://app:pw@/sched?host=%2FVar%2Frun%2Fpostgresql&port=5433&sslmode=disable"
        assert "pw" not in s.redacted
    assert parse("postgresql://app@/sched?host=/var/run/postgresql").port == 5432
    assert not parse("postgresql://db.example/sched").unix_socket


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://h/db?host=/var/run/postgresql", "the host is given twice"),
    ("postgresql:///db?host=var/run/postgresql", "option host must be the absolute path of a Unix socket's directory"),
    ("postgresql:///db?host=", "option host must be the absolute path"),
])
def test_bad_socket_directories_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match="storage") as info:
        parse(url)
    assert message in str(info.value)


@pytest.mark.postgres
async def test_a_deployment_runs_over_the_servers_unix_socket(postgres_database, schema, distsched_app) -> None:
    """The machine's server through its Unix socket (the directory it reports): a scheduler and
    a worker run a task, and the store's connections are not TCP ones."""
    directory = await asyncio.to_thread(postgres_database.socket_directory)
    if directory is None:
        pytest.skip("the server listens on no Unix socket")
    url = postgres_database.url_for(unix=True, schema=schema)
    assert url.startswith("postgresql://postgres@/") and f"?host={directory}&schema={schema}" in url
    app = await distsched_app(url, functions={"add": lambda a, b: a + b})
    task = await app.wait(await app.submit("add", 2, 3), timeout=20)
    assert task.state.value == "succeeded" and task.result.value == 5
    storage = await app.storage()
    assert await storage.pool.fetchval("SELECT inet_server_addr()") is None, "a Unix socket has no server address"


@pytest.mark.parametrize("url", ["postgresql://app:s3cr\net@h/db", "postgresql://app:s3cr\tet@h/db",
                                 "postgresql://app@h/db?schema=a\nb"])
def test_a_control_character_is_refused_naming_it(url: str) -> None:
    """Python's URL parser drops a tab or a newline without a word: the password 'pa\\nss'
    was taken as 'pass'. A control character is refused, named as such."""
    with pytest.raises(ValidationError) as info:
        parse(url)
    assert "holds a control character" in info.value.reason and "s3cr" not in str(info.value)
    assert "\n" not in str(info.value) and "\t" not in str(info.value)
