"""Signed tasks and results: what the leader dispatches and what a worker reports back carry
an HMAC-SHA256 made with a deployment key, so a task or a result written straight into the
store by anyone else is refused.

Keys come from ``DISTSCHED_SIGNING_KEY`` (one key, or several separated by commas) or from
the file named by ``DISTSCHED_SIGNING_KEY_FILE`` (one key a line; ``#`` comments). The first
key signs; every key listed verifies, so a key is rotated by listing the new one first on
every node, then dropping the old one. A key is at least 16 characters. Without a key
nothing is signed and nothing is checked (as before); ``distsched status`` says so.

What is signed (canonical JSON, sorted keys, ASCII):

* a dispatch: task id, attempt id, worker id, executor, target, args, kwargs, options,
  timeout - everything that decides what runs, where and for how long;
* a result: task id, attempt id, worker id, outcome, value, error, error type, retryable,
  retry_after, and its captured log when it has one (a result without one signs as before).

A signature reads ``v1:<key id>:<hex digest>``, the key id being the first 8 hex digits of
the key's SHA-256, so a verifier picks the right key without trying them all.

A field written by a newer node (rolling upgrades, ``distsched.model.newer``): a node
builds the payload it checks from the fields it knows, and only from those, so

* a newer field that the newer node also signs (as ``log`` was added to a result's payload,
  only when the result has one) makes this node's check fail: the record is refused as one
  whose "signature does not match its content" (a result: logged as an ERROR, counted in
  ``forged_results``, the attempt times out and is retried) - never accepted without the
  field, never a crash. Sign a new field only when it is set, so that records without it
  still verify on older nodes;
* a newer field the newer node does not sign is dropped before the check (a result, a
  worker's record) or refuses the record before it (a task's spec: put aside): this node
  never acts on it, so dropping it cannot make a forged record verify - the fields the
  check covers are the ones this node acts on - nor a genuine one fail (they are signed
  as they were).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .model.errors import ValidationError
from .model.result import TaskResult
from .model.task import Task

KEY_ENV = "DISTSCHED_SIGNING_KEY"
KEY_FILE_ENV = "DISTSCHED_SIGNING_KEY_FILE"
MIN_KEY_CHARS = 16
VERSION = "v1"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=str).encode("ascii")


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def dispatch_payload(task: Task) -> bytes:
    spec = task.spec
    return _canonical(["dispatch", task.id, task.attempt_id, task.worker_id or "", spec.executor, spec.target,
                       list(spec.args), spec.kwargs, spec.options, spec.timeout])


def result_payload(result: TaskResult) -> bytes:
    signed = ["result", result.task_id, result.attempt_id, result.worker_id or "", result.outcome,
              result.value, result.error, result.error_type, result.retryable, result.retry_after]
    if result.log is not None:  # (a result without a log signs as before it could have one)
        signed.append(result.log)
    return _canonical(signed)


class Signer:
    """Signs with the first key, verifies with any. Holds the keys; never prints them."""

    def __init__(self, keys: Iterable[bytes | str]) -> None:
        raw = [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys]
        if not raw:
            raise ValidationError("signing_key", "at least one key is needed to sign")
        for key in raw:
            if len(key) < MIN_KEY_CHARS:
                raise ValidationError("signing_key", f"a signing key must be at least {MIN_KEY_CHARS} characters "
                                                     f"(one of the {len(raw)} given has {len(key)})")
        self._keys = {_key_id(k): k for k in raw}
        self._signing_id = _key_id(raw[0])
        self._signing_key = raw[0]

    def __repr__(self) -> str:
        return f"<Signer keys={list(self._keys)} signing={self._signing_id}>"

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._signing_key, payload, hashlib.sha256).hexdigest()
        return f"{VERSION}:{self._signing_id}:{digest}"

    def _check(self, payload: bytes, signature: str | None) -> str | None:
        """None when ``signature`` is right, else why not."""
        if not signature:
            return "it carries no signature"
        try:
            version, key_id, digest = signature.split(":", 2)
        except ValueError:
            return "its signature is malformed"
        if version != VERSION:
            return f"its signature has an unknown version {version[:10]!r}"
        key = self._keys.get(key_id)
        if key is None:
            return f"its signature was made with a key this node does not have (key id {key_id[:8]!r})"
        expected = hmac.new(key, payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest):
            return "its signature does not match its content"
        return None

    def sign_dispatch(self, task: Task) -> str:
        return self._sign(dispatch_payload(task))

    def check_dispatch(self, task: Task) -> str | None:
        return self._check(dispatch_payload(task), task.signature)

    def sign_result(self, result: TaskResult) -> str:
        return self._sign(result_payload(result))

    def check_result(self, result: TaskResult) -> str | None:
        return self._check(result_payload(result), result.signature)


def keys_from_env(environ: dict[str, str] | None = None) -> tuple[bytes, ...]:
    """The keys named by ``DISTSCHED_SIGNING_KEY`` / ``DISTSCHED_SIGNING_KEY_FILE`` (file keys
    after the variable's), or () when neither is set."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get(KEY_ENV, "").split(",") if k.strip()]
    path = env.get(KEY_FILE_ENV)
    if path:
        keys += read_key_file(path)
    return tuple(k.encode("utf-8") for k in keys)


def read_key_file(path: str) -> list[str]:
    file = Path(path)
    try:
        if not file.is_file():
            raise ValidationError("signing_key_file", f"{path} is not a regular file")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError("signing_key_file", f"cannot read {path}: {exc.strerror}") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ValidationError("signing_key_file", f"{path} holds no key")
    return keys


def signer_from(keys: Iterable[bytes]) -> Signer | None:
    keys = tuple(keys)
    return Signer(keys) if keys else None


__all__ = ["KEY_ENV", "KEY_FILE_ENV", "MIN_KEY_CHARS", "Signer", "dispatch_payload", "keys_from_env",
           "read_key_file", "result_payload", "signer_from"]
