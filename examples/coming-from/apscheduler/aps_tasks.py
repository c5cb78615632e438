"""The APScheduler job functions of docs/coming-from.md, marked for distsched workers."""

import time

from distsched import task


@task
def export_orders():
    time.sleep(1.5)                    # slower than its 1 s interval
    return "exported"


@task
def backup():
    return "backed up"
