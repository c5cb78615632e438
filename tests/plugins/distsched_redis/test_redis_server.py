"""The test helper itself: throwaway servers, never the shared 6379."""

import pytest

from distsched.testing.redis_server import SHARED_PORT, RedisServer, free_port

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
