"""The public API: the seed's ``DistributeSchedule`` facade.

>>> app = DistributeSchedule()                      # memory:// (or $DISTSCHED_STORAGE)
>>> @app.task
... def hello(name): return f"hello {name}"
>>> async def main():
...     async with app.running():                  # scheduler + worker in this process
...         await app.add_job("greet", every="10s", target="hello", args=["world"])
...         task_id = await app.submit("hello", "you")
...         print((await app.result(task_id, timeout=5)).value)

Job and task calls only need the store: a process that merely adds jobs or submits tasks to
a shared Redis runs no scheduler and no worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import attrs

from .app.engine import Engine
from .config import EngineConfig, WorkerConfig, default_storage_url
from .history import check_finished, check_since, in_words, newest_finished, scheduled_for
from .model import (
    AlreadyExists,
    NotFound,
    RetryPolicy,
    Slot,
    StartInterrupted,
    Task,
    TaskCancelled,
    TaskConfig,
    TaskResult,
    TaskSkipped,
    TaskSpec,
    TaskState,
    ValidationError,
    VersionConflict,
)
from .model.build import (
    build_job,
    build_retry,
    check_task_id,
    ended_words,
    first_fire,
    job_fields,
    job_warnings,
    missed_words,
    one_shot_missed,
)
from .model.due import due_at, past_at
from .model.errors import DistschedError
from .model.sync import JobChange, SyncPlan, job_changes, plan_sync
from .model.times import iso_utc
from .model.trigger import AtTrigger, parse_duration
from .model.trusted import unchecked
from .model.words import names_listed
from .plugin.manager import PluginManager
from .plugin.registry import APP, FunctionRegistry
from .ports import JobPage, Quarantined, StorageBackend, TaskDetail, TaskPage, ThroughputBucket
from .status import (
    JOBS_COUNTED,
    JobCount,
    Status,
    held_status,
    job_backlog,
    job_count,
    leader_claimed_by,
    leader_status,
    parked_status,
    scheduler_status,
    signing_state,
    worker_status,
)
from .tasks import decorator_arguments, duplicate_function, marked_functions

#: How many times a sync retries one job when a concurrent write got in its way.
SYNC_ATTEMPTS = 5
#: The jobs' logger: a jobs file's one-shot whose time passed, stored as fired.
log = logging.getLogger("distsched.jobs")
#: What start() raises when a stop() interrupted it.
_INTERRUPTED = "start() was interrupted by stop(): nothing of this app runs"


class DistributeSchedule:
    """Register functions, define jobs, submit tasks, and run scheduler and worker."""

    def __init__(
        self,
        storage: str | None = None,
        *,
        plugins: Iterable[Any] = (),
        entry_points: bool = True,
        disabled_plugins: Iterable[str] | None = None,
        allow_replace: Iterable[str] | None = None,
        worker: WorkerConfig | None = None,
        **engine_options: Any,
    ) -> None:
        self.config = EngineConfig(storage=storage or default_storage_url(), **engine_options)
        self.plugins = PluginManager(entry_points=entry_points, plugins=plugins, disabled=disabled_plugins,
                                     allow_replace=allow_replace)
        self.functions = FunctionRegistry()
        self.worker_config = worker or WorkerConfig()
        self.listeners: list[Callable[[Any], Any]] = []
        self.engine = Engine(self.config, plugins=self.plugins, functions=self.functions, listeners=self.listeners)
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        #: Set while a stop() is under way: a start() or another stop() waits for it.
        self._stopping: asyncio.Future[None] | None = None
        #: How many times stop() was called: a start() a stop interrupts raises StartInterrupted.
        self._stops = 0
        #: The past one-shots of a jobs file already said (name, time): each is said once.
        self._missed_said: set[tuple[str, float]] = set()

    @classmethod
    def of_engine(cls, engine: Engine) -> DistributeSchedule:
        """A facade over an engine built elsewhere - for a plugin that serves beside it
        (``distsched_serve`` hands it the engine): the same store (an embedded ``memory://``
        one included), plugins, functions and configuration. Its job and task calls work at
        once; it never starts or stops that engine itself (``stop``/``running`` are for the
        facade that built the engine)."""
        app = cls.__new__(cls)
        app.config = engine.config
        app.plugins = engine.plugins
        app.functions = engine.functions
        app.worker_config = WorkerConfig()
        app.listeners = []
        app.engine = engine
        app._stop = None
        app._runner = None
        app._stopping = None
        app._stops = 0
        app._missed_said = set()
        return app

    # -- functions --------------------------------------------------------------------
    def task(self, func: Callable[..., Any] | str | None = None, *, name: str | None = None) -> Any:
        """Decorator: let the ``local`` executor run ``func`` under ``name`` (default __name__):
        ``@app.task``, ``@app.task("name")`` or ``@app.task(name="name")``. Registering the
        same function again is a no-op; another function under a taken name raises
        DuplicateRegistration naming both (``module:qualname``)."""
        func, name = decorator_arguments("app.task", func, name)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValidationError("name", f"must be a non-empty string, not {name!r}")

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            self._check_not_serving(name or f.__name__)
            self.functions.current = APP
            self.functions.add(name or f.__name__, f)
            return f

        return register(func) if func is not None else register

    def register_module(self, module: ModuleType) -> list[str]:
        """Register the functions of ``module`` marked with ``@distsched.task`` and those
        registered with ``@app.task`` on a DistributeSchedule defined at its top level."""
        found = functions_in_module(module)
        if found:
            self._check_not_serving(", ".join(sorted(found)))
        for task_name, func in found.items():
            self.functions.add(task_name, func)
        return sorted(found)

    def _check_not_serving(self, names: str) -> None:
        """Refuse a registration while a worker of this process runs: it offers the functions
        registered when it started (its record tells the leader which), so a later one would
        be listed here but fail its tasks with UnknownFunction."""
        if self.engine.worker_running:
            raise RuntimeError(f"cannot register {names!r} while this app's worker is running: a worker runs the "
                               "functions registered before it started; register them before start() (or stop, "
                               "register, and start again)")

    # -- store ------------------------------------------------------------------------
    async def storage(self) -> StorageBackend:
        return await self.engine.open()

    # -- checks -----------------------------------------------------------------------
    def check_spec(self, spec: TaskSpec, where: str = "task") -> None:
        """Refuse a spec this deployment could never run, before anything is stored: its
        executor or balancer is not registered (UnknownName), or its executor's validator
        refuses it (ValidationError naming ``where``, the field and the reason - e.g. an
        ``http`` target that is not an http(s) URL). Called by every facade method that adds
        a job or submits a task, and by the CLI."""
        self.plugins.executors.validate(spec, where=where)
        self._check_balancer(spec, where=where)

    def _check_balancer(self, spec: TaskSpec, *, where: str) -> None:
        self.plugins.balancers.get(spec.balancer, where=where)

    def check_jobs(self, configs: Iterable[TaskConfig], *, functions: bool = False) -> list[str]:
        """Every problem of these jobs, one line each (``job 'x': field: reason``), without
        raising: what :meth:`check_spec` refuses and, with ``functions=True``, a ``local``
        target that is not registered in this process (a worker's check)."""
        problems: list[str] = []
        registered = self.plugins.functions.merged(self.functions) if functions else None
        for config in configs:
            where = f"job {config.name!r}"
            for check in (self.plugins.executors.validate, self._check_balancer):
                try:
                    check(config.spec, where=where)
                except DistschedError as exc:
                    problems.append(str(exc))
            if registered is not None and config.spec.executor == "local" and config.spec.target not in registered:
                problems.append(f"{where}: target: function {config.spec.target!r} is not registered (registered: "
                                f"{', '.join(registered.names()) or 'none'}; list its module in [worker] imports)")
        return problems

    def check_worker_keys(self, settings: Mapping[str, Any], *, where: str = "worker") -> None:
        """Refuse a ``[worker]`` key that is neither a worker option nor a setting a loaded
        executor declares (a typo: ``concurency``, ``http_alow``), with a did-you-mean: a
        ValidationError naming ``where`` and the keys. A worker checks it again at start."""
        from .jobs import WORKER_KEYS, WORKER_OPTION_KEYS

        self.plugins.executors.unknown_settings(settings, where=where, options=WORKER_KEYS + WORKER_OPTION_KEYS)

    def check_worker_settings(self, settings: Mapping[str, Any], *, where: str = "worker",
                              sources: Mapping[str, str] | None = None) -> None:
        """Refuse a ``[worker]`` table as a worker refuses it at start: a key
        :meth:`check_worker_keys` refuses, or a value a loaded executor's settings check
        refuses (an ``http_allow`` entry that is no host or URL...) - a ValidationError naming
        ``where``, the setting and the reason. For the commands that store a jobs file's jobs
        before a worker reads its ``[worker]`` table (``run``, ``jobs sync``, ``scheduler
        --jobs``): nothing is written for a table the worker would refuse. A key no executor
        can judge (one that does not declare its settings) is a WARNING, once: this app's
        worker does not check settings it accepted again at its start
        (:meth:`Engine.check_worker_settings <distsched.app.engine.Engine.check_worker_settings>`).
        ``sources`` (key -> where it came from: a config file, a jobs file) names each key's
        own source in the warning or the error instead of ``where``."""
        self.engine.check_worker_settings(settings, where=where, sources=sources)

    def function_names(self) -> list[str]:
        """The functions the ``local`` executor of this process may run (plugins' and the app's)."""
        return self.plugins.functions.merged(self.functions).names()

    def _check_many(self, specs: Iterable[tuple[TaskSpec, str]]) -> None:
        for spec, where in specs:
            self.check_spec(spec, where)

    # -- jobs -------------------------------------------------------------------------
    async def add_job(self, name: str, *, replace: bool = False, **fields: Any) -> TaskConfig:
        """Define a job. Exactly one of ``cron=``, ``every=``, ``at=``; see :func:`distsched.model.build_job`
        for every field. ``replace=True`` updates an existing job of that name. A ``timezone``
        its trigger does not read (``every`` counts from the UNIX epoch in UTC) is a WARNING."""
        config = build_job(name, **fields)
        for said in job_warnings(config):
            log.warning("%s", said)
        return await self.put_job(config, replace=replace)

    async def put_job(self, config: TaskConfig, *, replace: bool = False) -> TaskConfig:
        """Store ``config``; with ``replace``, update an existing job (keeping its progress
        unless its trigger changed). A one-shot ``at`` whose time is more than its misfire
        grace in the past is refused (ValidationError naming ``at``); :meth:`put_jobs` and
        :meth:`sync_jobs`, which store a jobs file, store it as fired instead."""
        self.check_spec(config.spec, f"job {config.name!r}")
        return (await self._put_job(config, replace=replace, missed=False)).stored

    def _first(self, config: TaskConfig, now: float, *, missed: bool) -> float | None:
        """``first_fire(config, now)``; with ``missed`` (a jobs file's job), a one-shot whose
        time is beyond its misfire grace is not refused but has no slot (stored as a one-shot
        that already fired: listed, never fires), said once as a WARNING naming it."""
        if missed and one_shot_missed(config, now):
            self._say_missed(config)
        first = first_fire(config, now, missed=missed)
        end = getattr(config.trigger, "end", None)
        if first is None and missed and end is not None and (config.name, end) not in self._missed_said:
            self._missed_said.add((config.name, end))  # a sync's plan, then its write: one line
            log.warning("job %r: end_date: %s; stored as ended (listed, never fires)", config.name,
                        ended_words(config, now))
        return first

    def _say_missed(self, config: TaskConfig) -> None:
        assert isinstance(config.trigger, AtTrigger)
        key = (config.name, config.trigger.at)
        if key not in self._missed_said:  # a sync's plan, then its write: one line
            self._missed_said.add(key)
            log.warning("job %r: at: %s: it will not run; a jobs file's one-shot in the past is stored as one "
                        "that already fired (listed, never fires) and the other jobs as usual", config.name,
                        missed_words(config))

    async def _put_job(self, config: TaskConfig, *, replace: bool, missed: bool = True) -> _Put:
        """:meth:`put_job` (its spec checked), saying what it wrote; ``missed``: a past
        one-shot is stored as fired (:meth:`_first`), not refused."""
        storage = await self.storage()
        now = storage.clock()
        try:
            current = await storage.jobs.get(config.name)
        except NotFound:
            return _Put(await storage.jobs.add(config, next_fire_at=self._first(config, now, missed=missed)), None)
        if not replace:
            raise AlreadyExists(f"job {config.name!r} already exists (use replace=True to update it)")
        if attrs.evolve(current, version=0) == attrs.evolve(config, version=0):
            return _Put(current, current, wrote=False)
        state = await storage.jobs.state(config.name)
        nxt = state.next_fire_at if _keeps_progress(current, config) else self._first(config, now, missed=missed)
        return _Put(await storage.jobs.update(attrs.evolve(config, version=current.version), next_fire_at=nxt), current)

    async def put_jobs(self, configs: Sequence[TaskConfig], *, replace: bool = False,
                       missed: bool = True) -> list[TaskConfig]:
        """Store many jobs at once: the new ones in bulk (one store call per few hundred, each
        distinct schedule computed once), then, with ``replace``, the existing ones updated
        one by one as :meth:`put_job` does. Without ``replace`` it is all or nothing: when any
        name already exists nothing is stored and AlreadyExists names every one of them
        (``names``). Returns the stored jobs in the order given.

        The jobs of a file (``distsched run FILE``, the re-sync after a data loss): a one-shot
        ``at`` whose time is more than its misfire grace in the past does not stop the others;
        it is stored as a one-shot that already fired (listed, never fires) and said once as a
        WARNING naming it. ``missed=False`` refuses it instead, as :meth:`put_job` does."""
        return [put.stored for put in await self._put_jobs(configs, replace=replace, missed=missed)]

    async def _put_jobs(self, configs: Sequence[TaskConfig], *, replace: bool, attempts: int = 1,
                        missed: bool = True) -> list[_Put]:
        """:meth:`put_jobs`, saying what it wrote for each job; an existing job is updated
        with up to ``attempts`` tries when a concurrent write gets in the way (:meth:`_converge`)."""
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValidationError("name", f"given more than once: {', '.join(twice[:5])}")
        self._check_many((c.spec, f"job {c.name!r}") for c in configs)
        storage = await self.storage()
        now = storage.clock()
        firsts: dict[Any, float | None] = {}
        items: list[tuple[TaskConfig, float | None]] = []
        for config in configs:
            if isinstance(config.trigger, AtTrigger):  # depends on the misfire grace too
                if not one_shot_missed(config, now):
                    items.append((config, first_fire(config, now)))
                elif replace and await self._keeps_stored_progress(storage, config):
                    # a stored one-shot whose time is unchanged keeps its progress (fired)
                    items.append((config, None))  # stored: add_many leaves it, _put_job updates it
                else:
                    # Past, for a new job or a new time: refused before anything is written,
                    # or (a jobs file's) stored with no slot, as a one-shot that already fired.
                    items.append((config, self._first(config, now, missed=missed)))
                continue
            if config.trigger not in firsts:
                firsts[config.trigger] = self._first(config, now, missed=missed)
            items.append((config, firsts[config.trigger]))
        if not replace:
            try:
                return [_Put(s, None) for s in await storage.jobs.add_many(items, all_or_nothing=True) if s is not None]
            except AlreadyExists as exc:
                existing_names = exc.names
                raise AlreadyExists(f"{len(existing_names)} job(s) already exist: {', '.join(map(repr, existing_names))} (use "
                                    f"replace=True to update them); none of the {len(configs)} was stored",
                                    names=existing_names) from None
        stored = await storage.jobs.add_many(items)
        return [_Put(s, None) if s is not None else await self._converge(c, attempts, missed=missed)
                for c, s in zip(configs, stored)]

    @staticmethod
    async def _keeps_stored_progress(storage: Any, config: TaskConfig) -> bool:
        try:
            return _keeps_progress(await storage.jobs.get(config.name), config)
        except NotFound:
            return False

    async def sync_jobs(self, configs: Sequence[TaskConfig], *, prune: bool = False,
                        dry_run: bool = False) -> SyncPlan:
        """Make the stored jobs equal ``configs`` (a jobs file as the source of truth): add the
        new ones, update the changed ones (a job whose trigger is unchanged keeps its
        progress) and, with ``prune``, remove the stored jobs not in ``configs``. Returns the
        :class:`~distsched.model.sync.SyncPlan` (what changes, field by field); ``dry_run``
        computes it and changes nothing. Every name is checked before anything is written.
        A one-shot ``at`` whose time is more than its misfire grace in the past does not
        stop the others: it is stored as a one-shot that already fired (listed, never fires)
        and said once as a WARNING naming it (:meth:`put_jobs`); the dry run says it too.

        The plan returned once applied says what this sync wrote: when another node syncs at
        the same moment (schedulers started together with one file), a job it had already
        made as ``configs`` want is not counted as added, updated or removed here but named
        in ``concurrent`` (and ``unchanged``); one it wrote otherwise is updated from what it
        wrote, the changes shown against that."""
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValidationError("name", f"given more than once: {', '.join(twice[:5])}")
        self._check_many((c.spec, f"job {c.name!r}") for c in configs)
        stored = await self.jobs()
        plan = plan_sync(stored, configs, prune=prune)
        # What the real sync would refuse, the dry run refuses too: the first slot of every
        # new job, of every job whose trigger changes and of every job enabled again (a
        # cron expression that never fires); a one-shot in the past is said. Any other job
        # keeps its progress.
        current = {c.name: c for c in stored}
        now = (await self.storage()).clock()
        for config in configs:
            old = current.get(config.name)
            if old is None or not _keeps_progress(old, config):
                self._first(config, now, missed=True)
        if dry_run:
            return plan
        changed = set(plan.added) | {c.name for c in plan.updated}
        wanted = [c for c in configs if c.name in changed]
        # Another node may sync at the same moment (schedulers started together with the
        # same file): each job is converged on its own - one it already made equal is left
        # as it is - and the plan returned says what this sync wrote.
        puts = await self._put_jobs(wanted, replace=True, attempts=SYNC_ATTEMPTS) if wanted else []
        planned = {c.name: c for c in plan.updated}
        added: list[str] = []
        updated: list[JobChange] = []
        concurrent: list[str] = []
        for config, put in zip(wanted, puts):
            if not put.wrote:
                concurrent.append(config.name)
            elif put.old is None:
                added.append(config.name)
            elif config.name in planned and put.old.version == current[config.name].version:
                updated.append(planned[config.name])
            else:  # it replaced what another node wrote meanwhile: the changes from that
                updated.append(JobChange(name=config.name, changes=job_changes(put.old, config)))
        removed: list[str] = []
        for name in plan.removed:
            (removed if await self.remove_job(name) else concurrent).append(name)
        kept_as_is = tuple(n for n in concurrent if n not in plan.removed)
        return attrs.evolve(plan, added=tuple(added), updated=tuple(updated), removed=tuple(removed),
                            unchanged=plan.unchanged + kept_as_is, concurrent=tuple(concurrent), applied=True)

    async def _converge(self, config: TaskConfig, attempts: int = SYNC_ATTEMPTS, *, missed: bool = True) -> _Put:
        """``_put_job(config, replace=True)``, again (up to ``attempts`` tries) when a
        concurrent write got in the way."""
        for attempt in range(1, attempts + 1):
            try:
                return await self._put_job(config, replace=True, missed=missed)
            except (VersionConflict, AlreadyExists):
                if attempt >= attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def update_job(self, name: str, **changes: Any) -> TaskConfig:
        """Change some fields of a job (optimistic: a concurrent change raises VersionConflict)."""
        storage = await self.storage()
        current = await storage.jobs.get(name)
        fields = job_fields(current)
        fields.update(changes)
        config = attrs.evolve(build_job(name, **fields), version=current.version)
        self.check_spec(config.spec, f"job {name!r}")
        state = await storage.jobs.state(name)
        nxt = state.next_fire_at if _keeps_progress(current, config) else first_fire(config, storage.clock())
        return await storage.jobs.update(config, next_fire_at=nxt)

    async def get_job(self, name: str) -> TaskConfig:
        return await (await self.storage()).jobs.get(name)

    async def jobs(self) -> list[TaskConfig]:
        """Every job, by name (reads them all: :meth:`jobs_page` reads one page)."""
        return await (await self.storage()).jobs.list_jobs()

    async def jobs_page(self, *, after: str | None = None, limit: int = 50) -> JobPage:
        """Jobs by name with their schedule state and last outcome, ``limit`` after ``after``."""
        return await (await self.storage()).jobs.page(after, limit)

    async def held_slots(self, jobs: Sequence[str] | None = None) -> dict[str, tuple[int, float]] | None:
        """A serial job's backlog: per job with slots waiting their turn (held by the store
        out of the ready queue while the job has ``max_instances`` live), how many and the
        earliest one's slot time (``not_before``); ``jobs`` asks only those, None every job.
        None when the store cannot count them (no ``TaskRepository.held_slots``). For the
        operator's commands and pages: the leader never reads it."""
        held = getattr((await self.storage()).tasks, "held_slots", None)  # optional (TaskRepository)
        if held is None:
            return None
        return dict(await held(None if jobs is None else list(jobs)))

    async def job_backlogs(self, configs: Sequence[TaskConfig]) -> dict[str, dict[str, Any] | None]:
        """Each job's backlog (:func:`distsched.status.job_backlog`: how many of a serial job's
        slots wait their turn, of its ``max_backlog``, ``full``, in words), by name; None for
        a job that is not serial and has none waiting. One store call (:meth:`held_slots`)."""
        held = await self.held_slots([c.name for c in configs]) if configs else {}
        return {c.name: job_backlog(c.overlap.mode, c.overlap.max_instances, c.overlap.max_backlog,
                                    None if held is None else held.get(c.name, (0, 0.0))[0]) for c in configs}

    async def remove_job(self, name: str) -> bool:
        return await (await self.storage()).jobs.remove(name)

    async def pause_job(self, name: str) -> bool:
        """Pause job ``name``: its slots until it is resumed are neither run nor recorded.
        False when it was paused already (nothing changed); NotFound when there is no such job."""
        storage = await self.storage()
        if (await storage.jobs.state(name)).paused:
            return False
        await storage.jobs.set_paused(name, True)
        return True

    async def resume_job(self, name: str) -> bool:
        """Resume a paused job from the next slot after now (the slots while it was paused are
        neither run nor recorded). False when it is not paused: nothing changes - its next
        slot and the slots it missed while no leader ran stay, for its misfire policy.
        NotFound when there is no such job."""
        storage = await self.storage()
        config = await storage.jobs.get(name)
        if not (await storage.jobs.state(name)).paused:
            return False
        nxt = config.next_fire_after(storage.clock())
        if nxt is None:
            # No slot after now (a one-shot whose time passed while paused): the one left
            # pending is dropped while the job is still paused, or resuming would run it.
            await storage.jobs.update(config, next_fire_at=None)
        await storage.jobs.set_paused(name, False, next_fire_at=nxt)
        return True

    async def trigger_job(self, name: str) -> str:
        """Run a job once now, outside its schedule; returns the task id."""
        storage = await self.storage()
        config = await storage.jobs.get(name)
        now = storage.clock()
        task = Task(id=f"{name}@manual-{uuid.uuid4().hex[:12]}", spec=config.spec, job=name, created_at=now)
        await storage.tasks.submit([task])
        return task.id

    async def explain(self, name: str, count: int = 5, *, after: float | None = None) -> list[Slot]:
        config = await self.get_job(name)
        return config.upcoming(time.time() if after is None else after, count)

    # -- tasks ------------------------------------------------------------------------
    async def submit(
        self,
        target: str,
        *args: Any,
        executor: str = "local",
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        timeout: float | str = 60.0,
        retry: RetryPolicy | dict[str, Any] | None = None,
        balancer: str = "least-tasks",
        task_id: str | None = None,
        delay: float | str | timedelta | None = None,
        at: datetime | str | float | None = None,
    ) -> str:
        """Submit a one-off task; returns its id (a given ``task_id`` makes it idempotent).

        It runs at once, or later: ``delay`` (seconds, ``"10s"``, ``"5m"``, a ``timedelta``)
        or ``at`` (an aware ``datetime``, an ISO-8601 string with an offset, or epoch
        seconds; a naive time is refused; one already past is due at once - a WARNING when it
        is more than a minute past, ``PAST_GRACE``) - one of them, at
        most 366 days ahead (:func:`distsched.model.due.due_at`). The task is stored at once
        (its id exists, ``get_task``/``cancel_task`` work) as ``pending`` with that time as
        its ``not_before``: the leader dispatches it when it is due and no worker starts it
        before."""
        spec = TaskSpec(executor=executor, target=target, args=args, kwargs=kwargs or {}, options=options or {},
                        timeout=parse_duration(timeout, "timeout"), retry=build_retry(retry), balancer=balancer)
        for field, value in (("delay", delay), ("at", at)):
            if isinstance(value, (list, tuple)):  # submit_many's per-spec form
                raise ValidationError(field, "must be one time, not a list (submit_many takes one per spec)")
        return (await self.submit_many([spec], task_ids=None if task_id is None else [task_id],
                                       delay=delay, at=at))[0]

    async def submit_many(self, specs: Sequence[TaskSpec], *, task_ids: Sequence[str] | None = None,
                          delay: Any = None, at: Any = None) -> list[str]:
        """Submit many one-off tasks in one store round trip; returns their ids.

        ``delay`` / ``at`` as :meth:`submit` takes them, for every task; or a list (or
        tuple) of them, one per spec (None: that one at once) - ``delay=[0, "10s", None]``.
        A bad one is refused naming it (``delay[1]``) and nothing is stored."""
        specs = list(specs)
        self._check_many((spec, "task") for spec in specs)
        ids = list(task_ids) if task_ids is not None else [uuid.uuid4().hex for _ in specs]
        if task_ids is not None:
            if len(ids) != len(specs):
                raise ValidationError("task_ids", f"{len(ids)} task ids for {len(specs)} specs: give one per spec")
            for task_id in ids:
                check_task_id(task_id)
        delays, ats = _per_spec(delay, "delay", len(specs)), _per_spec(at, "at", len(specs))
        storage = await self.storage()
        now = storage.clock()
        per_spec = isinstance(delay, (list, tuple)) or isinstance(at, (list, tuple))
        due = [due_at(now, delay=d, at=a, field_suffix=f"[{i}]" if per_spec else "")
               for i, (d, a) in enumerate(zip(delays, ats))]
        # A one-off task's balance key defaults to its id (the balancers fall back to it).
        tasks = [Task(id=i, spec=s, created_at=now) if d is None else Task(id=i, spec=s, created_at=now, not_before=d)
                 for i, s, d in zip(ids, specs, due)]
        await storage.tasks.submit(tasks)
        if at is not None:  # a time long past is due at once: said (a WARNING naming the task), not refused
            for i, (task_id, when) in enumerate(zip(ids, ats)):
                said = past_at(now, when, f"[{i}]" if per_spec else "")
                if said:
                    log.warning("task %r: %s", task_id, said)
        return ids

    async def get_task(self, task_id: str) -> Task:
        task = await (await self.storage()).tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} does not exist")
        return task

    async def tasks(
        self,
        *,
        job: str | None = None,
        state: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> TaskPage:
        """Tasks newest first (by creation), filtered; pass ``page.next_cursor`` as ``cursor``
        for the next page. ``since`` is a UNIX time (store clock). See ``TaskRepository.query``."""
        storage = await self.storage()
        return await storage.tasks.query(job=job, state=state, worker=worker, since=check_since(since),
                                         cursor=cursor, limit=limit)

    async def finished_tasks(self, states: Sequence[str], *, since: float, limit: int = 20) -> list[Task]:
        """Tasks that ended in one of ``states`` (terminal states) at or after ``since`` (a
        UNIX time, store clock), newest finish first - whenever they were created. A store
        without ``tasks.finished`` (see ``TaskRepository.query``) is asked by creation
        instead: a task created before ``since`` is then missed."""
        storage = await self.storage()
        finished = getattr(storage.tasks, "finished", None)
        if finished is not None:
            return list(await finished(list(states), since, limit))
        names, since = check_finished(list(states), since)
        out: list[Task] = []
        for state in names:
            page = await storage.tasks.query(state=state, since=since, limit=limit)
            out += [t for t in page.tasks if t.finished_at is not None and t.finished_at >= since]
        return newest_finished(out, limit)

    async def task_detail(self, task_id: str) -> TaskDetail:
        """A task with every attempt (worker, timings, outcome, result or error, retry time).
        Raises NotFound. (Not ``app.task``: that name is the function decorator.)"""
        detail = await (await self.storage()).tasks.detail(task_id)
        if detail is None:
            raise NotFound(f"task {task_id!r} does not exist")
        return detail

    async def job_history(self, name: str, *, cursor: str | None = None, limit: int = 50) -> TaskPage:
        """The tasks of job ``name``, newest first, paginated (the job may have been removed)."""
        return await self.tasks(job=name, cursor=cursor, limit=limit)

    async def cancel_task(self, task_id: str, reason: str = "cancelled by user") -> Task:
        """Cancel a task that has not finished: it will not run (again). An attempt already
        running is stopped by its worker within one heartbeat (a sync function's thread is
        abandoned); any late result is dropped. Raises NotFound, or
        InvalidTransition when the task already finished. Returns the cancelled task."""
        storage = await self.storage()
        for _ in range(20):  # optimistic: re-read when the leader changed it meanwhile
            task = await storage.tasks.get(task_id)
            if task is None:
                raise NotFound(f"task {task_id!r} does not exist")
            task.cancel(reason, storage.clock())  # raises InvalidTransition when it is final
            if await storage.tasks.cancel(task):
                return task
        raise VersionConflict(f"task {task_id!r} kept changing; try again")

    async def retry_task(self, task_id: str) -> str:
        """Run a finished task - in any final state: succeeded, failed, timed out, cancelled
        or skipped - again as a new task (same call; a job's task stays with its job);
        returns the new task's id. Raises NotFound, or ValidationError when the task has not
        finished.

        The new task's spec says ``retry_of`` the old id, and its id is the old one's with
        ``.retry-N`` after it (N: 1 for its first retry, then 2...), so :meth:`retried_as`
        finds it from the old task with no index (an id that would pass 256 characters
        becomes ``retry-<hash of the old id>.retry-N``, a job's after ``<job>@``). Two retries
        of one task at once each get their own N (a store keeps the first task of an id)."""
        storage = await self.storage()
        task = await storage.tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} does not exist")
        if not task.terminal:
            raise ValidationError("task", f"task {task_id!r} is {task.state.value}: only a finished task can be "
                                          "retried (cancel it first)")
        # as stored, with the link (no validator runs again: the call is the one that ran)
        spec = unchecked(TaskSpec, {**{f.name: getattr(task.spec, f.name) for f in attrs.fields(TaskSpec)},
                                    "retry_of": task.id})
        for n in range(1, RETRIES_LINKED + 1):
            new_id = retry_id(task, n)
            if (await storage.tasks.submit([Task(id=new_id, spec=spec, job=task.job, created_at=storage.clock())]))[0]:
                return new_id
        # past RETRIES_LINKED retries of one task: a random id (retried_as lists the first ones)
        new_id = f"{task.job}@retry-{uuid.uuid4().hex[:12]}" if task.job else uuid.uuid4().hex
        await storage.tasks.submit([Task(id=new_id, spec=spec, job=task.job, created_at=storage.clock())])
        return new_id

    async def retried_as(self, task: Task | str) -> list[str]:
        """The ids of the retries of a task (or of the task of that id: NotFound) that
        :meth:`retry_task` made, oldest first: the tasks ``<id>.retry-1``, ``-2``... whose spec
        says ``retry_of`` it, up to the first missing one (a retry the store's retention
        removed ends the list) and at most ``RETRIES_LINKED``. Retries made before the link
        existed (random ids) are not found. One store read for the first ten."""
        if isinstance(task, str):
            task = await self.get_task(task)
        if not task.terminal:
            return []
        storage = await self.storage()
        found: list[str] = []
        for first in range(1, RETRIES_LINKED + 1, 10):
            ids = [retry_id(task, n) for n in range(first, min(first + 10, RETRIES_LINKED + 1))]
            for new_id, new in zip(ids, await storage.tasks.get_many(ids)):
                if new is None or new.spec.retry_of != task.id:
                    return found
                found.append(new_id)
        return found

    async def throughput(self, minutes: int = 60) -> list[ThroughputBucket]:
        """Tasks finished per minute (by final state) over the last ``minutes`` minutes."""
        return await (await self.storage()).tasks.throughput(minutes)

    async def status(self) -> Status:
        """The deployment now, on the store's clock: the lease (and whether it lapsed), the
        scheduler nodes, every worker with its heartbeat age and queue, the jobs stored (all
        of them where the store counts them, ``jobs.count()``; else up to ``JOBS_COUNTED``),
        the task counts and the age of the oldest task waiting to be dispatched (the slots
        held behind serial jobs left out: ``held`` counts them, per job), and what the
        store says is wrong with it (``warnings()``: it refuses writes...)."""
        storage = await self.storage()
        election = await self.engine.open_election()
        info = await election.lease()
        nodes = await storage.schedulers.list_schedulers()
        workers = await storage.workers.list_workers()
        depths = await storage.workers.queue_depths()
        counts = await storage.tasks.counts()
        count_jobs = getattr(storage.jobs, "count", None)  # optional (JobRepository)
        if count_jobs is not None:
            total, enabled = await count_jobs()
            jobs = JobCount(total=total, enabled=enabled)
        else:
            jobs = job_count(await storage.jobs.page(None, JOBS_COUNTED))
        ready_at = await storage.tasks.next_ready_at()
        held = await self.held_slots()
        parked = await self.parked_tasks()
        store_warnings = getattr(storage, "warnings", None)  # optional (StorageBackend)
        warnings = tuple(await store_warnings()) if store_warnings is not None else ()
        quarantine = getattr(storage, "quarantine", None)
        quarantined = await quarantine.count() if quarantine is not None else 0
        newest = tuple(await quarantine.list_quarantined(5)) if quarantine is not None and quarantined else ()
        now = storage.clock()
        cfg = self.config
        leader = leader_status(info)
        schedulers = tuple(scheduler_status(n, now, cfg.lease_ttl) for n in nodes)
        worker_rows = tuple(worker_status(w, now, cfg.heartbeat_ttl, depths.get(w.id, 0), cfg.heartbeat_interval) for w in workers)
        return Status(
            now=now,
            leader=leader,
            schedulers=schedulers,
            workers=worker_rows,
            signing=signing_state(schedulers, worker_rows, leader, {n.id for n in nodes if n.signed}),
            counts=counts,
            jobs=jobs,
            oldest_pending_age=None if ready_at is None or ready_at > now else now - ready_at,
            quarantined=quarantined,
            quarantine=newest,
            leader_claimed_by=leader_claimed_by(leader, schedulers),
            store_warnings=warnings,
            held=None if held is None else held_status(held, now),
            parked=None if parked is None else parked_status(parked, now),
        )

    async def quarantined(self, limit: int = 100) -> list[Quarantined]:
        """The records the store moved aside because they could not be decoded, newest first
        (none on a store that keeps no quarantine)."""
        quarantine = getattr(await self.storage(), "quarantine", None)
        return list(await quarantine.list_quarantined(limit)) if quarantine is not None else []

    async def drop_quarantined(self, kind: str, key: str) -> bool:
        """Forget one quarantined record, its kept bytes with it (inspect them first: the
        store's docs say where they are); False when no such record is quarantined. Raises
        ValidationError on a store that cannot drop one."""
        quarantine = getattr(await self.storage(), "quarantine", None)
        drop = getattr(quarantine, "drop", None)
        if drop is None:
            raise ValidationError("storage", "this store keeps no quarantine that can be dropped from")
        return bool(await drop(kind, key))

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task is terminal; returns it. Raises TimeoutError."""
        storage = await self.storage()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        while True:
            task = await storage.tasks.get(task_id)
            if task is None:
                raise NotFound(f"task {task_id!r} does not exist")
            if task.terminal:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id!r} is still {task.state.value} after {timeout}s"
                                   + await self._why_waiting(task))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def wait_for_storage(
        self, *, stop: asyncio.Event | None = None, retry: bool = True, max_delay: float = 30.0,
        on_retry: Callable[[int, BaseException, float], Any] | None = None,
    ) -> bool:
        """Open the store, waiting while it is unreachable: retry with exponential backoff
        (0.5 s doubling up to ``max_delay``, with jitter), calling ``on_retry(attempt, error,
        delay)`` before each wait. Returns True once open, False when ``stop`` was set first.
        Raises the error at once when ``retry`` is False or when the store refused the
        request (see :func:`store_unreachable`)."""
        from .app.backoff import Backoff, wait_or_stop

        stop = stop or asyncio.Event()
        backoff = Backoff(first=min(0.5, max_delay), cap=max_delay)
        attempt = 0
        while not stop.is_set():
            attempt += 1
            try:
                await self.storage()
                return True
            except Exception as exc:
                if not retry or not store_unreachable(exc):
                    raise
                delay = backoff.next()
                if on_retry is not None:
                    on_retry(attempt, exc, delay)
                await wait_or_stop(stop, delay)
        return False

    async def why_waiting(self, task: Task | str) -> str:
        """Why a task (or the task of that id: NotFound) that is not dispatched yet waits:
        its turn behind the runs of its serial job before it, no live worker, none that has
        its executor or offers its function, all of them full, or no scheduler leading. Empty
        when it is not waiting (dispatched, running, finished) or none of these holds."""
        if isinstance(task, str):
            task = await self.get_task(task)
        why = await self._why_waiting(task)
        return why[2:] if why.startswith(": ") else why

    async def _serial_turn(self, task: Task) -> str:
        """``why_waiting``'s first reason: a serial job's pending slot waits while the job has
        its limit (``serial_limit``) of tasks live before it - started (dispatched, running,
        retrying), or pending with an earlier slot. Reads the job's live tasks (its backlog: ``max_backlog`` at most, by
        default 100)."""
        if task.state is not TaskState.PENDING or task.job is None or task.serial_limit is None:
            return ""
        live = [t for t in await (await self.storage()).tasks.live(task.job) if t.id != task.id]
        started = sum(1 for t in live if t.state is not TaskState.PENDING)
        earlier = sum(1 for t in live if t.state is TaskState.PENDING and (t.not_before, t.id) < (task.not_before, task.id))
        if started + earlier < task.serial_limit:  # room for it too
            return ""
        return (f": waiting its turn behind {started + earlier} run(s) of serial job {task.job!r} ({started} "
                f"started, {earlier} waiting with an earlier slot; max_instances {task.serial_limit})")

    def _left(self, task: Task, now: float) -> str:
        """How long a task no live worker may run has left before the leader fails it
        (``unroutable_wait``, this process's setting), counted from when it became ready: the
        leader counts from when it also saw no worker that may, so a task that waited for
        room first has more."""
        bound = self.config.unroutable_wait
        scheduler = self.engine.scheduler
        if bound is None and scheduler is not None and scheduler.is_leader.is_set():
            bound = scheduler.unroutable_wait  # this process leads: its wait (the store's default)
        if not bound:  # this process does not know the leader's (a CLI's is not set unless given)
            return "the leader's unroutable_wait bounds the wait"
        left = bound - (now - max(task.updated_at, task.not_before))
        if left > 0:
            return f"{left:.0f}s left before it fails"
        return f"it has waited past unroutable_wait ({bound:g}s): it fails soon unless one starts"

    async def parked_tasks(self) -> dict[str, tuple[int, float]] | None:
        """The tasks parked out of the ready queue while they wait for a worker that may run
        them (``unroutable_wait``), per ``local:<function>`` or executor: ``(how many, when
        the earliest one's wait runs out)`` (store time). None when the store cannot park
        (no ``TaskRepository.parked``). One store call."""
        parked = getattr((await self.storage()).tasks, "parked", None)  # optional (TaskRepository)
        return None if parked is None else dict(await parked())

    async def _parked_note(self, key: str) -> str:
        """``; parked: N task(s) wait for it out of the ready queue`` when the store parked
        tasks under ``key`` (``local:<function>`` or an executor), else empty."""
        parked = getattr((await self.storage()).tasks, "parked", None)
        found = (await parked([key])).get(key) if parked is not None else None
        return f"; parked: {found[0]} task(s) wait for it out of the ready queue" if found else ""

    async def _why_waiting(self, task: Task) -> str:
        """Why a task that is not dispatched yet waits: a task for later that is not due yet
        (``scheduled for ...``; with what would hold it once due, if anything), then
        :meth:`_why_blocked`."""
        if task.state not in (TaskState.PENDING, TaskState.RETRYING):
            return ""
        blocked = await self._why_blocked(task)
        now = (await self.storage()).clock()
        due = scheduled_for(task, now)
        if due is None:
            return blocked
        later = f"; once due, it would wait too{blocked}" if blocked else ""
        return f": not due yet: scheduled for {iso_utc(float(math.ceil(due)))} (in {in_words(due - now)}){later}"

    async def _why_blocked(self, task: Task) -> str:
        """Why a task that is not dispatched yet may never run: its turn behind its serial
        job's runs (:meth:`_serial_turn`), no live worker, none that has its executor or
        offers its function, or all of them full. Empty when none of these holds."""
        turn = await self._serial_turn(task)
        if turn:
            return turn
        storage = await self.storage()
        now = storage.clock()
        live = [w for w in await storage.workers.list_workers()
                if w.is_alive(now, self.config.heartbeat_ttl) and not w.draining]
        if not live:
            return (f": no live worker is registered on {display_url(self.config.storage)}; start one "
                    f"(distsched worker --storage URL --import MODULE) or run one in this process "
                    f"(async with app.running(): ...)")
        target, executor = task.spec.target, task.spec.executor
        if not any(w.may_have(executor) for w in live):  # each says its executors: none has it
            return (f": waiting for a worker that has executor {executor!r} ({self._left(task, now)}"
                    f"{await self._parked_note(executor)}): none of "
                    f"the {len(live)} live worker(s) has executor {executor!r} (they have: "
                    f"{names_listed(name for w in live for name in w.executors)}); start a worker with the plugin that provides it (`distsched plugins` "
                    f"lists the executors a node has)")
        if executor == "local" and not any(w.may_offer(target) for w in live):  # the leader's rule
            return (f": waiting for a worker that offers function {target!r} ({self._left(task, now)}"
                    f"{await self._parked_note('local:' + target)}): none of "
                    f"the {len(live)} live worker(s) offers function {target!r} (they offer: "
                    f"{names_listed(name for w in live for name in w.functions)}); start a worker that imports the module defining it "
                    f"(distsched worker --import MODULE, with @distsched.task or @app.task on it)")
        if all(w.free == 0 for w in live):
            return f": all {len(live)} live worker(s) are full"
        try:
            leader = await (await self.engine.open_election()).current()
        except Exception:  # only a hint: the timeout is what the caller gets
            return ""
        if leader is None:
            return ": no scheduler is leading, so nothing dispatches it (start one: distsched scheduler --storage URL)"
        return ""

    async def result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The final TaskResult of a task, once it finished: its success, or its last failed
        or timed-out attempt (``result.ok`` False, ``outcome``, ``error_type`` and ``error``
        say which). A task that failed with no attempt's result to give - its balancer could
        not be built on the leader, so it was never dispatched, or its worker was lost once
        too often (even after an earlier attempt failed and was retried) - gives one made
        from its record: outcome ``failed``, ``error_type``
        ``NoResult``, ``error`` the reason it failed, no worker. A cancelled task has no
        result: raises TaskCancelled naming the task and the reason (its ``result`` is the
        last failed attempt's, if one ran before the cancel). A skipped task (a schedule slot
        its job's misfire or overlap policy did not run) never ran: raises TaskSkipped naming
        the task, its job and the reason. Raises NotFound for an unknown task, TimeoutError
        when it has not finished within ``timeout`` seconds (saying why it may never run)."""
        task = await self.wait(task_id, timeout)
        if task.state is TaskState.CANCELLED:
            raise TaskCancelled(task_id, task.reason, task.result)
        if task.state is TaskState.SKIPPED:
            raise TaskSkipped(task_id, task.reason, job=task.job, slot=task.slot)
        if task.state is TaskState.FAILED and task.attempt_result is None:
            # no result, or an earlier attempt's (one that failed and was retried): not why it ended
            return _failure_of_record(task)
        if task.result is None:  # a record no engine writes (succeeded without a result)
            raise NotFound(f"task {task_id!r} ended {task.state.value} without a result ({task.reason})")
        return task.result

    # -- deployment -------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int] | None:
        """This process's scheduler counters (succeeded, failed, timed_out, retrying...)
        once it has run a scheduler, else None."""
        scheduler = self.engine.scheduler
        return dict(scheduler.stats) if scheduler is not None else None

    # -- running ----------------------------------------------------------------------
    async def start(self, *, scheduler: bool = True, worker: bool = True) -> None:
        """Start the scheduler and/or a worker in the background of this event loop; returns
        once they run (the store open, the worker registered). Raises RuntimeError when they
        already run, and what stopped them from starting (the store cannot be opened...).

        A :meth:`stop` called meanwhile (from another task: a signal handler, a shutdown
        hook) wins: it does not wait for the start to finish, and this ``start()`` raises
        StartInterrupted once what it had started has stopped - it never returns with nothing
        running. Called while a :meth:`stop` is under way, it first waits for that stop to
        end, then starts afresh."""
        stops = self._stops
        while self._stopping is not None:  # a stop under way ends first (then start afresh)
            await asyncio.shield(self._stopping)
        if self._stops != stops:  # ... unless another stop() was called meanwhile
            raise StartInterrupted(_INTERRUPTED)
        if self._runner is not None:
            raise RuntimeError("already running")
        # The stop event exists before anything is opened, so that a stop() called from now
        # on reaches the runner whatever it is doing, the store's opening included.
        stop = self._stop = asyncio.Event()
        ready = asyncio.Event()
        runner = self._runner = asyncio.create_task(
            self._run_until(stop, scheduler=scheduler, worker=self.worker_config if worker else None,
                            on_ready=ready.set))
        await _first(ready.wait(), runner)  # the runner ends early when a server cannot start
        if worker and not runner.done() and self.engine.worker is not None:
            await _first(self.engine.worker.registered.wait(), runner)
        if stop.is_set():
            raise StartInterrupted(_INTERRUPTED)
        if runner.done():
            if self._runner is runner:
                self._runner = None
            await runner  # raises why it could not start
            raise StartInterrupted("start(): the services ended before they were ready")  # pragma: no cover

    async def _run_until(self, stop: asyncio.Event, *, scheduler: bool, worker: WorkerConfig | None,
                         on_ready: Callable[[], Any]) -> None:
        """The runner :meth:`start` creates: open the store, then run the services until
        ``stop`` is set (nothing more when it was set while the store was opening)."""
        await self.engine.open()
        if stop.is_set():
            return
        await self.engine.run(stop, scheduler=scheduler, worker=worker, on_ready=on_ready)

    async def stop(self) -> None:
        """Stop the services (workers drain) and close the store; once it returns nothing of
        this app runs. A :meth:`start` still starting is interrupted (it raises
        StartInterrupted). Called again while a stop is under way, it waits for that one."""
        self._stops += 1
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        try:
            if self._stop is not None:
                self._stop.set()
            runner = self._runner
            if runner is not None:
                try:
                    await runner
                finally:
                    if self._runner is runner:
                        self._runner = None
            await self.engine.close()
        finally:
            stopping, self._stopping = self._stopping, None
            stopping.set_result(None)

    @contextlib.asynccontextmanager
    async def running(self, *, scheduler: bool = True, worker: bool = True) -> AsyncIterator[DistributeSchedule]:
        await self.start(scheduler=scheduler, worker=worker)
        try:
            yield self
        finally:
            await self.stop()

    async def __aenter__(self) -> DistributeSchedule:
        await self.engine.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run_async(self, *, duration: float | None = None, stop: asyncio.Event | None = None,
                        scheduler: bool = True, worker: bool = True) -> None:
        """Run until ``stop`` is set or ``duration`` seconds passed."""
        stop = stop or asyncio.Event()
        timer = asyncio.get_running_loop().call_later(duration, stop.set) if duration is not None else None
        try:
            await self.engine.run(stop, scheduler=scheduler, worker=self.worker_config if worker else None)
        finally:
            if timer is not None:
                timer.cancel()
            await self.engine.close()

    def run(self, *, duration: float | None = None, scheduler: bool = True, worker: bool = True) -> None:
        """Blocking entry: run scheduler and worker until Ctrl-C or ``duration``."""
        asyncio.run(self.run_async(duration=duration, scheduler=scheduler, worker=worker))


def functions_in_module(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The functions a worker importing ``module`` can run, by task name: those marked with
    ``@distsched.task`` and those registered with ``@app.task`` on a
    :class:`DistributeSchedule` instance defined at the module's top level."""
    found = dict(marked_functions(module))
    for value in list(vars(module).values()):
        if isinstance(value, DistributeSchedule):
            for reg in value.functions:
                first = found.setdefault(reg.name, reg.factory)
                if first is not reg.factory:
                    raise duplicate_function(reg.name, first, reg.factory, f"module {module.__name__!r}")
    return found


def missing_functions_hint(module: ModuleType) -> str:
    """What to do when ``module`` gives a worker no function (for the error message)."""
    apps = [name for name, value in vars(module).items() if isinstance(value, DistributeSchedule)]
    if apps:
        return (f"its DistributeSchedule {apps[0]!r} has no function registered when the module is imported: "
                f"decorate module-level functions with @{apps[0]}.task (a registration inside main() or "
                "`if __name__ == '__main__':` does not run on import)")
    return ("mark its functions with @distsched.task, or define the app at its top level "
            "(app = DistributeSchedule(...)) and decorate them with @app.task")


def display_url(url: str) -> str:
    """A storage URL as it may be shown: without its password."""
    from .urls import redact_url

    return redact_url(url)


#: Names of exception types (anywhere in their class hierarchy) that mean "not reachable
#: now, try again": a server down, restarting, loading, or a network cut. A store plugin's
#: errors reach the core wrapped, so they are recognised by name (the core imports no client).
RETRYABLE_ERRORS = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError", "ConnectionRefusedError",
                              "ConnectionResetError", "OperationalError", "MasterNotFoundError"})
#: ... unless one of these says the request itself is wrong (retrying cannot help).
FATAL_ERRORS = frozenset({"AuthenticationError", "AuthenticationWrongNumberOfArgsError", "AuthorizationError",
                          "NoPermissionError", "SSLError", "SSLCertVerificationError", "CertificateError",
                          "ValidationError", "UnknownName", "ResponseError"})


def store_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the store is unreachable for now, False when
    it refused the request (a bad URL, a wrong password, an untrusted certificate)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    retry = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & FATAL_ERRORS:
            return False
        if names & RETRYABLE_ERRORS or isinstance(current, (OSError, asyncio.TimeoutError)):
            retry = True
        current = current.__cause__ or current.__context__
    return retry


#: The retries of one task :meth:`DistributeSchedule.retry_task` numbers (``<id>.retry-N``)
#: and :meth:`~DistributeSchedule.retried_as` lists; past them a retry's id is random.
RETRIES_LINKED = 100


def retry_id(task: Task, n: int) -> str:
    """The id of the ``n``-th retry of ``task`` (``retry_task``): ``<id>.retry-<n>``; for an id
    too long for that (task ids are 256 characters at most), ``retry-<hash of the id>.retry-<n>``
    - after ``<job>@`` for a job's task, whose retries stay with its job."""
    new_id = f"{task.id}.retry-{n}"
    if len(new_id) <= 256:
        return new_id
    digest = hashlib.sha256(task.id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{task.job + '@' if task.job else ''}retry-{digest}.retry-{n}"


def _per_spec(value: Any, field: str, count: int) -> list[Any]:
    """``submit_many``'s ``delay`` / ``at``: one value for every spec, or a list of one per spec."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValidationError(field, f"{len(value)} values for {count} specs: give one per spec (None: at once), "
                                         "or one value for all")
        return list(value)
    return [value] * count


async def _first(awaitable: Any, runner: asyncio.Task[Any]) -> None:
    waiter = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()


def _failure_of_record(task: Task) -> TaskResult:
    """The result :meth:`DistributeSchedule.result` gives for a task that failed with no
    attempt's result: made from its record (the reason it failed, when), no worker."""
    at = task.finished_at if task.finished_at is not None else task.updated_at
    return TaskResult(task_id=task.id, attempt_id=task.attempt_id, outcome="failed", started_at=at, finished_at=at,
                      error=task.reason or "it failed without a result", error_type="NoResult", retryable=False)


@attrs.frozen
class _Put:
    """What storing one job did: ``stored`` is the job as stored now, ``old`` the one it
    replaced (None: it was added), ``wrote`` False when the store held it already as wanted."""

    stored: TaskConfig
    old: TaskConfig | None
    wrote: bool = True


def _keeps_progress(current: TaskConfig, config: TaskConfig) -> bool:
    """A stored job updated to ``config`` keeps its next slot: its trigger is unchanged and it
    is not enabled again (a job enabled again starts from the first slot after now, as a
    resumed one does: the slots that fell while it was disabled are not run)."""
    return current.trigger == config.trigger and (current.enabled or not config.enabled)
