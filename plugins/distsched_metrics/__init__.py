"""Built-in distsched plugin: Prometheus metrics from the engine's events.

``distsched scheduler|worker|run --metrics HOST:PORT`` serves ``/metrics`` beside the
engine (the ``distsched_serve`` hook). The metrics come only from the public event hook
(``distsched_event``): :class:`MetricsObserver` is an ordinary observer a third party could
write. Every metric, its type, labels and meaning: docs/metrics.md.

For another server (the web dashboard), :func:`asgi_app` gives the ``/metrics`` ASGI app of
an engine and :func:`observer_for` the engine's observer (registered on first use).
Needs ``prometheus-client`` (``pip install 'distsched[metrics]'``).
"""

from __future__ import annotations

from typing import Any

OBSERVER_NAME = "metrics-observer"
#: The plugin's name (its entry point): its settings are the config file's ``[plugins.metrics]``.
PLUGIN_NAME = "metrics"
#: The keys of ``[plugins.metrics]``.
SETTINGS = ("max_jobs",)
#: Distinct job names labelled per process (default 100; the others count as ``_other``).
#: Set, it wins over ``[plugins.metrics] max_jobs`` (environment over config file, as the
#: CLI's options).
MAX_JOBS_ENV = "DISTSCHED_METRICS_MAX_JOBS"

__all__ = ["MAX_JOBS_ENV", "OBSERVER_NAME", "PLUGIN_NAME", "SETTINGS", "asgi_app", "check_settings", "max_jobs_for",
           "max_jobs_from_env", "observer_for"]


def check_settings(table: dict[str, Any]) -> None:
    """Refuse a ``[plugins.metrics]`` table the plugin would not read right: an unknown key (a
    typo, with a did-you-mean) or a ``max_jobs`` that is not an integer >= 0 -
    a ValidationError naming the key (the engine adds ``[plugins.metrics] ``)."""
    import difflib

    from distsched.model import ValidationError

    for key in table:
        if key not in SETTINGS:
            close = difflib.get_close_matches(key, SETTINGS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValidationError(key, f"unknown setting ({hint}the metrics plugin reads: {', '.join(SETTINGS)})")
    value = table.get("max_jobs")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValidationError("max_jobs", f"must be an integer >= 0, not {value!r}")


def max_jobs_for(engine: Any) -> int | None:
    """The job label limit of ``engine``: ``$DISTSCHED_METRICS_MAX_JOBS`` when set, else its
    ``[plugins.metrics] max_jobs`` (``EngineConfig.plugin_settings``), else None (the
    observer's default)."""
    from_env = max_jobs_from_env()
    if from_env is not None:
        return from_env
    config = getattr(engine, "config", None)
    table = (getattr(config, "plugin_settings", None) or {}).get(PLUGIN_NAME) or {}
    value = table.get("max_jobs")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def max_jobs_from_env() -> int | None:
    """``$DISTSCHED_METRICS_MAX_JOBS`` as an integer >= 0, None when unset."""
    import os

    text = os.environ.get(MAX_JOBS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        from distsched.model import ValidationError

        raise ValidationError(MAX_JOBS_ENV, f"must be an integer >= 0, not {text!r}")
    return int(text)


def observer_for(engine: Any, *, max_jobs: int | None = None) -> Any:
    """The :class:`~distsched_metrics.observer.MetricsObserver` of ``engine``, registered on
    its plugin manager (as ``metrics-observer``) the first time it is asked for."""
    from .observer import MetricsObserver

    found = engine.plugins.hook_manager.get_plugin(OBSERVER_NAME)
    if found is None:
        if max_jobs is None:
            max_jobs = max_jobs_for(engine)
        found = MetricsObserver() if max_jobs is None else MetricsObserver(max_jobs=max_jobs)
        engine.plugins.register(found, OBSERVER_NAME)
    return found


def asgi_app(engine: Any, *, store: bool = True) -> Any:
    """An ASGI app answering the Prometheus text format with ``engine``'s metrics: mount it
    at ``/metrics`` (``prometheus_client.make_asgi_app`` over the observer's registry).

    With ``store`` (the default), each scrape first reads the deployment's figures from the
    store (``distsched_store_*``: tasks by state, workers alive and silent, queue depth per worker, the
    leader's term: three reads), which is what a dashboard that runs no scheduler and no
    worker can show. The engine's own metrics are there as well (its observer is
    registered on first use); they move only when the engine runs a scheduler or a worker
    (``distsched run --web``)."""
    from prometheus_client import CollectorRegistry, make_asgi_app

    observer = observer_for(engine)
    if not store:
        return make_asgi_app(observer.registry)
    from .store import StoreGauges

    gauges = StoreGauges(engine)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Both(observer.registry, gauges))
    inner = make_asgi_app(registry)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            await gauges.refresh()
        await inner(scope, receive, send)

    return app


class _Both:
    """A collector yielding an engine registry's metrics, then the store's gauges."""

    def __init__(self, registry: Any, gauges: Any) -> None:
        self.registry = registry
        self.gauges = gauges

    def collect(self) -> Any:
        yield from self.registry.collect()
        yield from self.gauges.collect()
