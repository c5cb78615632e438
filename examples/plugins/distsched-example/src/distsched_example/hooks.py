"""Entry point of the ``example`` plugin: hook implementations only, nothing heavy.

Every ``distsched`` command imports this module (``distsched --help`` included), so it
imports only ``os`` and the ``hookimpl`` marker; the executor, the balancer and the
observer are imported inside their factories, the first time they are used.
"""

from __future__ import annotations

import os

from distsched import hookimpl

#: The file the observer appends events to (one JSON object per line); unset = no log.
EVENTS_ENV = "DISTSCHED_EXAMPLE_EVENTS"


@hookimpl
def distsched_register_executors(registry):
    registry.add(
        "echo",
        _echo,
        description="Returns the task's target, args and kwargs; runs nothing",
        validate=_validate_echo,
    )


@hookimpl
def distsched_register_balancers(registry):
    registry.add(
        "most-free",
        _most_free,
        description="Picks the healthy worker with the most free slots (ties: the smallest id)",
    )


@hookimpl
def distsched_event(event):
    path = os.environ.get(EVENTS_ENV)
    if path:
        from .observer import append_event

        append_event(path, event)


def _echo(context):
    from .executor import EchoExecutor

    return EchoExecutor(context)


def _validate_echo(spec):
    # Called wherever a job is added or a task submitted (no worker needed): refuse what the
    # executor could never run, with the field and the reason. echo takes no options.
    if spec.options:
        from distsched.model import ValidationError

        name = sorted(spec.options)[0]
        raise ValidationError(f"options.{name}", "the echo executor takes no options")


def _most_free():
    from .balancer import MostFreeBalancer

    return MostFreeBalancer()
