"""The engine: builds the plugin manager, opens storage and election through their plugins,
and runs a scheduler and/or a worker in this process.

This is the composition root: the one module of ``distsched.app`` that knows the plugin
manager (tests/test_architecture.py checks it). The scheduler and the worker get plain
callables (``name -> Balancer``, ``name -> Executor``) and depend on the ports only.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import FrameType
from typing import Any

from ..asyncutil import LoopWatch
from ..config import EngineConfig, WorkerConfig
from ..model import Task
from ..model.events import Event
from ..plugin.manager import BALANCER, ELECTION, EXECUTOR, STORAGE, PluginManager
from ..ports import Balancer, Election, Executor, ExecutorContext, StorageBackend
from ..registry import FunctionRegistry
from ..urls import redact_url
from .events import EventBus
from .scheduler import FALLBACK_BALANCER, Scheduler
from .worker import WorkerService

log = logging.getLogger("distsched.engine")
#: The engine warns when this process's event loop is held longer than this (seconds) by one
#: callback - an ``async def`` task that blocks, or a plugin's hook or balancer - naming the
#: task if it is one, and where the loop is (asyncutil.LoopWatch).
LOOP_HELD_WARNING = 1.0


class Engine:
    """One process's part in a deployment: its store, its election and its services."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        plugins: PluginManager | None = None,
        functions: FunctionRegistry | None = None,
        listeners: list[Callable[[Event], Any]] | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.plugins = plugins if plugins is not None else PluginManager()
        self.functions = functions if functions is not None else FunctionRegistry()
        self.events = EventBus(self.plugins.notify, listeners, observed=lambda: self.plugins.has_observers)
        self.storage: StorageBackend | None = None
        self.election: Election | None = None
        #: Held while the store opens: callers at the same time (the facade's calls, a
        #: server beside it) share one store instead of each opening one (all but one leaked).
        self._opening: asyncio.Lock | None = None
        self.scheduler: Scheduler | None = None
        self.worker: WorkerService | None = None
        #: A worker of this engine is running: it runs the functions registered when it
        #: started, so the facade refuses to register more meanwhile.
        self.worker_running = False
        #: The servers running beside the engine (``EngineConfig.serve``), by name: the
        #: handles their plugins returned from ``distsched_serve``.
        self.servers: dict[str, Any] = {}
        #: The task the loop watch found holding the loop (None: none, or not a task).
        self._held_by: Task | None = None
        #: The worker settings :meth:`check_worker_settings` accepted (copies): not checked -
        #: nor warned about - again.
        self._settings_accepted: list[Mapping[str, Any]] = []
        #: ``distsched_configure`` ran for this engine (at its first :meth:`open`).
        self._configured = False

    def check_worker_settings(self, settings: Mapping[str, Any], *, where: str = "worker",
                              sources: Mapping[str, str] | None = None) -> None:
        """Refuse a worker's ``[worker]`` settings as its start does: a key that is neither an
        option of the worker (``WORKER_KEYS``, ``WORKER_OPTION_KEYS``) nor a setting a loaded
        executor declares, or a value an executor's ``check_settings`` refuses - a
        ValidationError naming ``where``; a key it cannot judge (an executor that does not
        declare its settings) is a WARNING, once per key. ``sources`` (key -> where it came
        from) names each key's own source instead: the worker commands check the settings
        they merged from a config file and a jobs file. The one home of this check: the
        commands that store a jobs file's jobs check its table before (``run``, ``jobs
        sync``, ``scheduler --jobs``), the worker commands (``run``, ``worker``) check the
        worker's settings before it starts, the worker's start (:meth:`run`) checks its
        settings, and settings this engine already accepted are not checked, nor warned
        about, again."""
        if any(settings == accepted for accepted in self._settings_accepted):
            return
        from ..jobs import WORKER_KEYS, WORKER_OPTION_KEYS

        self.plugins.executors.check_settings(settings, where=where, options=WORKER_KEYS + WORKER_OPTION_KEYS,
                                              sources=sources)
        try:
            self._settings_accepted.append(copy.deepcopy(dict(settings)))
        except Exception:  # a value that cannot be copied: checked again next time
            pass

    def all_functions(self) -> FunctionRegistry:
        """Functions from plugins (``distsched_register_functions``) plus the application's."""
        return self.plugins.functions.merged(self.functions)

    async def open(self) -> StorageBackend:
        if self.storage is not None:
            return self.storage
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.storage is None:  # not opened by a caller this one waited for
                if not self._configured:  # the plugins' own settings, before they build anything
                    self.plugins.configure(self.config)
                    self._configured = True
                url = self.config.storage
                self.storage = await self.plugins.build(
                    STORAGE, url, url, options=dict(self.config.storage_options), optional={"reader": self.config.reader},
                    where="storage", failed="could not open", subject=redact_url(url))
            return self.storage

    async def open_election(self) -> Election:
        if self.election is not None:
            return self.election
        storage = await self.open()
        url = self.config.election or self.config.storage
        options = {"ttl": self.config.lease_ttl, "renew_interval": self.config.renew_interval}
        self.election = await self.plugins.build(ELECTION, url, url, storage=storage, options=options,
                                                 where="election", failed="could not open", subject=redact_url(url))
        return self.election

    async def balancer(self, name: str) -> Balancer:
        """A new balancer of ``name`` (what the scheduler is given, once per name and term)."""
        return await self.plugins.build(BALANCER, name, where="scheduler")

    def balancer_origin(self, name: str) -> str:
        """The plugin that provides the balancer of ``name`` (``plugin 'x' (dist 1.0)``), for
        the scheduler's messages about it; empty for a name no plugin of this node provides."""
        try:
            return str(self.plugins.registration(BALANCER, name).origin)
        except LookupError:
            return ""

    def executors_for(self, worker: WorkerConfig,
                      functions: FunctionRegistry | None = None) -> Callable[[str], Awaitable[Executor]]:
        """``name -> Executor`` for a worker of this process: one ExecutorContext for all its
        executors, so they can share resources keyed on it (the http and rpc executors share
        one pooled client). ``functions`` defaults to :meth:`all_functions`."""
        context = ExecutorContext(functions=self.all_functions() if functions is None else functions,
                                  concurrency=worker.concurrency, settings=dict(worker.settings))

        async def build(name: str) -> Executor:
            return await self.plugins.build(EXECUTOR, name, context)

        return build

    async def run(
        self,
        stop: asyncio.Event,
        *,
        scheduler: bool = True,
        worker: WorkerConfig | None = None,
        on_ready: Callable[[], Any] | None = None,
    ) -> None:
        """Run the requested services until ``stop`` is set; then drain and close."""
        storage = await self.open()
        await self._serve()
        watch = LoopWatch(LOOP_HELD_WARNING)
        # the stall began up to one of the watch's ticks after the tick before it: about half
        watch.start(self._loop_held, lambda seconds: self._loop_freed(max(0.0, seconds - watch.interval / 2)))
        try:
            await self._run_services(storage, stop, scheduler=scheduler, worker=worker, on_ready=on_ready)
        finally:
            watch.stop()
            await self._close_servers()

    def _loop_held(self, seconds: float, frames: list[FrameType]) -> None:
        """LoopWatch, on its thread: this process's loop has been held ``seconds``; say by
        which task (the worker knows its executions' frames) and where."""
        task = self.worker.task_in(frames) if self.worker is not None else None
        self._held_by = task
        code = frames[0].f_code
        at = f"{code.co_filename}:{frames[0].f_lineno} in {code.co_name}()"
        waits = ", ".join(what for what, here in (("the worker's other tasks, heartbeats and reports", self.worker),
                                                    ("the scheduler's passes and lease renewals", self.scheduler))
                          if here is not None) or "everything in this process"
        if task is None:
            log.warning("the event loop has been held for %.1f s, at %s: nothing on it may block (a task, a plugin's "
                        "hook or balancer); %s wait meanwhile", seconds, at, waits)
            return
        log.warning("%s has held the event loop for %.1f s, at %s: an async function must not block "
                    "(time.sleep, blocking I/O, a long computation) - %s wait meanwhile; make it a plain def "
                    "(it then runs in a thread) or await what blocks", _named(task), seconds, at, waits)

    def _loop_freed(self, seconds: float) -> None:
        """LoopWatch, on the loop: the loop it said was held ran again, held about ``seconds``."""
        task, self._held_by = self._held_by, None
        log.warning("the event loop was held for about %.1f s%s", seconds, f" by {_named(task)}" if task else "")

    async def _run_services(self, storage: StorageBackend, stop: asyncio.Event, *, scheduler: bool,
                            worker: WorkerConfig | None, on_ready: Callable[[], Any] | None) -> None:
        services = []
        # With a worker in this process, the scheduler stops after it: the worker drains and
        # reports first, and the leader's last settle (Scheduler._term) then applies those
        # results and emits their events instead of leaving them to the next leader.
        scheduler_stop = asyncio.Event() if scheduler and worker is not None else stop
        if worker is not None:
            # Settings the executors refuse (a bad http_allow entry, a key no executor reads:
            # a typo...) stop the process here, before anything starts, rather than failing
            # each task later or going unnoticed (once: settings a command checked before
            # storing its jobs file's jobs are not checked, nor warned about, again).
            self.check_worker_settings(worker.settings)
        if scheduler:
            if not len(self.plugins.balancers):
                self.plugins.balancers.get(FALLBACK_BALANCER, where="scheduler")  # raises, naming why
            election = await self.open_election()
            self.scheduler = Scheduler(storage=storage, election=election, balancers=self.balancer,
                                       balancer_origin=self.balancer_origin,
                                       events=self.events, config=self.config)
            services.append(asyncio.create_task(self.scheduler.run(scheduler_stop), name="distsched-scheduler"))
        if worker is not None:
            functions = self.all_functions()
            self.worker = WorkerService(storage=storage, executors=self.executors_for(worker, functions),
                                        functions=functions, executor_names=self.plugins.executors.names(),
                                        config=worker, engine_config=self.config, events=self.events)
            worker_task = asyncio.create_task(self.worker.run(stop), name="distsched-worker")
            services.append(worker_task)
            if scheduler_stop is not stop:
                async def stop_scheduler_after_worker() -> None:
                    await stop.wait()
                    await asyncio.wait({worker_task}, timeout=worker.drain_timeout + 5.0)
                    scheduler_stop.set()

                services.append(asyncio.create_task(stop_scheduler_after_worker(), name="distsched-stop-order"))
        self.worker_running = worker is not None  # until the services ended (the finally below)
        if on_ready is not None:
            on_ready()
        try:
            if not services:  # nothing to run but the servers: until stopped
                await stop.wait()
                return
            done, _ = await asyncio.wait(services, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    stop.set()
                    await asyncio.gather(*services, return_exceptions=True)
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in services:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*services, return_exceptions=True)
            self.worker_running = False
            await self.events.aclose()

    async def _serve(self) -> None:
        """Start the servers of ``config.serve`` through their plugins (``distsched_serve``)."""
        try:
            for name, address in self.config.serve.items():
                if name in self.servers:
                    continue
                handle, origin = self.plugins.serve(self, name, address)
                if inspect.isawaitable(handle):
                    try:
                        handle = await handle
                    except Exception as exc:
                        from ..plugin.errors import PluginError

                        raise PluginError(f"{origin} could not serve {name} on {address}: "
                                          f"{type(exc).__name__}: {exc}") from exc
                self.servers[name] = handle
                log.info("serving %s on %s (%s)", name, address, origin)
        except BaseException:
            await self._close_servers()
            raise

    async def _close_servers(self) -> None:
        while self.servers:
            name, handle = self.servers.popitem()
            try:
                closer = getattr(handle, "aclose", None) or getattr(handle, "close", None)
                if closer is not None:
                    done = closer()
                    if inspect.isawaitable(done):
                        await done
            except Exception:
                log.exception("closing the %s server failed", name)

    async def close(self) -> None:
        await self.events.aclose()
        if self._opening is not None:
            async with self._opening:  # an open under way (``app.storage()`` outside start()) ends
                pass                   # first, so that its store is closed here, not left open
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
            self.election = None


def _named(task: Task) -> str:
    """A task as the loop watch's warnings name it: its id, and its job if it has one."""
    return f"task {task.id}" + (f" (job {task.job!r})" if task.job else "")
