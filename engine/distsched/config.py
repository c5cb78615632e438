"""Engine settings, with defaults an operator would expect and validation naming the field."""

from __future__ import annotations

import math
import os
import socket
import uuid
from typing import Any

import attrs

from .model.errors import ValidationError
from .model.worker import MAX_CAPACITY, MAX_CONCURRENCY, check_capacity
from .urls import redact_url

STORAGE_ENV = "DISTSCHED_STORAGE"
#: Plugins not to load (comma-separated names) and extra plugin modules to load.
DISABLE_ENV = "DISTSCHED_DISABLE_PLUGINS"
PLUGINS_ENV = "DISTSCHED_PLUGINS"
#: The names (or URL schemes) a plugin declaring ``replace=True`` may take over from another
#: plugin (comma-separated); see distsched.registry.
ALLOW_REPLACE_ENV = "DISTSCHED_ALLOW_REPLACE"
DEFAULT_STORAGE = "memory://"


def default_storage_url() -> str:
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def check_storage_url(url: Any, field: str = "storage") -> str:
    if not isinstance(url, str) or "://" not in url:
        shown = repr(redact_url(url)) if isinstance(url, str) else type(url).__name__
        raise ValidationError(field, f"must be a URL such as memory:// or redis://host:6379/0, not {shown}")
    return url


#: The longest lease: no node holds one longer than this past its last renewal, so a store
#: may take a lease that claims to run longer (one restored without its expiry, or written
#: by hand) as broken.
LEASE_TTL_MAX = 3600.0


def lease_timing(ttl: Any, renew_interval: Any) -> tuple[float, float]:
    """Check an election's ``ttl`` and ``renew_interval`` (positive seconds, the renewal
    shorter than the lease, the lease at most :data:`LEASE_TTL_MAX`) and return them as
    floats; a :class:`ValidationError` names the field. Every election plugin's constructor
    calls it, so the rule is one rule."""
    for name, value in (("ttl", ttl), ("renew_interval", renew_interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value <= 0:
            raise ValidationError(name, f"must be a positive number of seconds, not {value!r}")
    if ttl > LEASE_TTL_MAX:
        raise ValidationError("ttl", f"must be at most {LEASE_TTL_MAX:g} seconds, not {ttl!r}")
    if renew_interval >= ttl:
        raise ValidationError("renew_interval", f"must be shorter than the lease ttl ({ttl:g}s)")
    return float(ttl), float(renew_interval)


#: The most ``fire_ahead`` may be: a worker refuses a task dispatched earlier than that
#: before its ``not_before`` (a broken record), rather than hold a slot until then.
FIRE_AHEAD_MAX = 60.0


def _seconds(low: float, high: float):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise ValidationError(attribute.name, f"must be a number of seconds between {low:g} and {high:g}, not {value!r}")

    return check


def _positive(limit: int):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValidationError(attribute.name, f"must be an integer between 1 and {limit}, not {value!r}")

    return check


def _signing_keys_from_env() -> tuple[bytes, ...]:
    from .signing import keys_from_env

    return keys_from_env()


def new_node_id(prefix: str = "node") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def parse_address(value: Any, field: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValidationError naming ``field``."""
    if not isinstance(value, str) or ":" not in value:
        raise ValidationError(field, f"must be HOST:PORT such as 127.0.0.1:9100, not {value!r}")
    host, _, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() for c in host):
        raise ValidationError(field, f"must be HOST:PORT with a host before the colon, not {value!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValidationError(field, f"port must be an integer between 0 and 65535, not {port_text!r}")
    return host, int(port_text)


def _check_serve(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError("serve", f"must be a mapping of name to HOST:PORT, not {type(value).__name__}")
    for name, address in value.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValidationError("serve", f"names must be identifiers such as 'metrics', not {name!r}")
        parse_address(address, f"serve.{name}")


def plugin_table_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a value of a ``[plugins.<name>]`` table (strict JSON: text,
    numbers, true/false, lists, tables with text keys - no TOML date or time), or None. The
    value itself is never in the reason: it may be a secret."""
    import datetime

    def problem(item: Any, depth: int) -> str | None:
        if depth > 32:
            return "it is nested more than 32 levels deep"
        if item is None or isinstance(item, (bool, int, str)):
            return None
        if isinstance(item, float):
            return None if math.isfinite(item) else "NaN and infinities are not JSON"
        if isinstance(item, (datetime.date, datetime.time)):
            return "a TOML date or time is not JSON (quote it)"
        if isinstance(item, (list, tuple)):
            return next((p for p in (problem(i, depth + 1) for i in item) if p), None)
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return "a table with keys that are not text is not JSON"
            return next((p for p in (problem(i, depth + 1) for i in item.values()) if p), None)
        return f"a {type(item).__name__} is not JSON"

    return problem(value, 0)


def check_plugin_settings(value: Any) -> dict[str, dict[str, Any]]:
    """``EngineConfig.plugin_settings``: plugin name -> its table of JSON values; a
    :class:`ValidationError` names ``[plugins.<name>]`` and the key, never the value."""
    if not isinstance(value, dict):
        raise ValidationError("plugin_settings", f"must be a mapping of plugin name to table, not {type(value).__name__}")
    for name, table in value.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("plugin_settings", f"plugin names must be non-empty text, not {name!r}")
        if not isinstance(table, dict):
            raise ValidationError(f"[plugins.{name}]", f"must be a table ([plugins.{name}]), not {type(table).__name__}")
        for key, item in table.items():
            if not isinstance(key, str):
                raise ValidationError(f"[plugins.{name}]", f"keys must be text, not {type(key).__name__}")
            why = plugin_table_problem(item)
            if why:
                raise ValidationError(f"[plugins.{name}] {key}", why)
    return value


def _masked(value: Any) -> str:
    """The plugin tables as the repr shows them: secrets and webhook URL paths masked."""
    from .masking import mask_settings

    return repr({name: mask_settings(table) if isinstance(table, dict) else "***" for name, table in value.items()})


@attrs.frozen(kw_only=True)
class EngineConfig:
    """How one process takes part: which store, and the timing of leases and heartbeats.

    ``lease_ttl`` / ``renew_interval``: the leader's lease (renewed every 3 s by default; a
    leader that cannot renew steps down at once). ``heartbeat_interval`` / ``heartbeat_ttl``:
    a worker is dead when its heartbeat is older than the TTL; the leader then requeues what
    it held. ``timeout_grace``: the leader marks a task timed out when no result arrived
    ``timeout + grace`` after it started (the worker enforces the timeout itself first).
    """

    storage: str = attrs.field(factory=default_storage_url, validator=lambda i, a, v: check_storage_url(v),
                               repr=redact_url)
    election: str | None = attrs.field(default=None, repr=lambda url: "None" if url is None else redact_url(url))
    storage_options: dict[str, Any] = attrs.field(factory=dict)
    node_id: str = attrs.field(factory=new_node_id)
    lease_ttl: float = attrs.field(default=10.0, validator=_seconds(0.2, LEASE_TTL_MAX))
    renew_interval: float = attrs.field(default=3.0, validator=_seconds(0.05, 3600))
    #: Keys for signed tasks and results (``distsched.signing``): the first signs, all verify.
    #: Default: ``DISTSCHED_SIGNING_KEY`` / ``DISTSCHED_SIGNING_KEY_FILE``; () signs nothing.
    signing_keys: tuple[bytes, ...] = attrs.field(factory=lambda: _signing_keys_from_env(), repr=False,
                                                  converter=lambda keys: tuple(
                                                      k.encode("utf-8") if isinstance(k, str) else bytes(k)
                                                      for k in keys))
    heartbeat_interval: float = attrs.field(default=2.0, validator=_seconds(0.05, 3600))
    heartbeat_ttl: float = attrs.field(default=10.0, validator=_seconds(0.2, 86400))
    timeout_grace: float = attrs.field(default=5.0, validator=_seconds(0, 86400))
    dispatch_batch: int = attrs.field(default=500, validator=_positive(100_000))
    result_batch: int = attrs.field(default=500, validator=_positive(100_000))
    #: The leader fires and dispatches slots this many seconds ahead; the worker starts each
    #: task at its slot, so the leader's own work does not delay it.
    fire_ahead: float = attrs.field(default=0.2, validator=_seconds(0, FIRE_AHEAD_MAX))
    #: How long a task no live worker may run waits for one (no live worker has its
    #: executor or, for ``local``, offers its function): it stays pending, and fails once it
    #: has waited this long with none (its error names the function or executor and what the
    #: live workers offer). 0: it goes to any worker, whose executor fails it at once. None
    #: (the default): 300 s (a rolling restart of a function's only workers - a drain,
    #: ``drain_timeout`` 30 s, then a start - fits) where the store parks such tasks out of the
    #: ready queue (``TaskRepository.park``: memory, Redis, PostgreSQL), else 0 - there they would stay in
    #: the ready queue, where more than ``dispatch_batch`` of them at its head hold back every
    #: task behind them (docs/reliability.md). No live worker at all: a task waits, with no bound.
    unroutable_wait: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_seconds(0, 86400)))
    max_redeliveries: int = attrs.field(default=10, validator=_positive(10_000))
    #: When True a task lost with its worker uses up an attempt of its retry policy.
    redeliveries_use_attempts: bool = False
    #: Servers to start beside the engine while it runs, by name: ``{"metrics":
    #: "127.0.0.1:9100"}``; each is started by the plugin that serves that name (the
    #: ``distsched_serve`` hook). The CLI's ``--metrics HOST:PORT`` fills it.
    serve: dict[str, str] = attrs.field(factory=dict, validator=_check_serve)
    #: The process only reads the store (the CLI's ``status``, ``tasks list`` / ``show``,
    #: ``jobs list``, ``jobs sync --dry-run``, ``quarantine list``): the store is opened as a
    #: reader, which skips the set-up only a writer needs - PostgreSQL applies no migration
    #: and creates no schema, and refuses one that is missing or outdated, naming
    #: ``distsched db upgrade``. Nothing else changes: a reader's writes are not refused.
    reader: bool = False
    #: Each plugin's own settings, by the plugin's name as ``distsched plugins`` lists it:
    #: ``{"metrics": {"max_jobs": 500}}`` - the config file's ``[plugins.<name>]`` tables.
    #: Values are JSON (a ``ValidationError`` names ``[plugins.<name>] key``); a plugin reads
    #: its table in the ``distsched_configure(config)`` hook, a server also as
    #: ``engine.config.plugin_settings``. Secrets and webhook URL paths are masked in the repr
    #: (``distsched.masking.mask_settings``).
    plugin_settings: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=_masked,
                                                               validator=lambda i, a, v: check_plugin_settings(v))

    def __attrs_post_init__(self) -> None:
        if self.renew_interval >= self.lease_ttl:
            raise ValidationError("renew_interval", f"must be shorter than lease_ttl ({self.lease_ttl:g}s)")
        if self.heartbeat_interval >= self.heartbeat_ttl:
            raise ValidationError("heartbeat_interval", f"must be shorter than heartbeat_ttl ({self.heartbeat_ttl:g}s)")


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """One worker process: its name, concurrency, capacity and executor settings.

    ``settings`` is the jobs file's ``[worker]`` table minus the keys above; executors read
    their own keys from it (``http_allow``, ``http_body_limit``, ...).
    """

    name: str | None = None
    concurrency: int = attrs.field(default=8, validator=_positive(MAX_CONCURRENCY))
    #: Tasks the worker may hold, queued and running: at least ``concurrency`` (None:
    #: ``max(4 x concurrency, 64)``).
    capacity: int | None = attrs.field(default=None, validator=attrs.validators.optional(_positive(MAX_CAPACITY)))
    drain_timeout: float = attrs.field(default=30.0, validator=_seconds(0, 86400))
    settings: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.capacity is not None:
            check_capacity(self.concurrency, self.capacity)


__all__ = [
    "ALLOW_REPLACE_ENV", "DEFAULT_STORAGE", "DISABLE_ENV", "PLUGINS_ENV", "STORAGE_ENV", "EngineConfig", "WorkerConfig", "check_storage_url", "default_storage_url",
    "lease_timing", "new_node_id", "parse_address",
]
