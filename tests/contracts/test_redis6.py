"""The Redis backend on Redis 6.2 (no functions: every call is a script, EVALSHA) runs the
shared storage and election contract suites, as on Redis 7 (test_redis.py), each test on its
own namespace of the session's Redis 6.2 server (``redis6_server``: ``$DISTSCHED_TEST_REDIS6``)."""

import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = pytest.mark.redis


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the namespace's ``jobs`` hash."""
    await storage.client.hset(storage.prefix + "jobs", name, "{not json")


class TestRedis6StorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def storage_url(self, redis6_server):
        return redis6_server.url_for(namespace=f"contract-{uuid.uuid4().hex[:12]}")


class TestRedis6ElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, redis6_server):
        return redis6_server.url_for(namespace=f"election-{uuid.uuid4().hex[:12]}")
