"""The Redis backend on a real Redis Cluster (``redis+cluster://``, 3 masters + 3 replicas)
runs the shared storage and election contract suites, each test on its own namespace (its
own hash slot, on whichever master serves it)."""

import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the namespace's ``jobs`` hash."""
    await storage.client.hset(storage.prefix + "jobs", name, "{not json")


class TestRedisClusterStorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def storage_url(self, redis_cluster):
        return redis_cluster.url_for(namespace=f"contract-{uuid.uuid4().hex[:12]}")


class TestRedisClusterElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, redis_cluster):
        return redis_cluster.url_for(namespace=f"election-{uuid.uuid4().hex[:12]}")
