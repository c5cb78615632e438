"""The Celery tasks of docs/coming-from.md, as distsched tasks: @distsched.task, no app object."""

import itertools

from distsched import task

_calls = itertools.count(1)


@task
def refresh_rates():
    # The first call meets a down upstream: the job's retry policy runs it again 1 s later
    # (Celery: autoretry_for=(ConnectionError,), retry_backoff=True). Only ConnectionError
    # retries (retry_on): another exception fails the task at once, saying why.
    if next(_calls) == 1:
        raise ConnectionError("rates upstream is down")
    return {"EUR/USD": 1.08}


@task
def cleanup(days):
    return f"removed sessions older than {days} days"


@task
def send_receipt(order_id):
    return f"receipt sent for order {order_id}"
