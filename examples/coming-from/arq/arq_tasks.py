"""The arq functions of docs/coming-from.md. No `ctx` first argument: a distsched task gets
only its job's args and kwargs."""

import asyncio

from distsched import task


@task
async def poll_feeds(source):
    await asyncio.sleep(0.05)          # an HTTP call, say
    return {"source": source, "new_items": 0}


@task
async def weekly_report():
    return "report built"


@task
async def fetch_url(url):
    return f"fetched {url}"
