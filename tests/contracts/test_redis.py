"""The Redis backend runs the shared storage and election contract suites (the same ones the
memory backend passes), each test on its own namespace of the session's redis-server."""

import json
import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = pytest.mark.redis


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the namespace's ``jobs`` hash."""
    await storage.client.hset(storage.prefix + "jobs", name, "{not json")


def _add(text, where, fields):
    """``fields`` added to the JSON ``text`` at the dotted path ``where``."""
    record = json.loads(text)
    inner = record
    for part in filter(None, where.split(".")):
        inner = inner[part]
    inner.update(fields)
    return json.dumps(record)


async def write_newer_fields(storage, kind, key, where, fields):
    """Fields a newer node wrote, straight into the namespace's hashes and results list."""
    client, prefix = storage.client, storage.prefix
    if kind == "job":
        await client.hset(prefix + "jobs", key, _add(await client.hget(prefix + "jobs", key), where, fields))
    elif kind == "worker":
        await client.hset(prefix + "workers", key, _add(await client.hget(prefix + "workers", key), where, fields))
    elif kind == "task":  # the spec in ``sp``, the result in ``r``, the rest of the record in ``d``
        part, _, inner = where.partition(".")
        field = {"spec": "sp", "result": "r", "": "d"}[part]
        text = await client.hget(f"{prefix}t:{key}", field)
        await client.hset(f"{prefix}t:{key}", field, _add(text, inner, fields))
    elif kind == "result":
        for i, text in enumerate(await client.lrange(prefix + "results", 0, -1)):
            await client.lset(prefix + "results", i, _add(text, where, fields))
    else:
        raise ValueError(kind)
    return True


class TestRedisStorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def write_newer_fields(self):
        return write_newer_fields

    @pytest.fixture
    def storage_url(self, redis_server):
        return redis_server.url_for(namespace=f"contract-{uuid.uuid4().hex[:12]}")


class TestRedisElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, redis_server):
        return redis_server.url_for(namespace=f"election-{uuid.uuid4().hex[:12]}")
