"""The pages over HTTP: every page renders, login sets a safe cookie, forms need CSRF."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from distsched.model import ValidationError
from distsched_web.auth import Security, parse_bind

from .conftest import TOKEN
from .test_api import JOBS, wait_for


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "the page has a CSRF field"
    return match.group(1)


def test_every_page_renders(web_server):
    server = web_server(jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        task_id = server.call(lambda app: app.submit("add", 2, 3))
        wait_for(lambda: http.get(f"/api/v1/tasks/{task_id}").json()["state"] == "succeeded", what="task")
        pages = {"/": "Overview", "/jobs": "every2", "/jobs/every2": "Run history", "/tasks": task_id,
                 "/tasks?state=succeeded&job=": task_id, f"/tasks/{task_id}": "Attempts",
                 "/workers": http.get("/api/v1/workers").json()["items"][0]["id"],
                 "/jobs/every2/pause": "Pause job every2?", "/jobs/every2/remove": "Remove job every2?",
                 "/login": "Log in"}
        for path, text in pages.items():
            response = http.get(path)
            assert response.status_code == 200, (path, response.text)
            assert text in response.text, path
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert "read-only" in http.get("/").text
        assert http.get("/jobs/nope").status_code == 404
        assert "no such page" in http.get("/nowhere").text
        bad = http.get("/tasks?state=lost")
        assert bad.status_code == 400 and "state: must be one of" in bad.text


def login(http: httpx.Client) -> httpx.Response:
    page = http.get("/login")
    return http.post("/login?next=/jobs", data={"token": TOKEN, "csrf": csrf_of(page.text)})


def test_login_logout_and_csrf(web_server):
    server = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        confirm = http.get("/jobs/every2/pause")
        csrf = csrf_of(confirm.text)
        # Not logged in: the action sends the browser to the login page and changes nothing.
        refused = http.post("/jobs/every2/pause", data={"csrf": csrf})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
        wrong = http.post("/login", data={"token": "not-the-token-at-all", "csrf": csrf})
        assert wrong.status_code == 401 and "Wrong token" in wrong.text
        no_csrf = http.post("/login", data={"token": TOKEN})
        assert no_csrf.status_code == 403 and "session" not in http.cookies
        response = login(http)
        assert response.status_code == 303 and response.headers["location"] == "/jobs"
        cookie = response.headers["set-cookie"]
        assert "distsched_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert TOKEN not in cookie
        assert 'id="logout"' in http.get("/").text
        # Logged in but without the CSRF field (a forged cross-site form): refused.
        forged = http.post("/jobs/every2/pause", data={})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert http.get("/api/v1/jobs/every2").json()["paused"] is False
        done = http.post("/jobs/every2/pause", data={"csrf": csrf})
        assert done.status_code == 303 and done.headers["location"].startswith("/jobs/every2")
        assert http.get("/api/v1/jobs/every2").json()["paused"] is True
        trigger = http.post("/jobs/every2/trigger", data={"csrf": csrf})
        assert "triggered" in http.get(trigger.headers["location"]).text
        out = http.post("/logout", data={"csrf": csrf})
        assert out.status_code == 303 and 'distsched_session=""' in out.headers["set-cookie"]
        assert 'id="login"' in http.get("/").text
        after = http.post("/jobs/every2/resume", data={"csrf": csrf})
        assert after.status_code == 303 and after.headers["location"].startswith("/login")
        assert http.get("/api/v1/jobs/every2").json()["paused"] is True


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example/", "https://evil.example/"])
def test_login_never_redirects_off_site(web_server, target):
    server = web_server(token=TOKEN)
    with httpx.Client(base_url=server.url) as http:
        csrf = csrf_of(http.get("/login").text)
        response = http.post("/login", params={"next": target}, data={"token": TOKEN, "csrf": csrf})
        assert response.status_code == 303 and response.headers["location"] == "/"


def test_a_forged_session_cookie_is_not_a_login(web_server):
    server = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        csrf = csrf_of(http.get("/jobs/every2/pause").text)
        other = Security.for_bind("127.0.0.1", "another-token-another-token")
        http.cookies.set("distsched_session", other.new_session())
        response = http.post("/jobs/every2/pause", data={"csrf": csrf})
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_non_loopback_bind_needs_a_token(host, monkeypatch):
    monkeypatch.delenv("DISTSCHED_WEB_TOKEN", raising=False)
    with pytest.raises(ValidationError) as info:
        Security.for_bind(host)
    assert info.value.field == "bind" and "DISTSCHED_WEB_TOKEN" in info.value.reason
    secured = Security.for_bind(host, TOKEN)
    assert secured.reads_need_login and secured.writable


def test_token_rules(monkeypatch):
    monkeypatch.delenv("DISTSCHED_WEB_TOKEN", raising=False)
    assert not Security.for_bind("127.0.0.1").writable
    assert not Security.for_bind("::1").reads_need_login
    with pytest.raises(ValidationError, match="at least 16"):
        Security.for_bind("127.0.0.1", "short")
    monkeypatch.setenv("DISTSCHED_WEB_TOKEN", TOKEN)
    security = Security.for_bind("localhost")
    assert security.bearer_ok(f"Bearer {TOKEN}") and not security.bearer_ok(f"Basic {TOKEN}")
    assert TOKEN not in repr(security)
    for bad in ("nohost", "host:port", "host:70000", ":80"):
        with pytest.raises(ValidationError, match="bind"):
            parse_bind(bad)
    assert parse_bind("[::1]:8787") == ("::1", 8787)


def test_non_loopback_server_needs_login_to_read(web_server, monkeypatch):
    # A server that believes it is public (reads need a login) - bound to loopback for the test.
    from distsched_web import auth

    monkeypatch.setattr(auth, "is_loopback", lambda host: False)
    server = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/jobs").status_code == 303
        assert http.get("/api/v1/jobs").status_code == 401
        assert http.get("/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        login(http)
        assert http.get("/jobs").status_code == 200


def test_metrics_are_served_when_prometheus_client_is_installed(web_server):
    pytest.importorskip("prometheus_client")
    server = web_server(token=TOKEN, jobs=JOBS)  # on loopback open to all, as every read, token or not
    with httpx.Client(base_url=server.url) as http:
        task_id = server.call(lambda app: app.submit("add", 1, 1))
        wait_for(lambda: http.get(f"/api/v1/tasks/{task_id}").json()["state"] == "succeeded", what="task")
        response = http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in response.text


@pytest.mark.redis
def test_a_record_holding_a_time_no_date_can_show_leaves_every_page_up(web_server, redis_server):
    """A job whose next fire time or trigger time is 1e12 (year 33658), and a worker whose
    start time is, written straight into the store: the overview, the jobs and the workers
    pages and their API failed whole ("year 33658 is out of range", HTTP 500). Each such
    record is moved aside when read, named on the overview, and the rest is shown. (And a
    worker whose heartbeat is a day ahead of the store's clock shows that, not "0.0 s".)"""
    import json
    import uuid

    ns = f"far{uuid.uuid4().hex[:8]}"
    server = web_server(storage=redis_server.url_for(namespace=ns), jobs=JOBS)
    p = "{" + ns + "}:"
    raw = redis_server.client()
    try:
        with httpx.Client(base_url=server.url) as http:
            worker = wait_for(lambda: http.get("/api/v1/workers").json()["items"], what="the worker")[0]["id"]
            for name in ("far-next", "far-at"):
                server.call(lambda app, name=name: app.add_job(name, every="1h", target="add"))
            state = raw.hget(p + "jst", "far-next").split("|")
            raw.hset(p + "jst", "far-next", "|".join([state[0], "1e12", *state[2:]]))
            config = json.loads(raw.hget(p + "jobs", "far-at"))
            raw.hset(p + "jobs", "far-at", json.dumps({**config, "trigger": {"kind": "at", "at": 1e12}}))
            record = json.loads(raw.hget(p + "workers", worker))
            raw.hset(p + "workers", "ghost", json.dumps({**record, "id": "ghost", "started_at": 1e12}))
            raw.zadd(p + "hb", {"ghost": float(raw.time()[0])})
            # and one whose heartbeat is a day ahead of the store's clock: stale, "ahead", not "0.0 s"
            raw.hset(p + "workers", "ahead", json.dumps({**record, "id": "ahead"}))
            raw.zadd(p + "hb", {"ahead": float(raw.time()[0] + 86400)})
            for path, text in {"/jobs": "every2", "/api/v1/jobs": "every2", "/workers": worker,
                               "/api/v1/workers": worker, "/": "far-at"}.items():
                response = http.get(path)
                assert response.status_code == 200, (path, response.text)
                assert text in response.text, path
                assert "ghost" not in response.text or path == "/", path
            overview = http.get("/").text
            assert "Quarantined records (3)" in overview
            for name, field in (("far-next", "next_fire_at"), ("far-at", "at"), ("ghost", "started_at")):
                assert f"{name}</td><td class=\"err\">ValidationError: {field}: must be a time from year 1 to 9999" \
                    in overview, name
            assert http.get("/api/v1/overview").json()["quarantined"] == 3
            assert re.search(r'<a href="/workers#ahead">ahead</a>.*?<td>86[34]\d\d\.\d s ahead</td>', overview, re.S)
            assert re.search(r"heartbeat 86[34]\d\d\.\d s ahead", http.get("/workers").text)
    finally:
        raw.close()


@pytest.mark.redis
def test_the_overview_says_the_leader_is_unknown_while_the_lease_record_cannot_be_read(web_server, redis_server):
    """Both stores show no lease for a lease record they cannot read (here a term that is not a
    number), until the holder's next renewal writes it again (every 3 s here). The overview
    said "no leader" then, beside the scheduler list naming the node that leads; it now says
    the leader is unknown and why, as ``distsched status`` does, and the API names the node."""
    ns = f"unknown{uuid.uuid4().hex[:8]}"
    server = web_server(storage=redis_server.url_for(namespace=ns))
    raw = redis_server.client()
    p = "{" + ns + "}:"
    try:
        with httpx.Client(base_url=server.url) as http:
            leader = wait_for(lambda: http.get("/api/v1/overview").json()["leader"], what="a leader")

            def unreadable() -> tuple[dict, str] | None:
                raw.hset(p + "leaseinfo", "t", "x")
                page = http.get("/").text
                overview = http.get("/api/v1/overview").json()
                # a renewal in between wrote the record again: the page may show it; again
                return None if overview["leader"] is not None else (overview, page)

            overview, page = wait_for(unreadable, what="an overview read before the next renewal")
            assert overview["leader_claimed_by"] == [leader["node_id"]]
            assert "leader unknown" in page and "no leader" not in page
            assert f"the lease record cannot be read while {leader['node_id']} reports leading" in page
            back = wait_for(lambda: (o := http.get("/api/v1/overview").json())["leader"] and o,
                            what="the record written again")
            assert back["leader"]["node_id"] == leader["node_id"] and back["leader_claimed_by"] == []
    finally:
        raw.close()


def test_metrics_on_a_non_loopback_bind_need_the_token_or_a_login(web_server, monkeypatch):
    """``/metrics`` answered anyone on a non-loopback bind (the store's task counts, worker
    ids, the leader's term) while every page wanted a login and the API the token. It now
    wants the bearer token (what a Prometheus scrape config sends) or a login session."""
    pytest.importorskip("prometheus_client")
    from distsched_web import auth

    monkeypatch.setattr(auth, "is_loopback", lambda host: False)
    server = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
            refused = http.get("/metrics", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error"]["field"] == "Authorization"
            assert "distsched_" not in refused.text
        scraped = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and "distsched_store_tasks" in scraped.text
        login(http)
        assert "distsched_store_tasks" in http.get("/metrics").text


def test_the_login_sends_back_to_the_page_with_its_query(web_server, monkeypatch):
    """The login's redirect kept only the path: /tasks?state=failed came back as /tasks."""
    from distsched_web import auth

    monkeypatch.setattr(auth, "is_loopback", lambda host: False)
    server = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        sent = http.get("/tasks?state=failed&job=every2")
        assert sent.status_code == 303
        location = sent.headers["location"]
        assert location == "/login?next=%2Ftasks%3Fstate%3Dfailed%26job%3Devery2"
        page = http.get(location)
        assert 'action="/login?next=%2Ftasks%3Fstate%3Dfailed%26job%3Devery2"' in page.text
        back = http.post(location, data={"token": TOKEN, "csrf": csrf_of(page.text)})
        assert back.status_code == 303 and back.headers["location"] == "/tasks?state=failed&job=every2"
        # still never elsewhere
        for target in ("//evil.example/x?a=b", "/\\evil.example", "https://evil.example/", "/x\r\nSet-Cookie: a=b"):
            csrf = csrf_of(http.get("/login").text)
            response = http.post("/login", params={"next": target}, data={"token": TOKEN, "csrf": csrf})
            assert response.status_code == 303 and response.headers["location"] == "/", target


def test_the_tasks_page_checks_its_filters_as_the_api_does(web_server):
    """The page took a 60,000-character job filter that the API refuses (1-256 characters)."""
    server = web_server(jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        for query in ({"job": "x" * 60_000}, {"job": "x" * 257}, {"worker": "w" * 257}):
            page, api = http.get("/tasks", params=query), http.get("/api/v1/tasks", params=query)
            field = next(iter(query))
            assert page.status_code == api.status_code == 400, query
            assert f"{field}: must be 1-256 characters when given" in page.text
            assert api.json()["error"]["field"] == field
        assert http.get("/tasks", params={"job": "", "state": ""}).status_code == 200  # the empty form
        assert http.get("/tasks", params={"job": "x" * 256}).status_code == 200


def test_the_pager_keeps_the_page_size(web_server):
    """"older" on the tasks and job pages (and "next" on the jobs page) dropped ?limit=."""
    server = web_server(token=TOKEN, jobs={f"job{i}": {"every": "1h", "target": "add"} for i in range(3)})
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for _ in range(3):
            http.post("/api/v1/jobs/job0/trigger")
        wait_for(lambda: len(http.get("/api/v1/jobs/job0/history").json()["items"]) == 3, what="three runs")

        def link(html: str, anchor: str) -> str:
            match = re.search(rf'<a (?:id="{anchor}" )?href="([^"]+)">{re.escape(anchor_text[anchor])}', html)
            assert match, anchor
            return match.group(1).replace("&amp;", "&")

        anchor_text = {"older": "older &rarr;", "next": "next &rarr;", "newest": "&larr; newest"}
        older = link(http.get("/tasks?limit=1&job=job0").text, "older")
        assert "limit=1" in older and "job=job0" in older
        second = http.get(older).text
        assert second.count('<td class="state-') == 1 and "limit=1" in link(second, "newest")
        assert 'name="limit" value="1"' in second  # the filter form keeps it too
        assert "limit=1" in link(http.get("/jobs/job0?limit=1").text, "older")
        assert "limit=2" in link(http.get("/jobs?limit=2").text, "next")


def test_a_read_only_dashboard_shows_no_action_links(web_server):
    """The read-only dashboard showed pause / trigger / remove links that ended in a 403."""
    server = web_server(jobs=JOBS)
    with httpx.Client(base_url=server.url) as http:
        for path in ("/jobs", "/jobs/every2"):
            html = http.get(path).text
            assert "every2" in html
            for action in ("pause", "resume", "trigger", "remove"):
                assert f'/jobs/every2/{action}"' not in html, (path, action)
    writable = web_server(token=TOKEN, jobs=JOBS)
    with httpx.Client(base_url=writable.url) as http:
        for path in ("/jobs", "/jobs/every2"):
            html = http.get(path).text
            assert all(f'/jobs/every2/{action}"' in html for action in ("pause", "trigger", "remove")), path


async def _election(app):
    """The app's store and an election on it, to play the leader's part through the storage
    port while no engine runs."""
    from distsched.plugin.manager import ELECTION, PluginManager

    store = await app.storage()
    return store, await PluginManager().build(ELECTION, app.config.storage, app.config.storage, storage=store,
                                              options={"ttl": 10.0, "renew_interval": 3.0})


async def _leader_fence(app):
    """The app's store and a leader's fence on it (no engine runs: the test plays the
    leader's part through the storage port)."""
    store, election = await _election(app)
    return store, await election.acquire("leader-1")


def test_a_task_held_for_its_slot_shows_so_and_no_start(web_server):
    """A slot its worker took ahead of its time (fire_ahead) and holds until then: the task
    pages, the workers page and the API said ``running`` with its take, before its slot, as
    its start; cancelled before its slot, it kept that start. Now each says until when it is
    held (its state stays ``running``) and shows no start until it starts."""
    from distsched.model import Task, TaskSpec
    from distsched.testing import make_worker

    server = web_server(engine=False)

    async def hold(app):
        store, fence = await _leader_fence(app)
        await store.workers.register(make_worker("w1", now=store.clock()))
        slot = round(store.clock() + 60, 3)
        await store.tasks.submit([Task(id="held@1", spec=TaskSpec(target="add", args=[1, 2]), job="nightly",
                                       slot=slot, created_at=store.clock(), not_before=slot)])
        task = await store.tasks.get("held@1")
        task.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        [taken] = await store.queues.pull("w1", 1, 1.0)
        return slot, taken.started_at

    slot, taken = server.call(hold)
    with httpx.Client(base_url=server.url) as http:
        api = http.get("/api/v1/tasks/held@1").json()
        assert (api["state"], api["held_until"], api["started_at"]) == ("running", slot, None), api
        assert taken < slot and api["attempts"][0]["started_at"] is None
        assert api["attempts"][0]["held_until"] == slot
        [row] = http.get("/api/v1/tasks").json()["items"]
        assert (row["held_until"], row["started_at"]) == (slot, None)
        held = f"held until {api['held_until_iso']}"
        for path in ("/tasks", "/tasks/held@1", "/workers"):
            page = http.get(path)
            assert page.status_code == 200 and held in page.text, path
        assert f"held by its worker until {api['held_until_iso']}, its slot: not started yet" in \
            http.get("/tasks/held@1").text

        server.call(lambda app: app.cancel_task("held@1", "cancelled by user"))
        api = http.get("/api/v1/tasks/held@1").json()
        assert (api["state"], api["held_until"], api["started_at"], api["duration"]) == ("cancelled", None, None, None)
        assert [(a["outcome"], a["started_at"]) for a in api["attempts"]] == [("cancelled", None)]
        assert "held until" not in http.get("/tasks/held@1").text


def test_a_task_running_again_after_a_lost_worker_says_why_it_runs_again(web_server):
    """Requeued when w1 was lost, then running on w2: the task page said ``reason: worker
    w1 lost ...`` for the running task, and the API gave it as its reason."""
    from distsched.testing import make_task

    server = web_server(engine=False)

    async def rerun(app):
        store, fence = await _leader_fence(app)
        await store.tasks.submit([make_task("again", target="add")])
        task = await store.tasks.get("again")
        task.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        held = await store.queues.pull("w1", 1, 1.0)
        for t in held:
            t.requeue("worker w1 lost (declared dead)", store.clock())
        assert await store.workers.reap(fence, "w1", held) == [True]
        task = await store.tasks.get("again")
        task.dispatch("w2", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]

    server.call(rerun)
    with httpx.Client(base_url=server.url) as http:
        api = http.get("/api/v1/tasks/again").json()
        assert (api["state"], api["reason"], api["earlier_reason"]) == (
            "dispatched", None, "worker w1 lost (declared dead)"), api
        page = http.get("/tasks/again").text
        assert "run again after: worker w1 lost (declared dead)" in page and "reason: worker w1" not in page


@pytest.mark.redis
def test_a_killed_leader_reads_silent_was_leader_beside_the_node_that_took_over(web_server, redis_server, tmp_path):
    """Two ``distsched scheduler`` processes and ``distsched web``: a leader killed (``kill -9``)
    keeps ``role: leader`` in its record. After the failover the overview said ``schedulers:
    s1 (leader, silent), s2 (leader)`` - two leaders - and the API gave both rows ``role:
    leader`` with only ``alive`` to tell them apart. The page now says ``s1: silent (was
    leader)``, as ``distsched status`` does, and each API row has a ``state`` (``leader``,
    ``standby``, ``silent``) beside the role as recorded."""
    import os
    import signal
    import subprocess
    import sys

    url = redis_server.url_for(namespace=f"failover{uuid.uuid4().hex[:8]}")
    procs: dict[str, subprocess.Popen] = {}

    def scheduler(node: str) -> None:
        log = open(tmp_path / f"{node}.log", "w")
        procs[node] = subprocess.Popen(
            [sys.executable, "-m", "distsched", "scheduler", "--storage", url, "--node-id", node,
             "--lease-ttl", "1", "--renew-interval", "0.2"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

    # the dashboard alone, as `distsched web` (its lease TTL tells a node heard from recently)
    server = web_server(storage=url, engine=False, config={"lease_ttl": 1.0, "renew_interval": 0.2})
    try:
        with httpx.Client(base_url=server.url) as http:
            def rows() -> dict[str, dict]:
                return {n["id"]: n for n in http.get("/api/v1/overview").json()["schedulers"]}

            def state(want: dict[str, str], what: str) -> dict[str, dict]:
                def reached() -> dict[str, dict] | None:
                    r = rows()
                    return r if {n: r.get(n, {}).get("state") for n in want} == want else None

                try:
                    return wait_for(reached, timeout=30, what=what)
                except AssertionError:
                    logs = "\n".join((tmp_path / f"{n}.log").read_text() for n in procs)
                    raise AssertionError(f"{what}: {rows()}\n{logs}") from None

            scheduler("s1")
            state({"s1": "leader"}, "s1 leading")
            scheduler("s2")
            before = state({"s1": "leader", "s2": "standby"}, "s2 standing by")
            assert before["s2"]["role"] == "standby" and before["s2"]["alive"] is True
            assert "schedulers: s1: leader, s2: standby</p>" in http.get("/").text
            procs["s1"].send_signal(signal.SIGKILL)
            procs["s1"].wait(10)
            after = state({"s1": "silent", "s2": "leader"}, "s2 taking over, s1 silent")
            assert http.get("/api/v1/overview").json()["leader"]["node_id"] == "s2"
            assert {k: after["s1"][k] for k in ("role", "state", "alive")} == {
                "role": "leader", "state": "silent", "alive": False}
            assert {k: after["s2"][k] for k in ("role", "state", "alive")} == {
                "role": "leader", "state": "leader", "alive": True}
            page = http.get("/").text
            assert "schedulers: s1: silent (was leader), s2: leader</p>" in page
            assert "(leader, silent)" not in page
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)


async def _taken_ahead_then_lost_after_its_slot(app) -> float:
    """A slot w1 took ahead of its time (fire_ahead), then declared lost after the slot (the
    leader's reap, which then gives up the lease): the task is pending again, its record
    still holds w1's take - before the slot - as ``started_at``. Returns the slot."""
    from distsched.model import Task, TaskSpec
    from distsched.plugin.manager import ELECTION, PluginManager
    from distsched.testing import make_worker
    from distsched.testing.processes import wait_until_async

    store = await app.storage()
    election = await PluginManager().build(ELECTION, app.config.storage, app.config.storage, storage=store,
                                           options={"ttl": 10.0, "renew_interval": 3.0})
    fence = await election.acquire("leader-1")
    await app.add_job("job", every="1h", target="add", args=[1, 2])
    await store.workers.register(make_worker("w1", now=store.clock()))
    slot = round(store.clock() + 0.3, 3)
    await store.tasks.submit([Task(id="job@1", spec=TaskSpec(target="add", args=[1, 2]), job="job", slot=slot,
                                   created_at=store.clock(), not_before=slot)])
    task = await store.tasks.get("job@1")
    task.dispatch("w1", store.clock())
    assert await store.tasks.dispatch(fence, [task]) == [True]
    held = await store.queues.pull("w1", 1, 1.0)
    assert held and held[0].started_at < slot

    async def slot_passed() -> bool:
        return store.clock() > slot + 0.2

    await wait_until_async(slot_passed, 10, what="the slot to pass")
    for t in held:
        t.requeue("worker w1 lost (declared dead)", store.clock())
    assert await store.workers.reap(fence, "w1", held) == [True]
    await election.release(fence)
    return slot


@pytest.mark.redis
def test_the_task_page_says_declared_lost_and_re_delivered_as_tasks_show(web_server, redis_server, distsched_cli):
    """The same slot re-delivered: the task page labelled both attempts ``1`` and gave the
    lost one's end as ``finished`` - when the leader declared w1 lost, not when w1 stopped.
    As ``distsched tasks show`` (``#1 (re-delivered)``, ``declared lost``, no duration), it
    now reads ``declared lost ...`` and ``1 (re-delivered)``; the API gives ``redelivered``
    as ``tasks show --json`` does."""
    import json

    url = redis_server.url_for(namespace=f"lost{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, engine=False)

    async def lost_then_redelivered(app) -> None:
        await _taken_ahead_then_lost_after_its_slot(app)
        await app.start()  # a real leader and worker: the leader re-delivers the task, the worker runs it

    server.call(lost_then_redelivered)
    with httpx.Client(base_url=server.url) as http:
        wait_for(lambda: http.get("/api/v1/tasks/job@1").json()["state"] == "succeeded", what="the re-delivery")
        api = http.get("/api/v1/tasks/job@1").json()["attempts"]
        page = http.get("/tasks/job@1").text
    shown = json.loads(distsched_cli("tasks", "show", "job@1", "--json", "--storage", url).output)["attempts"]
    assert [a["redelivered"] for a in api] == [a["redelivered"] for a in shown] == [False, True], api
    assert [(a["outcome"], a["duration"] is None) for a in api] == [("lost", True), ("succeeded", False)], api
    lost, again = re.findall(r"<tr><td>1 .*?</tr>", page, re.S)
    lost_cells = re.findall(r"<td[^>]*>(.*?)</td>", lost, re.S)
    assert f"declared lost {api[0]['finished_iso']}" in lost_cells, lost_cells
    assert "finished" not in lost and " s</td>" not in lost, lost  # no duration
    assert again.startswith('<tr><td>1 (re-delivered) <span class="muted">job@1#2</span>'), again
    assert " s</td>" in again and "declared lost" not in again, again


@pytest.mark.redis
def test_a_pending_again_slot_task_shows_no_start_before_its_slot_as_tasks_list(web_server, redis_server, distsched_cli):
    """A slot taken ahead by w1, w1 declared lost after the slot, the task pending again: the
    task lists (API, the job's run history) gave w1's take - before the slot - as its start,
    where ``distsched tasks list`` gives the slot. They now agree with the CLI."""
    import json

    url = redis_server.url_for(namespace=f"again{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, engine=False)
    slot = server.call(_taken_ahead_then_lost_after_its_slot)
    [cli_row] = json.loads(distsched_cli("tasks", "list", "--json", "--storage", url).output)["tasks"]
    assert (cli_row["state"], cli_row["started_at"], cli_row["duration"]) == ("pending", slot, None), cli_row
    with httpx.Client(base_url=server.url) as http:
        [row] = http.get("/api/v1/tasks").json()["items"]
        [history] = http.get("/api/v1/jobs/job/history").json()["items"]
        page = http.get("/jobs/job").text
    for r in (row, history):
        assert (r["state"], r["started_at"], r["duration"]) == ("pending", slot, None), r
    assert f"<td>{row['started_iso']}</td>" in page


@pytest.mark.redis
def test_an_error_that_names_its_own_type_is_not_typed_again(web_server, redis_server, distsched_cli):
    """An http attempt recorded before the executor named its target (97ac9b1) holds
    ``error_type: ConnectionError`` and ``error: ConnectError: All connection attempts
    failed``: the task page read ``ConnectionError: ConnectError: ...`` (two types), where
    ``distsched tasks show`` prints the error once. An error that does not begin with a
    type's name still gets its type in front."""
    from distsched.model import TaskResult
    from distsched.testing import make_task, make_worker

    url = redis_server.url_for(namespace=f"typed{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, engine=False)
    errors = {"old-http": ("ConnectionError", "ConnectError: All connection attempts failed"),
              "status": ("HTTPStatus", "HTTP 500 Internal Server Error"),
              "own": ("ValueError", "ValueError: boom")}

    async def failed(app) -> None:
        store, fence = await _leader_fence(app)
        await store.workers.register(make_worker("w1", now=store.clock()))
        for task_id in errors:
            await store.tasks.submit([make_task(task_id, target="add", now=store.clock())])
            task = await store.tasks.get(task_id)
            task.dispatch("w1", store.clock())
            assert await store.tasks.dispatch(fence, [task]) == [True]
        now = store.clock()
        taken = await store.queues.pull("w1", len(errors), 1.0)
        await store.queues.report("w1", [
            TaskResult(task_id=t.id, attempt_id=t.attempt_id, outcome="failed", started_at=now, finished_at=now,
                       worker_id="w1", error=errors[t.id][1], error_type=errors[t.id][0], retryable=False)
            for t in taken])
        results = await store.results.peek(10)  # failures: the leader applies them itself
        tasks = []
        for result in results:
            task = await store.tasks.get(result.task_id)
            task.finish(result, store.clock())
            tasks.append(task)
        assert await store.tasks.save(fence, tasks, ack_results=len(results)) == [True] * len(errors)

    server.call(failed)
    shown = {"old-http": "ConnectError: All connection attempts failed",
             "status": "HTTPStatus: HTTP 500 Internal Server Error", "own": "ValueError: boom"}
    with httpx.Client(base_url=server.url) as http:
        for task_id, text in shown.items():
            cli = distsched_cli("tasks", "show", task_id, "--storage", url).output
            assert f"      error  {text}\n" in cli, cli
            assert re.findall(r'<pre class="err error">(.*?)</pre>', http.get(f"/tasks/{task_id}").text) == [text]


@pytest.mark.redis
def test_the_overview_flags_a_lease_whose_renewal_is_overdue(web_server, redis_server, distsched_cli):
    """A lease taken and never renewed (its holder died): ``distsched status`` flags ``renewal
    overdue`` once its last renewal is older than two renew intervals, before it expires; the
    overview showed the dead holder as the leader with nothing to tell, and the API had no
    ``renewal_overdue``. Both say it now, as ``status --json`` does."""
    import json

    from distsched.plugin.manager import ELECTION, PluginManager

    url = redis_server.url_for(namespace=f"overdue{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, engine=False)

    async def take_the_lease_and_die(app) -> None:
        store = await app.storage()
        election = await PluginManager().build(ELECTION, url, url, storage=store,
                                               options={"ttl": 4.0, "renew_interval": 1.0})
        assert await election.acquire("dead-leader") is not None

    server.call(take_the_lease_and_die)
    with httpx.Client(base_url=server.url) as http:
        fresh = http.get("/api/v1/overview").json()["leader"]
        assert (fresh["node_id"], fresh["renewal_overdue"], fresh["expired"]) == ("dead-leader", False, False), fresh
        assert "renewal overdue" not in http.get("/").text

        def overdue() -> tuple[dict, str] | None:
            leader = http.get("/api/v1/overview").json()["leader"]
            assert not leader["expired"], f"the lease expired before the overview said its renewal was overdue: {leader}"
            page = http.get("/").text
            return (leader, page) if leader["renewal_overdue"] and "renewal overdue" in page else None

        leader, page = wait_for(overdue, timeout=10, what="the renewal overdue on the overview")
    status = json.loads(distsched_cli("status", "--json", "--storage", url).output)["leader"]
    assert status["renewal_overdue"] or status["expired"], status
    # two renew intervals, by status's rule (of 4 s: 1 s as recorded, or the default 30 % share)
    assert leader["renewal_overdue_after"] == status["renewal_overdue_after"] and 2.0 <= status["renewal_overdue_after"] <= 2.4
    assert leader["renewed_age"] > leader["renewal_overdue_after"], leader
    assert re.search(r"renewal overdue: renewed \d+\.\d s ago - the holder may be dead; the lease expires in "
                     r"\d+\.\d s", page), page


@pytest.mark.redis
def test_a_task_that_failed_with_no_result_shows_why_as_tasks_list(web_server, redis_server, distsched_cli):
    """A task the leader could not dispatch (its balancer is not registered on the leader)
    and one whose worker was lost once too often fail with no result: ``distsched tasks
    list`` gives why in its error column, the overview's failures of the last hour showed an
    empty error cell (and the API's rows ``error: null``). They agree with the CLI now."""
    import json

    from distsched.model import Task, TaskSpec
    from distsched.testing import make_task, make_worker

    url = redis_server.url_for(namespace=f"noresult{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, engine=False)

    async def fail_both(app) -> None:
        store, election = await _election(app)
        fence = await election.acquire("leader-1")
        await store.workers.register(make_worker("w1", now=store.clock()))
        await store.tasks.submit([make_task("gave-up", target="add", now=store.clock())])
        task = await store.tasks.get("gave-up")
        task.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        taken = await store.queues.pull("w1", 1, 1.0)
        for t in taken:  # the leader's reap of a task already re-delivered as often as allowed
            t.requeue("worker w1 lost (declared dead)", store.clock(), max_redeliveries=0)
        assert await store.workers.reap(fence, "w1", taken) == [True]
        # stored past the facade's check (by a node with another balancer plugin)
        await store.tasks.submit([Task(id="no-balancer", spec=TaskSpec(target="add", args=[1, 2], balancer="fastest"),
                                       created_at=store.clock())])
        await election.release(fence)
        await app.start()  # a real leader: it cannot dispatch no-balancer

    server.call(fail_both)
    reasons = {"gave-up": "worker w1 lost (declared dead); gave up after 0 re-deliveries",
               "no-balancer": "cannot dispatch: scheduler: balancer 'fastest' is not registered"}
    with httpx.Client(base_url=server.url) as http:
        def failed() -> dict | None:
            overview = http.get("/api/v1/overview").json()
            return overview if len(overview["failures"]) == 2 else None

        overview = wait_for(failed, what="both failures on the overview")
        page = http.get("/").text
        rows = {r["id"]: r for r in http.get("/api/v1/tasks?state=failed").json()["items"]}
    cli = {r["id"]: r for r in json.loads(distsched_cli("tasks", "list", "--json", "--storage", url).output)["tasks"]}
    failures = {r["id"]: r for r in overview["failures"]}
    for task_id, reason in reasons.items():
        assert cli[task_id]["error"].startswith(reason), cli[task_id]
        assert failures[task_id]["error"] == rows[task_id]["error"] == cli[task_id]["error"], (failures, rows)
    # no duration: a take-to-reap (when the lost worker stopped is not known), or none at all
    assert [(rows[t]["duration"], cli[t]["duration"]) for t in reasons] == [(None, None)] * 2, (rows, cli)
    cells = re.findall(r'<td class="err">(.*?)</td>', page.split('id="failures"', 1)[1], re.S)
    assert sorted(cells) == sorted(cli[t]["error"].replace("'", "&#39;") for t in reasons), cells


@pytest.mark.redis
def test_a_running_task_has_run_for_now_minus_its_start_as_tasks_list(web_server, redis_server, distsched_cli):
    """``distsched tasks list`` gives a running task a duration (now minus its start); the
    dashboard's task rows gave none. They agree now - and a task its worker holds for its
    slot (taken ahead) has not started: no duration in either."""
    import json

    from distsched.model import Task, TaskSpec
    from distsched.testing import make_task, make_worker

    url = redis_server.url_for(namespace=f"running{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, engine=False)

    async def run_and_hold(app) -> None:
        store, fence = await _leader_fence(app)
        await store.workers.register(make_worker("w1", now=store.clock()))
        slot = round(store.clock() + 600, 3)
        await store.tasks.submit([make_task("runs", target="add", now=store.clock()),
                                  Task(id="held@1", spec=TaskSpec(target="add", args=[1, 2]), job="nightly",
                                       slot=slot, created_at=store.clock(), not_before=slot)])
        tasks = [await store.tasks.get("runs"), await store.tasks.get("held@1")]
        for task in tasks:
            task.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, tasks) == [True, True]
        assert len(await store.queues.pull("w1", 2, 1.0)) == 2

    server.call(run_and_hold)
    with httpx.Client(base_url=server.url) as http:
        def running_a_while() -> dict | None:
            rows = {r["id"]: r for r in http.get("/api/v1/tasks").json()["items"]}
            return rows if (rows["runs"]["duration"] or 0) > 0.2 else None

        rows = wait_for(running_a_while, what="the running task's duration to grow")
        page = http.get("/tasks").text
        later = {r["id"]: r for r in http.get("/api/v1/tasks").json()["items"]}
    cli = {r["id"]: r for r in json.loads(distsched_cli("tasks", "list", "--json", "--storage", url).output)["tasks"]}
    runs = rows["runs"]
    assert (runs["state"], runs["started_at"]) == ("running", cli["runs"]["started_at"]), runs
    assert runs["duration"] <= later["runs"]["duration"], (runs, later)  # it grows with the store's clock
    assert cli["runs"]["duration"] == pytest.approx(later["runs"]["duration"], abs=5), (later, cli["runs"])
    assert (rows["held@1"]["started_at"], rows["held@1"]["duration"]) == (None, None) == \
        (cli["held@1"]["started_at"], cli["held@1"]["duration"])
    row = re.search(r'<tr><td>[^<]*</td><td><a href="/tasks/runs">.*?</tr>', page, re.S)
    assert row and re.search(r"<td>\d+\.\d{3} s</td>", row.group(0)), page


@pytest.mark.redis
def test_the_overview_shows_the_jobs_and_the_leaders_renew_interval_as_status(web_server, redis_server, distsched_cli):
    """``distsched status`` counts the jobs stored (``jobs 2 (1 enabled)``; ``jobs none``
    after a Redis restarted empty) and gives the leader's recorded ``renew_interval``; the
    overview and ``/api/v1/overview`` had neither. They give both now, as ``status --json``."""
    import json

    url = redis_server.url_for(namespace=f"jobs{uuid.uuid4().hex[:8]}")
    server = web_server(storage=url, config={"lease_ttl": 4.0, "renew_interval": 1.0})
    with httpx.Client(base_url=server.url) as http:
        none = wait_for(lambda: (o := http.get("/api/v1/overview").json())["leader"] and o, what="a leader")
        assert none["jobs"] == {"total": 0, "enabled": 0, "more": False}, none["jobs"]
        assert re.search(r'id="jobs".*?<p class="big warn">none</p>', http.get("/").text, re.S)

        async def two_jobs(app) -> None:
            await app.add_job("every2", every="2s", target="add", args=[1, 2])
            await app.add_job("off", every="1h", target="add", args=[1, 2], enabled=False)

        server.call(two_jobs)
        overview = http.get("/api/v1/overview").json()
        page = http.get("/").text
    status = json.loads(distsched_cli("status", "--json", "--storage", url).output)
    assert overview["jobs"] == status["jobs"] == {"total": 2, "enabled": 1, "more": False}, (overview, status)
    card = re.search(r'<div class="card" id="jobs">(.*?)</div>', page, re.S)
    assert card and re.search(r'<p class="big">2</p>\s*<p>1 enabled</p>', card.group(1)), page
    leader = overview["leader"]
    assert leader["renew_interval"] == status["leader"]["renew_interval"] == 1.0, (leader, status["leader"])
    assert leader["renewal_overdue_after"] == 2.0, leader  # two renew intervals, as recorded


@pytest.mark.redis
def test_the_overview_says_what_the_store_refuses(web_server):
    """Redis at its maxmemory refused every write (no scheduler could lead) while the overview,
    whose reads succeed, said nothing of it. It says what the store says, as ``distsched
    status``: above the cards, and ``store_warnings`` in ``/api/v1/overview``."""
    from distsched.testing.redis_server import RedisServer

    with RedisServer() as own:
        raw = own.client()
        try:
            # no engine beside it: a leader would step down at each pass (the store is full)
            server = web_server(storage=own.url_for(namespace=f"w{uuid.uuid4().hex[:8]}"), engine=False)
            with httpx.Client(base_url=server.url) as http:
                assert http.get("/api/v1/overview").json()["store_warnings"] == []
                raw.config_set("maxmemory", 1)
                [said] = http.get("/api/v1/overview").json()["store_warnings"]
                page = http.get("/").text
            raw.config_set("maxmemory", 0)
        finally:
            raw.close()
    assert said.startswith("Redis is at its maxmemory (") and "it refuses writes (OutOfMemoryError)" in said
    assert re.search(r'<p class="warn" id="store-warning-1">store: Redis is at its maxmemory \(', page), page


def test_the_workers_pages_show_what_each_worker_advertises_escaped_and_capped(web_server):
    """The workers page says each worker's executors and functions (a long list capped, with
    how many more, the rest behind a disclosure), the overview its executors and how many
    functions; a record of an earlier version says neither. A name with markup is no name a
    worker may advertise: the model refuses it (a store puts such a record aside), so no page
    shows it."""
    from distsched.model import ValidationError
    from distsched.testing import make_worker

    server = web_server(engine=False)
    many = tuple(f"report_{i:03d}" for i in range(40))

    async def register(app):
        storage = await app.storage()
        await storage.workers.register(make_worker("older", now=storage.clock()))
        await storage.workers.register(make_worker("busy", now=storage.clock(), executors=("cmd", "local"),
                                                   functions=many))
        with pytest.raises(ValidationError, match="^executors: must be a list of executor names"):
            make_worker("odd", now=storage.clock(), executors=("<b>x</b>",))
        with pytest.raises(ValidationError, match="^functions: must be a list of function names"):
            make_worker("odd", now=storage.clock(), functions=("<script>alert(1)</script>",))
        await storage.workers.register(make_worker("dedicated", now=storage.clock(), executors=("cmd", "local")))

    server.call(register)
    with httpx.Client(base_url=server.url) as http:
        page = http.get("/workers").text
        overview = http.get("/").text

    def box(worker: str) -> str:
        match = re.search(rf'<section class="worker-box" id="{worker}">(.*?)</section>', page, re.S)
        assert match, page
        return match.group(1)

    older = re.search(r'<div class="advertised">(.*?)</div>', box("older"), re.S)
    assert older and older.group(1) == "executors not said (an older worker: gets every task)"
    busy = re.search(r'<div class="advertised">(.*?)</div>', box("busy"), re.S)
    assert busy, box("busy")
    shown = re.sub(r"<details.*", "", busy.group(1))
    assert shown.startswith("executors cmd, local · functions report_000, report_001, ")
    assert "report_039" not in shown
    count = len(re.findall(r"report_\d{3}", shown))
    assert f"(+{40 - count} more)" in busy.group(1) and 5 <= count <= 20
    assert "report_039" in busy.group(1), "the rest behind the disclosure"
    assert "functions none (gets no local task)" in box("dedicated")
    for html in (page, overview):
        assert "alert(1)" not in html and "&lt;b&gt;" not in html and 'id="odd"' not in html
    row = re.search(r'<tr class="worker"><td><a href="/workers#busy">busy</a></td>(.*?)</tr>', overview, re.S)
    assert row and "<td>cmd, local · 40 functions</td>" in row.group(1), overview
    row = re.search(r'<tr class="worker"><td><a href="/workers#older">older</a></td>(.*?)</tr>', overview, re.S)
    assert row and "<td>not said</td>" in row.group(1), overview
