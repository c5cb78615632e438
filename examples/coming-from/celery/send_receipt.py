"""Celery's send_receipt.delay(42).get(timeout=10), in distsched.

    python examples/coming-from/celery/send_receipt.py

On memory:// (the default) the scheduler and a worker run in this process; against a
deployment set DISTSCHED_STORAGE=redis://... and use `async with app:` instead of
`app.running()`: the scheduler and the workers run elsewhere.
"""

import asyncio

import celery_tasks

from distsched import DistributeSchedule

app = DistributeSchedule()          # $DISTSCHED_STORAGE, else memory://
app.register_module(celery_tasks)   # this process is a worker too


async def main():
    async with app.running():
        task_id = await app.submit("send_receipt", 42, timeout="10s", retry={"max_attempts": 3})
        result = await app.result(task_id, timeout=10)   # AsyncResult.get(timeout=10)
        print(task_id, result.value)


asyncio.run(main())
