"""The poison-test checks of distsched.testing.poison, on the memory store: each passes where
the deployment goes on and fails where it does not (both built-in stores' test_poison.py use
them on real servers)."""

from __future__ import annotations

import pytest

from distsched.config import WorkerConfig
from distsched.testing import poison


def _ok() -> str:
    return "ok"


def _fails() -> None:
    raise RuntimeError("no")


async def _app(distsched_app):
    return await distsched_app(functions={"noop": _ok, "fails": _fails},
                               worker=WorkerConfig(name="w", concurrency=4), heartbeat_interval=0.2)


@pytest.mark.parametrize(("stored", "after"), [(1, 2), (2**31 - 2, 2**31 - 1), (2**31 - 1, 1), (2**40, 1),
                                               (0, 1), (-5, 1)])
def test_next_job_version(stored, after):
    assert poison.next_job_version(stored) == after


async def test_keeps_firing_passes_for_a_job_that_succeeds_and_fails_for_one_that_does_not(distsched_app):
    app = await _app(distsched_app)
    await app.add_job("healthy", every="0.2s", target="noop")
    await app.add_job("broken", every="0.2s", target="fails")
    await poison.keeps_firing(app, every=0.2, seconds=1.0)
    assert await poison.succeeded(app) >= 3
    with pytest.raises(AssertionError, match="broken ran 0 times in 1.0s"):
        await poison.keeps_firing(app, every=0.2, job="broken", seconds=1.0)


async def test_failed_twice_gives_a_task_with_two_attempts(distsched_app):
    app = await _app(distsched_app)
    task_id = await poison.failed_twice(app)
    detail = await app.task_detail(task_id)
    assert detail.task.state.value == "failed" and len(detail.attempts) == 2


async def test_quarantined_fails_naming_the_record_that_was_never_moved_aside(distsched_app):
    app = await _app(distsched_app)  # the memory store keeps no quarantine
    with pytest.raises(AssertionError, match="job 'poison' was never quarantined"):
        await poison.quarantined(app, "job", "poison", timeout=0.2)
