"""The Redis backend through a Unix socket (``redis+unix://``) runs the shared storage and
election contract suites, as over TCP (test_redis.py), each test on its own namespace of the
session's ``redis_server``, which listens on its socket too."""

import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = pytest.mark.redis


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the namespace's ``jobs`` hash."""
    await storage.client.hset(storage.prefix + "jobs", name, "{not json")


class TestRedisUnixStorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def storage_url(self, redis_server):
        return redis_server.url_for(unix=True, namespace=f"contract-{uuid.uuid4().hex[:12]}")


class TestRedisUnixElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, redis_server):
        return redis_server.url_for(unix=True, namespace=f"election-{uuid.uuid4().hex[:12]}")
