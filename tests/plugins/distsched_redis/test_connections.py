"""Connections: TLS, ACL users, Sentinel, and the checks made when the store opens."""

import logging

import pytest
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError

from distsched.facade import store_unreachable
from distsched.model import Task, TaskSpec, ValidationError
from distsched.testing.redis_server import RedisSentinel
from distsched_redis.election import RedisElection

pytestmark = pytest.mark.redis


async def roundtrip(storage) -> None:
    task = Task(id="hello", spec=TaskSpec(target="f"), created_at=1.0)
    assert await storage.tasks.submit([task]) == [True]
    assert await storage.tasks.get("hello") == task
    assert await RedisElection(storage).acquire("n") is not None


async def test_tls(make_server, open_storage) -> None:
    server = make_server(tls=True)
    await roundtrip(await open_storage(server.url_for(namespace="tls")))
    with pytest.raises(ConnectionError):  # the test CA is not trusted by default
        await open_storage(f"rediss://localhost:{server.port}/0", connect_timeout=1.0)


async def test_tls_with_a_client_certificate(make_server, open_storage) -> None:
    server = make_server(tls=True, tls_auth_clients="yes")
    await roundtrip(await open_storage(server.url_for(client_cert=True)))
    with pytest.raises(ConnectionError):
        await open_storage(server.url_for(), connect_timeout=1.0)


async def test_acl_user(make_server, open_storage) -> None:
    server = make_server(users={"app": "s3cr:t/@"}, default_user=False)
    await roundtrip(await open_storage(server.url_for("app", "s3cr:t/@", namespace="acl")))
    with pytest.raises(AuthenticationError):
        await open_storage(server.url_for("app", "wrong"))


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_sentinel(make_server, open_storage, tls: bool) -> None:
    """The master as the sentinel reports it; with TLS (``rediss+sentinel://``) the sentinel
    and the master serve TLS only (no plain port) and both are reached over TLS, with the
    URL's CA."""
    master = make_server(tls=tls)
    with RedisSentinel(master, service="dsmaster") as sentinel:
        url = sentinel.url_for(namespace="sent")
        scheme = "rediss+sentinel" if tls else "redis+sentinel"
        assert url.startswith(f"{scheme}://127.0.0.1:") and "/dsmaster/0" in url
        storage = await open_storage(url)
        await roundtrip(storage)
        assert master.client().exists("{sent}:t:hello") == 1, "the data lives on the master"


async def test_no_master_found_names_each_sentinel_by_its_address(make_server, open_storage) -> None:
    """Without the CA no sentinel answers: the error names the sentinel by its address and
    why, not by its client's repr (redis-py's: about 1,500 characters of pool settings)."""
    master = make_server(tls=True)
    with RedisSentinel(master, service="tlsmaster") as sentinel:
        bare = sentinel.url_for(namespace="tlssent").split("?", 1)[0] + "?namespace=tlssent&connect_timeout=1"
        with pytest.raises(MasterNotFoundError) as info:  # the test CA is not trusted by default
            await open_storage(bare)
    message = str(info.value)
    assert f"sentinel 127.0.0.1:{sentinel.port} - " in message and "CERTIFICATE_VERIFY_FAILED" in message
    assert "connection_pool" not in message and "ConnectionPool" not in message and len(message) < 400
    # an untrusted certificate is no outage: a role starting says so instead of waiting for ever
    assert not store_unreachable(info.value)


async def test_no_master_found_says_why_with_a_redis_py_that_names_only_the_class(make_server, open_storage,
                                                                                    monkeypatch) -> None:
    """Was: with redis-py before 8.2 - every install on Python 3.10, whose newest is 8.1 - the
    error named each sentinel's error by its class alone (``sentinel 127.0.0.1:PORT -
    network:ConnectionError``), without the reason (an untrusted certificate). redis-py 8.1's
    discover_master is played here on the real sentinel: the message still says why."""
    from redis.asyncio.sentinel import Sentinel

    async def discover_master_of_redis_py_8_1(self, service_name):
        errors = []
        for sentinel in self.sentinels:
            try:
                await sentinel.sentinel_masters()
            except (ConnectionError, TimeoutError) as exc:
                errors.append(f"{sentinel} - {exc!r}")  # (8.2 adds f": {exc}")
        raise MasterNotFoundError(f"No master found for {service_name!r} : {', '.join(errors)}")

    monkeypatch.setattr(Sentinel, "discover_master", discover_master_of_redis_py_8_1)
    master = make_server(tls=True)
    with RedisSentinel(master, service="tlsmaster") as sentinel:
        bare = sentinel.url_for(namespace="tlsold").split("?", 1)[0] + "?namespace=tlsold&connect_timeout=1"
        with pytest.raises(MasterNotFoundError) as info:
            await open_storage(bare)
    message = str(info.value)
    assert f"sentinel 127.0.0.1:{sentinel.port} - network:ConnectionError: " in message, message
    assert "CERTIFICATE_VERIFY_FAILED" in message and message.count("CERTIFICATE_VERIFY_FAILED") == 1, message
    assert not store_unreachable(info.value)


async def test_no_master_found_tells_an_outage_from_a_refusal(make_server, open_storage) -> None:
    """A sentinel that is down: the store is unreachable for now (a role waits for it). A
    sentinel refusing the URL's password: it is not (a role says so and exits)."""
    master = make_server()
    with RedisSentinel(master, service="svc", password="right") as sentinel:
        wrong = sentinel.url_for(namespace="s", sentinel_password="wrong", connect_timeout=1)
        with pytest.raises(MasterNotFoundError) as refused:
            await open_storage(wrong)
        assert not store_unreachable(refused.value), str(refused.value)
        await roundtrip(await open_storage(sentinel.url_for(namespace="s", sentinel_password="right")))
    with pytest.raises(MasterNotFoundError) as down:  # the sentinel is gone now
        await open_storage(wrong)
    assert store_unreachable(down.value), str(down.value)


async def test_an_evicting_maxmemory_policy_is_reported(make_server, open_storage, caplog) -> None:
    server = make_server(config={"maxmemory-policy": "allkeys-lru"})
    with caplog.at_level(logging.WARNING, logger="distsched.redis"):
        await open_storage(server.url)
    assert any("allkeys-lru" in r.getMessage() and "noeviction" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValidationError, match="allkeys-lru.*strict=true"):
        await open_storage(server.url_for(strict="true"))
    with pytest.raises(ValidationError):
        await open_storage(server.url, strict=True)


async def test_noeviction_is_quiet_and_config_noperm_is_tolerated(make_server, open_storage, caplog) -> None:
    server = make_server(config=[("user", "limited", "on", ">pw", "~*", "&*", "+@all", "-config")])
    with caplog.at_level(logging.INFO, logger="distsched.redis"):
        await open_storage(server.url)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        await roundtrip(await open_storage(server.url_for("limited", "pw", namespace="lim", strict="true")))
    assert any("cannot read maxmemory-policy" in r.getMessage() for r in caplog.records)


async def test_a_least_privilege_acl_user_limited_to_its_namespace(make_server, open_storage) -> None:
    """The user docs/redis.md recommends: its own keys only, no dangerous commands but CONFIG GET."""
    rule = ("user", "ds", "on", ">pw", "~{prod}:*", "resetchannels", "+@all", "-@dangerous", "+config|get")
    server = make_server(config=[rule])
    storage = await open_storage(server.url_for("ds", "pw", namespace="prod", strict="true"))
    await roundtrip(storage)
    await storage.wait_for_activity(0.05)
    other = await open_storage(server.url_for("ds", "pw", namespace="other"))
    with pytest.raises(NoPermissionError):
        await other.tasks.submit([Task(id="x", spec=TaskSpec(target="f"), created_at=1.0)])


def test_status_as_a_user_lacking_a_permission_is_one_line(make_server, distsched_cli) -> None:
    """It used to print a traceback (issue 16.6)."""
    rule = ("user", "ro", "on", ">pw", "~*", "resetchannels", "+@all", "-evalsha", "-eval", "-fcall")
    server = make_server(config=[rule])
    result = distsched_cli("status", "--storage", server.url_for("ro", "pw", namespace="acl1"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "NoPermissionError" in lines[0], result.output
    assert "Traceback" not in result.output and "pw@" not in result.output
