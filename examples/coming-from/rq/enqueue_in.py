"""rq-scheduler's scheduler.enqueue_in(timedelta(seconds=2), send_reminder, 7), in distsched:
a one-shot job (`at`) - submit() has no countdown.

    python examples/coming-from/rq/enqueue_in.py
"""

import asyncio
import datetime

import rq_tasks

from distsched import DistributeSchedule

app = DistributeSchedule()          # $DISTSCHED_STORAGE, else memory://
app.register_module(rq_tasks)


async def main():
    async with app.running():
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
        await app.add_job("reminder-user-7", at=when.isoformat(), target="send_reminder", args=[7])
        task = (await app.job_history("reminder-user-7")).tasks
        while not task or not task[0].terminal:
            await asyncio.sleep(0.1)
            task = (await app.job_history("reminder-user-7")).tasks
        print(task[0].id, task[0].state.value, task[0].result.value)
        await app.remove_job("reminder-user-7")   # its task stays in the history


asyncio.run(main())
