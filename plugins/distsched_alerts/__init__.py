"""Built-in distsched plugin: alerts by email (SMTP) and webhook when tasks fail for good.

Configured by the config file's ``[plugins.alerts]`` table (``EngineConfig.plugin_settings``,
the ``distsched_configure`` hook); fed only by the public event hook (``distsched_event``), in
the scheduler's process: a task that ended ``failed`` or ``timed_out`` with no retry left, a
record quarantined, and, when selected, leadership or a worker lost, the store's data lost.

The hook never waits on the network: it puts the alert into a bounded queue that a sender
thread empties. The sender sends at most one message per channel per ``min_interval``
(default 60 s): what comes in between is one digest listing up to ``max_items`` alerts, then
``and K more``. Settings, events and what a message looks like: docs/alerts.md.
"""

from __future__ import annotations

from .settings import (
    DEFAULT_EVENTS,
    EVENTS,
    PLUGIN_NAME,
    SETTINGS,
    Settings,
    check_settings,
    parse_settings,
)

__all__ = ["DEFAULT_EVENTS", "EVENTS", "PLUGIN_NAME", "SETTINGS", "Settings", "check_settings", "parse_settings"]
