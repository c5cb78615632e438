"""A stored job whose window or jitter is bad (written by something other than distsched, or
by hand) is moved aside naming the field, as any record that does not decode, and the
leader keeps firing the other jobs: never a crash loop."""

from __future__ import annotations

import json
import uuid

import pytest

from distsched.config import WorkerConfig
from distsched.testing import poison

pytestmark = pytest.mark.redis

HEALTHY_EVERY = 0.3


async def test_jobs_whose_stored_window_or_jitter_is_bad_are_quarantined(distsched_app, redis_server):
    ns = f"pw{uuid.uuid4().hex[:10]}"
    app = await distsched_app(redis_server.url_for(namespace=ns), functions={"noop": lambda: "ok"},
                              worker=WorkerConfig(name="w", concurrency=4), heartbeat_interval=0.2)
    await app.add_job("healthy", every=f"{HEALTHY_EVERY}s", target="noop")
    raw = redis_server.client(decode_responses=False)
    p = "{" + ns + "}:"
    cases = {"end-far": ({"end": 1e13}, "end_date"), "backwards": ({"start": 2e9, "end": 1e9}, "end_date"),
             "jitter-long": ({"jitter": 7200}, "jitter"), "jitter-text": ({"jitter": "5s"}, "jitter"),
             "jitter-over-interval": ({"jitter": 3601.0}, "jitter")}
    try:
        for name, (fields, _) in cases.items():
            await app.add_job(name, cron="0 * * * *", target="noop")
            config = json.loads(raw.hget(p + "jobs", name))
            config["trigger"] = {**config["trigger"], **fields}
            raw.hset(p + "jobs", name, json.dumps(config))
    finally:
        raw.close()
    assert not set(cases) & {c.name for c in await (await app.storage()).jobs.list_jobs()}
    for name, (_, field) in cases.items():
        entry = await poison.quarantined(app, "job", name)
        assert entry.reason.startswith(f"ValidationError: {field}: "), entry.reason
    await poison.keeps_firing(app, every=HEALTHY_EVERY)
