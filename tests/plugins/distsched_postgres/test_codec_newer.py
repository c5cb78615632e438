"""A scheduler node's row holding a field a newer distsched wrote (rolling upgrades): read
without it, with a WARNING once (distsched.model.newer); it failed every status before."""

import json
import logging

from distsched.model import newer
from distsched_postgres import codec


def test_a_newer_schedulers_field_is_left_out(caplog):
    newer._warned.clear()
    caplog.set_level(logging.WARNING, logger="distsched.upgrade")
    row = {"id": "s1", "heartbeat": 2.0, "role": "leader",
           "data": json.dumps({"host": "h", "pid": 7, "started_at": 1.0, "signed": True, "region": "eu"})}
    node = codec.decode_scheduler(row)
    assert (node.id, node.role, node.host, node.signed) == ("s1", "leader", "h", True)
    assert codec.decode_scheduler(row) == node
    assert [r.getMessage()[:44] for r in caplog.records] == ["scheduler record: ignored its field 'region'"]
    newer._warned.clear()
