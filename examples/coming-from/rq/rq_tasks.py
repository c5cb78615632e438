"""The RQ functions of docs/coming-from.md. RQ enqueues any importable function; distsched
runs only the ones a worker registered: mark them with @distsched.task."""

import asyncio

from distsched import task


@task
async def sync_inventory():
    # The supplier's API hangs: every attempt outlives its 1 s timeout (RQ: JobTimeoutException).
    await asyncio.sleep(3)
    return "synced"


@task
def hourly_digest():
    return "digest mailed"


@task
def send_reminder(user_id):
    return f"reminder sent to user {user_id}"
