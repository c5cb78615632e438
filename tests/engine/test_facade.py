"""The public API end to end on the embedded default (memory://), scheduler and worker in-process."""

import asyncio
import time
import uuid
from datetime import datetime, timezone

import pytest

from distsched import DistributeSchedule, hookimpl
from distsched.model import AlreadyExists, NotFound, TaskState, ValidationError, VersionConflict
from distsched.plugin.errors import UnknownName
from distsched.testing import all_tasks


@pytest.fixture
async def app():
    # unroutable_wait=0: a task of a function no worker offers goes to the worker, which
    # refuses it at once (test_only_registered_functions_ever_run), instead of waiting 5 min
    app = DistributeSchedule(f"memory://facade-{uuid.uuid4().hex}", unroutable_wait=0)
    calls = []

    @app.task
    def add(a, b):
        calls.append((a, b))
        return a + b

    @app.task
    async def sleepy(seconds):
        await asyncio.sleep(seconds)
        return "woke"

    @app.task(name="boom")
    def explode():
        raise ValueError("bad input")

    @app.task
    def not_json():
        return {1, 2}

    app.calls = calls
    await app.start()
    yield app
    await app.stop()


async def test_submit_and_await_the_result(app):
    task_id = await app.submit("add", 2, 3)
    result = await app.result(task_id, timeout=5)
    assert result.ok and result.value == 5 and result.worker_id
    assert app.calls == [(2, 3)]


async def test_async_functions_and_timeouts(app):
    ok = await app.submit("sleepy", 0.01, timeout=2)
    late = await app.submit("sleepy", 5, timeout=0.2)
    assert (await app.result(ok, timeout=5)).value == "woke"
    task = await app.wait(late, timeout=5)
    assert task.state is TaskState.TIMED_OUT and task.result.outcome == "timed_out"
    assert 0.19 <= task.result.duration < 1.0


async def test_retries_follow_the_policy(app):
    task_id = await app.submit("boom", retry={"max_attempts": 3, "delay": 0.01, "backoff": "fixed"})
    task = await app.wait(task_id, timeout=5)
    assert task.state is TaskState.FAILED and task.attempt == 3 and task.dispatches == 3
    assert task.result.error == "ValueError: bad input" and task.result.error_type == "ValueError"


async def test_results_must_be_json(app):
    task = await app.wait(await app.submit("not_json"), timeout=5)
    assert task.state is TaskState.FAILED and task.result.error_type == "ResultNotJSON"


@pytest.mark.parametrize("target", ["os:system", "builtins:eval", "subprocess:run", "os.system", "__import__"])
async def test_only_registered_functions_ever_run(app, target):
    task = await app.wait(await app.submit(target, "touch /tmp/distsched-canary"), timeout=5)
    assert task.state is TaskState.FAILED and task.result.error_type == "UnknownFunction"
    assert task.attempt == 1, "an unknown function is not retried"


async def test_jobs_fire_on_schedule(app):
    await app.add_job("fast", every="0.1s", target="add", args=[1, 1])
    deadline = time.monotonic() + 5
    while len(app.calls) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(app.calls) >= 3
    tasks = await all_tasks(await app.storage(), job="fast")
    slots = sorted(t.slot for t in tasks)
    assert len(set(slots)) == len(slots), "no slot fired twice"


async def test_job_management(app):
    job = await app.add_job("j", cron="0 3 * * *", timezone="Europe/Paris", target="add", args=[1, 2])
    assert job.version == 1
    with pytest.raises(AlreadyExists):
        await app.add_job("j", every="1s", target="add")
    updated = await app.update_job("j", args=[5, 5])
    assert updated.version == 2 and updated.spec.args == (5, 5)
    storage = await app.storage()
    stale = job
    stale.version = 1
    with pytest.raises(VersionConflict):
        await storage.jobs.update(stale, next_fire_at=0)
    await app.pause_job("j")
    assert (await storage.jobs.state("j")).paused
    await app.resume_job("j")
    assert not (await storage.jobs.state("j")).paused
    task_id = await app.trigger_job("j")
    assert (await app.result(task_id, timeout=5)).value == 10
    [slot] = await app.explain("j", 1, after=0)
    assert slot.at == 2 * 3600  # 1970-01-01 03:00 Paris = 02:00 UTC
    assert await app.remove_job("j") is True
    with pytest.raises(NotFound):
        await app.get_job("j")


async def test_put_jobs_in_bulk(app):
    from distsched.model import build_job, first_fire

    storage = await app.storage()
    jobs = [build_job(f"c{i}", cron=f"{i % 60} {i % 24} * * *", target="add") for i in range(300)]
    jobs.append(build_job("e", every="7s", target="add"))
    stored = await app.put_jobs(jobs)
    assert [j.name for j in stored] == [j.name for j in jobs] and all(j.version == 1 for j in stored)
    for job in (jobs[0], jobs[123], jobs[-1]):
        state = await storage.jobs.state(job.name)
        assert abs(state.next_fire_at - first_fire(job, storage.clock())) < 60, "each job's own next slot"
    assert (await storage.jobs.state("c5")).next_fire_at == (await storage.jobs.state("c125")).next_fire_at

    with pytest.raises(ValidationError, match="name: given more than once: x"):
        await app.put_jobs([build_job("x", every="1s", target="add")] * 2)
    with pytest.raises(UnknownName, match="executor 'htp'"):
        await app.put_jobs([build_job("y", every="1s", target="add"), build_job("z", every="1s", executor="htp", target="u")])
    assert {"x", "y", "z"}.isdisjoint(j.name for j in await app.jobs()), "refused before anything is stored"

    # all or nothing (issue 15.1): every existing name listed, nothing stored
    with pytest.raises(AlreadyExists, match=r"2 job\(s\) already exist: 'e', 'c7' .* none of the 3 was stored") as err:
        await app.put_jobs([build_job("e", every="9s", target="add"), build_job("new", every="1s", target="add"),
                            build_job("c7", every="1s", target="add")])
    assert err.value.names == ("e", "c7")
    with pytest.raises(NotFound):
        await app.get_job("new")
    assert (await app.get_job("e")).trigger.interval == 7, "left unchanged"
    [again, new] = await app.put_jobs([build_job("e", every="9s", target="add"),
                                      build_job("new", every="1s", target="add")], replace=True)
    assert again.version == 2 and again.trigger.interval == 9 and new.version == 1


async def test_bad_jobs_are_refused_before_anything_is_stored(app):
    with pytest.raises(UnknownName, match="job 'x': executor 'htp' is not registered"):
        await app.add_job("x", every="1s", executor="htp", target="u")
    with pytest.raises(UnknownName, match="balancer 'fastest'"):
        await app.add_job("x", every="1s", target="add", balancer="fastest")
    with pytest.raises(ValidationError, match="cron"):
        await app.add_job("x", cron="every day", target="add")
    with pytest.raises(ValidationError, match="at"):
        await app.add_job("x", at="2001-01-01T00:00:00Z", target="add")
    assert await app.jobs() == []


class Recorder:
    def __init__(self):
        self.kinds = []

    @hookimpl
    def distsched_event(self, event):
        self.kinds.append(event.kind)


async def test_observers_see_events():
    recorder = Recorder()
    app = DistributeSchedule(f"memory://events-{uuid.uuid4().hex}", plugins=[("recorder", recorder)])
    app.task(lambda: 1, name="one")
    async with app.running():
        await app.result(await app.submit("one"), timeout=5)
        for _ in range(100):
            if "task.finished" in recorder.kinds:
                break
            await asyncio.sleep(0.01)
    assert {"leader.elected", "task.dispatched", "task.finished"} <= set(recorder.kinds)
    assert "leader.lost" in recorder.kinds


async def test_stopping_drains_running_tasks():
    app = DistributeSchedule(f"memory://drain-{uuid.uuid4().hex}")
    finished = []

    @app.task
    async def work():
        await asyncio.sleep(0.3)
        finished.append(1)

    await app.start()
    await app.submit("work")
    for _ in range(100):
        if app.engine.worker._running:
            break
        await asyncio.sleep(0.01)
    await app.stop()
    assert finished == [1], "the running task finished before the worker left"


async def test_a_task_never_starts_before_its_slot():
    app = DistributeSchedule(f"memory://ahead-{uuid.uuid4().hex}")
    app.task(lambda: None, name="noop")
    starts = []
    app.listeners.append(lambda e: starts.append((e.task_id, e.at)) if e.kind == "attempt.started" else None)
    async with app.running():
        await app.add_job("fast", every="0.2s", target="noop")
        for _ in range(300):
            if len(starts) >= 5:
                break
            await asyncio.sleep(0.01)
    assert len(starts) >= 5
    for task_id, at in starts:
        slot = int(task_id.rsplit("@", 1)[1]) / 1000
        assert slot <= at < slot + 0.5, (task_id, at)


async def test_a_cron_that_never_fires_is_refused(app):
    with pytest.raises(ValidationError, match="never fires"):
        await app.add_job("feb30", cron="0 0 30 2 *", target="add")
    assert await app.jobs() == []


async def test_finished_tasks_lists_what_ended_since_and_asks_by_creation_without_the_store_method(app, monkeypatch):
    task_id = await app.submit("boom")
    deadline = time.monotonic() + 10
    while (await app.task_detail(task_id)).task.state is not TaskState.FAILED:
        assert time.monotonic() < deadline, "the task never failed"
        await asyncio.sleep(0.02)
    failed = (await app.task_detail(task_id)).task
    assert [t.id for t in await app.finished_tasks(["failed", "timed_out"], since=failed.created_at)] == [task_id]
    assert await app.finished_tasks(["failed"], since=failed.finished_at + 1) == []
    with pytest.raises(ValidationError) as err:
        await app.finished_tasks(["pending"], since=0.0)
    assert err.value.field == "states"
    storage = await app.storage()
    monkeypatch.delattr(type(storage.tasks), "finished")  # a store without it: asked by creation
    assert not hasattr(storage.tasks, "finished")
    assert [t.id for t in await app.finished_tasks(["failed"], since=failed.created_at)] == [task_id]
    assert await app.finished_tasks(["failed"], since=failed.finished_at + 1) == []
    with pytest.raises(ValidationError) as err:
        await app.finished_tasks(["failed"], since=None)
    assert err.value.field == "since"


@pytest.fixture
async def idle_app(any_store_url):
    """An app on a store of its own, not started: no leader fires anything meanwhile."""
    app = DistributeSchedule(any_store_url)
    yield app
    await app.stop()


async def test_a_job_enabled_again_starts_from_now(idle_app):
    """A disabled job is stored but never fires; enabled again (a jobs file's `enabled =
    true`, `update_job`), it starts from the first slot after now, as a resumed job does.
    It kept the slot it stopped at, and its leader then ran (fire-all) or coalesced
    (fire-once) every slot that fell while it was disabled."""
    from distsched.model import build_job

    storage = await idle_app.storage()
    now = storage.clock()
    for name in ("by-file", "by-update"):
        await storage.jobs.add(build_job(name, every="1s", target="add", misfire="fire-all", enabled=False),
                               next_fire_at=now - 100)
    await idle_app.put_jobs([build_job("by-file", every="1s", target="add", misfire="fire-all")], replace=True)
    await idle_app.update_job("by-update", enabled=True)
    for name in ("by-file", "by-update"):
        state = await storage.jobs.state(name)
        assert now < state.next_fire_at <= storage.clock() + 1, (name, state)
    # Disabling, or any other change, keeps the progress.
    kept = (await storage.jobs.state("by-file")).next_fire_at
    await idle_app.update_job("by-file", timeout="5s")
    await idle_app.update_job("by-file", enabled=False)
    assert (await storage.jobs.state("by-file")).next_fire_at == kept


async def test_a_one_shot_resumed_after_its_time_does_not_run(idle_app):
    """`resume` continues from the first slot after now: a one-shot paused before its time
    and resumed after it has none, and its slot is dropped. It stayed due, and the leader
    ran it (misfire fire-once) at once."""
    from distsched.model import build_job

    storage = await idle_app.storage()
    past = storage.clock() - 100
    at = datetime.fromtimestamp(past, timezone.utc).isoformat()
    await storage.jobs.add(build_job("once", at=at, target="add"), next_fire_at=past)
    await storage.jobs.set_paused("once", True)
    await idle_app.resume_job("once")
    state = await storage.jobs.state("once")
    assert not state.paused and state.next_fire_at is None, state
    assert await storage.jobs.due(storage.clock() + 3600, 10) == []


@pytest.mark.parametrize("count", [1, 3])
async def test_submit_many_wants_one_task_id_per_spec(app, count):
    """Two specs with 1 or 3 task ids: refused, naming task_ids, and nothing is stored (a
    shorter list dropped tasks, a longer one returned ids never submitted)."""
    from distsched.model import TaskSpec

    specs = [TaskSpec(target="add", args=(i, i)) for i in range(2)]
    ids = [f"given-{count}-{i}" for i in range(count)]
    with pytest.raises(ValidationError, match="task_ids") as caught:
        await app.submit_many(specs, task_ids=ids)
    assert caught.value.field == "task_ids"
    assert not (await app.tasks()).tasks


async def test_an_empty_task_id_or_function_name_is_refused(app):
    """``task_id=""`` was taken as no id (a random one, so not idempotent); ``name=""`` as no
    name (the function's own)."""
    with pytest.raises(ValidationError, match="task_id") as caught:
        await app.submit("add", 1, 2, task_id="")
    assert caught.value.field == "task_id"
    assert not (await app.tasks()).tasks
    fresh = DistributeSchedule(f"memory://facade-{uuid.uuid4().hex}")

    def named():
        return 1

    with pytest.raises(ValidationError, match="name") as caught:
        fresh.task(named, name="")
    assert caught.value.field == "name"
    assert fresh.function_names() == []


async def test_a_function_registered_while_the_worker_runs_is_refused():
    """A running worker runs the functions registered when it started: a later registration
    is refused (it was listed by function_names() and its tasks failed UnknownFunction);
    after a stop it registers, and the next start runs it."""
    app = DistributeSchedule(f"memory://facade-{uuid.uuid4().hex}")

    def late():
        return "late"

    async with app.running():
        with pytest.raises(RuntimeError, match="while this app's worker is running"):
            app.task(late)
        assert "late" not in app.function_names()
    app.task(late)
    async with app.running():
        assert (await app.result(await app.submit("late"), timeout=5)).value == "late"
    async with app.running(worker=False):  # no worker here: nothing runs the old list
        app.task(late, name="later")
    assert "later" in app.function_names()


def test_the_task_decorators_take_the_name_positionally():
    """``@app.task("name")`` raised AttributeError ('str' object has no attribute
    '__name__'), and so did ``@distsched.task("name")`` (probe finding): both take the name
    as Celery's and arq's do; a name given both ways, or a decorator given something that is
    neither a function nor a name, is a TypeError saying how to call it."""
    import distsched
    from distsched.facade import functions_in_module

    app = DistributeSchedule(f"memory://facade-{uuid.uuid4().hex}")

    @app.task("hello")
    def greet():
        return "hi"

    @distsched.task("marked")
    def mark():
        return 1

    assert app.function_names() == ["hello"] and app.functions.function("hello") is greet
    module = type(distsched)("positional_names_mod")
    module.mark = mark
    assert functions_in_module(module) == {"marked": mark}
    for decorator, where in ((app.task, "app.task"), (distsched.task, "distsched.task")):
        with pytest.raises(TypeError, match=rf"{where}\(\) takes the task name once"):
            decorator("a", name="b")
        with pytest.raises(TypeError, match=rf"{where}\(\) takes a function or a task name, not int 3"):
            decorator(3)


def test_two_functions_under_one_task_name_are_refused_naming_both(tmp_path, monkeypatch):
    """The last of two functions registered under one name silently won (probe finding):
    a clear error now names the name and both functions (``module:qualname``), whether they
    are marked in one module or registered on one app; the same function registered again
    is fine."""
    import importlib
    import sys

    from distsched.facade import functions_in_module
    from distsched.model import DuplicateRegistration

    (tmp_path / "twice_marked_mod.py").write_text(
        "import distsched\n"
        "@distsched.task(name='x')\ndef first(): return 1\n"
        "@distsched.task(name='x')\ndef second(): return 2\n"
        "again = first\n")  # one function under two attribute names: one function
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "twice_marked_mod", raising=False)
    module = importlib.import_module("twice_marked_mod")
    with pytest.raises(DuplicateRegistration) as caught:
        functions_in_module(module)
    assert str(caught.value) == (
        "module 'twice_marked_mod': task name 'x' is given to two different functions, twice_marked_mod:first and "
        "twice_marked_mod:second: one name runs one function; register one of them under another name (name=...)")
    app = DistributeSchedule(f"memory://facade-{uuid.uuid4().hex}")
    with pytest.raises(DuplicateRegistration, match="'x' is given to two different functions"):
        app.register_module(module)

    def one():
        return 1

    def other():
        return 2

    app.task(one, name="y")
    app.task(one, name="y")  # the very same function: fine
    app.task("y")(one)
    with pytest.raises(DuplicateRegistration) as caught:
        app.task(other, name="y")
    message = str(caught.value)
    assert "task name 'y'" in message and f"{__name__}:{one.__qualname__}" in message
    assert f"{__name__}:{other.__qualname__}" in message
    assert app.functions.function("y") is one, "the first registration stays"


async def test_the_result_of_a_cancelled_task_says_it_was_cancelled(any_store_url):
    """``app.result`` on a cancelled task raised NotFound (probe finding), though the task
    exists: it raises TaskCancelled naming the task and the reason; a failed task's result
    is still returned (``ok`` False), an unknown task is still NotFound."""
    from distsched.model import TaskCancelled

    app = DistributeSchedule(any_store_url)

    @app.task
    def never():
        return 1

    try:
        task_id = await app.submit("never")  # no worker runs here: it waits
        await app.cancel_task(task_id, reason="not needed")
        with pytest.raises(TaskCancelled) as caught:
            await app.result(task_id, timeout=5)
        assert str(caught.value) == f"task {task_id!r} was cancelled (not needed): it has no result"
        assert caught.value.task_id == task_id and caught.value.reason == "not needed"
        assert caught.value.result is None
        with pytest.raises(NotFound):
            await app.result("no-such-task", timeout=5)
    finally:
        await app.stop()


async def test_the_result_of_a_skipped_slot_or_a_task_failed_before_dispatch_says_so(any_store_url):
    """``app.result`` raised NotFound (probe finding) for a skipped slot and for a task that
    failed before any dispatch (its balancer is not registered on the leader), though both
    exist: a skipped slot raises TaskSkipped naming the task, its job and the reason; the
    task that failed gives a failed TaskResult made from its record (``NoResult``, the
    reason). Real scheduler (and worker) on each store."""
    from distsched.model import TaskSkipped
    from distsched.testing.processes import wait_until_async

    app = DistributeSchedule(any_store_url)
    try:
        # A slot two hours in the past of a job whose misfire policy skips missed slots.
        await app.add_job("hourly", every="1h", target="t", misfire="skip", misfire_grace="0s")
        storage = await app.storage()
        missed = (storage.clock() // 3600 - 2) * 3600
        await storage.jobs.update(await storage.jobs.get("hourly"), next_fire_at=missed)
        await app.start(worker=False)

        async def skipped():
            return (await app.tasks(job="hourly", state="skipped")).tasks

        task = (await wait_until_async(skipped, 10, what="the missed slot recorded skipped"))[-1]
        with pytest.raises(TaskSkipped) as caught:
            await app.result(task.id, timeout=5)
        assert str(caught.value) == (f"task {task.id!r} of job 'hourly' was skipped (misfire: skipped): it never ran, "
                                     "so it has no result")
        assert (caught.value.task_id, caught.value.job, caught.value.reason) == (task.id, "hourly", "misfire: skipped")
        assert caught.value.slot == missed
    finally:
        await app.stop()

    class OnlyHere:
        @hookimpl
        def distsched_register_balancers(self, registry):
            registry.add("only-here", lambda: None)

    submitter = DistributeSchedule(any_store_url, plugins=[OnlyHere()])
    leader = DistributeSchedule(any_store_url)  # without that balancer
    try:
        task_id = await submitter.submit("t", balancer="only-here")
        await leader.start()
        result = await leader.result(task_id, timeout=10)
        assert not result.ok and result.outcome == "failed" and result.error_type == "NoResult"
        assert result.task_id == task_id and result.worker_id is None and not result.retryable
        assert result.error.startswith("cannot dispatch: ") and "balancer 'only-here' is not registered" in result.error
        assert result.finished_at == (await leader.get_task(task_id)).finished_at
    finally:
        await submitter.stop()
        await leader.stop()


async def test_the_result_of_a_task_its_workers_lost_too_often_after_a_retry_is_the_loss(any_store_url):
    """A task whose first attempt failed (retried), then whose next attempt's worker was lost
    once too often, gave that first attempt's result from ``app.result`` ("boom",
    retryable) - not why it ended. It gives the record's failure now: ``NoResult``, the
    reason naming the lost worker and the re-deliveries. The leader's writes are made here
    by the model's transitions and the store's fenced save, on each store."""
    from distsched.model import TaskResult

    app = DistributeSchedule(any_store_url)
    try:
        task_id = await app.submit("t", retry={"max_attempts": 3, "delay": "0s"})
        storage = await app.storage()
        fence = await (await app.engine.open_election()).acquire("n1")
        assert fence is not None
        task = await storage.tasks.get(task_id)
        now = storage.clock()
        task.start(task.dispatch("w1", now), now)
        task.finish(TaskResult(task_id=task_id, attempt_id=task.attempt_id, outcome="failed", started_at=now,
                               finished_at=now, worker_id="w1", error="boom", error_type="ValueError",
                               retryable=True), now)
        assert task.state is TaskState.RETRYING
        while not task.terminal:
            task.dispatch("w2", now)
            task.requeue("worker w2 lost (declared dead)", now)
        assert await storage.tasks.save(fence, [task]) == [True]
        result = await app.result(task_id, timeout=5)
        assert (result.outcome, result.error_type, result.worker_id, result.retryable) == (
            "failed", "NoResult", None, False)
        assert result.error == "worker w2 lost (declared dead); gave up after 10 re-deliveries"
    finally:
        await app.stop()


async def test_a_spec_changed_after_a_submit_is_stored_as_it_is_now(any_store_url):
    """The stores cache a spec's JSON by the spec object: a spec whose kwargs dict was changed
    after a first submit, submitted again, was stored with its old JSON on Redis and
    PostgreSQL (probe finding). Each task is stored with the arguments it was submitted with."""
    from distsched.model import TaskSpec

    app = DistributeSchedule(any_store_url)
    try:
        spec = TaskSpec(target="add", args=(1,), kwargs={"b": 1}, options={"o": "x"})
        before = await app.submit_many([spec, spec])
        spec.kwargs["b"] = 2
        after = await app.submit_many([spec])
        spec.kwargs["c"] = True
        spec.options["o"] = "y"
        last = await app.submit_many([spec])
        stored = [(await app.get_task(task_id)).spec for task_id in [*before, *after, *last]]
        assert [s.kwargs for s in stored] == [{"b": 1}, {"b": 1}, {"b": 2}, {"b": 2, "c": True}]
        assert [s.options for s in stored] == [{"o": "x"}] * 3 + [{"o": "y"}]
    finally:
        await app.stop()


# -- start() and stop() racing ------------------------------------------------------------


class _Gate:
    """Holds whoever awaits it until released, and says when someone is held."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.held.set()
        await self.release.wait()


class _GatedMemory:
    """memory:// under the ``gated://`` scheme, whose opening, worker registration or close
    waits at a gate - the moments a ``stop()`` or a ``start()`` from another task can meet."""

    def __init__(self, at: str) -> None:
        self.gate = _Gate()
        self.at = at
        self.closed = 0

    @hookimpl
    def distsched_register_storage(self, registry):
        registry.add("gated", schemes=("gated",), factory=self.open)

    @hookimpl
    def distsched_register_election(self, registry):
        from distsched_memory.election import MemoryElection

        registry.add("gated", schemes=("gated",),
                     factory=lambda url, *, storage, options: MemoryElection(storage, **options))

    async def open(self, url, *, options):
        from distsched_memory.storage import MemoryStorage

        if self.at == "open":
            await self.gate()
        storage = MemoryStorage.open(url.replace("gated://", "memory://", 1))
        register, close = storage.workers.register, storage.close

        async def gated_register(worker):
            if self.at == "register":
                await self.gate()
            return await register(worker)

        async def gated_close():
            self.closed += 1
            if self.at == "close":
                await self.gate()
            await close()

        storage.workers.register, storage.close = gated_register, gated_close
        return storage


def _app_tasks():
    """The engine's tasks still alive in this loop (scheduler, worker and their loops)."""
    return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("distsched-") and not t.done())


async def _stop_called(app, stopping):
    """Until ``app.stop()`` (the task ``stopping``) has told the runner to stop, or returned
    (polled, with a deadline)."""
    from distsched.testing.processes import wait_until_async

    async def told():
        return (app._stop is not None and app._stop.is_set()) or stopping.done()

    await wait_until_async(told, 5, what="stop() to reach the runner", interval=0.001)


@pytest.mark.parametrize("at", ["open", "register"])
async def test_a_stop_while_start_is_starting_interrupts_it(at):
    """Was (probe finding): a ``stop()`` from another task while ``start()`` opened the store
    left the scheduler and worker running after stop returned (start went on and returned);
    one while the worker registered made start return with nothing running. Now stop ends
    what had started, and start raises StartInterrupted; a later start runs normally."""
    from distsched.model import StartInterrupted

    plugin = _GatedMemory(at)
    name = f"race-{uuid.uuid4().hex[:8]}"
    app = DistributeSchedule(f"gated://{name}", plugins=[plugin])
    starting = asyncio.create_task(app.start())
    await plugin.gate.held.wait()  # start() is opening the store / registering the worker
    stopping = asyncio.create_task(app.stop())
    await _stop_called(app, stopping)
    plugin.gate.release.set()
    await stopping
    assert _app_tasks() == [], "nothing of the app runs once stop() returned"
    assert app.engine.storage is None and plugin.closed == 1 and not app.engine.worker_running
    with pytest.raises(StartInterrupted, match=r"^start\(\) was interrupted by stop\(\): nothing of this app runs$"):
        await starting
    assert _app_tasks() == []
    from distsched_memory.storage import MemoryStorage

    store = MemoryStorage.open(f"memory://{name}")  # the same data: memory:// shares it by name
    alive = [w.id for w in await store.workers.list_workers() if w.is_alive(store.clock(), 10.0)]
    assert alive == [], "a worker stopped while it registered leaves no record that looks alive"

    plugin.at = None  # no gate: the app starts and stops as before
    await app.start()
    try:
        assert "distsched-worker" in _app_tasks() and "distsched-scheduler" in _app_tasks()
        assert app.engine.worker.registered.is_set()
    finally:
        await app.stop()
    assert _app_tasks() == []


async def test_a_start_while_stop_is_stopping_waits_for_it_then_starts():
    """The other order: ``start()`` called while ``stop()`` closes the store waits for the
    stop to end (it did open the store being closed) and then starts afresh; a ``stop()``
    called meanwhile interrupts that start as well."""
    from distsched.model import StartInterrupted

    plugin = _GatedMemory("close")
    app = DistributeSchedule(f"gated://race-{uuid.uuid4().hex[:8]}", plugins=[plugin])
    await app.start()
    order = []
    stopping = asyncio.create_task(app.stop())
    await plugin.gate.held.wait()  # stop() is closing the store
    starting = asyncio.create_task(app.start())
    stopping.add_done_callback(lambda _: order.append("stopped"))
    starting.add_done_callback(lambda _: order.append("started"))
    plugin.at = None
    plugin.gate.release.set()
    await starting
    assert order == ["stopped", "started"] and stopping.done()
    try:
        assert "distsched-worker" in _app_tasks() and app.engine.storage is not None
        # a stop() called while a start() waits for an earlier stop interrupts it too
        plugin.at, plugin.gate = "close", _Gate()
        first = asyncio.create_task(app.stop())
        await plugin.gate.held.wait()
        again = asyncio.create_task(app.start())  # tasks start in the order they were made:
        second = asyncio.create_task(app.stop())  # this stop() comes after that start()
        plugin.gate.release.set()
        await first
        await second
        with pytest.raises(StartInterrupted):
            await again
        assert _app_tasks() == [] and app.engine.storage is None
    finally:
        await app.stop()


async def test_calls_that_open_the_store_at_the_same_time_share_one() -> None:
    """Two first calls at once (``app.storage()``, a job or task call, a server beside the
    engine) each opened a store: one was kept, the others leaked, never closed."""
    opened = []
    gate = asyncio.Event()

    class _Slow:
        @hookimpl
        def distsched_register_storage(self, registry):
            from distsched_memory.storage import MemoryStorage

            async def open_(url, *, options):
                await gate.wait()
                store = MemoryStorage.open("memory://")
                opened.append(store)
                return store

            registry.add("slow", schemes=("slow",), factory=open_)

    app = DistributeSchedule("slow://x", plugins=[("slow", _Slow())])
    first = asyncio.create_task(app.storage())
    second = asyncio.create_task(app.storage())
    await asyncio.sleep(0)  # both are waiting: one in the factory, one for it
    gate.set()
    assert await first is await second
    assert len(opened) == 1
    await app.stop()


async def test_a_stop_while_the_store_is_being_opened_closes_it() -> None:
    """``app.storage()`` called outside start() and a ``stop()`` during its open: the stop
    found no store yet and closed nothing, then the open finished and kept its store - left
    open after the app had stopped. The stop waits for the open and closes that store."""
    entered, gate = asyncio.Event(), asyncio.Event()
    closed: list[object] = []

    class _Slow:
        @hookimpl
        def distsched_register_storage(self, registry):
            from distsched_memory.storage import MemoryStorage

            async def open_(url, *, options):
                entered.set()
                await gate.wait()
                store = MemoryStorage.open("memory://")

                async def close() -> None:
                    closed.append(store)

                store.close = close  # type: ignore[method-assign]
                return store

            registry.add("slow", schemes=("slow",), factory=open_)

    app = DistributeSchedule("slow://x", plugins=[("slow", _Slow())])
    opening = asyncio.create_task(app.storage())
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0)  # the stop runs up to its wait
    gate.set()
    store = await opening
    await asyncio.wait_for(stopping, 5)
    assert closed == [store], "the store opened during the stop is closed by it"
    assert app.engine.storage is None
