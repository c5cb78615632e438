"""APScheduler's BackgroundScheduler inside your application - add_job, a listener for
EVENT_JOB_ERROR - with distsched's facade (docs/coming-from.md).

    python examples/coming-from/apscheduler/embedded.py
"""

import asyncio

from distsched import DistributeSchedule

app = DistributeSchedule()          # jobstore: $DISTSCHED_STORAGE, else memory://
failures = []


@app.task
def check_disk(path):
    raise OSError(f"{path}: no space left on device")


def on_event(event):                # add_listener(on_error, EVENT_JOB_ERROR)
    if event.kind == "task.finished" and event.state != "succeeded":
        failures.append(event)
        print(f"ALERT {event.job}: {event.state}: {event.error}")


app.listeners.append(on_event)


async def main():
    async with app.running():
        # add_job(check_disk, "interval", seconds=1, args=["/var"], id="check-disk", replace_existing=True)
        await app.add_job("check-disk", every="1s", target="check_disk", args=["/var"], replace=True)
        while not failures:
            await asyncio.sleep(0.1)


asyncio.run(main())
