"""The plugin is found through its entry point and opens through the engine's registries."""

import pytest

from distsched.config import EngineConfig
from distsched.plugin.manager import PluginManager
from distsched.ports import Election, StorageBackend
from distsched.testing import discovered_plugins

pytestmark = pytest.mark.redis


def test_discovered_with_its_schemes() -> None:
    assert "redis" in discovered_plugins()
    pm = PluginManager()
    for scheme in ("redis", "rediss", "redis+sentinel", "redis+cluster"):
        assert pm.storage.for_url(f"{scheme}://h/0").name == "redis"
        assert pm.election.for_url(f"{scheme}://h/0").name == "redis"
    assert "redis" in pm.plugins["redis"].provides.get("storage", [])


async def test_the_engine_opens_storage_and_election(redis_url) -> None:
    from distsched.app.engine import Engine

    engine = Engine(EngineConfig(storage=redis_url, lease_ttl=4.0, renew_interval=1.0))
    try:
        storage = await engine.open()
        assert isinstance(storage, StorageBackend) and storage.url == redis_url
        election = await engine.open_election()
        assert isinstance(election, Election) and (election.ttl, election.renew_interval) == (4.0, 1.0)
        fence = await election.acquire(engine.config.node_id)
        assert fence is not None and (await election.current()) == fence
    finally:
        await engine.close()


async def test_a_bad_url_fails_with_the_reason(redis_server) -> None:
    from distsched.app.engine import Engine
    from distsched.plugin.errors import PluginError

    engine = Engine(EngineConfig(storage=redis_server.url_for(namespace="bad{ns}")))
    with pytest.raises(PluginError, match="namespace must be"):
        await engine.open()
