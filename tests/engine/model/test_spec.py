"""TaskSpec: validation of the call a task makes, payload limits, serialisation."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import RetryPolicy, TaskSpec, ValidationError, spec_json_cache
from distsched.model.spec import MAX_PAYLOAD_BYTES, MAX_TIMEOUT


def test_defaults():
    spec = TaskSpec(target="pkg.mod:func")
    assert spec.executor == "local" and spec.balancer == "least-tasks"
    assert spec.args == () and spec.kwargs == {} and spec.options == {}
    assert spec.timeout == 60.0 and spec.retry == RetryPolicy() and spec.balance_key is None


def test_args_list_becomes_a_tuple():
    assert TaskSpec(target="f", args=[1, "a", None]).args == (1, "a", None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"executor": ""}, "executor"),
        ({"executor": "bad name"}, "executor"),
        ({"executor": "-dash-first"}, "executor"),
        ({"executor": "x" * 129}, "executor"),
        ({"executor": None}, "executor"),
        ({"executor": "a/b"}, "executor"),
        ({"balancer": ""}, "balancer"),
        ({"balancer": "least tasks"}, "balancer"),
        ({"balancer": 3}, "balancer"),
        ({"target": ""}, "target"),
        ({"target": None}, "target"),
        ({"target": 42}, "target"),
        ({"target": "x" * 4097}, "target"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": MAX_TIMEOUT + 1}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "60"}, "timeout"),
        ({"kwargs": [1, 2]}, "kwargs"),
        ({"kwargs": "a=1"}, "kwargs"),
        ({"kwargs": None}, "kwargs"),
        ({"options": ["x"]}, "options"),
        ({"args": [{1, 2}]}, "args[0]"),
        ({"args": [object()]}, "args[0]"),
        ({"args": [math.nan]}, "args[0]"),
        ({"args": [1, math.inf]}, "args[1]"),
        ({"args": [b"bytes"]}, "args[0]"),
        ({"kwargs": {"when": object()}}, "kwargs.when"),
        ({"kwargs": {"ok": 1, "s": {1}}}, "kwargs.s"),
        ({"options": {"s": {1}}}, "options.s"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    kwargs = {"target": "f", **kwargs}
    with pytest.raises(ValidationError) as exc:
        TaskSpec(**kwargs)
    assert exc.value.field == field


def test_valid_names_and_limits():
    spec = TaskSpec(executor="my_exec.v2:x", balancer="consistent-hash", target="x" * 4096,
                    timeout=MAX_TIMEOUT)
    assert spec.timeout == MAX_TIMEOUT
    assert TaskSpec(target="f", timeout=0.001).timeout == 0.001


def test_payload_limit_applies_to_args_kwargs_and_options_together():
    big = "x" * (MAX_PAYLOAD_BYTES // 2)
    TaskSpec(target="f", args=[big])
    with pytest.raises(ValidationError) as exc:
        TaskSpec(target="f", args=[big], kwargs={"b": big})
    assert exc.value.field == "payload" and "limit" in exc.value.reason
    with pytest.raises(ValidationError):
        TaskSpec(target="f", args=["x" * (MAX_PAYLOAD_BYTES + 1)])
    with pytest.raises(ValidationError):
        TaskSpec(target="f", options={"body": "x" * (MAX_PAYLOAD_BYTES + 1)})


@pytest.mark.parametrize("where", ["args", "kwargs", "options"])
def test_a_payload_over_the_limit_names_the_part_that_is_too_large(where):
    """Was: ``args: payload is ...`` whichever part was large (probe finding), then the part
    (``kwargs``) even when one value of it was the culprit. A value too large alone is named
    (``kwargs.body``); a part too large alone is named with its largest value; when only the
    parts together are, ``payload``,
    with each part's size and the largest named."""
    big = "x" * MAX_PAYLOAD_BYTES
    parts = {"args": [1, big]} if where == "args" else {where: {"id": 1, "body": big}}
    key = "args[1]" if where == "args" else f"{where}.body"
    with pytest.raises(ValidationError) as exc:
        TaskSpec(target="f", **parts)
    # One value alone over the limit is named by its key (was: the part, ``kwargs``).
    assert exc.value.field == key
    assert str(exc.value).startswith(f"{key}: is {MAX_PAYLOAD_BYTES + 2} bytes of JSON; the limit is ")

    # A part over the limit only with all its values: the part, and its largest value.
    third = "x" * (MAX_PAYLOAD_BYTES // 3)
    parts = {"args": [third, third, third + "z"]} if where == "args" else {
        where: {"a": third, "b": third + "z", "c": third}}
    largest = "args[2]" if where == "args" else f"{where}.b"
    with pytest.raises(ValidationError) as exc:
        TaskSpec(target="f", **parts)
    assert exc.value.field == where
    assert str(exc.value).startswith(f"{where}: payload is ")
    assert (f" of them in {where} ({largest} is the largest, {len(third) + 3} bytes); the limit is "
            f"{MAX_PAYLOAD_BYTES} for args, kwargs and options together") in str(exc.value)

    half = "y" * (MAX_PAYLOAD_BYTES // 2)
    with pytest.raises(ValidationError) as exc:
        TaskSpec(target="f", args=[half], kwargs={"k": half}, options={"o": half + "z"})
    assert exc.value.field == "payload"
    sizes = {name: len(json.dumps(value, separators=(",", ":")))
             for name, value in (("args", [half]), ("kwargs", {"k": half}), ("options", {"o": half + "z"}))}
    total = len(json.dumps([[half], {"k": half}, {"o": half + "z"}], separators=(",", ":")))
    assert str(exc.value) == (f"payload: args, kwargs and options are {total} bytes of JSON together (args "
                              f"{sizes['args']}, kwargs {sizes['kwargs']}, options {sizes['options']}: options is the "
                              f"largest); the limit is {MAX_PAYLOAD_BYTES}")


def test_payload_just_under_the_limit_is_accepted():
    overhead = len(json.dumps([[""], {}, {}], separators=(",", ":")))
    spec = TaskSpec(target="f", args=["x" * (MAX_PAYLOAD_BYTES - overhead)])
    assert len(spec.args[0]) == MAX_PAYLOAD_BYTES - overhead
    with pytest.raises(ValidationError):
        TaskSpec(target="f", args=["x" * (MAX_PAYLOAD_BYTES - overhead + 1)])


def nested(depth: int) -> list:
    root: list = []
    cur = root
    for _ in range(depth):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    return root


@pytest.mark.parametrize("where", ["args", "kwargs", "options"])
def test_deeply_nested_payload_is_refused_quickly(where):
    deep = nested(10_000)
    value = {"args": [deep], "kwargs": {"k": deep}, "options": {"o": deep}}[where]
    started = time.perf_counter()
    with pytest.raises(ValidationError) as exc:
        TaskSpec(target="f", **{where: value})
    assert time.perf_counter() - started < 2.0
    assert exc.value.field == {"args": "args[0]", "kwargs": "kwargs.k", "options": "options.o"}[where]


def test_circular_payload_is_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValidationError) as exc:
        TaskSpec(target="f", args=[loop])
    assert exc.value.field == "args[0]"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=8,
)


@given(
    args=st.lists(json_values, max_size=4),
    kwargs=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4),
    options=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3),
    timeout=st.floats(min_value=0.001, max_value=MAX_TIMEOUT),
    balance_key=st.none() | st.text(max_size=10),
)
@settings(max_examples=30)
def test_round_trip_through_json(args, kwargs, options, timeout, balance_key):
    spec = TaskSpec(target="f", args=args, kwargs=kwargs, options=options, timeout=timeout,
                    retry=RetryPolicy(max_attempts=3, jitter=0.5), balance_key=balance_key)
    again = TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.retry == spec.retry


def test_from_dict_accepts_a_retry_policy_object():
    policy = RetryPolicy(max_attempts=2)
    assert TaskSpec.from_dict({"target": "f", "retry": policy}).retry is policy


@pytest.mark.parametrize("args", [
    (float("nan"),), (float("inf"),), (1, float("-inf")), (object(),), (b"bytes",), ({1, 2},),
])
def test_plain_looking_args_that_are_not_json_are_still_refused(args) -> None:
    """The shortcut for plain, small arguments (no encoding) takes only what the encoding
    would accept: a non-finite float or a non-JSON value still fails naming the field."""
    with pytest.raises(ValidationError) as err:
        TaskSpec(target="f", args=args)
    assert err.value.field == f"args[{len(args) - 1}]"


def test_big_arguments_past_the_shortcut_are_measured() -> None:
    TaskSpec(target="f", args=(None, True, -(1 << 63), 2.5, "x" * 1024) * 6)  # 30 plain args: fine
    TaskSpec(target="f", args=tuple(range(40)), kwargs={"a": 1 << 70})  # past the shortcut, still JSON
    with pytest.raises(ValidationError, match="payload is"):
        TaskSpec(target="f", args=("\u2603" * (MAX_PAYLOAD_BYTES // 6 + 1),))  # 6 bytes each as JSON


# A spec read back from a store is built without validators (trusted.stored_spec); a worker
# checks it with TaskSpec.validate before running it. Each hostile value written straight
# into the store is refused with the error a constructor gives it.
_HOSTILE_STORED = [
    ({"timeout": 1e308}, "timeout"), ({"timeout": -1}, "timeout"), ({"args": [float("inf")]}, "args[0]"), ({"args": ["x" * 1_100_000]}, "args[0]"),
    ({"executor": "bad name!"}, "executor"), ({"target": ""}, "target"), ({"balancer": "bad name!"}, "balancer"),
    ({"balance_key": 5}, "balance_key"), ({"kwargs": []}, "kwargs"),
    ({"options": {1: 2}}, "options"), ({"retry": {"max_attempts": -1}}, "max_attempts"),
    ({"retry": {"delay": 5, "max_delay": 1}}, "max_delay"), ({"retry": {"backoff": "weird"}}, "backoff"),
    ({"retry": {"jitter": 7}}, "jitter"),
]


_REFUSED_WHEN_READ = [
    ("args", "abc"), ("args", 5), ("args", True), ("args", {"a": 1}), ("target", 5), ("target", ["f"]),
    ("target", None), ("executor", 5), ("balancer", None), ("balancer", ["x"]),
    ("timeout", "x"), ("timeout", None), ("timeout", float("nan")), ("timeout", True),
]


@pytest.mark.parametrize(("field", "value"), _REFUSED_WHEN_READ)
def test_a_stored_spec_field_the_leader_reads_is_refused_when_read_unless_of_its_type(field, value):
    """Kept as they were, the leader's dispatch or write of such a task failed at every pass
    (list(5), a list as a dict key, now + None: a crash loop); the store moves the task
    aside instead. The ranges stay the worker's check (below)."""
    from distsched.model.trusted import stored_spec

    data = TaskSpec(target="noop", args=(1,)).to_dict()
    data[field] = value
    with pytest.raises(ValueError, match=f"its spec's {field} (is|are) not"):
        stored_spec(data)


def test_stored_args_that_are_null_are_no_arguments():
    from distsched.model.trusted import stored_spec

    assert stored_spec({**TaskSpec(target="noop", args=(1,)).to_dict(), "args": None}).args == ()


@pytest.mark.parametrize(("change", "field"), _HOSTILE_STORED, ids=[f for _, f in _HOSTILE_STORED])
def test_validate_refuses_a_stored_spec_as_its_constructor_would(change, field):
    from distsched.model.trusted import stored_spec

    data = TaskSpec(target="noop", args=(1,)).to_dict()
    data.update(change)
    spec = stored_spec(data)  # built without validators, as a store reads it back
    with pytest.raises(ValidationError) as refused:
        spec.validate()
    assert refused.value.field == field
    if isinstance(spec.args, tuple):  # the rebuild the check replaces refuses it the same way
        with pytest.raises(ValidationError) as rebuilt:
            TaskSpec.from_dict(spec.to_dict())
        assert str(rebuilt.value) == str(refused.value)


def test_validate_accepts_a_valid_stored_spec():
    from distsched.model.trusted import stored_spec

    spec = TaskSpec(target="noop", args=(1, "a", None), kwargs={"k": [1]}, timeout=5)
    stored_spec(spec.to_dict()).validate()


def test_a_value_that_is_not_json_is_named_by_its_place():
    """It was reported as ``args: ...`` wherever it was (probe finding): the field names the
    argument - ``args[1]``, ``kwargs.when``, ``options.body`` - and the reason says why."""
    with pytest.raises(ValidationError) as err:
        TaskSpec(target="f", args=[1, 2], kwargs={"n": 1, "when": object()})
    assert err.value.field == "kwargs.when"
    assert str(err.value) == "kwargs.when: must be plain JSON (Object of type object is not JSON serializable)"
    with pytest.raises(ValidationError, match=r"^args\[1\]: must be plain JSON \(Out of range float"):
        TaskSpec(target="f", args=[1, math.nan], kwargs={"n": 1})


def encoder():
    calls = []

    def encode(data):
        calls.append(data)
        return json.dumps(data, sort_keys=True)

    return calls, spec_json_cache(encode)


@pytest.mark.parametrize("change", [
    lambda spec: spec.kwargs.update(n=2),
    lambda spec: spec.kwargs.update(n=True),  # equal to 1, another JSON
    lambda spec: spec.kwargs.update(extra="x"),
    lambda spec: spec.kwargs.pop("n"),
    lambda spec: spec.options.update(body="b"),
])
def test_the_json_cache_sees_a_spec_changed_after_it_was_encoded(change):
    """A spec is frozen, but its kwargs and options dicts are the caller's: a spec changed
    after a first submit and submitted again was written with its old JSON (the stores cached
    it by the spec object). The cached text is used only while they hold what they held."""
    calls, spec_json = encoder()
    spec = TaskSpec(target="f", args=(1,), kwargs={"n": 1})
    first = spec_json(spec)
    assert spec_json(spec) == first and len(calls) == 1, "unchanged: encoded once"
    change(spec)
    assert json.loads(spec_json(spec)) == spec.to_dict()
    assert len(calls) == 2
    assert spec_json(spec) == spec_json(spec) and len(calls) == 2, "changed once: cached again"


def test_the_json_cache_encodes_a_spec_with_a_list_or_dict_argument_every_time():
    """A change inside a list or dict argument cannot be told cheaply: never cached."""
    calls, spec_json = encoder()
    spec = TaskSpec(target="f", args=([1],), kwargs={"cfg": {"a": 1}})
    spec_json(spec)
    spec.args[0].append(2)
    spec.kwargs["cfg"]["a"] = 3
    assert json.loads(spec_json(spec)) == spec.to_dict() and len(calls) == 2
    empty = TaskSpec(target="f", args=(1,))
    spec_json(empty)
    empty.kwargs["late"] = [1]  # an empty table filled after the first encoding
    assert json.loads(spec_json(empty))["kwargs"] == {"late": [1]}
