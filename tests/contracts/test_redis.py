"""The Redis backend runs the shared storage and election contract suites (the same ones the
memory backend passes), each test on its own namespace of the session's redis-server."""

import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = pytest.mark.redis


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the namespace's ``jobs`` hash."""
    await storage.client.hset(storage.prefix + "jobs", name, "{not json")


class TestRedisStorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def storage_url(self, redis_server):
        return redis_server.url_for(namespace=f"contract-{uuid.uuid4().hex[:12]}")


class TestRedisElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, redis_server):
        return redis_server.url_for(namespace=f"election-{uuid.uuid4().hex[:12]}")
