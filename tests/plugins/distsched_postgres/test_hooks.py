"""The plugin is found through its entry point and opens through the engine's registries."""

import pytest

from distsched.config import EngineConfig
from distsched.plugin.manager import PluginManager
from distsched.ports import Election, StorageBackend
from distsched.testing import discovered_plugins

pytestmark = pytest.mark.postgres


def test_discovered_with_its_schemes() -> None:
    assert "postgres" in discovered_plugins()
    pm = PluginManager()
    for scheme in ("postgresql", "postgres"):
        assert pm.storage.for_url(f"{scheme}://h/db").name == "postgres"
        assert pm.election.for_url(f"{scheme}://h/db").name == "postgres"


async def test_the_engine_opens_storage_and_election(pg_url) -> None:
    from distsched.app.engine import Engine

    engine = Engine(EngineConfig(storage=pg_url, lease_ttl=4.0, renew_interval=1.0))
    try:
        storage = await engine.open()
        assert isinstance(storage, StorageBackend) and storage.url == pg_url
        election = await engine.open_election()
        assert isinstance(election, Election) and (election.ttl, election.renew_interval) == (4.0, 1.0)
    finally:
        await engine.close()


async def test_an_election_on_another_schema_is_refused(storage, postgres_database) -> None:
    from distsched.model import ValidationError
    from distsched_postgres.election import PostgresElection

    with pytest.raises(ValidationError, match="same database and schema"):
        PostgresElection.for_url(postgres_database.url_for(schema="elsewhere"), storage=storage)
