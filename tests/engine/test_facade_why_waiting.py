"""``app.why_waiting`` (``tasks show``'s "waiting" line, the task page) of a task submitted for
later: it said nothing while a worker was live, or "no live worker" as if that were why a
task due in five minutes had not run."""

from __future__ import annotations

import re
import uuid

from distsched import DistributeSchedule
from distsched.config import WorkerConfig


def later() -> str:
    return "ran"


def _app() -> DistributeSchedule:
    app = DistributeSchedule(f"memory://why-{uuid.uuid4().hex}", worker=WorkerConfig(name="why-worker"))
    app.task(later, name="later")
    return app


async def test_a_task_not_due_yet_says_when_it_is_due():
    app = _app()
    async with app.running():
        task_id = await app.submit("later", delay=300)
        why = await app.why_waiting(task_id)
    assert re.fullmatch(r"not due yet: scheduled for \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in 4m5\ds\)", why), why


async def test_what_would_hold_it_once_due_is_said_after():
    app = _app()
    task_id = await app.submit("later", delay=300)
    why = await app.why_waiting(task_id)
    assert why.startswith("not due yet: scheduled for "), why
    assert "; once due, it would wait too: no live worker is registered on memory://" in why, why
    await app.stop()
