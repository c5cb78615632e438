"""arq's `await redis.enqueue_job("fetch_url", url, _job_id="fetch-home")` then
`await job.result(timeout=5)`, in distsched: a given task_id makes a submission idempotent.

    python examples/coming-from/arq/enqueue_job.py
"""

import asyncio

import arq_tasks

from distsched import DistributeSchedule

app = DistributeSchedule()          # $DISTSCHED_STORAGE, else memory://
app.register_module(arq_tasks)


async def main():
    async with app.running():
        first = await app.submit("fetch_url", "https://example.org/", task_id="fetch-home")
        again = await app.submit("fetch_url", "https://example.org/", task_id="fetch-home")
        result = await app.result(first, timeout=5)
        print(first, again, result.value)   # one task: the second submit is the same one


asyncio.run(main())
