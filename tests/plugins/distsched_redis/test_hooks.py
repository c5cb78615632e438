"""The plugin is found through its entry point and opens through the engine's registries."""

import asyncio
import uuid
from typing import Any

import pytest

from distsched.config import EngineConfig
from distsched.model import ValidationError
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


def test_a_namespace_a_newer_distsched_wrote_is_refused_naming_the_upgrade(redis_server, distsched_cli) -> None:
    """0.1 nodes crash-looped on records 0.2 wrote (a worker's `signed`): from 0.2 on a
    namespace says which layout wrote it, and an older node is refused at open instead."""
    from distsched_redis.storage import LAYOUT, RedisStorage

    async def open_and_close(url: str) -> None:
        store = await RedisStorage.open(url)
        await store.close()

    ns = f"l{uuid.uuid4().hex[:10]}"
    url, key = redis_server.url_for(namespace=ns), "{" + ns + "}:layout"
    raw = redis_server.client()
    try:
        assert distsched_cli("status", "--storage", url).exit_code == 0
        assert raw.get(key) is None, "a command that only reads writes no layout"
        asyncio.run(open_and_close(url))
        assert raw.get(key) == str(LAYOUT), "a writer records its layout"
        raw.set(key, "1")  # as 0.1 left it (no key reads 1 too)
        asyncio.run(open_and_close(url))
        assert raw.get(key) == str(LAYOUT)
        raw.set(key, str(LAYOUT + 1))
        with pytest.raises(ValidationError, match=rf"namespace '{ns}' was written by a newer distsched \(store "
                                                  rf"layout {LAYOUT + 1}; this one knows up to {LAYOUT}\): upgrade "
                                                  "distsched on this node"):
            asyncio.run(open_and_close(url))
        shown = distsched_cli("status", "--storage", url)
        assert shown.exit_code == 1 and "upgrade distsched on this node" in shown.output
        assert "Traceback" not in shown.output and raw.get(key) == str(LAYOUT + 1)
    finally:
        raw.close()


def _namespace(redis_server: Any) -> tuple[str, str, str]:
    """A fresh namespace: its name, its storage URL and its keys' prefix."""
    ns = f"l{uuid.uuid4().hex[:10]}"
    return ns, redis_server.url_for(namespace=ns), "{" + ns + "}:"


def _lose_its_data(raw: Any, prefix: str) -> None:
    """Every key of the namespace gone at once, as a restart without persistence leaves it."""
    raw.delete(*raw.scan_iter(match=prefix + "*"))


async def test_a_namespace_that_lost_its_data_is_said_once_by_the_leaders_housekeeping(redis_server, caplog) -> None:
    """Redis restarted empty (no persistence): jobs, tasks and workers were gone and every
    node went on as if healthy - nothing fired and nothing said why (an incident probe)."""
    from distsched_redis.storage import LAYOUT, RedisStorage

    ns, url, p = _namespace(redis_server)
    store = await RedisStorage.open(url)
    raw = redis_server.client()
    try:
        with caplog.at_level("ERROR", logger="distsched.redis"):
            await store.housekeeping(100)
            assert not caplog.records, "a namespace with its data says nothing"
            _lose_its_data(raw, p)
            await store.housekeeping(100)
            await store.housekeeping(100)
        [said] = [r.getMessage() for r in caplog.records]
        assert f"namespace '{ns}' lost its data" in said and "distsched jobs sync FILE" in said
        assert raw.get(p + "layout") == str(LAYOUT), "written again: the loss is said once"
    finally:
        raw.close()
        await store.close()


async def test_a_loss_is_found_even_after_another_node_wrote_the_namespace_anew(redis_server, caplog) -> None:
    """The leader found a loss by its layout mark gone; but any node that opened the
    namespace after the loss and before the leader's next housekeeping - a worker restarting,
    a `distsched jobs add` - wrote the mark again, and the loss went unsaid (nothing synced
    the jobs again: a CI run's test polled with such opens). The first writer sets the
    namespace's epoch; a store that finds another one than it saw at open says the loss."""
    from distsched_redis.storage import RedisStorage

    ns, url, p = _namespace(redis_server)
    leader = await RedisStorage.open(url)
    raw = redis_server.client()
    try:
        with caplog.at_level("ERROR", logger="distsched.redis"):
            _lose_its_data(raw, p)
            later = await RedisStorage.open(url)  # writes the mark (and a new epoch) again
            await later.close()
            assert raw.exists(p + "layout")
            await leader.housekeeping(100)
            await leader.housekeeping(100)
        [said] = [r.getMessage() for r in caplog.records]
        assert f"namespace '{ns}' lost its data" in said
        assert leader.data_losses == 1, "said once: the leader adopts the new epoch"
    finally:
        raw.close()
        await leader.close()
