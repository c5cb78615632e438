"""distsched.signing: HMAC signatures of dispatches and results, key rotation, key sources."""

from __future__ import annotations

import attrs
import pytest

from distsched.model import Task, TaskResult, TaskSpec, ValidationError
from distsched.signing import Signer, keys_from_env

OLD, NEW = "old-key-0123456789abcdef", "new-key-0123456789abcdef"


def dispatched(**spec) -> Task:
    task = Task(id="t1", spec=TaskSpec(target="f", args=[1, "a"], kwargs={"k": [1]}, **spec), created_at=100.0)
    task.dispatch("w1", 101.0)
    return task


def test_a_signed_dispatch_verifies_and_any_change_breaks_it():
    signer = Signer([OLD])
    task = dispatched()
    task.signature = signer.sign_dispatch(task)
    assert task.signature.startswith("v1:") and signer.check_dispatch(task) is None
    for change in (dict(target="g"), dict(args=[2]), dict(kwargs={"k": [2]}), dict(options={"x": 1}),
                   dict(timeout=61.0), dict(executor="http")):
        forged = attrs.evolve(task, spec=attrs.evolve(task.spec, **change))
        assert signer.check_dispatch(forged) == "its signature does not match its content", change
    other_worker = attrs.evolve(task, worker_id="w2")
    assert signer.check_dispatch(other_worker) is not None
    next_attempt = attrs.evolve(task, dispatches=2)
    assert signer.check_dispatch(next_attempt) is not None


def test_missing_malformed_and_foreign_signatures_are_named():
    signer = Signer([OLD])
    task = dispatched()
    assert signer.check_dispatch(task) == "it carries no signature"
    task.signature = "garbage"
    assert signer.check_dispatch(task) == "its signature is malformed"
    task.signature = Signer([NEW]).sign_dispatch(task)
    assert "key this node does not have" in signer.check_dispatch(task)


def test_rotation_the_first_key_signs_every_key_verifies():
    task = dispatched()
    task.signature = Signer([OLD]).sign_dispatch(task)
    rotating = Signer([NEW, OLD])
    assert rotating.check_dispatch(task) is None, "a task signed with the old key still verifies"
    task.signature = rotating.sign_dispatch(task)
    assert Signer([NEW]).check_dispatch(task) is None, "new signatures use the new key"
    assert Signer([OLD]).check_dispatch(task) is not None


def test_results_are_signed_over_their_outcome_and_value():
    signer = Signer([OLD])
    result = TaskResult(task_id="t1", attempt_id="t1#1", outcome="succeeded", started_at=1.0, finished_at=2.0,
                        worker_id="w1", value={"v": 1})
    signed = attrs.evolve(result, signature=signer.sign_result(result))
    assert signer.check_result(signed) is None
    assert signer.check_result(attrs.evolve(signed, value={"v": 2})) is not None
    assert signer.check_result(attrs.evolve(signed, outcome="failed")) is not None
    assert signer.check_result(result) == "it carries no signature"


def test_keys_must_be_long_enough_and_never_show_in_repr():
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Signer(["short"])
    assert OLD not in repr(Signer([OLD]))


def test_keys_from_the_environment_and_a_key_file(tmp_path):
    assert keys_from_env({}) == ()
    assert keys_from_env({"DISTSCHED_SIGNING_KEY": f"{NEW}, {OLD}"}) == (NEW.encode(), OLD.encode())
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-12\n{NEW}\n\n{OLD}\n")
    assert keys_from_env({"DISTSCHED_SIGNING_KEY_FILE": str(path)}) == (NEW.encode(), OLD.encode())
    with pytest.raises(ValidationError, match="signing_key_file"):
        keys_from_env({"DISTSCHED_SIGNING_KEY_FILE": str(tmp_path)})
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ValidationError, match="holds no key"):
        keys_from_env({"DISTSCHED_SIGNING_KEY_FILE": str(empty)})


async def test_a_signed_deployment_runs_tasks_end_to_end_on_memory(distsched_app):
    app = await distsched_app(functions={"add": lambda a, b: a + b}, signing_keys=(OLD,))
    result = await app.result(await app.submit("add", 2, 3), timeout=10)
    assert result.value == 5 and result.signature.startswith("v1:")
    assert (await app.status()).signing == "signed"
    assert app.engine.scheduler.stats["forged_results"] == 0


async def test_a_worker_without_the_key_gets_no_task(distsched_app, distsched_workers, caplog):
    """Mixed deployments fail closed and say why, without running anything: the signing
    leader gives no task to a worker without the key (it could not check them, and its
    unsigned results would be refused - the task then timed out and ran again up to its
    attempts); the task waits, and runs once a worker with the key comes."""
    from distsched.testing.processes import wait_until_async

    calls = []

    def add(a, b):
        calls.append((a, b))
        return a + b

    app = await distsched_app(functions={"add": add}, signing_keys=(OLD,), worker=False, timeout_grace=0.2)
    url = app.config.storage
    with caplog.at_level("ERROR"):
        await distsched_workers(url, 1, functions={"add": add}, signing_keys=())
        task_id = await app.submit("add", 1, 1, timeout=1.0, retry={"max_attempts": 1})

        async def refused():
            return "has no DISTSCHED_SIGNING_KEY while this leader signs: it is given no task" in caplog.text

        await wait_until_async(refused, 15, what="the leader's word on the worker without the key")
    assert (await app.status()).signing == "mixed"
    assert (await app.get_task(task_id)).state.value == "pending" and calls == []
    await distsched_workers(url, 1, functions={"add": add}, signing_keys=(OLD,))
    task = await app.wait(task_id, timeout=15)
    assert task.state.value == "succeeded" and calls == [(1, 1)]
