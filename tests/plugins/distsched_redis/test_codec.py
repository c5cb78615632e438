"""The Redis codec's JSON: orjson where it is exact, the standard library where it is not."""

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from distsched_redis import codec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trips_exactly(value) -> None:
    text = codec.dumps(value)
    back = codec.loads(text)
    assert back == value and json.loads(text) == value
    assert codec.dumps(back) == text


def test_integers_beyond_64_bits_stay_integers() -> None:
    for big in (2**63, 2**64 - 1, 2**64, 2**70, -(2**70), 123456789012345678901234567890):
        text = codec.dumps({"args": [big]})
        assert codec.loads(text) == {"args": [big]} and isinstance(codec.loads(text)["args"][0], int)
        assert json.loads(text) == {"args": [big]}, "still plain JSON for anyone else (Lua, tools)"


def test_what_the_standard_library_would_write() -> None:
    assert codec.dumps({1: "a"}) == '{"1":"a"}', "int keys become strings"
    assert codec.dumps("h\u00e9llo \u2603") == '"h\u00e9llo \u2603"', "UTF-8, not \\u escapes"
    assert codec.dumps((1, 2)) == "[1,2]"
    assert math.copysign(1, codec.loads(codec.dumps(-0.0))) == -1
    for f in (1e16, 1.5e-7, 0.1, 1795826480.5114872):
        assert codec.loads(codec.dumps(f)) == f


def test_a_worker_record_keeps_its_executors_and_one_written_before_them_has_none():
    """The leader routes by a worker's executors: they come back as registered; a record of
    an earlier version (no ``executors`` in its JSON) reads as not saying (it may run anything)."""
    from distsched.testing import make_worker

    worker = make_worker("w1", functions=["f"], executors=["local", "cmd"])
    back = codec.decode_worker("w1", codec.worker_json(worker), 1.0, 0, 0)
    assert (back.functions, back.executors) == (("f",), ("local", "cmd"))
    older = json.loads(codec.worker_json(worker))
    del older["executors"], older["functions"]
    back = codec.decode_worker("w1", json.dumps(older), 1.0, 0, 0)
    assert back.executors == () and back.functions == () and back.may_have("cmd") and back.may_offer("f")
