"""The dashboard and /api/v1 show a job past its end_date as ended (stored until removed),
not with a stale next time, and a jittered job's next slots with the time each starts."""

from __future__ import annotations

import uuid

import httpx

from distsched.model import build_job


def test_an_ended_job_is_shown_ended_and_a_jittered_ones_starts(web_server):
    server = web_server(f"memory://web-window-{uuid.uuid4().hex[:10]}", engine=False)
    over = build_job("over", every="1h", target="t", end_date="2020-01-01T00:00:00Z")
    jittered = build_job("jittered", cron="0 * * * *", target="t", jitter="10m", end_date="9999-01-01T00:00:00Z")
    server.call(lambda app: app.put_jobs([over, jittered], missed=True))
    with httpx.Client(base_url=server.url) as http:
        rows = {r["name"]: r for r in http.get("/api/v1/jobs").json()["items"]}
        assert rows["over"]["ended"] is True and rows["over"]["end_date"] == "2020-01-01T00:00:00Z"
        assert rows["over"]["next_fire_utc"] is None
        assert rows["jittered"]["ended"] is False and rows["jittered"]["next_fire_utc"] is not None
        assert "jitter 10m" in rows["jittered"]["trigger"]
        page = http.get("/jobs").text
        assert '<td class="ended">ended</td>' in page and "end_date 2020-01-01T00:00:00Z" in page
        assert "ended: no slot after its end_date 2020-01-01T00:00:00Z" in http.get("/jobs/over").text
        job = http.get("/api/v1/jobs/jittered").json()
        for slot in job["upcoming"]:
            assert slot["start"] == jittered.start_at(slot["at"]) and slot["at"] <= slot["start"] <= slot["at"] + 600
        assert f"starts {job['upcoming'][0]['start_utc']}" in http.get("/jobs/jittered").text
