"""``distsched tasks ...`` and ``distsched status`` through the real CLI, on memory:// (a store
named in this process, so the CLI invoked in-process sees it) and on a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from distsched import DistributeSchedule
from distsched.cli.format import when
from distsched.config import WorkerConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(params=["memory", "redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://cli-{uuid.uuid4().hex}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"cli{uuid.uuid4().hex[:10]}")
    server = request.getfixturevalue("redis_server")
    return server.url_for(namespace=f"cli{uuid.uuid4().hex[:10]}")


def _double(x: int) -> int:
    return x * 2


def _boom() -> None:
    raise ValueError("boom! " + "x" * 100)


def _app(url: str, **kw: Any) -> DistributeSchedule:
    app = DistributeSchedule(url, heartbeat_interval=0.2, heartbeat_ttl=2.0, lease_ttl=2.0, renew_interval=0.5,
                             worker=WorkerConfig(name="cli-worker", concurrency=2), **kw)
    app.task(_double, name="double")
    app.task(_boom, name="boom")
    return app


def _history(url: str) -> dict[str, Any]:
    """Run a scheduler and a worker: one success, one task failing twice, one job task."""
    app = _app(url)

    async def main() -> dict[str, Any]:
        async with app.running():
            ok = await app.submit("double", 21)
            bad = await app.submit("boom", retry={"max_attempts": 2, "backoff": "fixed", "delay": 0.05, "jitter": 0})
            # Disabled: an hourly job is anchored on the epoch, so an enabled one would also fire
            # by itself when a run straddles the top of an hour (it once counted 3 successes).
            await app.add_job("nightly", every="1h", target="double", args=[1], enabled=False)
            job_task = await app.trigger_job("nightly")
            for task_id in (ok, bad, job_task):
                await app.wait(task_id, timeout=20)
            return {"ok": ok, "bad": bad, "job": job_task, "node": app.config.node_id}

    return asyncio.run(main())


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_tasks_list_show_retry_cancel_submit(distsched_cli: Any, store_url: str) -> None:
    ids = _history(store_url)
    cli = lambda *args: distsched_cli(*args, "--storage", store_url)  # noqa: E731

    listed = _json(cli("tasks", "list", "--json"))
    assert [t["id"] for t in listed["tasks"]] == [ids["job"], ids["bad"], ids["ok"]], "newest first"
    assert listed["next_cursor"] is None
    by_id = {t["id"]: t for t in listed["tasks"]}
    assert by_id[ids["ok"]]["state"] == "succeeded" and by_id[ids["ok"]]["worker"].startswith("cli-worker")
    assert by_id[ids["bad"]]["state"] == "failed" and by_id[ids["bad"]]["attempt"] == 2
    assert "boom! " in by_id[ids["bad"]]["error"]
    assert by_id[ids["ok"]]["duration"] is not None and by_id[ids["ok"]]["started_at"] is not None
    for key in ("ok", "bad"):  # the row's times are its last attempt's, as its worker measured them
        last = _json(cli("tasks", "show", ids[key], "--json"))["attempts"][-1]
        row = by_id[ids[key]]
        assert (row["started_at"], row["finished_at"], row["duration"]) == (
            last["started_at"], last["finished_at"], last["duration"]), key
    assert by_id[ids["job"]]["job"] == "nightly"

    assert [t["id"] for t in _json(cli("tasks", "list", "--job", "nightly", "--json"))["tasks"]] == [ids["job"]]
    assert [t["id"] for t in _json(cli("tasks", "list", "--state", "failed", "--json"))["tasks"]] == [ids["bad"]]
    worker = by_id[ids["ok"]]["worker"]
    assert ids["ok"] in [t["id"] for t in _json(cli("tasks", "list", "--worker", worker, "--json"))["tasks"]]
    assert len(_json(cli("tasks", "list", "--since", "1h", "--json"))["tasks"]) == 3
    first = _json(cli("tasks", "list", "-n", "2", "--json"))
    assert [t["id"] for t in first["tasks"]] == [ids["job"], ids["bad"]] and first["next_cursor"]
    rest = _json(cli("tasks", "list", "-n", "2", "--cursor", first["next_cursor"], "--json"))
    assert [t["id"] for t in rest["tasks"]] == [ids["ok"]] and rest["next_cursor"] is None

    text = cli("tasks", "list")
    assert text.exit_code == 0
    header, *rows = text.output.splitlines()
    assert header.split()[:4] == ["ID", "JOB", "SLOT", "STATE"]
    bad_row = next(r for r in rows if r.startswith(ids["bad"]))
    assert " failed " in bad_row and "boom! xxx" in bad_row and bad_row.endswith("..."), "the error, in short"

    shown = _json(cli("tasks", "show", ids["bad"], "--json"))
    attempts = shown["attempts"]
    assert [(a["number"], a["outcome"]) for a in attempts] == [(1, "failed"), (2, "failed")]
    assert attempts[0]["retry_at"] is not None and attempts[1]["retry_at"] is None
    assert all("boom! " in a["error"] and a["error_type"] == "ValueError" for a in attempts)
    assert all(a["worker_id"] and a["started_at"] and a["finished_at"] for a in attempts)
    text = cli("tasks", "show", ids["bad"]).output
    assert "attempts  2" in text and "retry scheduled at" in text and "ValueError: boom!" in text
    ok = _json(cli("tasks", "show", ids["ok"], "--json"))
    assert [(a["outcome"], a["value"]) for a in ok["attempts"]] == [("succeeded", 42)]
    assert "value  42" in cli("tasks", "show", ids["ok"]).output

    missing = cli("tasks", "show", "no-such-task")
    assert missing.exit_code == 1 and "task 'no-such-task' does not exist" in missing.output

    again = cli("tasks", "retry", ids["bad"])
    assert again.exit_code == 0, again.output
    new_id = again.output.strip()
    assert new_id != ids["bad"]
    assert _json(cli("tasks", "show", new_id, "--json"))["task"]["state"] == "pending", "no scheduler runs now"
    refused = cli("tasks", "retry", new_id)
    assert refused.exit_code == 1 and "only a finished task can be retried" in refused.output
    cancelled = cli("tasks", "cancel", new_id)
    assert cancelled.exit_code == 0 and f"cancelled {new_id}" in cancelled.output
    twice = cli("tasks", "cancel", new_id)
    assert twice.exit_code == 1 and "already finished (cancelled)" in twice.output

    submitted = cli("tasks", "submit", "double", "5", "--id", "my-task")
    assert submitted.exit_code == 0 and submitted.output.strip() == "my-task"
    shown = _json(cli("tasks", "show", "my-task", "--json"))
    task = shown["task"]
    assert task["spec"]["target"] == "double" and task["spec"]["args"] == [5], "an argument that parses is JSON"
    assert shown["max_attempts"] == 1, "no retry unless asked"
    retried = cli("tasks", "submit", "double", "6", "--id", "my-retried-task", "--retries", "2")
    assert retried.exit_code == 0, retried.output
    assert _json(cli("tasks", "show", "my-retried-task", "--json"))["max_attempts"] == 3, "2 retries: 3 attempts"
    assert [t["id"] for t in _json(cli("tasks", "list", "-n", "1", "--json"))["tasks"]] == ["my-retried-task"]

    bad_since = cli("tasks", "list", "--since", "soon")
    assert bad_since.exit_code == 2 and "--since" in bad_since.output
    bad_cursor = cli("tasks", "list", "--cursor", "nonsense")
    assert bad_cursor.exit_code == 1 and "cursor" in bad_cursor.output and "Traceback" not in bad_cursor.output


async def _leader(url: str) -> tuple[Any, Any]:
    """The store at ``url`` and a leader's fence on it, with workers w1 and w2 (no engine
    runs: the test plays the leader's and the workers' part through the storage port)."""
    from distsched.plugin.manager import ELECTION, STORAGE, PluginManager
    from distsched.testing import make_worker

    plugins = PluginManager()
    store = await plugins.build(STORAGE, url, url, options={})
    election = await plugins.build(ELECTION, url, url, storage=store, options={"ttl": 10.0, "renew_interval": 3.0})
    fence = await election.acquire("leader-1")
    for worker in ("w1", "w2"):
        await store.workers.register(make_worker(worker, now=store.clock()))
    return store, fence


async def _submit_x_and_lose_w1(store: Any, fence: Any, reason: str) -> None:
    """Task ``x`` dispatched to w1, which takes it and is declared dead: the leader's reap
    requeues it (``reason``) and removes w1."""
    from distsched.testing import make_task

    await store.tasks.submit([make_task("x", target="double")])
    task = await store.tasks.get("x")
    task.dispatch("w1", store.clock())
    assert await store.tasks.dispatch(fence, [task]) == [True]
    held = await store.queues.pull("w1", 1, 1.0)
    for t in held:
        t.requeue(reason, store.clock())  # the leader's reap
    assert await store.workers.reap(fence, "w1", held) == [True]


def _held_slot(url: str) -> tuple[str, float]:
    """A slot 60 s ahead, dispatched ahead (fire_ahead) to w1, which took it and holds it."""
    from distsched.model import Task, TaskSpec

    async def main() -> tuple[str, float]:
        store, fence = await _leader(url)
        now = store.clock()
        slot = round(now + 60, 3)
        task = Task(id="held@1", spec=TaskSpec(target="double", args=[1]), job="nightly", slot=slot,
                    created_at=now, not_before=slot)
        await store.tasks.submit([task])
        task = await store.tasks.get(task.id)
        task.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        assert [t.id for t in await store.queues.pull("w1", 1, 1.0)] == [task.id]
        await store.close()
        return task.id, slot

    return asyncio.run(main())


def test_a_task_held_for_its_slot_has_not_started(distsched_cli: Any, store_url: str) -> None:
    """A slot its worker took ahead and holds until its time read ``running`` with its take
    as its start, before its slot; cancelled before its slot, it still showed that start.
    Now: ``held`` in the list (its state stays ``running``), ``tasks show`` says until when,
    and neither shows a start until it starts - cancelled before, never."""
    task_id, slot = _held_slot(store_url)
    cli = lambda *args: distsched_cli(*args, "--storage", store_url)  # noqa: E731

    [row] = _json(cli("tasks", "list", "--json"))["tasks"]
    assert (row["state"], row["held_until"], row["started_at"], row["duration"]) == ("running", slot, None, None)
    [line] = cli("tasks", "list").output.splitlines()[1:]
    assert line.split()[3] == "held" and " - " in line, line
    assert [t["id"] for t in _json(cli("tasks", "list", "--state", "running", "--json"))["tasks"]] == [task_id]
    shown = _json(cli("tasks", "show", task_id, "--json"))
    assert shown["task"]["state"] == "running" and shown["held_until"] == slot
    [attempt] = shown["attempts"]
    assert (attempt["outcome"], attempt["started_at"], attempt["held_until"]) == ("running", None, slot)
    assert attempt["taken_at"] == shown["task"]["started_at"] < slot
    text = cli("tasks", "show", task_id).output
    assert f"state     running (held by its worker until {when(slot)}, its slot)" in text, text
    assert f", held until {when(slot)}  finished -" in text and "started" not in text, text

    assert cli("tasks", "cancel", task_id).exit_code == 0
    [row] = _json(cli("tasks", "list", "--json"))["tasks"]
    assert (row["state"], row["held_until"], row["started_at"], row["duration"]) == ("cancelled", None, None, None)
    [attempt] = _json(cli("tasks", "show", task_id, "--json"))["attempts"]
    assert (attempt["outcome"], attempt["started_at"], attempt["duration"]) == ("cancelled", None, None)
    assert "  started -  finished " in cli("tasks", "show", task_id).output


def test_a_success_after_a_lost_worker_shows_no_stale_reason(distsched_cli: Any, store_url: str) -> None:
    """Requeued when its worker was lost, then run to success on another worker: ``tasks
    show`` read ``succeeded (worker w1 lost ...)``. The state line is ``succeeded`` now; the
    lost attempt still says why it ended."""
    from distsched.model import TaskResult

    async def lose_w1_then_succeed_on_w2() -> None:
        store, fence = await _leader(store_url)
        await _submit_x_and_lose_w1(store, fence, "worker w1 lost (declared dead)")
        task = await store.tasks.get("x")
        task.dispatch("w2", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        [task] = await store.queues.pull("w2", 1, 1.0)
        now = store.clock()
        await store.queues.report("w2", [TaskResult(task_id="x", attempt_id=task.attempt_id, outcome="succeeded",
                                                    started_at=now, finished_at=now, worker_id="w2", value=2)])
        assert (await store.results.settle(fence, 10)).settled == 1
        await store.close()

    asyncio.run(lose_w1_then_succeed_on_w2())
    text = distsched_cli("tasks", "show", "x", "--storage", store_url).output
    assert "state     succeeded   attempt 1 of 1" in text, text
    assert "      error  worker w1 lost (declared dead)" in text, "the lost attempt keeps why it ended"
    shown = _json(distsched_cli("tasks", "show", "x", "--storage", store_url, "--json"))
    assert shown["task"]["reason"] is None
    assert [(a["worker_id"], a["outcome"]) for a in shown["attempts"]] == [("w1", "lost"), ("w2", "succeeded")]


def test_a_task_running_again_after_a_lost_worker_says_why_it_runs_again(distsched_cli: Any, store_url: str) -> None:
    """Requeued when w1 was lost, then running on w2: ``tasks show`` read ``running (worker
    w1 lost ...)``, as if the worker running it were lost, and ``tasks list`` showed it as
    the running task's error (a dispatch leaves the requeue's reason in the record)."""

    async def lose_w1_then_run_on_w2() -> None:
        store, fence = await _leader(store_url)
        await _submit_x_and_lose_w1(store, fence, "worker w1 lost (declared dead)")
        task = await store.tasks.get("x")
        task.dispatch("w2", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        assert len(await store.queues.pull("w2", 1, 1.0)) == 1
        await store.close()

    asyncio.run(lose_w1_then_run_on_w2())
    text = distsched_cli("tasks", "show", "x", "--storage", store_url).output
    assert "state     running (run again after: worker w1 lost (declared dead))   attempt 1 of 1" in text, text
    shown = _json(distsched_cli("tasks", "show", "x", "--storage", store_url, "--json"))
    assert shown["earlier_reason"] == "worker w1 lost (declared dead)"
    [row] = _json(distsched_cli("tasks", "list", "--storage", store_url, "--json"))["tasks"]
    assert row["state"] == "running" and not row.get("error"), row


def test_status_after_a_clean_stop_tells_the_truth(distsched_cli: Any, store_url: str) -> None:
    ids = _history(store_url)
    data = _json(distsched_cli("status", "--storage", store_url, "--json"))
    leader = data["leader"]
    assert leader["node_id"] == ids["node"] and leader["expired"], "a released lease is shown expired, not leading"
    assert data["schedulers"] == [], "the scheduler deregistered on its clean stop"
    assert all(w["state"] == "stopped" and w["heartbeat_age"] is None for w in data["workers"]), data["workers"]
    assert data["counts"]["succeeded"] == 2 and data["counts"]["failed"] == 1
    text = distsched_cli("status", "--storage", store_url).output
    assert "EXPIRED" in text and f"last holder {ids['node']}" in text
    assert "1970" not in text


class _Deployment:
    """A leader (scheduler + worker) and a standby scheduler, in a thread with its own loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ready = threading.Event()
        self.apps: list[DistributeSchedule] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        leader = _app(self.url, node_id="node-a")
        await leader.start()
        await leader.engine.scheduler.is_leader.wait()
        standby = _app(self.url, node_id="node-b")
        await standby.start(worker=False)
        self.apps = [leader, standby]
        await leader.submit("double", 1)
        self.ready.set()
        await self.stop.wait()
        for app in reversed(self.apps):
            await app.stop()

    def __enter__(self) -> _Deployment:
        self.thread.start()
        assert self.ready.wait(30), "the deployment did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


def test_status_of_a_live_deployment(distsched_cli: Any, redis_server: Any) -> None:
    url = redis_server.url_for(namespace=f"live{uuid.uuid4().hex[:10]}")
    with _Deployment(url):
        deadline = time.monotonic() + 10
        while True:  # both nodes register within a heartbeat
            data = _json(distsched_cli("status", "--storage", url, "--json"))
            if len(data["schedulers"]) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        leader = data["leader"]
        assert leader["node_id"] == "node-a" and not leader["expired"] and leader["term"] > 0
        assert 0 <= leader["lease_age"] < 30 and 0 < leader["expires_in"] <= 2.0
        assert [(n["id"], n["role"], n["alive"], n["state"]) for n in data["schedulers"]] == \
            [("node-a", "leader", True, "leader"), ("node-b", "standby", True, "standby")]
        [worker] = data["workers"]
        assert worker["state"] == "alive" and 0 <= worker["heartbeat_age"] < 2.0
        assert worker["capacity"] >= worker["load"] >= 0 and worker["queued"] >= 0
        text = distsched_cli("status", "--storage", url).output
        assert "leader      node-a" in text and "schedulers  2 (1 standby)" in text and " alive " in text

        proc = subprocess.Popen([sys.executable, "-m", "distsched", "status", "--storage", url, "--watch",
                                 "--interval", "0.2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            frames = 0
            deadline = time.monotonic() + 20
            while frames < 2 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if "\x1b[H\x1b[J" in line:
                    frames += 1
            assert frames == 2, "--watch redraws in place"
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


def test_run_names_the_task_and_logs_json(distsched_cli: Any, tmp_path: Any) -> None:
    (tmp_path / "mytasks.py").write_text("from distsched import task\n\n@task\ndef hi():\n    return 'hi'\n")
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[worker]\nimports = ["mytasks"]\n\n[[jobs]]\nname = "hi"\nevery = "0.3s"\ntarget = "hi"\n')
    for fmt in ("text", "json"):
        proc = subprocess.run([sys.executable, "-m", "distsched", "run", str(jobs), "--duration", "1.5",
                               "--log-format", fmt], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        # this process takes the lease first and gives it up last (a line each)
        lead, *lines, stepped_down = proc.stdout.splitlines()
        assert len(lines) >= 2, proc.stdout
        if fmt == "text":
            assert " leading: " in lead and " took the lease, term " in lead, lead
            assert " stopped leading: " in stepped_down and stepped_down.endswith("(shutdown)"), stepped_down
            assert all(" hi " in line and " task hi@" in line for line in lines), lines
        else:
            assert json.loads(lead)["kind"] == "leader.elected" and json.loads(lead)["term"] > 0
            assert json.loads(stepped_down)["kind"] == "leader.lost"
            assert json.loads(stepped_down)["reason"] == "shutdown"
            events = [json.loads(line) for line in lines]
            assert {e["kind"] for e in events} == {"task.finished"}
            assert all(e["task_id"].startswith("hi@") and e["state"] == "succeeded" and e["job"] == "hi"
                       and e["time"].endswith("Z") for e in events), events


def test_a_submission_under_an_existing_id_with_another_call_says_so(distsched_cli: Any) -> None:
    """`--id` makes a submission idempotent: the task already stored under it is the one that
    runs. With other arguments, the command said nothing and printed the id, as if this call
    would run."""
    url = f"memory://cli-{uuid.uuid4().hex}"
    first = distsched_cli("tasks", "submit", "add", "1", "2", "--id", "same", "--storage", url)
    assert first.exit_code == 0 and first.stdout == "same\n" and "note:" not in first.output, first.output
    again = distsched_cli("tasks", "submit", "add", "1", "2", "--id", "same", "--storage", url)
    assert again.exit_code == 0 and "note:" not in again.output, again.output  # the same call: nothing to say
    other = distsched_cli("tasks", "submit", "add", "5", "5", "--id", "same", "--storage", url)
    assert other.exit_code == 0 and other.stdout == "same\n", other.output
    assert "note: task 'same' already exists with another call (local:add); it is that one that runs" in other.stderr


def test_status_interval_needs_watch(distsched_cli: Any) -> None:
    """`--interval` alone was silently ignored (one status, no refresh)."""
    result = distsched_cli("status", "--interval", "5", "--storage", f"memory://cli-{uuid.uuid4().hex}")
    assert result.exit_code == 2 and "--interval needs --watch" in result.output


@pytest.mark.redis
def test_status_watch_json_stays_json_while_the_store_is_down() -> None:
    """`status --watch --json` wrote `redis://...: unreachable (ConnectionError: ...)` between
    its JSON documents while the store was down. Every stdout line is one JSON document now:
    `{"storage", "reachable": false, "error"}` during the outage, `"reachable": true` with the
    status otherwise. A Redis of the test's own, killed while the watch runs."""
    from distsched.testing.processes import wait_until
    from distsched.testing.redis_server import RedisServer

    with RedisServer() as server:
        url = server.url_for(namespace=f"down{uuid.uuid4().hex[:8]}")
        proc = subprocess.Popen([sys.executable, "-m", "distsched", "status", "--storage", url, "--watch", "--json",
                                 "--interval", "0.2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        try:
            wait_until(lambda: len(lines) >= 1 or None, 30, what="a first status document")
            server.kill()
            wait_until(lambda: sum('"reachable": false' in line for line in lines) >= 2 or None, 30,
                       what="two documents during the outage", detail=lambda: "".join(lines))
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
            reader.join(timeout=10)
    assert proc.returncode == 0, err
    documents = [json.loads(line) for line in lines]  # every line parses: no text between them
    assert documents[0]["reachable"] is True and documents[0]["storage"] == url
    down = [d for d in documents if d["reachable"] is False]
    assert down and all(set(d) == {"storage", "reachable", "error"} and d["storage"] == url for d in down), down
    assert "ConnectionError" in down[0]["error"], down[0]


@pytest.mark.redis
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_status_watch_started_during_an_outage_retries_until_the_store_answers(as_json: bool) -> None:
    """`status --watch` started while the store was unreachable exited at once (`Error:
    storage 'redis' ... could not open ...`): only an outage that began during the watch was
    retried. It is retried the same way now, from the first refresh - `{"reachable": false,
    "error": "ConnectionError: ..."}` with `--json`, `unreachable (ConnectionError: ...)` in
    the text - until the store answers; plain `status` still fails at once."""
    from distsched.testing.processes import wait_until
    from distsched.testing.redis_server import RedisServer

    with RedisServer() as server:
        url = server.url_for(namespace=f"late{uuid.uuid4().hex[:8]}")
        server.kill()
        once = subprocess.run([sys.executable, "-m", "distsched", "status", "--storage", url], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert once.returncode == 1 and once.stdout == "" and "could not open" in once.stderr, once
        proc = subprocess.Popen([sys.executable, "-m", "distsched", "status", "--storage", url, "--watch",
                                 *(["--json"] if as_json else []), "--interval", "0.2"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        down = '"reachable": false' if as_json else f"{url}: unreachable (ConnectionError: "
        up = '"reachable": true' if as_json else "leader      none"
        try:
            wait_until(lambda: sum(down in line for line in lines) >= 2 or proc.poll() is not None or None, 30,
                       what="two refreshes during the outage", detail=lambda: "".join(lines))
            assert proc.poll() is None, f"the watch exited ({proc.returncode}): {proc.stderr.read()}"
            server.restart()
            wait_until(lambda: any(up in line for line in lines) or None, 30, what="a refresh once Redis answers",
                       detail=lambda: "".join(lines))
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
            reader.join(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    if as_json:
        documents = [json.loads(line) for line in lines]  # stdout stays one JSON document a line
        first = documents[0]
        assert set(first) == {"storage", "reachable", "error"} and first["storage"] == url, first
        assert first["error"].startswith("ConnectionError: "), first  # what failed, not the plugin's wrapper
        assert any(d["reachable"] is True and d["leader"] is None for d in documents)


@pytest.mark.parametrize("args, stdout", [
    (("tasks", "list"), "no tasks"),
    (("tasks", "show", "nightly@1"), ""),
    (("status",), "leader      none (no scheduler ever took the lease)"),
    (("status", "--json"), '"leader": null'),
    (("quarantine", "list"), "nothing quarantined"),
])
def test_memory_in_a_fresh_process_says_why_nothing_is_there(tmp_path: Any, args: tuple[str, ...], stdout: str) -> None:
    """On the default memory:// store (no --storage, no $DISTSCHED_STORAGE), `tasks list` said
    `no tasks`, `status` `no scheduler ever took the lease`, with no hint that the store is a
    new one of this process; only `jobs list` said so. Each says it now, on stderr (its
    stdout unchanged: `--json` stays JSON)."""
    env = {k: v for k, v in os.environ.items() if k != "DISTSCHED_STORAGE"}
    result = subprocess.run([sys.executable, "-m", "distsched", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert stdout in result.stdout, result.stdout
    assert "note: memory:// storage lives only inside one process" in result.stderr, result.stderr
    assert "--storage redis://" in result.stderr
    if "--json" in args:
        json.loads(result.stdout)


def test_no_memory_note_where_the_store_has_something_or_is_not_memory(distsched_cli: Any, store_url: str) -> None:
    """The note is for a memory:// store that shows nothing: a named memory:// store this
    process filled (or any other store) gets none."""
    ids = _history(store_url)
    cli = lambda *args: distsched_cli(*args, "--storage", store_url)  # noqa: E731
    for args in (("tasks", "list"), ("tasks", "list", "--job", "no-such-job"), ("tasks", "show", ids["ok"]),
                 ("status",)):
        result = cli(*args)
        assert result.exit_code == 0 and "note:" not in result.stderr, (args, result.output)
    missing = cli("tasks", "show", "no-such-task")
    assert missing.exit_code == 1 and "note:" not in missing.stderr, missing.output


def _store_jobs(url: str, count: int, *, disabled: int = 0) -> None:
    """``count`` jobs in the store of ``url``, the first ``disabled`` of them disabled."""
    from distsched.model.build import build_job

    async def store() -> None:
        app = DistributeSchedule(url)
        try:
            await app.storage()  # a PostgreSQL schema is created (status only reads)
            await app.put_jobs([build_job(f"job-{i:04d}", every=60, target="double", args=[i], enabled=i >= disabled)
                                for i in range(count)], replace=True)
        finally:
            await app.stop()

    asyncio.run(store())


def test_status_counts_the_jobs(distsched_cli: Any, store_url: str) -> None:
    """`distsched status` gave no job count: after Redis restarted empty it read healthy, the
    nodes registered again, and nothing said the jobs were gone. It counts them now (how many
    enabled too) - `jobs` in `--json` -, every one on a store that counts them (``jobs.count``:
    each built-in one); it read one page (JOBS_COUNTED) and said only `more than 200` past it."""
    from distsched.status import JOBS_COUNTED

    status = lambda: json.loads(distsched_cli("status", "--storage", store_url, "--json").stdout)  # noqa: E731
    text = lambda: distsched_cli("status", "--storage", store_url).stdout  # noqa: E731
    _store_jobs(store_url, 0)
    assert status()["jobs"] == {"total": 0, "enabled": 0, "more": False}
    assert "\njobs        none\n" in text()
    _store_jobs(store_url, 3, disabled=1)
    assert status()["jobs"] == {"total": 3, "enabled": 2, "more": False}
    assert "\njobs        3 (2 enabled)\n" in text()
    _store_jobs(store_url, JOBS_COUNTED + 1, disabled=2)  # the 3 stored already, and JOBS_COUNTED - 2 more
    assert status()["jobs"] == {"total": JOBS_COUNTED + 1, "enabled": JOBS_COUNTED - 1, "more": False}
    assert f"\njobs        {JOBS_COUNTED + 1} ({JOBS_COUNTED - 1} enabled)\n" in text()


@pytest.mark.redis
def test_status_says_the_jobs_are_gone_after_redis_restarted_empty(distsched_cli: Any) -> None:
    """The case of the report: a Redis without persistence restarted; the status read healthy
    (a scheduler node, no tasks) with no word of the jobs. It reads `jobs        none` now."""
    from distsched.testing.redis_server import RedisServer

    with RedisServer() as server:
        url = server.url_for(namespace=f"wiped{uuid.uuid4().hex[:8]}")
        _store_jobs(url, 2)
        assert _json(distsched_cli("status", "--storage", url, "--json"))["jobs"]["total"] == 2
        server.kill()
        server.restart()
        assert "\njobs        none\n" in distsched_cli("status", "--storage", url).output


def _take_the_lease(url: str, node_id: str, *, ttl: float, renew_interval: float) -> None:
    """``node_id`` takes the lease of ``url`` with these timings, and never renews it."""
    from distsched.plugin.manager import ELECTION, STORAGE, PluginManager

    async def take() -> None:
        plugins = PluginManager()
        store = await plugins.build(STORAGE, url, url, options={})
        election = await plugins.build(ELECTION, url, url, storage=store,
                                       options={"ttl": ttl, "renew_interval": renew_interval})
        assert await election.acquire(node_id) is not None
        await store.close()

    asyncio.run(take())


def test_status_flags_a_leader_whose_renewal_is_overdue(distsched_cli: Any, store_url: str) -> None:
    """A leader killed with SIGKILL read as healthy (`renewed 8.3s ago, expires in 1.7s`) for
    the whole lease TTL. A lease taken on the store and never renewed (the holder died) is
    flagged once its last renewal is older than two renew intervals (`renewal_overdue` in
    --json, `renewal overdue` in the text), before it expires."""
    from distsched.testing.processes import wait_until

    _take_the_lease(store_url, "dead-leader", ttl=2.0, renew_interval=0.5)
    status = lambda: _json(distsched_cli("status", "--storage", store_url, "--json"))["leader"]  # noqa: E731
    fresh = status()
    assert fresh["node_id"] == "dead-leader" and not fresh["renewal_overdue"] and not fresh["expired"]
    assert fresh["renewal_overdue_after"] == pytest.approx(1.0)  # 2 x the 0.5 s interval its record gives
    assert fresh["renew_interval"] == pytest.approx(0.5)
    overdue = wait_until(lambda: (lambda lease: lease if lease["renewal_overdue"] or lease["expired"] else None)(status()),
                         10, what="the lease's renewal overdue")
    assert overdue["renewal_overdue"] and not overdue["expired"] and overdue["renewed_age"] > 1.0, overdue
    text = distsched_cli("status", "--storage", store_url).output
    leader_line = next(line for line in text.splitlines() if line.startswith("leader"))
    assert "renewal overdue" in leader_line or "EXPIRED" in leader_line, leader_line


def test_a_leader_renewing_less_often_than_the_estimate_is_not_flagged(distsched_cli: Any, store_url: str) -> None:
    """`renewal overdue` estimated the leader's renew interval as 30 % of the lease TTL: a
    leader renewing every 1.5 s of a 2 s lease read `renewal overdue` 1.2 s after each
    renewal, alive. The lease record carries the interval it took the lease with: measured by
    it, a renewal 1.3 s ago is on time (overdue after 3 s - the lease expires first)."""
    from distsched.testing.processes import wait_until

    _take_the_lease(store_url, "slow-renewer", ttl=2.0, renew_interval=1.5)
    status = lambda: _json(distsched_cli("status", "--storage", store_url, "--json"))["leader"]  # noqa: E731
    # between the estimate's two intervals (1.2 s) and its own next renewal (1.5 s)
    late = wait_until(lambda: (lambda lease: lease if lease["renewed_age"] > 1.25 else None)(status()), 10,
                      what="a lease renewed more than 1.25 s ago")
    assert late["renewed_age"] < 2.0 and not late["expired"], late
    assert not late["renewal_overdue"], late
    assert late["renewal_overdue_after"] == pytest.approx(3.0) and late["renew_interval"] == pytest.approx(1.5)


def test_a_lost_attempt_shows_no_duration_no_start_before_its_slot_and_its_redelivery(
        distsched_cli: Any, store_url: str) -> None:
    """A slot taken ahead by w1, which was declared lost after the slot; re-delivered to w2,
    which succeeded. `tasks show` labelled both attempts `#1`, gave the lost one `took
    14.746s` (the reap minus the take: the worker had run 5 s before it died) and its take,
    before the slot, as its start. Now: `#1 (re-delivered)` for the second (`redelivered` in
    --json), `declared lost HH:MM:SS` and no duration for the lost one, and no start before
    the slot - nor on the dashboard's attempt rows (`distsched_web.data.task_detail`)."""
    from distsched.model import Task, TaskResult, TaskSpec
    from distsched.testing.processes import wait_until_async

    cli = lambda *args: distsched_cli(*args, "--storage", store_url)  # noqa: E731

    async def main() -> float:
        store, fence = await _leader(store_url)
        slot = round(store.clock() + 0.3, 3)
        await store.tasks.submit([Task(id="job@1", spec=TaskSpec(target="double", args=[1]), job="job",
                                       slot=slot, created_at=store.clock(), not_before=slot)])
        task = await store.tasks.get("job@1")
        task.dispatch("w1", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        held = await store.queues.pull("w1", 1, 1.0)  # taken ahead of its slot, held until then
        assert held and held[0].started_at < slot
        async def slot_passed() -> bool:
            return store.clock() > slot + 0.2

        await wait_until_async(slot_passed, 10, what="the slot to pass")
        for t in held:
            t.requeue("worker w1 lost (declared dead)", store.clock())  # the leader's reap, after the slot
        assert await store.workers.reap(fence, "w1", held) == [True]
        await store.close()
        return slot

    slot = asyncio.run(main())
    [row] = _json(cli("tasks", "list", "--json"))["tasks"]  # pending again: no duration growing with the clock
    assert row["state"] == "pending" and row["duration"] is None and row["started_at"] >= slot, row

    async def redeliver() -> None:
        store, fence = await _leader(store_url)
        task = await store.tasks.get("job@1")
        task.dispatch("w2", store.clock())
        assert await store.tasks.dispatch(fence, [task]) == [True]
        [task] = await store.queues.pull("w2", 1, 1.0)
        now = store.clock()
        await store.queues.report("w2", [TaskResult(task_id=task.id, attempt_id=task.attempt_id, outcome="succeeded",
                                                    started_at=now, finished_at=now + 0.25, worker_id="w2", value=2)])
        assert (await store.results.settle(fence, 10)).settled == 1
        await store.close()

    asyncio.run(redeliver())
    lost, redelivered = _json(cli("tasks", "show", "job@1", "--json"))["attempts"]
    assert (lost["number"], lost["outcome"], lost["duration"], lost["redelivered"]) == (1, "lost", None, False)
    assert lost["started_at"] == slot and lost["finished_at"] > slot, lost
    assert (redelivered["number"], redelivered["outcome"], redelivered["redelivered"]) == (1, "succeeded", True)
    assert redelivered["duration"] == pytest.approx(0.25)
    text = cli("tasks", "show", "job@1").output
    lost_line, lost_times, redelivered_line, redelivered_times = [
        line for line in text.splitlines() if line.startswith(("  #", "      dispatched"))]
    assert lost_line.startswith("  #1 job@1#1  lost") and redelivered_line.startswith("  #1 (re-delivered) job@1#2"), text
    assert f"started {when(slot)}  declared lost {when(lost['finished_at'])}" in lost_times, lost_times
    assert "took" not in lost_times and "took 0.250s" in redelivered_times, text

    from distsched_web.data import task_detail

    async def web_rows() -> list[dict[str, Any]]:
        app = DistributeSchedule(store_url)
        try:
            detail = await app.task_detail("job@1")
            return task_detail(detail.task, detail.attempts, (await app.storage()).clock())["attempts"]
        finally:
            await app.stop()

    web_lost, web_redelivered = asyncio.run(web_rows())
    assert (web_lost["outcome"], web_lost["duration"], web_lost["started_at"]) == ("lost", None, slot), web_lost
    assert web_redelivered["duration"] == pytest.approx(0.25)


def test_a_worker_declared_dead_is_gone_from_status_as_the_docs_say(distsched_cli: Any, store_url: str) -> None:
    """docs/cli.md said a worker declared dead shows `stopped` in `status`, and
    docs/reliability.md that a node started while Redis is unreachable exits with an error.
    The leader's reap removes a dead worker from the store: it is gone from `status` (only
    the leader's task log line says it was lost); and a node waits for its store
    (`tests/engine/cli/test_config.py::test_roles_wait_for_a_store_that_comes_up_later`).
    The docs say so now."""

    async def reap_w1() -> None:
        store, fence = await _leader(store_url)
        await _submit_x_and_lose_w1(store, fence, "worker w1 lost (no heartbeat for 10.4s)")
        await store.close()

    asyncio.run(reap_w1())
    workers = _json(distsched_cli("status", "--storage", store_url, "--json"))["workers"]
    assert [w["id"] for w in workers] == ["w2"], workers  # not `stopped`: gone
    cli_md = " ".join((Path(REPO) / "docs" / "cli.md").read_text().split())
    assert "a dead worker is not shown `stopped`, it disappears" in cli_md
    assert "`stopped` once it deregistered or was declared dead" not in cli_md
    reliability = " ".join((Path(REPO) / "docs" / "reliability.md").read_text().split())
    assert "started while Redis is unreachable waits and retries" in reliability
    assert "unreachable exits with an error" not in reliability


def test_an_http_connect_error_names_its_target_once_typed(distsched_cli: Any) -> None:
    """`tasks show` printed `error ConnectionError: ConnectError: All connection attempts
    failed`: the type doubled, the target unnamed. It prints the error type once, and the
    http executor's error names the host and port (not the path, query or credentials); an
    error recorded before, which begins with its own exception's name, is not prefixed again."""
    import socket

    url = f"memory://cli-{uuid.uuid4().hex}"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on it

    async def main() -> str:
        app = _app(url)
        async with app.running():
            task_id = await app.submit(f"http://svc:pw-Xq9@127.0.0.1:{port}/hook?token=Tk-Zz8", executor="http",
                                       timeout="5s")
            await app.wait(task_id, timeout=20)
        return task_id

    task_id = asyncio.run(main())
    [error] = [line for line in distsched_cli("tasks", "show", task_id, "--storage", url).output.splitlines()
               if line.startswith("      error")]
    assert error == (f"      error  ConnectionError: cannot connect to 127.0.0.1:{port}: All connection attempts "
                     "failed (ConnectError)"), error

    from distsched.cli.tasks import error_text

    assert error_text("ConnectionError", "ConnectError: All connection attempts failed") == \
        "ConnectError: All connection attempts failed"
    assert error_text("ValueError", "ValueError: boom") == "ValueError: boom"
    assert error_text("HTTPStatus", "HTTP 500 Internal Server Error") == "HTTPStatus: HTTP 500 Internal Server Error"
    assert error_text("RPCError", "JSON-RPC error -32000: big") == "RPCError: JSON-RPC error -32000: big"
    assert error_text(None, "worker w1 lost (declared dead)") == "worker w1 lost (declared dead)"


@pytest.mark.redis
def test_status_says_what_the_redis_server_refuses(distsched_cli: Any) -> None:
    """Redis at its maxmemory refused every write: the leader stepped down at each pass, and
    ``distsched status`` (whose reads still succeed) said nothing of why nothing was
    dispatched (an incident drill finding). It says what the server tells: at maxmemory
    (refusing writes, or evicting under another policy), an evicting policy, a replica."""
    from distsched.testing.redis_server import RedisServer

    with RedisServer() as primary, RedisServer() as replica:
        url = primary.url_for(namespace=f"w{uuid.uuid4().hex[:10]}")
        raw = primary.client()
        try:
            assert _json(distsched_cli("status", "--storage", url, "--json"))["store_warnings"] == []
            raw.config_set("maxmemory", 1)
            [said] = _json(distsched_cli("status", "--storage", url, "--json"))["store_warnings"]
            assert said.startswith("Redis is at its maxmemory (") and "it refuses writes (OutOfMemoryError)" in said
            text = distsched_cli("status", "--storage", url).output
            assert f"  WARNING   {said}" in text.splitlines(), text
            raw.config_set("maxmemory-policy", "allkeys-lru")
            [said] = _json(distsched_cli("status", "--storage", url, "--json"))["store_warnings"]
            assert "evicts keys (maxmemory-policy allkeys-lru): distsched's records are being dropped" in said
            raw.config_set("maxmemory", 0)
            [said] = _json(distsched_cli("status", "--storage", url, "--json"))["store_warnings"]
            assert said.startswith("Redis maxmemory-policy is 'allkeys-lru': ")
            raw.config_set("maxmemory-policy", "noeviction")
        finally:
            raw.close()
        follower = replica.client()
        try:
            follower.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
            shown = distsched_cli("status", "--storage", replica.url_for(namespace="r"), "--json")
            [said] = _json(shown)["store_warnings"]
            assert said.startswith(f"Redis is a replica of 127.0.0.1:{primary.port}: it refuses writes (READONLY)")
        finally:
            follower.close()


@pytest.mark.postgres
def test_status_says_the_postgresql_sessions_refuse_writes(distsched_cli: Any, postgres_database: Any) -> None:
    """The same for PostgreSQL: sessions read-only by default (as on a standby, which says
    so too) refuse every write while the reads of a status succeed. A database of the
    test's own (the suite's shared one must stay writable)."""
    from distsched.testing.postgres_server import PostgresDatabase, _admin

    database = PostgresDatabase(postgres_database.admin).create()
    try:
        url = database.url_for(schema="w")
        assert distsched_cli("db", "upgrade", "--storage", url).exit_code == 0
        assert _json(distsched_cli("status", "--storage", url, "--json"))["store_warnings"] == []
        asyncio.run(_admin(database.admin, f'ALTER DATABASE "{database.name}" SET default_transaction_read_only = on'))
        [said] = _json(distsched_cli("status", "--storage", url, "--json"))["store_warnings"]
        assert said.startswith("PostgreSQL sessions are read-only (default_transaction_read_only = on): writes are "
                               "refused")
    finally:
        database.drop()
