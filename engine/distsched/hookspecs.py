"""The hook specifications: the only place distsched declares hooks.

Plugins implement these with ``@distsched.hookimpl`` in a module named by an entry point in
the ``distsched`` group. Registration hooks are called once per plugin, in no defined order
(do not rely on one); each gets a registry and adds *named* things to it, so names can be
listed by ``distsched plugins``. A name (or URL scheme) two plugins provide is unusable
until one is disabled, or the operator lets the one declaring ``replace=True`` take it over
(see :mod:`distsched.registry`).

Hook implementations are called through pluggy's own hook calling, so ``tryfirst``,
``trylast`` and ``wrapper=True`` behave as pluggy documents them; the plugin manager adds
one thing per implementation: an exception is charged to the plugin that raised it (its
registrations of that call are dropped and it is reported broken; an observer's is logged
and swallowed), so one broken plugin never stops the others.

Every hook is listed with an example in ``docs/hooks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

# Runtime imports (not under TYPE_CHECKING): the hooks are typed against the public types a
# plugin receives, and none of these modules imports this one back (no import loop).
from .config import EngineConfig
from .model.events import Event
from .ports import ServedEngine
from .registry import (
    BalancerRegistry,
    ElectionRegistry,
    ExecutorRegistry,
    FunctionRegistry,
    StorageRegistry,
)

if TYPE_CHECKING:  # click is a dependency, not a distsched module: no import loop
    import click

PROJECT = "distsched"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def distsched_configure(config: EngineConfig, plugins: Any) -> None:
    """Read (and check) this plugin's own settings: ``config.plugin_settings.get(NAME, {})``,
    the config file's ``[plugins.NAME]`` table (``NAME``: the plugin's name as ``distsched
    plugins`` lists it) or ``EngineConfig(plugin_settings=...)``; values are JSON.

    Called once per engine, in every process that runs one (scheduler, worker, ``run``, a
    facade, the CLI's reading commands), when the engine first opens its store: before the
    store, the election, any server (``distsched_serve``), balancer or executor is built
    and before any event (``distsched_event``) - so an observer, a balancer factory or a
    storage plugin finds its settings kept. ``config`` is the engine's frozen
    :class:`distsched.config.EngineConfig`. Returns nothing. To refuse the table, raise
    ``distsched.model.ValidationError(key, reason)`` with the key alone as its field: the
    engine does not start and the error reads ``[plugins.NAME] key: reason``; any other
    exception stops it as a PluginError naming the plugin. Keep it quick, no I/O. A process
    running several engines calls it once for each (what a plugin keeps in its module is
    then the last one's; a server reads ``engine.config.plugin_settings`` instead).

    ``plugins`` (optional, like every argument) is this engine's
    :class:`distsched.plugin.manager.PluginManager`: ``plugins.register(obj, name)`` adds an
    object's ``distsched_event`` for this engine only - an observer that only some settings
    ask for (the built-in ``alerts`` plugin) registers it here, so that an engine nobody
    observes builds no events.

    .. versionadded:: 0.2
    """


@hookspec
def distsched_register_storage(registry: StorageRegistry) -> None:
    """Register storage backends, chosen by the storage URL's scheme.

    Called once per plugin when a plugin manager is built (an engine, a CLI command).
    ``registry.add(name, schemes=(...), factory=..., description=...)``; the factory is
    called as ``factory(url, *, options)`` when an engine opens that URL and returns a
    :class:`distsched.ports.StorageBackend` (or an awaitable of one). A factory that names
    a ``reader`` parameter is also given ``reader=``: True when the process only reads
    (``EngineConfig.reader``: the CLI's ``status`` and listing commands), so that it can skip
    the set-up only a writer needs (PostgreSQL applies no migration) and refuse a store
    that is not set up, naming the command that sets it up. Returns nothing;
    every plugin's registrations are kept (no first-result-wins); a scheme two plugins
    register is unusable until one is disabled (the error names both).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 the factory's optional ``reader`` keyword.
    """


@hookspec
def distsched_register_election(registry: ElectionRegistry) -> None:
    """Register leader-election (lease) implementations, chosen by URL scheme.

    Called once per plugin when a plugin manager is built. The election URL defaults to the
    storage URL. The factory is called as ``factory(url, *, storage, options)`` and returns a
    :class:`distsched.ports.Election` (or an awaitable of one); it receives the opened storage
    so the lease can live in the same store that checks the fencing term. Returns nothing;
    all registrations kept.

    .. versionadded:: 0.1
    """


@hookspec
def distsched_register_executors(registry: ExecutorRegistry) -> None:
    """Register executors by name (``local``, ``http``, ``rpc``, ...).

    Called once per plugin when a plugin manager is built. The factory is called once per
    worker process as ``factory(context)`` with a :class:`distsched.ports.ExecutorContext`
    and returns a :class:`distsched.ports.Executor` (optionally with ``async close()``), or
    an awaitable of one. Returns nothing; all registrations kept; a name two plugins
    register is unusable (a task using it fails, naming both).

    ``registry.add(name, factory, description=..., validate=...)``: the optional
    ``validate(spec)`` is called with a :class:`distsched.model.TaskSpec` whose ``executor``
    is ``name`` each time a job using it is added or updated, or a task submitted (the
    facade's ``add_job`` / ``put_job(s)`` / ``update_job`` / ``submit(_many)``, ``distsched
    run``, ``jobs add``, ``scheduler --jobs``, and the jobs-file loader given
    ``check_spec=app.check_spec``), in whatever process does that - no worker, no context.
    It returns nothing to accept the spec and raises
    ``distsched.model.ValidationError(field, reason)`` to refuse it (the caller adds the job's
    name); nothing is stored. Any other exception is reported as a PluginError naming the
    plugin. Keep it pure and fast (no I/O): the ``http`` executor checks that the target is
    an http(s) URL and that the options parse.

    ``check_settings=check`` (optional): ``check(settings)`` is called with the worker's
    settings when a worker starts (and by ``jobs sync`` / ``scheduler --jobs`` before they
    store a file's jobs); a ``ValidationError`` stops it, naming the setting: give the
    setting's name alone as its field (``ValidationError("cmd_limit", ...)``), the engine
    adds ``[worker] ``.
    ``settings=[...]`` (optional; newer than 0.1.0): the names of the ``[worker]`` settings
    the executor reads (``()`` for none). When every loaded executor declares them, a worker
    refuses a key that is neither one of them nor a worker option (a typo), with a
    did-you-mean; an executor that does not declare (the argument omitted) keeps working,
    and unknown keys are then only logged as a WARNING naming it.

    .. versionadded:: 0.1
    """


@hookspec
def distsched_register_balancers(registry: BalancerRegistry) -> None:
    """Register load-balancing strategies by name (``least-tasks``, ``round-robin``, ...).

    Called once per plugin when a plugin manager is built. The factory is called with no
    arguments, once per leader term, and returns a :class:`distsched.ports.Balancer` (or an
    awaitable of one). Returns nothing; all registrations kept; a name two plugins register
    is unusable.

    .. versionadded:: 0.1
    """


@hookspec
def distsched_register_functions(registry: FunctionRegistry) -> None:
    """Register Python callables the ``local`` executor may run, by name.

    Called once per plugin when a plugin manager is built. ``registry.add(name, func)``;
    ``func`` may be sync (run in a thread) or async. Only registered callables ever run: a
    stored target is a name, never an import path. Returns nothing; all registrations kept.

    .. versionadded:: 0.1
    """


@hookspec
def distsched_event(event: Event) -> None:
    """Observe an engine event (task dispatched / finished / retry scheduled / skipped /
    requeued / cancelled, leader elected / lost, worker joined / lost, record quarantined, workers seen,
    duplicates suppressed - in the scheduler's process; attempt started / finished - in the
    worker's process).

    Called for every event, after the state change is stored, from a background queue off
    the scheduling path, on the process's event loop: an observer must be quick and must not
    block (slow work goes to a thread or a task of its own; one that holds the loop over a
    second is logged as a WARNING with its file and line). ``event`` is a frozen :class:`distsched.model.events.Event`; its
    ``kind`` is a stable string. Return value ignored; all implementations are called. An
    exception is logged with the plugin's name and swallowed: a failing observer never
    breaks scheduling.

    .. versionadded:: 0.1
    """


@hookspec
def distsched_cli_commands() -> list[click.Command]:  # type: ignore[empty-body]
    """Add subcommands to the ``distsched`` command line.

    Called once, when the ``distsched`` command needs a name it does not define itself (or
    lists its commands for ``--help``); plugins named by ``--disable-plugin`` /
    ``DISTSCHED_DISABLE_PLUGINS`` are not asked. Returns a list of :class:`click.Command`
    (or :class:`click.Group`) objects, each added under its ``name``. A name that a built-in
    command already has, or that two plugins both return, is refused: the command is left
    out and ``distsched`` says which plugin(s) asked for it. The commands receive the root
    context, so ``ctx.find_root().obj`` holds the global options (``disable``, ``plugins``).

    .. versionadded:: 0.2
    """


@hookspec
def distsched_web_routes(app: Any) -> list[Any]:  # type: ignore[empty-body]
    """Add pages and API routes to the web dashboard (the ``web`` plugin).

    Called once per plugin when the dashboard builds its ASGI application, with ``app`` the
    :class:`distsched.DistributeSchedule` it shows. Returns a list of Starlette routes
    (``starlette.routing.Route`` / ``Mount``) or None. Routes under ``/api/`` are API routes;
    a ``Route`` with a ``name`` and a path without parameters also gets a link in the
    navigation bar. Plugin routes are matched before the built-in ones; all plugins' lists
    are used. The dashboard's login and token checks apply only to its own routes: a plugin
    route that changes anything must check ``request.app.state.dashboard.security`` itself.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def distsched_serve(engine: ServedEngine, name: str, address: str) -> Any:
    """Start a server beside a running engine: ``name`` is what to serve (``metrics``,
    ``web``, ...), ``address`` where (``HOST:PORT`` as the operator gave it).

    Called by :meth:`distsched.app.engine.Engine.run` once per entry of
    ``EngineConfig.serve`` (the CLI's ``--metrics HOST:PORT``, or
    ``DistributeSchedule(serve={"metrics": "127.0.0.1:9100"})``), after the store is open
    and before the scheduler and worker start, in the engine's event loop. A plugin that
    does not serve ``name`` returns None; the first one that does returns a handle (or an
    awaitable of one) with ``async aclose()`` or ``close()``, which the engine calls once
    when it stops, after its services stopped and its last events were delivered. The
    server may observe the engine: ``engine.plugins.register(observer, name)`` adds an
    object with ``@hookimpl distsched_event`` for as long as it runs, so an engine nobody
    serves metrics for pays nothing for them. Returns the first non-None handle
    (firstresult); when no plugin serves ``name`` the engine does not start and the error
    names what is missing; an exception raised here stops the engine with a PluginError
    naming the plugin (a port in use, a bad address: say which field and why).

    .. versionadded:: 0.2
    """


__all__ = [
    "PROJECT", "distsched_cli_commands", "distsched_configure", "distsched_event", "distsched_serve", "distsched_web_routes",
    "distsched_register_balancers", "distsched_register_election",
    "distsched_register_executors", "distsched_register_functions", "distsched_register_storage",
    "hookimpl", "hookspec",
]
