"""The test helper itself: throwaway servers, never the shared 6379."""

import sys

import pytest

from distsched.testing.redis_server import SHARED_PORT, RedisServer, free_port, redis_server_version

pytestmark = pytest.mark.redis


def test_refuses_the_shared_port() -> None:
    with pytest.raises(ValueError, match="6379"):
        RedisServer(port=SHARED_PORT)
    assert all(free_port() != SHARED_PORT for _ in range(50))


def test_kill_restart_and_stop(private_server: RedisServer) -> None:
    port, pid = private_server.port, private_server.pid
    assert port != SHARED_PORT and private_server.url == f"redis://127.0.0.1:{port}/0"
    client = private_server.client()
    client.set("k", "v")
    private_server.kill()
    assert not private_server.running and not private_server.ping()
    private_server.restart()
    assert private_server.port == port and private_server.pid != pid and private_server.ping()
    assert client.get("k") is None, "no persistence by default: a crash loses the data"
    client.close()
    directory = private_server.dir
    private_server.stop()
    assert not private_server.running and not directory.exists()


def test_a_directive_a_server_knows_is_passed(make_server) -> None:
    server = make_server(config=[("loading-process-events-interval-bytes", "1024"), ("hz", "20")])
    assert server.version >= (7, 0, 0) and server.knows("loading-process-events-interval-bytes")
    client = server.client()
    try:
        assert client.config_get("loading-process-events-interval-bytes") == {
            "loading-process-events-interval-bytes": "1024"}
        assert client.config_get("hz") == {"hz": "20"}
    finally:
        client.close()


def test_on_redis_6_2_the_directives_of_7_are_left_out(redis6_binary) -> None:
    """Redis 6.2 refuses to start on a directive it does not know: the helper leaves out the
    tuning ones of 7 (NEWER_DIRECTIVES) and passes the rest; what needs 7 says so."""
    config = [("loading-process-events-interval-bytes", "1024"), ("cluster-port", "0"), ("hz", "20")]
    with RedisServer(binary=redis6_binary, config=config, appendonly=True) as server:
        assert redis_server_version(redis6_binary)[:2] == (6, 2) == server.version[:2]
        assert not server.knows("cluster-port") and server.knows("hz")
        client = server.client()
        try:
            assert client.config_get("hz") == {"hz": "20"}
            assert client.config_get("loading-process-events-interval-bytes") == {}
        finally:
            client.close()
        with pytest.raises(RuntimeError, match="needs Redis 7 or later"):
            server.prepare_slow_load(keys=10)


def test_a_binary_that_is_not_redis_says_so(tmp_path) -> None:
    with pytest.raises(RuntimeError, match=r"did not say a Redis version .*Python 3"):
        redis_server_version(sys.executable)  # `python --version`: "Python 3.x.y"
    with pytest.raises(RuntimeError, match="cannot run"):
        redis_server_version(str(tmp_path / "missing"))
