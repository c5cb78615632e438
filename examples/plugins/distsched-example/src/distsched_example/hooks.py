"""Entry point of the ``example`` plugin: hook implementations only, nothing heavy.

Every ``distsched`` command imports this module (``distsched --help`` included), so it
imports only ``os`` and the ``hookimpl`` marker; the executor, the balancer and the
observer are imported inside their factories, the first time they are used. The types come
from distsched's public plugin API and are imported for the type checker only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from distsched import hookimpl

if TYPE_CHECKING:
    from distsched.model import TaskSpec
    from distsched.model.events import Event
    from distsched.ports import Balancer, Executor, ExecutorContext
    from distsched.registry import BalancerRegistry, ExecutorRegistry

#: The file the observer appends events to (one JSON object per line); unset = no log.
EVENTS_ENV = "DISTSCHED_EXAMPLE_EVENTS"


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
    path = os.environ.get(EVENTS_ENV)
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
