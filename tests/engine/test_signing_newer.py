"""A newer worker's signed result with a field this version does not know (rolling upgrades,
distsched.model.newer): it is decoded without the field and then either verifies (the newer
worker did not sign the field) or is refused as a signature mismatch (it did) - never a
crash; and dropping the field never makes a forged result verify."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from distsched.model import TaskResult, newer
from distsched.signing import Signer, result_payload

KEY = "newer-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def fresh_warnings():
    newer._warned.clear()
    yield
    newer._warned.clear()


def _genuine() -> TaskResult:
    return TaskResult(task_id="t1", attempt_id="t1#1", outcome="succeeded", started_at=1.0, finished_at=2.0,
                      worker_id="w1", value={"rows": 3})


def _reported(result: TaskResult, signature: str, **extra: object) -> TaskResult:
    """What the leader of this version decodes from the JSON the newer worker reported."""
    text = json.dumps({**result.to_dict(), "signature": signature, **extra})
    return TaskResult.from_dict(json.loads(text))


def _newer_signature(result: TaskResult, extra: object) -> str:
    """The signature of a newer worker that signs its new field too (appended when set, as
    this version added ``log``)."""
    payload = json.loads(result_payload(result)) + [extra]
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    key = KEY.encode()
    return f"v1:{hashlib.sha256(key).hexdigest()[:8]}:{hmac.new(key, body, hashlib.sha256).hexdigest()}"


def test_a_newer_field_the_newer_worker_does_not_sign_is_dropped_and_the_result_verifies():
    signer = Signer([KEY])
    result = _genuine()
    decoded = _reported(result, signer.sign_result(result), cpu_seconds=0.4)
    assert signer.check_result(decoded) is None
    assert decoded == TaskResult.from_dict({**result.to_dict(), "signature": decoded.signature})


def test_a_newer_field_the_newer_worker_signs_is_refused_as_a_signature_mismatch():
    signer = Signer([KEY])
    result = _genuine()
    decoded = _reported(result, _newer_signature(result, 0.4), cpu_seconds=0.4)
    assert signer.check_result(decoded) == "its signature does not match its content"


def test_dropping_a_newer_field_never_makes_a_forged_result_verify():
    signer = Signer([KEY])
    result = _genuine()
    signature = signer.sign_result(result)
    # a known field changed, a field added beside it: refused as before
    forged = _reported(TaskResult.from_dict({**result.to_dict(), "outcome": "failed"}), signature, cpu_seconds=1)
    assert signer.check_result(forged) == "its signature does not match its content"
    # a field added alone verifies - and changes nothing this node reads: it is dropped
    padded = _reported(result, signature, retry_everything=True)
    assert signer.check_result(padded) is None
    assert padded == _reported(result, signature)
    # a result made without the key, whatever it carries, is refused
    assert signer.check_result(_reported(result, "", cpu_seconds=1)) == "it carries no signature"
