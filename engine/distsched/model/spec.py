"""TaskSpec: the call a task makes (which executor, what target, with what arguments)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import attrs

from .errors import ValidationError
from .newer import init_fields, refuse_newer
from .retry import RetryPolicy

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
MAX_TIMEOUT = 7 * 24 * 3600.0
#: Largest JSON payload (args + kwargs + options) a task may carry.
MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = 60.0
DEFAULT_EXECUTOR = "local"
DEFAULT_BALANCER = "least-tasks"


def check_name(field: str, value: Any) -> None:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):  # not match: "$" takes a final "\n"
        raise ValidationError(
            field,
            f"must be 1-128 characters of letters, digits, '_', '-', '.', ':' "
            f"(starting with a letter or digit), not {value!r}",
        )


def _name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    check_name(attribute.name, value)


def _timeout(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError("timeout", f"must be a number of seconds, not {value!r}")
    if not 0 < value <= MAX_TIMEOUT:
        raise ValidationError("timeout", f"must be > 0 and <= {MAX_TIMEOUT:g} seconds, not {value!r}")


def _target(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise ValidationError("target", f"must be a non-empty string of at most 4096 characters, not {value!r}")


def _balance_key(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError("balance_key", f"must be a string, not {type(value).__name__} {value!r:.80}")


def _retry(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    # a stored job's spec is rebuilt with from_dict: a retry that was not a table ("x",
    # null, a list) was kept as it was, and the leader's firing of the job - and the
    # job's page - failed on it at every pass (a crash loop: no job fired any more)
    if type(value) is not RetryPolicy:
        raise ValidationError("retry", f"must be a retry policy (a table such as {{max_attempts = 3}}), "
                                       f"not {type(value).__name__} {value!r:.80}")


def _retry_of(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError("retry_of", f"must be a task id (text), not {value!r:.80}")


def _args(value: Any) -> tuple[Any, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    raise ValidationError("args", f"must be a list of JSON values, not {type(value).__name__}")


#: Bounds of _plain_and_small: at most this many arguments, strings this long.
_PLAIN_ARGS, _PLAIN_STR = 32, 1024


def _plain_and_small(args: tuple[Any, ...]) -> bool:
    """True when ``args`` are only None, bools, 64-bit ints, finite floats and short strings,
    and few: then they are valid JSON and their encoding is far under MAX_PAYLOAD_BYTES (a
    string's JSON is at most 6 bytes a character plus quotes), so validating needs no encoding."""
    if len(args) > _PLAIN_ARGS:
        return False
    for a in args:
        kind = type(a)
        if a is None or kind is bool or kind is str and len(a) <= _PLAIN_STR:
            continue
        if kind is int and -(1 << 63) <= a < (1 << 63):
            continue
        if kind is float and math.isfinite(a):
            continue
        return False
    return True


#: Argument types that cannot change once built (a spec holding only these, in its tuple of
#: arguments, changes only through its kwargs and options dicts).
_SCALARS = frozenset({str, int, float, bool, type(None)})




def _json_error(value: Any) -> Exception | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return exc
    return None


def _not_json(args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> tuple[str, Exception] | None:
    """The first argument that is not plain JSON, as ``(field, error)`` - ``args[1]``,
    ``kwargs.when``, ``options.body`` - or None (only the arguments together fail)."""
    for i, value in enumerate(args):
        exc = _json_error(value)
        if exc is not None:
            return f"args[{i}]", exc
    for field, table in (("kwargs", kwargs), ("options", options)):
        for key, value in table.items():
            exc = _json_error(value)
            if exc is not None:
                return f"{field}.{key}", exc
    return None


def _too_large(size: int, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> ValidationError:
    """The error of a payload of ``size`` bytes of JSON, over the limit: it names the value
    that is too large alone (``kwargs.body``, ``args[0]``), else the part that is
    (``kwargs: payload is ...``, naming its largest value), or ``payload`` when only the
    parts together are, saying how large each is and which is the largest."""
    parts = {name: len(json.dumps(value, allow_nan=False, separators=(",", ":")))
             for name, value in (("args", list(args)), ("kwargs", kwargs), ("options", options))}
    largest = max(parts, key=parts.__getitem__)
    limit = f"the limit is {MAX_PAYLOAD_BYTES} for args, kwargs and options together"
    if parts[largest] > MAX_PAYLOAD_BYTES:
        items: list[tuple[str, Any]] = (
            [(f"args[{i}]", value) for i, value in enumerate(args)] if largest == "args"
            else [(f"{largest}.{key}", value) for key, value in (kwargs if largest == "kwargs" else options).items()]
        )
        each = [(name, len(json.dumps(value, allow_nan=False, separators=(",", ":")))) for name, value in items]
        name, n = max(each, key=lambda pair: pair[1], default=(largest, 0))
        if n > MAX_PAYLOAD_BYTES:  # one value alone is over the limit: name it
            return ValidationError(name, f"is {n} bytes of JSON; {limit} (the payload is {size})")
        return ValidationError(largest, f"payload is {size} bytes of JSON, {parts[largest]} of them in {largest} "
                                        f"({name} is the largest, {n} bytes); {limit}")
    sizes = ", ".join(f"{name} {n}" for name, n in parts.items())
    return ValidationError("payload", f"args, kwargs and options are {size} bytes of JSON together ({sizes}: "
                                      f"{largest} is the largest); the limit is {MAX_PAYLOAD_BYTES}")


@attrs.frozen(kw_only=True)
class TaskSpec:
    """What to run: executor name, target (a registered function name, a URL, an endpoint),
    JSON arguments, executor options, the timeout, the retry policy and the balancer."""

    executor: str = attrs.field(default=DEFAULT_EXECUTOR, validator=_name)
    target: str = attrs.field(validator=_target)
    args: tuple[Any, ...] = attrs.field(default=(), converter=_args)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    options: dict[str, Any] = attrs.field(factory=dict)
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, validator=_timeout)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, validator=_retry)
    balancer: str = attrs.field(default=DEFAULT_BALANCER, validator=_name)
    #: What consistent-hash balancing hashes; defaults to the job name (or the task id).
    balance_key: str | None = attrs.field(default=None, validator=_balance_key)
    #: The task this one runs again (``retry_task`` sets it: "retry of <id>"); None for any
    #: other task. Kept in the spec's JSON, which every store stores as it is (a record
    #: written before it has none; one key more, only when set, no migration).
    retry_of: str | None = attrs.field(default=None, validator=_retry_of)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.kwargs, dict):
            raise ValidationError("kwargs", f"must be a table/object, not {type(self.kwargs).__name__}")
        if not isinstance(self.options, dict):
            raise ValidationError("options", f"must be a table/object, not {type(self.options).__name__}")
        for field, table in (("kwargs", self.kwargs), ("options", self.options)):
            bad = next((k for k in table if not isinstance(k, str)), None)
            if bad is not None:
                raise ValidationError(field, f"keys must be strings, not {bad!r}")
        if not self.kwargs and not self.options and _plain_and_small(self.args):
            return  # the common one-off task: plain JSON far under the limit, no need to encode it
        try:
            size = len(
                json.dumps([self.args, self.kwargs, self.options], allow_nan=False, separators=(",", ":"))
            )
        except (TypeError, ValueError, RecursionError) as exc:
            field, problem = _not_json(self.args, self.kwargs, self.options) or ("args", exc)
            raise ValidationError(field, f"must be plain JSON ({problem})") from None
        if size > MAX_PAYLOAD_BYTES:
            raise _too_large(size, self.args, self.kwargs, self.options)

    def validate(self) -> None:
        """Run the checks of construction again on this instance: for a spec built without
        them from a store's bytes (``trusted.stored_spec``), which may have been written
        straight into the store. Raises ValidationError (TypeError for a value of a type
        the checks cannot compare), as ``TaskSpec.from_dict(spec.to_dict())`` would, without
        building a new spec."""
        if not isinstance(self.args, tuple):
            raise ValidationError("args", f"must be a list of JSON values, not {type(self.args).__name__}")
        attrs.validate(self)  # executor, target, timeout, retry (a RetryPolicy), balancer, balance_key
        self.__attrs_post_init__()  # kwargs and options tables, the payload plain JSON and small enough
        retry = self.retry
        attrs.validate(retry)
        retry.__attrs_post_init__()

    def to_dict(self) -> dict[str, Any]:
        data = {
            "executor": self.executor,
            "target": self.target,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": self.options,
            "timeout": self.timeout,
            "retry": self.retry.to_dict(),
            "balancer": self.balancer,
            "balance_key": self.balance_key,
        }
        if self.retry_of is not None:  # a retry's only: every other spec's JSON stays as it was
            data["retry_of"] = self.retry_of
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        """A spec from its stored dict (``to_dict()``). A field this version does not know
        (a newer node's), of the spec or its retry policy, is refused naming it
        (``spec.<field>``, ``spec.retry.<field>``): ignored, the task would run or retry
        otherwise than stored (``distsched.model.newer``)."""
        refuse_newer("spec", data, init_fields(cls), "spec")
        data = dict(data)
        if isinstance(data.get("retry"), dict):
            data["retry"] = RetryPolicy.from_dict(data["retry"], field="spec.retry")
        return cls(**data)


#: What of a spec may change after it was built: ``()`` when its kwargs and options dicts
#: were empty, else the items of both.
_Snapshot = tuple[tuple[tuple[str, Any], ...], ...]


def _tables_snapshot(spec: TaskSpec) -> _Snapshot | None:
    """What may still change in a frozen spec - the items of its ``kwargs`` and ``options``
    dicts, which the caller keeps - when that is all that may: None when an argument or one
    of those values is not an immutable scalar (a list, a dict), whose inside could change,
    and for a spec a store decoded whose fields are not of their types (a broken record,
    which is encoded as it is, not cached)."""
    args, kwargs, options = spec.args, spec.kwargs, spec.options
    if args.__class__ not in (tuple, list) or kwargs.__class__ is not dict or options.__class__ is not dict:
        return None
    for value in args:
        if value.__class__ not in _SCALARS:
            return None
    if not kwargs and not options:
        return ()  # the common one-off task
    for table in (kwargs, options):
        for value in table.values():
            if value.__class__ not in _SCALARS:
                return None
    return tuple(kwargs.items()), tuple(options.items())


def _same_items(items: tuple[tuple[str, Any], ...], table: dict[str, Any]) -> bool:
    """``table`` holds ``items``: the same keys in the same order, each with the very same
    value object (by identity: ``1``, ``1.0`` and ``True`` are equal but encode differently)."""
    if len(items) != len(table):
        return False
    for (key, value), (now_key, now_value) in zip(items, table.items()):
        if value is not now_value or key != now_key:
            return False
    return True


def spec_json_cache(encode: Callable[[dict[str, Any]], str], size: int = 4096) -> Callable[[TaskSpec], str]:
    """A store's spec encoder, ``encode(spec.to_dict())``, with a cache by spec object: the
    tasks of one spec (a ``submit_many`` of one spec, a job's slots, the tasks a store decoded)
    are encoded once. A spec is frozen but its ``kwargs`` and ``options`` dicts are the
    caller's, who may change them and submit the spec again: a cached text is used only while
    they hold what they held when it was encoded (checked by identity, cheaply), and a spec
    with a list or dict argument (whose inside could change unseen) is encoded every time.
    At most ``size`` specs are kept (the cache is emptied when full)."""
    cache: dict[int, tuple[TaskSpec, str, _Snapshot]] = {}

    def spec_json(spec: TaskSpec) -> str:
        hit = cache.get(id(spec))
        if hit is not None and hit[0] is spec:
            was = hit[2]
            if (not spec.kwargs and not spec.options) if not was else (
                    _same_items(was[0], spec.kwargs) and _same_items(was[1], spec.options)):
                return hit[1]
        text = encode(spec.to_dict())
        snapshot = _tables_snapshot(spec)
        if snapshot is not None:
            if len(cache) >= size:
                cache.clear()
            cache[id(spec)] = (spec, text, snapshot)  # holds the spec, so its id is not reused meanwhile
        return text

    return spec_json
