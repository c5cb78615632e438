"""A worker whose record no store would keep stops at start, naming the field: it retried
its registration for ever (a WARNING every few seconds, never running a task)."""

from __future__ import annotations

import asyncio

import pytest

from distsched import DistributeSchedule
from distsched.model import ValidationError
from distsched.model.worker import MAX_FUNCTIONS


async def test_a_worker_with_more_functions_than_it_may_advertise_stops_naming_the_field(caplog):
    app = DistributeSchedule("memory://")
    for i in range(MAX_FUNCTIONS + 1):
        app.task(lambda: None, name=f"f{i}")
    with pytest.raises(ValidationError, match=f"^functions: must list at most {MAX_FUNCTIONS} function names"):
        await asyncio.wait_for(app.run_async(duration=30, scheduler=False), 10)
    assert "cannot register" not in caplog.text
