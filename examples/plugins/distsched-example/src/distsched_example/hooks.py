"""Entry point of the ``example`` plugin: hook implementations only, nothing heavy.

Every ``distsched`` command imports this module (``distsched --help`` included), so it
imports only ``os``, ``typing`` and the ``hookimpl`` marker; the executor, the balancer and the
observer are imported inside their factories, the first time they are used. The types come
from distsched's public plugin API and are imported for the type checker only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from distsched import hookimpl

if TYPE_CHECKING:
    from distsched.config import EngineConfig
    from distsched.model import TaskSpec
    from distsched.model.events import Event
    from distsched.ports import Balancer, Executor, ExecutorContext
    from distsched.registry import BalancerRegistry, ExecutorRegistry

#: The file the observer appends events to (one JSON object per line); unset = no log.
#: Set, it wins over the config file's ``[plugins.example] events``.
EVENTS_ENV = "DISTSCHED_EXAMPLE_EVENTS"
#: The keys of this plugin's ``[plugins.example]`` table.
SETTINGS = ("events",)
#: What distsched_configure read from ``[plugins.example]`` (the last engine's).
_settings: dict[str, Any] = {}


@hookimpl
def distsched_configure(config: EngineConfig) -> None:
    # The plugin's own settings: the config file's [plugins.example] table. Called when an
    # engine starts, before any event: check the table here, so a typo stops the engine
    # with "[plugins.example] event: unknown setting ..." instead of logging nothing.
    from distsched.model import ValidationError

    table = config.plugin_settings.get("example", {})
    for key in table:
        if key not in SETTINGS:
            raise ValidationError(key, f"unknown setting (the example plugin reads: {', '.join(SETTINGS)})")
    events = table.get("events")
    if events is not None and (not isinstance(events, str) or not events):
        raise ValidationError("events", "must be the path of a file to append events to")
    _settings.clear()
    _settings.update(table)


@hookimpl
def distsched_register_executors(registry: ExecutorRegistry) -> None:
    registry.add(
        "echo",
        _echo,
        description="Returns the task's target, args and kwargs; runs nothing",
        validate=_validate_echo,
        settings=(),  # it reads no [worker] setting: a key no executor declares is a typo
    )


@hookimpl
def distsched_register_balancers(registry: BalancerRegistry) -> None:
    registry.add(
        "most-free",
        _most_free,
        description="Picks the healthy worker with the most free slots (ties: the smallest id)",
    )


@hookimpl
def distsched_event(event: Event) -> None:
    path = os.environ.get(EVENTS_ENV) or _settings.get("events")
    if path:
        from .observer import append_event

        append_event(path, event)


def _echo(context: ExecutorContext) -> Executor:
    from .executor import EchoExecutor

    return EchoExecutor(context)


def _validate_echo(spec: TaskSpec) -> None:
    # Called wherever a job is added or a task submitted (no worker needed): refuse what the
    # executor could never run, with the field and the reason. echo takes no options.
    if spec.options:
        from distsched.model import ValidationError

        name = sorted(spec.options)[0]
        raise ValidationError(f"options.{name}", "the echo executor takes no options")


def _most_free() -> Balancer:
    from .balancer import MostFreeBalancer

    return MostFreeBalancer()
