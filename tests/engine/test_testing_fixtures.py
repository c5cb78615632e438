"""The opt-in pytest plugin's fixtures work as documented."""

import uuid


async def test_an_app_and_a_worker_pool_share_a_store(distsched_app, distsched_workers):
    url = f"memory://pool-{uuid.uuid4().hex}"
    seen = []

    def record(i):
        seen.append(i)
        return i

    pool = await distsched_workers(url, 3, functions={"record": record})
    leader = await distsched_app(url, worker=False)
    ids = await leader.submit_many([_spec(i) for i in range(30)])
    results = [await leader.result(task_id, timeout=10) for task_id in ids]
    assert sorted(r.value for r in results) == list(range(30)) and sorted(seen) == list(range(30))
    used = {r.worker_id.split("-")[0] for r in results}
    assert used == {"pool0", "pool1", "pool2"}, "round-robin spread the tasks over the whole pool"
    assert len(pool) == 3


def _spec(i):
    from distsched.model import TaskSpec

    return TaskSpec(target="record", args=(i,), balancer="round-robin")
