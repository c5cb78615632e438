"""Entry point of the ``local`` plugin: hook implementations only, nothing heavy."""

from __future__ import annotations

from distsched import hookimpl


@hookimpl
def distsched_register_executors(registry):
    registry.add(
        "local",
        _make,
        description="Runs a Python function the application registered by name (sync ones in a thread pool)",
        check_settings=_check_settings,
        settings=("log_capture", "log_capture_level"),
    )


def _check_settings(settings):
    from .capture import capture_level, capture_limit

    capture_limit(settings.get("log_capture"))
    capture_level(settings.get("log_capture_level"))


def _make(context):
    from .executor import LocalExecutor

    return LocalExecutor(context)
