"""The dashboard shows a serial job's backlog: the job list and the job page say how many of
its slots wait of its max_backlog (and when it is full), as /api/v1 does; the overview and
/api/v1/overview count the slots held behind serial jobs. Before, none of them did."""

import uuid

import httpx

from tests.engine.app.test_serial_backlog_shown import _two_serial_jobs


def test_the_job_list_and_page_show_a_serial_jobs_backlog(web_server):
    url = f"memory://web-backlog-{uuid.uuid4().hex[:10]}"
    server = web_server(url, engine=False)
    lead = server.call(lambda app: _two_serial_jobs(url))
    try:
        with httpx.Client(base_url=server.url) as http:
            rows = {r["name"]: r for r in http.get("/api/v1/jobs").json()["items"]}
            assert {k: rows["s"][k] for k in ("overlap", "max_backlog", "waiting", "backlog_full", "backlog")} == {
                "overlap": "serial", "max_backlog": 100, "waiting": 100, "backlog_full": True,
                "backlog": "serial, 100 waiting of 100 - full: new slots are skipped"}
            assert (rows["t"]["waiting"], rows["t"]["backlog_full"], rows["t"]["backlog"]) == (
                4, False, "serial, 4 waiting of 10")
            assert (rows["p"]["overlap"], rows["p"]["waiting"], rows["p"]["backlog"]) == ("parallel", None, None)
            job = http.get("/api/v1/jobs/t").json()
            assert job["waiting"] == 4 and job["backlog_oldest_iso"] == "1970-01-01T00:01:41Z"
            page = http.get("/jobs").text
            assert "serial, 100 waiting of 100 - full: new slots are skipped" in page
            assert "serial, 4 waiting of 10" in page
            one = http.get("/jobs/t").text
            assert "serial, 4 waiting of 10" in one and "oldest waiting slot 1970-01-01T00:01:41Z" in one
            overview = http.get("/api/v1/overview").json()
            assert overview["held"]["total"] == 104 and overview["tasks"]["pending"] == 109
            assert [b["job"] for b in overview["held"]["backlogs"]] == ["s", "t"]
            assert "104 pending slot(s) wait their turn behind 2 serial job(s)" in http.get("/").text
    finally:
        server.call(lambda app: lead.app.stop())
