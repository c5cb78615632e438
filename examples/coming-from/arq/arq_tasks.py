"""The arq functions of docs/coming-from.md. No `ctx` first argument: a distsched task gets
only its job's args and kwargs."""

import asyncio
import itertools

from distsched import Retry, task

_calls = itertools.count(1)


@task
async def poll_feeds(source):
    await asyncio.sleep(0.05)          # an HTTP call, say
    if next(_calls) == 1:              # arq: raise Retry(defer=0.5)
        raise Retry("the feed is not ready", after=0.5)
    return {"source": source, "new_items": 0}


@task
async def weekly_report():
    return "report built"


@task
async def fetch_url(url):
    return f"fetched {url}"
