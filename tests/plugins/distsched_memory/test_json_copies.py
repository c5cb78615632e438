"""The embedded store keeps what a real store keeps: JSON copies. A task's arguments are
copied when it is submitted (the caller's later changes do not reach it) and a result's value
is stored as JSON reads it back (a tuple is a list, an int key a string) and copied (the
function's later changes do not reach it) - on memory:// as on Redis, so that a team testing
on memory:// sees what production does. It kept the caller's and the function's objects."""

from __future__ import annotations

import uuid

import pytest

from distsched import DistributeSchedule

KEEP: list = []


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def app(request):
    url = (f"memory://copies-{uuid.uuid4().hex}" if request.param == "memory"
           else request.getfixturevalue("redis_server").url_for(namespace=f"c{uuid.uuid4().hex[:10]}"))
    app = DistributeSchedule(url)

    @app.task
    def show(d):
        return d

    @app.task
    def shaped():
        return {"t": (1, (2, 3)), 1: "a"}

    @app.task
    def shared():
        KEEP.append({"n": 1})
        return KEEP

    yield app
    await app.stop()


async def test_a_submitted_argument_is_a_copy(app):
    payload = {"x": 1}
    task_id = await app.submit("show", kwargs={"d": payload})  # no worker yet: it waits in the store
    payload["x"] = "changed after submit"
    await app.start()
    assert (await app.result(task_id, timeout=10)).value == {"x": 1}


async def test_a_result_is_what_json_reads_back_and_a_copy(app):
    KEEP.clear()
    await app.start()
    assert (await app.result(await app.submit("shaped"), timeout=10)).value == {"t": [1, [2, 3]], "1": "a"}
    task_id = await app.submit("shared")
    assert (await app.result(task_id, timeout=10)).value == [{"n": 1}]
    KEEP.append("added later")
    assert (await app.get_task(task_id)).result.value == [{"n": 1}]
