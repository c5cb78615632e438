"""The built-in memory storage and election run the shared contract suites."""

import uuid

import pytest

from distsched.testing.contracts import ElectionContract, StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage_url(self):
        return f"memory://contract-{uuid.uuid4().hex}"


class TestMemoryElection(ElectionContract):
    records_renew_interval = True

    @pytest.fixture
    def election_url(self):
        return f"memory://election-{uuid.uuid4().hex}"
