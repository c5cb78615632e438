"""Real `distsched scheduler` and `distsched worker` processes on PostgreSQL: the process
contract (``distsched.testing.contracts.ProcessContract``: leader kill -9, a paused leader
fenced, worker kill -9, graceful drain - each in a schema of its own in the session's
throwaway database -, and a crash and restart of a throwaway cluster of the test's own:
``pg_ctl stop -m immediate``, one second down, started again), the same scenarios as on
Redis.

Each test prints its measured figure, so the CI log shows them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from distsched.testing.contracts import ProcessContract

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class TestPostgresProcesses(ProcessContract):
    @pytest.fixture
    def process_store(self, postgres_database: Any) -> Any:
        return postgres_database

    @pytest.fixture
    def process_url_options(self) -> dict[str, str]:
        return {"schema": f"mp_{uuid.uuid4().hex[:12]}"}

    @pytest.fixture
    def restartable_store(self) -> Iterator[Any]:
        from distsched.testing.postgres_server import PostgresServer, postgres_bindir

        if postgres_bindir() is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        server = PostgresServer().start()
        try:
            yield server
        finally:
            server.stop()
