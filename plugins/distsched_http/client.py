"""One ``httpx.AsyncClient`` per worker, shared by its ``http`` and ``rpc`` executors.

The worker builds one :class:`~distsched.ports.ExecutorContext` and calls each executor
factory with it; executors built from the same context object share one
:class:`SharedClient`. Each executor releases it in ``close()``; the last release closes the
client (and forgets the holder), so nothing outlives the worker.

The client is created lazily (inside the worker's event loop), with a connection pool sized
to the worker's concurrency, no automatic redirects (the executors follow them hop by hop
to check each one against the allow-list) and no cookie persistence (one task's cookies
must not leak into another's requests).
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from distsched import __version__

USER_AGENT = f"distsched-http/{__version__}"
KEEPALIVE_EXPIRY = 30.0

_holders: dict[int, SharedClient] = {}


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """The process's TLS context (loading the CA bundle is slow; build it once)."""
    return httpx.create_ssl_context()


class SharedClient:
    def __init__(self, context: Any) -> None:
        self.context = context  # kept alive so its id() is not reused while we are registered
        self.concurrency = max(1, int(getattr(context, "concurrency", 8) or 1))
        self.users = 0
        self.closed = False
        self._client: httpx.AsyncClient | None = None

    @property
    def limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.concurrency,
            max_keepalive_connections=self.concurrency,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )

    def client(self) -> httpx.AsyncClient:
        if self.closed:
            raise RuntimeError("the http executor is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=self.limits,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                verify=ssl_context(),
            )
        return self._client

    async def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        self.closed = True
        if _holders.get(id(self.context)) is self:
            del _holders[id(self.context)]
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def acquire(context: Any) -> SharedClient:
    """The worker's shared client holder (created on first use); the caller must release it."""
    holder = _holders.get(id(context))
    if holder is None or holder.context is not context or holder.closed:
        holder = _holders[id(context)] = SharedClient(context)
    holder.users += 1
    return holder
