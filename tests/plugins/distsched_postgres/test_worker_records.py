"""A worker's row keeps what the leader routes by (its functions and executors, in its JSON
``data``: no column, no migration)."""

from __future__ import annotations

import json

import pytest

from distsched.testing import make_worker
from distsched_postgres import codec


def _row(data: str) -> dict:
    return {"id": "w1", "data": data, "heartbeat": 1.0, "draining": False, "load": 0, "blocked": 0}


def test_a_worker_row_keeps_its_executors_and_one_written_before_them_has_none():
    worker = make_worker("w1", functions=["f"], executors=["local", "cmd"])
    back = codec.decode_worker(_row(codec.worker_json(worker)))
    assert (back.functions, back.executors) == (("f",), ("local", "cmd"))
    older = json.loads(codec.worker_json(worker))
    del older["executors"], older["functions"]
    back = codec.decode_worker(_row(json.dumps(older)))
    assert back.executors == () and back.functions == () and back.may_have("cmd") and back.may_offer("f")


def test_a_worker_row_whose_executors_are_not_names_is_refused_naming_the_field():
    data = json.loads(codec.worker_json(make_worker("w1")))
    data["executors"] = 5
    with pytest.raises(ValueError, match="executors.*must be a list of executor names"):
        codec.decode_worker(_row(json.dumps(data)))
