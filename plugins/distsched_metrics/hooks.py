"""Entry point of the ``metrics`` plugin: hook implementations only, nothing heavy.

prometheus-client is imported only when metrics are served, so the plugin loads (and
``distsched plugins`` lists it) without the ``metrics`` extra.
"""

from __future__ import annotations

from typing import Any

from distsched import hookimpl


@hookimpl
def distsched_configure(config: Any) -> None:
    """Check ``[plugins.metrics]`` when any engine starts, served or not: a typo is refused."""
    from . import PLUGIN_NAME, check_settings

    check_settings(config.plugin_settings.get(PLUGIN_NAME) or {})


@hookimpl
def distsched_serve(engine: Any, name: str, address: str) -> Any:
    if name != "metrics":
        return None
    from distsched.config import parse_address

    host, port = parse_address(address, "metrics")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        from distsched.model import PluginError

        raise PluginError("serving metrics needs prometheus-client: pip install 'distsched[metrics]'") from None
    from . import max_jobs_for
    from .server import MetricsServer

    # $DISTSCHED_METRICS_MAX_JOBS, else [plugins.metrics] max_jobs (checked by distsched_configure);
    # a bad variable: ValidationError naming it, nothing started
    max_jobs = max_jobs_for(engine)
    return MetricsServer.start(engine, host, port, max_jobs=max_jobs)
