"""The PostgreSQL backend runs the shared storage and election contract suites (the same ones
the memory and Redis backends pass), each test in its own schema of the session's throwaway
database."""

import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = pytest.mark.postgres


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the schema's ``jobs`` table."""
    await storage.pool.execute("UPDATE jobs SET config = '{not json' WHERE name = $1", name)


class TestPostgresStorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def storage_url(self, postgres_database):
        return postgres_database.url_for(schema=f"contract_{uuid.uuid4().hex[:12]}")


class TestPostgresElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, postgres_database):
        return postgres_database.url_for(namespace=f"election-{uuid.uuid4().hex[:12]}")
