"""rq-scheduler's scheduler.enqueue_in(timedelta(seconds=2), send_reminder, 7), in distsched:
submit() with a delay (at= for enqueue_at). The task is stored at once, pending until its time.

    python examples/coming-from/rq/enqueue_in.py
"""

import asyncio

import rq_tasks

from distsched import DistributeSchedule

app = DistributeSchedule()          # $DISTSCHED_STORAGE, else memory://
app.register_module(rq_tasks)


async def main():
    async with app.running():
        task_id = await app.submit("send_reminder", 7, delay="2s", task_id="reminder-user-7")
        print(task_id, (await app.get_task(task_id)).state.value)   # pending: not due yet
        task = await app.wait(task_id, timeout=10)
        print(task.id, task.state.value, task.result.value)


asyncio.run(main())
