"""Entry point of the ``alerts`` plugin: hook implementations only, nothing heavy.

``distsched_configure`` reads ``[plugins.alerts]`` (a bad table stops the engine with one
line naming the key) and, when it names somewhere to send, registers an
:class:`~distsched_alerts.sender.Alerter` as this engine's observer. Without a table the
plugin observes nothing, and an engine nobody else observes builds no events.
"""

from __future__ import annotations

from typing import Any

from distsched import hookimpl

#: The name an engine's alerter is registered under (``PluginManager.register``).
OBSERVER_NAME = "alerts-observer"


@hookimpl
def distsched_configure(config: Any, plugins: Any) -> None:
    """Check ``[plugins.alerts]`` when any engine starts; an engine that may alert (not a
    reader of the store: ``distsched status``, ``tasks list``...) gets its own alerter."""
    from . import PLUGIN_NAME, parse_settings

    reader = bool(getattr(config, "reader", False))
    settings = parse_settings(config.plugin_settings.get(PLUGIN_NAME) or {}, need_password=not reader)
    if reader or not settings.active:
        return
    from .sender import Alerter

    plugins.register(Alerter(settings), OBSERVER_NAME)


def alerter_of(plugins: Any) -> Any:
    """The alerter of the engine whose plugin manager is ``plugins`` (None: none)."""
    return plugins.hook_manager.get_plugin(OBSERVER_NAME)
