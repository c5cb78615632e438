"""docs/coming-from.md and examples/coming-from/: every jobs file loads with the real loader,
every example runs end to end on the embedded default (memory://) and does what the page says
(a retry with backoff, a timeout, an overlap skip, a run after a downtime, an alert...), and the
page's distsched code blocks are the files themselves, so the docs cannot drift.

The five `distsched run` processes and the scripts run in parallel (one module fixture starts
them all), so the module takes the time of the longest, about 7 s, not their sum."""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from distsched import DistributeSchedule
from distsched.cli import cli
from distsched.jobs import load_jobs_file
from distsched.testing.processes import wait_until, wait_until_async

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "coming-from"
PAGE = ROOT / "docs" / "coming-from.md"
#: The jobs of each tool's example, as the page names them.
JOBS = {
    "celery": ["refresh-rates", "nightly-cleanup"],
    "rq": ["sync-inventory", "hourly-digest"],
    "arq": ["poll-feeds", "weekly-report"],
    "apscheduler": ["export-orders", "backup"],
    "xxl-job": ["settle-invoices", "reconcile-ledger"],
}
#: Python scripts the page shows, and what each prints (a regular expression).
SCRIPTS = {
    "celery/send_receipt.py": r"^[0-9a-f]{32} receipt sent for order 42$",
    "rq/enqueue_in.py": r"^reminder-user-7 pending\nreminder-user-7 succeeded reminder sent to user 7$",
    "arq/enqueue_job.py": r"^fetch-home fetch-home fetched https://example.org/$",
    "apscheduler/embedded.py": r"^ALERT check-disk: failed: OSError: /var: no space left on device$",
}
RUN_FOR = 6.0  # seconds of each `distsched run`: every example shows its behaviour within 5 s


def _distsched(*args: str) -> list[str]:
    return [sys.executable, "-m", "distsched", *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTSCHED_")}
    env.update(extra)
    return env


class Runs:
    """The examples' processes, started together; each one's output read once it ended."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.outputs: dict[str, tuple[int, str, str]] = {}

    def start(self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.procs[name] = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)

    def output(self, name: str) -> tuple[int, str, str]:
        if name not in self.outputs:
            out, err = self.procs[name].communicate(timeout=60)
            self.outputs[name] = (self.procs[name].returncode, out, err)
        return self.outputs[name]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON task log of a `distsched run ... --log-format json`."""
        code, out, err = self.output(name)
        assert code == 0, f"{name} exited {code}:\n{out}\n{err}"
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    runs = Runs()
    standin = subprocess.Popen([sys.executable, str(EXAMPLES / "xxl-job" / "billing_standin.py")],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert standin.stdout is not None
        line = standin.stdout.readline().strip()  # it prints its URL once it listens
        assert line.startswith("BILLING_URL=http://127.0.0.1:"), line
        for tool in ("celery", "rq", "arq", "apscheduler"):
            runs.start(tool, _distsched("run", "jobs.toml", "--duration", str(RUN_FOR), "--log-format", "json"),
                       cwd=EXAMPLES / tool, env=_env())
        runs.start("xxl-job", _distsched("-p", "alarm", "run", "jobs.toml", "--duration", str(RUN_FOR),
                                         "--log-format", "json"),
                   cwd=EXAMPLES / "xxl-job", env=_env(BILLING_URL=line.split("=", 1)[1]))
        for script in SCRIPTS:  # run from the repository's root, as the page says
            runs.start(script, [sys.executable, f"examples/coming-from/{script}"], cwd=ROOT, env=_env())
        yield runs
    finally:
        for proc in runs.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        standin.kill()
        standin.communicate()


def _of(events: list[dict[str, Any]], kind: str, job: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind and e.get("job") == job]


# -- the files and the page ------------------------------------------------------------

@pytest.mark.parametrize("tool", sorted(JOBS))
def test_each_jobs_file_loads_with_the_real_loader(tool):
    app = DistributeSchedule()
    jobs = load_jobs_file(EXAMPLES / tool / "jobs.toml", check_spec=app.check_spec)
    assert [job.name for job in jobs.jobs] == JOBS[tool]


def test_the_cron_jobs_fire_when_the_page_says():
    def first(tool: str, job: str) -> str:
        config = load_jobs_file(EXAMPLES / tool / "jobs.toml").job(job)
        after = datetime.datetime(2026, 12, 6, 23, 59, 59, tzinfo=datetime.timezone.utc).timestamp()  # Sunday night
        return datetime.datetime.fromtimestamp(config.upcoming(after, 1)[0].at, datetime.timezone.utc).isoformat()

    assert first("celery", "nightly-cleanup") == "2026-12-07T02:00:00+00:00"   # 03:00 in Paris (winter)
    assert first("apscheduler", "backup") == "2026-12-07T01:30:00+00:00"       # 02:30 in Berlin
    assert first("arq", "weekly-report") == "2026-12-07T07:00:00+00:00"
    assert first("rq", "hourly-digest") == "2026-12-07T00:00:00+00:00"
    assert first("xxl-job", "settle-invoices") == "2026-12-07T00:00:00+00:00"


def _page() -> str:
    return PAGE.read_text()


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
FILE_BLOCK = re.compile(r"^\[`(examples/coming-from/[^`]+)`\]\([^)]*\):\n\n```(\w+)\n(.*?)^```$", re.M | re.S)


def test_every_file_the_page_names_exists_and_every_example_file_is_on_the_page():
    page = _page()
    named = set(re.findall(r"examples/coming-from/[\w./-]+\w", page))
    assert named, "the page names its example files"
    for path in sorted(named):
        assert (ROOT / path).exists(), f"docs/coming-from.md names {path}, which does not exist"
    files = {str(p.relative_to(ROOT)) for p in EXAMPLES.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files - named == set(), "example files the page does not name"


def test_the_pages_distsched_blocks_are_the_files():
    page = _page()
    shown = {m.group(3): m.group(1) for m in FILE_BLOCK.finditer(page)}
    for match in FILE_BLOCK.finditer(page):
        path, body = match.group(1), match.group(3)
        assert (ROOT / path).read_text() == body, f"the block under {path} differs from the file: copy the file in"
    assert {p for p in shown.values()} >= {f"examples/coming-from/{tool}/jobs.toml" for tool in JOBS}
    for lang, body in FENCE.findall(page):
        is_distsched = lang == "toml" or (lang == "python" and "distsched" in body)
        assert not is_distsched or body in shown, (
            f"a {lang} block of distsched code is not one of the example files (show a file, under its "
            f"[`examples/coming-from/...`](...): line):\n{body[:300]}")


def _check_command(argv: list[str]) -> None:
    root = click.Context(cli, info_name="distsched")
    while argv and argv[0] in ("-p", "--plugin"):
        argv = argv[2:]
    command = cli.get_command(root, argv[0])
    assert command is not None, f"distsched has no command {argv[0]!r}"
    command.make_context(argv[0], list(argv[1:]), parent=root, resilient_parsing=False)


def test_the_pages_commands_parse():
    """Every `distsched ...` line of the page's sh blocks parses with the real command line,
    and every `python FILE` names a file (a block starts at the repository's root; `cd` moves)."""
    commands = []
    for lang, body in FENCE.findall(_page()):
        if lang != "sh":
            continue
        cwd = ROOT
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words = words[1:]
            if words[:1] == ["cd"]:
                cwd = cwd / words[1]
                assert cwd.is_dir(), line
            elif words[:1] == ["distsched"]:
                commands.append(words[1:])
                _check_command(words[1:])
            elif words[:1] == ["python"]:
                assert (cwd / words[1]).exists(), line
    assert len(commands) >= 5


# -- a downtime: slots that fell while no scheduler ran -----------------------------------

async def _after_downtime(tool: str, module: str, job: str, gap: float, interval: float) -> tuple[float, list[Any]]:
    """Store ``job`` of the tool's jobs file with no scheduler running, wait ``gap`` seconds
    (the downtime), start one, and return the start time and the tasks of the slots that fell
    in the gap and of the first slot after it (the leader's first pass may fire it ahead, on
    time), once they are all settled."""
    sys.path.insert(0, str(EXAMPLES / tool))
    try:
        functions = importlib.import_module(module)
    finally:
        sys.path.remove(str(EXAMPLES / tool))
    app = DistributeSchedule("memory://")
    app.register_module(functions)
    async with app:
        await app.put_job(load_jobs_file(EXAMPLES / tool / "jobs.toml").job(job))
        await asyncio.sleep(gap)  # the downtime itself: no scheduler runs
        started = time.time()
        await app.start()

        async def settled() -> list[Any] | None:
            tasks = [t for t in (await app.job_history(job, limit=100)).tasks
                     if t.slot is not None and t.slot <= started + interval]
            return tasks if tasks and all(t.terminal for t in tasks) else None

        tasks = await wait_until_async(settled, 10, what=f"{job}'s missed slots settled")
        await app.stop()
    return started, sorted(tasks, key=lambda t: t.slot)


async def _downtimes() -> list[tuple[float, list[Any]]]:
    return await asyncio.gather(
        _after_downtime("celery", "celery_tasks", "refresh-rates", 4.5, 2.0),
        _after_downtime("arq", "arq_tasks", "poll-feeds", 4.5, 2.0),
        _after_downtime("apscheduler", "aps_tasks", "export-orders", 3.5, 1.0),
    )


def test_after_a_downtime_each_example_runs_what_the_page_says(runs):
    (celery_start, celery), (arq_start, arq), (aps_start, aps) = asyncio.run(_downtimes())
    # Celery beat's rule: one run for the slots missed - the latest of them, or the first slot
    # after the start when the leader's first pass fires it (on time) - the others coalesced.
    for started, tasks in ((celery_start, celery), (aps_start, aps)):
        outcome = [(round(started - t.slot, 2), t.state.value, t.reason) for t in tasks]
        missed = [t for t in tasks if t.slot <= started]
        ran = [t for t in missed if t.state.value != "skipped"]
        assert len(missed) >= 2 and len(ran) <= 1, outcome
        assert {t.reason for t in missed if t not in ran} == {"misfire: coalesced"}, outcome
        if not ran:
            assert any(t.slot > started and t.state.value != "skipped" for t in tasks), outcome
    # arq's: a slot missed by more than the grace is not run (recorded skipped).
    # (A slot 0.5-1.5 s old when the scheduler started may go either way: the grace is counted
    # when the leader fires it, a moment after the start.)
    outcome = [(round(arq_start - t.slot, 2), t.state.value, t.reason) for t in arq]
    for task in arq:
        if arq_start - task.slot > 1.5:
            assert (task.state.value, task.reason) == ("skipped", "misfire: skipped"), outcome
        elif arq_start - task.slot < 0.5:
            assert (task.state.value, task.reason) == ("succeeded", None), outcome
    assert any(arq_start - t.slot > 1.5 for t in arq), outcome


# -- the examples, run -----------------------------------------------------------------

def test_celery_a_failed_run_is_retried_with_backoff(runs):
    events = runs.events("celery")
    retry = _of(events, "task.retry_scheduled", "refresh-rates")
    assert retry and retry[0]["delay"] == 1.0 and "ConnectionError: rates upstream is down" in retry[0]["error"]
    finished = {e["task_id"]: e for e in _of(events, "task.finished", "refresh-rates")}
    again = finished[retry[0]["task_id"]]  # the same task, its second attempt
    assert again["state"] == "succeeded" and again["attempt"] == 2


def test_rq_a_hanging_job_times_out_and_is_retried_once(runs):
    events = runs.events("rq")
    retry = _of(events, "task.retry_scheduled", "sync-inventory")
    assert retry and retry[0]["outcome"] == "timed_out" and retry[0]["delay"] == 0.5
    finished = {e["task_id"]: e for e in _of(events, "task.finished", "sync-inventory")}
    last = finished[retry[0]["task_id"]]
    assert last["state"] == "timed_out" and last["attempt"] == 2 and "timed out after 1s" in last["error"]


def test_arq_the_seconds_cron_runs_every_two_seconds(runs):
    done = _of(runs.events("arq"), "task.finished", "poll-feeds")
    assert len(done) >= 2 and all(e["state"] == "succeeded" for e in done)
    slots = sorted(int(e["task_id"].split("@")[1]) for e in done)
    assert all(ms % 2000 == 0 for ms in slots) and all(b - a == 2000 for a, b in zip(slots, slots[1:]))


def test_arq_a_function_asks_for_its_retry_as_arqs_retry_defer(runs):
    events = runs.events("arq")
    [retry] = _of(events, "task.retry_scheduled", "poll-feeds")  # only the first call asks
    assert retry["delay"] == pytest.approx(0.5, abs=1e-3)
    assert retry["error"] == "retry requested (after 0.5s): the feed is not ready"
    finished = {e["task_id"]: e for e in _of(events, "task.finished", "poll-feeds")}
    again = finished[retry["task_id"]]  # the same task, its second attempt
    assert again["state"] == "succeeded" and again["attempt"] == 2


def test_apscheduler_max_instances_skips_the_slot_that_would_overlap(runs):
    events = runs.events("apscheduler")
    skipped = _of(events, "task.skipped", "export-orders")
    ran = _of(events, "task.finished", "export-orders")
    assert skipped and all(e["reason"].startswith("overlap: discarded") for e in skipped)
    assert ran and all(e["state"] == "succeeded" for e in ran)


def test_xxl_job_http_jobs_discard_retry_at_once_and_alert(runs):
    events = runs.events("xxl-job")
    settled = _of(events, "task.finished", "settle-invoices")
    assert settled and all(e["state"] == "succeeded" for e in settled)
    retry = _of(events, "task.retry_scheduled", "reconcile-ledger")
    assert retry and retry[0]["delay"] == 0 and "503" in retry[0]["error"]
    failed = [e for e in _of(events, "task.finished", "reconcile-ledger") if e["task_id"] == retry[0]["task_id"]]
    assert failed and failed[0]["state"] == "failed" and failed[0]["attempt"] == 2
    err = runs.output("xxl-job")[2]  # on stderr: stdout stays the JSON task log
    assert "ALERT job reconcile-ledger failed after 2 attempt(s): HTTP 503 Service Unavailable" in err


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_script_prints_what_the_page_says(runs, script):
    code, out, err = runs.output(script)
    assert code == 0, f"{script} exited {code}:\n{out}\n{err}"
    assert re.search(SCRIPTS[script], out, re.M), f"{script} printed:\n{out}\n{err}"


def test_the_runs_end_cleanly(runs):
    for name in runs.procs:
        wait_until(lambda n=name: runs.output(n), 60, what=f"{name} to end")
        assert runs.output(name)[0] == 0, runs.output(name)
