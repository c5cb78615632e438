"""The PostgreSQL backend runs the shared storage and election contract suites (the same ones
the memory and Redis backends pass), each test in its own schema of the session's throwaway
database."""

import json
import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract

pytestmark = pytest.mark.postgres


async def spoil_job(storage, name):
    """A job config that is not JSON, written straight into the schema's ``jobs`` table."""
    await storage.pool.execute("UPDATE jobs SET config = '{not json' WHERE name = $1", name)


def _add(text, where, fields):
    """``fields`` added to the JSON ``text`` at the dotted path ``where``."""
    record = json.loads(text)
    inner = record
    for part in filter(None, where.split(".")):
        inner = inner[part]
    inner.update(fields)
    return json.dumps(record)


#: kind -> (table, JSON column, key column) of the records a newer node writes as JSON.
_JSON_COLUMNS = {"job": ("jobs", "config", "name"), "worker": ("workers", "data", "id"),
                 "spec": ("tasks", "spec", "id"), "result": ("tasks", "result", "id")}


async def write_newer_fields(storage, kind, key, where, fields):
    """Fields a newer node wrote, straight into the schema's JSON columns (a task's own
    fields are columns: a newer one would come with a migration, refused by older nodes)."""
    pool = storage.pool
    if kind == "result":  # every reported result waiting for the leader
        for row in await pool.fetch("SELECT seq, data FROM results"):
            await pool.execute("UPDATE results SET data = $1 WHERE seq = $2", _add(row["data"], where, fields),
                               row["seq"])
        return True
    if kind == "task":
        kind, _, where = where.partition(".")
        if kind not in ("spec", "result"):
            return False
    table, column, key_column = _JSON_COLUMNS[kind]
    text = await pool.fetchval(f"SELECT {column} FROM {table} WHERE {key_column} = $1", key)
    await pool.execute(f"UPDATE {table} SET {column} = $1 WHERE {key_column} = $2", _add(text, where, fields), key)
    return True


class TestPostgresStorageContract(StorageContract):
    @pytest.fixture
    def spoil_job(self):
        return spoil_job

    @pytest.fixture
    def write_newer_fields(self):
        return write_newer_fields

    @pytest.fixture
    def storage_url(self, postgres_database):
        return postgres_database.url_for(schema=f"contract_{uuid.uuid4().hex[:12]}")


class TestPostgresElectionContract(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self, postgres_database):
        return postgres_database.url_for(namespace=f"election-{uuid.uuid4().hex[:12]}")
