"""Task functions for examples/jobs.toml. Only functions marked @task can be run by jobs."""

import asyncio
import datetime

from distsched import task


@task
def tick(message="tick"):
    """Succeeds at once: a periodic job."""
    return f"{message} at {datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}"


@task
def always_fails(reason="the upstream is down"):
    """Raises every time: shows the retry policy at work."""
    raise ConnectionError(reason)


@task
async def slow(seconds=3.0):
    """Sleeps longer than its job's timeout: shows a timeout."""
    await asyncio.sleep(seconds)
    return "finished (too late)"


@task(name="add")
def add(a, b):
    return a + b
