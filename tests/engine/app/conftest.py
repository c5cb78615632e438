"""Fixtures shared by the application-service tests."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest) -> str:
    """A private store for one test: an in-process memory store, then a namespace of its own
    on the suite's real ``redis-server``."""
    if request.param == "memory":
        return f"memory://app-{uuid.uuid4().hex}"
    server = request.getfixturevalue("redis_server")
    return server.url_for(namespace=f"t{uuid.uuid4().hex[:12]}")
