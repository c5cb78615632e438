"""One ``httpx.AsyncClient`` per worker, shared by its ``http`` and ``rpc`` executors.

The worker builds one :class:`~distsched.ports.ExecutorContext` and calls each executor
factory with it; executors built from the same context object share one
:class:`SharedClient`. Each executor releases it in ``close()``; the last release closes the
client (and forgets the holder), so nothing outlives the worker.

The client is created lazily (inside the worker's event loop), with a connection pool sized
to the worker's concurrency, no automatic redirects (the executors follow them hop by hop
to check each one against the allow-list) and no cookie persistence (one task's cookies
must not leak into another's requests).

Every connection goes through :class:`GuardedBackend`: the host is resolved here, each
address is checked (:func:`.safety.check_address`: link-local and cloud metadata addresses
are refused unless ``http_allow`` names them) and the connection is made to the checked
address, so the check holds on every redirect hop and a name cannot be re-resolved to
another address between the check and the connection (DNS rebinding). A host that is an IP
literal with a trailing dot (``127.0.0.1.``) is that IP, never looked up as a name.
Proxies from the environment (``HTTPS_PROXY``...) are not used (``trust_env=False``): a
proxy would connect on the worker's behalf, out of reach of the check.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import typing
from functools import lru_cache
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx

from distsched import __version__

from .safety import AllowList, check_address, parse_ip

USER_AGENT = f"distsched-http/{__version__}"
KEEPALIVE_EXPIRY = 30.0

_holders: dict[int, SharedClient] = {}


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """The process's TLS context (loading the CA bundle is slow; build it once)."""
    return httpx.create_ssl_context()


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check of :func:`.safety.check_address`."""

    def __init__(self, allow: AllowList | None) -> None:
        self.allow = allow
        self._inner = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        literal = parse_ip(host)
        if literal is not None:
            check_address(literal, self.allow, host)
            return [str(literal)]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), timeout
            )
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        addresses: list[str] = []
        for info in infos:
            address = str(info[4][0])
            ip = parse_ip(address)
            if ip is None:  # pragma: no cover - getaddrinfo returns numeric addresses
                raise httpcore.ConnectError(f"{host!r} resolved to {address!r}, not an IP address")
            check_address(ip, self.allow, host)  # any refused address refuses the name
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"{host!r} resolved to no address")
        return addresses

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self._addresses(host, port, timeout):
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(  # pragma: no cover - the client never uses a socket path
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by the http executor")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(limits: httpx.Limits, allow: AllowList | None) -> httpx.AsyncHTTPTransport:
    """httpx's transport over a connection pool that connects through :class:`GuardedBackend`.

    httpx takes no network backend, so the pool it built is replaced by an identical one
    with ours (tests/plugins/distsched_http/test_hostile_endpoints.py fails if that stops working).
    It fails closed: an httpx whose transport keeps its pool elsewhere would send every
    request through an unguarded pool while ours sat unused, so this refuses to build one.
    """
    transport = httpx.AsyncHTTPTransport(verify=ssl_context(), limits=limits, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError(f"httpx {httpx.__version__}: its transport keeps no connection pool where the http "
                           "executor puts its guarded one; refusing to send requests unguarded")
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow),
    )
    return transport


class SharedClient:
    def __init__(self, context: Any) -> None:
        self.context = context  # kept alive so its id() is not reused while we are registered
        self.concurrency = max(1, int(getattr(context, "concurrency", 8) or 1))
        settings = getattr(context, "settings", None) or {}
        self.allow = AllowList.from_setting(settings.get("http_allow"))
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
                transport=guarded_transport(self.limits, self.allow),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                verify=ssl_context(),
                trust_env=False,
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
