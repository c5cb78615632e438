"""A lean pipelined connection for the hot, non-blocking calls on a plain ``redis://`` server
(TCP) or a ``redis+unix://`` one (its Unix socket).

Every call of a task's path (submit, dispatch, take, report, settle, the leader's reads at the
end of a pass, the lease) is one ``EVALSHA`` or a short pipeline. Through redis-py's asyncio
client each costs 70-110 us of CPU on this project's 2-core reference machine: the
connection pool, the retry wrapper, a ``wait_for`` per read, command packing and a socket
``send`` per call. A bare ``asyncio.Protocol`` with hiredis' reader costs 15-35 us for the
same call (``docs/performance.md``, "a lean connection for the hot calls"). This module is that
protocol, with what redis-py's client gives those calls and nothing else:

* **one connection per store, pipelined**: calls from concurrent coroutines are written as they
  come and answered in order (Redis answers in order on a connection); blocking commands
  never share it (see below);
* **replies** decoded as redis-py's ``decode_responses=True`` client decodes them (UTF-8 with
  ``surrogateescape``), error replies raised as the same redis-py exception classes
  (``NoScriptError``, ``BusyLoadingError``, ``ResponseError``...), and refused once a reply
  exceeds ``max_reply`` bytes (:mod:`.parser`);
* **the same retries**: the store's :class:`redis.asyncio.retry.Retry` (6 tries with jittered
  backoff, and the wait while Redis loads its data set) around each call; a lost or timed-out
  connection fails every call pending on it with redis-py's ``ConnectionError`` /
  ``TimeoutError`` and the next try connects again. A retried mutating call carries the same
  op id (``storage.run``), so Redis answers it from the first call's reply;
* **timeouts**: a call unanswered after ``socket_timeout`` closes the connection (one timer
  per connection checks the oldest pending call every quarter of the timeout: no per-call
  timer); connecting is bounded by ``connect_timeout``; TCP keepalive is on (over TCP);
* **the handshake** redis-py does: ``AUTH`` (user and password), ``SELECT`` the database,
  ``CLIENT SETNAME distsched``.

A cancelled caller's reply is read and dropped when it comes (the connection stays usable).

**Blocking commands** (a worker's ``BLMOVE``, the leader's ``BLPOP`` on the wake-up list) each
take a lean connection of their own for the call (:class:`BlockingClients`: an idle one, or a
new one), so that they never hold up the pipelined one; one whose caller is cancelled or
fails mid-call is closed, not reused.
``rediss://``, ``redis(s)+sentinel://`` and ``redis(s)+cluster://`` keep redis-py's client for every
call (TLS, master discovery and MOVED redirection are redis-py's); so does a store opened
with ``lean=false``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .parser import _too_large


class _ErrorReply(Exception):
    """What hiredis returns for an error reply (turned into redis-py's class by its text)."""


def _pack(args: tuple[Any, ...]) -> bytes:
    try:
        return hiredis.pack_command(args)  # type: ignore[no-any-return]
    except UnicodeEncodeError:  # text read with surrogateescape (bytes that are not UTF-8) goes back as those bytes
        raw: Any = tuple(a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a for a in args)
        return hiredis.pack_command(raw)  # type: ignore[no-any-return]


class _Protocol(asyncio.Protocol):
    """One connection: writes requests, matches replies to waiting futures in order."""

    def __init__(self, max_reply: int) -> None:
        self._reader = hiredis.Reader(replyError=_ErrorReply, encoding="utf-8", errors="surrogateescape")
        self._max_reply = max_reply
        self._received = 0  # bytes of the reply being read (the cap)
        # (future, number of replies it waits for, replies so far, when it was sent)
        self.pending: deque[list[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.lost = self.loop.create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:  # pragma: no cover - not a TCP socket
                pass

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        self._received += len(data)
        pending = self.pending
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(InvalidResponse(f"protocol error: {exc}"))
                return
            if reply is False:
                break
            self._received = 0  # what is still buffered belongs to the next reply
            if not pending:  # an answer to nothing: the stream cannot be trusted
                self.fail(InvalidResponse("a reply that no call waits for"))
                return
            entry = pending[0]
            if entry[1] == 1:
                pending.popleft()
                future = entry[0]
                if not future.done():  # (a cancelled caller: its reply is dropped)
                    future.set_result(reply)
            else:
                entry[2].append(reply)
                if len(entry[2]) == entry[1]:
                    pending.popleft()
                    if not entry[0].done():
                        entry[0].set_result(entry[2])
        if self._received > self._max_reply:
            self.fail(_too_large(self._max_reply, f"more than {self._received} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_pending(RedisConnectionError(f"Connection closed by server ({exc})" if exc
                                                else "Connection closed by server."))
        if not self.lost.done():
            self.lost.set_result(None)

    # -- calls --------------------------------------------------------------------------
    def send(self, payload: bytes, replies: int) -> asyncio.Future[Any]:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("Connection closed.")
        future = asyncio.get_running_loop().create_future()
        self.pending.append([future, replies, [] if replies > 1 else None, time.monotonic()])
        self.transport.write(payload)
        return future

    def fail(self, exc: BaseException) -> None:
        """Close the connection; every pending call fails with ``exc``."""
        self.closed = True
        self._fail_pending(exc)
        if self.transport is not None:
            try:
                self.transport.abort()
            except RuntimeError:  # its event loop is closed (asyncio.run after asyncio.run):
                pass  # the transport closes its socket when it is collected

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, deque()
        for entry in pending:
            if not entry[0].done():
                entry[0].set_exception(exc)


def _raise_errors(reply: Any) -> Any:
    if isinstance(reply, _ErrorReply):
        raise BaseParser.parse_error(str(reply.args[0]) if reply.args else "")
    return reply


class LeanClient:
    """One lean connection (see the module's docstring), connected on first use."""

    def __init__(self, host: str, port: int, *, path: str | None = None, db: int = 0, username: str | None = None,
                 password: str | None = None, socket_timeout: float = 5.0, connect_timeout: float = 3.0,
                 max_reply: int, retry: Any, client_name: str = "distsched") -> None:
        self.host, self.port, self.path, self.db = host, port, path, db
        self.address = path if path is not None else f"{host}:{port}"  # (for messages)
        self._username, self._password = username, password
        self.socket_timeout, self.connect_timeout = socket_timeout, connect_timeout
        self.max_reply = max_reply
        self._retry = retry
        self._client_name = client_name
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<LeanClient {self.address}/{self.db}>"

    # -- connection ---------------------------------------------------------------------
    async def _connection(self) -> _Protocol:
        conn = self._conn
        if conn is not None and not conn.closed:
            if conn.loop is asyncio.get_running_loop():
                return conn
            conn.fail(RedisConnectionError("opened on another event loop"))  # (asyncio.run after asyncio.run)
            self._conn = None
        if self._closed:
            raise RedisConnectionError("the store is closed")
        connecting = self._connecting
        if connecting is None or connecting.done() or connecting.get_loop() is not asyncio.get_running_loop():
            connecting = self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(connecting)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            if self.path is not None:
                connecting = loop.create_unix_connection(lambda: _Protocol(self.max_reply), self.path)
            else:
                connecting = loop.create_connection(lambda: _Protocol(self.max_reply), self.host, self.port)
            _, conn = await asyncio.wait_for(connecting, self.connect_timeout)
        except asyncio.TimeoutError:
            raise RedisTimeoutError(f"Timeout connecting to {self.address}") from None
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to {self.address}: {exc}") from None
        try:
            hello: list[tuple[Any, ...]] = []
            if self._password is not None:
                hello.append(("AUTH", self._username, self._password) if self._username else ("AUTH", self._password))
            if self.db:
                hello.append(("SELECT", self.db))
            hello.append(("CLIENT", "SETNAME", self._client_name))
            future = conn.send(b"".join(_pack(cmd) for cmd in hello), len(hello))
            replies = await asyncio.wait_for(future, self.connect_timeout)
            for reply in replies if len(hello) > 1 else [replies]:
                _raise_errors(reply)
        except asyncio.TimeoutError:
            conn.fail(RedisTimeoutError("handshake timed out"))
            raise RedisTimeoutError(f"Timeout in the handshake with {self.address}") from None
        except BaseException:
            conn.fail(RedisConnectionError("handshake failed"))
            raise
        self._conn = conn
        self._arm(loop)
        return conn

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watchdog is None or self._watchdog_loop is not loop:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = loop.call_later(self.socket_timeout / 4, self._check, loop)
            self._watchdog_loop = loop

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every quarter of the socket timeout: a call unanswered for longer closes the
        connection (its calls fail with TimeoutError and are retried on a new one)."""
        self._watchdog = None
        conn = self._conn
        if conn is None or conn.closed or self._closed or conn.loop is not loop:
            return
        if conn.pending and time.monotonic() - conn.pending[0][3] > self.socket_timeout:
            conn.fail(RedisTimeoutError(f"Timeout reading from {self.address}"))
            return
        self._arm(loop)

    async def _drop(self, error: BaseException) -> None:
        """The Retry's failure handler: a failed connection is not used again."""
        conn = self._conn
        if conn is not None and isinstance(error, (RedisConnectionError, RedisTimeoutError)):
            if not conn.closed:
                conn.fail(RedisConnectionError("dropped after an error"))
            self._conn = None

    # -- calls --------------------------------------------------------------------------
    async def _once(self, payload: bytes, replies: int) -> Any:
        conn = await self._connection()
        reply = await conn.send(payload, replies)
        # error replies are raised here, inside the retry: LOADING is waited out
        if replies == 1:
            return _raise_errors(reply)
        return [_raise_errors(r) for r in reply]

    async def execute(self, *args: Any) -> Any:
        """One command; its reply, or its error reply raised (redis-py's classes)."""
        payload = _pack(args)
        return await self._retry.call_with_retry(lambda: self._once(payload, 1), self._drop)

    async def pipeline(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Several commands in one write and one round trip (not atomic together); the
        first error reply among them is raised."""
        payload = b"".join(_pack(cmd) for cmd in commands)
        replies = await self._retry.call_with_retry(lambda: self._once(payload, len(commands)), self._drop)
        return [replies] if len(commands) == 1 else replies  # type: ignore[no-any-return]

    async def evalsha(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """``EVALSHA`` of a redis-py registered script (``script.sha``, ``script.script``),
        loading it first when the server does not know it (after a restart, a flush)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            script.sha = await self.execute("SCRIPT", "LOAD", script.script)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def fcall(self, function: str, keys: list[Any], args: list[Any], library: str) -> Any:
        """``FCALL`` of a function of ``library``, loading the library first when the server
        does not know the function (after a restart or a ``FUNCTION FLUSH``)."""
        try:
            return await self.execute("FCALL", function, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("Function not found"):
                raise
        try:
            await self.execute("FUNCTION", "LOAD", library)
        except ResponseError as exc:  # loaded meanwhile by another client
            if "already exists" not in str(exc):
                raise
        return await self.execute("FCALL", function, len(keys), *keys, *args)

    def _shut(self) -> _Protocol | None:
        """No more calls: stop the watchdog and hand back the connection to close."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn = self._conn, None
        return conn

    def abort(self) -> None:
        """Close at once (a caller cancelled in a blocking command: the connection may stay
        blocked, so it is not used again)."""
        conn = self._shut()
        if conn is not None and not conn.closed:
            conn.fail(RedisConnectionError("aborted"))

    async def aclose(self) -> None:
        conn = self._shut()
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
        if conn is not None and conn.loop is not asyncio.get_running_loop():
            conn.fail(RedisConnectionError("the store is closed"))
        elif conn is not None and conn.transport is not None and not conn.closed:
            conn.closed = True
            conn.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(conn.lost), 1.0)
            except asyncio.TimeoutError:  # pragma: no cover - a peer that never closes
                conn.transport.abort()


class BlockingClients:
    """Lean connections for blocking commands, one per concurrent call, kept while idle."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._idle: list[LeanClient] = []
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        client = self._idle.pop() if self._idle else self._make()
        try:
            reply = await client.execute(*args)
        except BaseException:
            client.abort()
            raise
        if self._closed:
            client.abort()
        else:
            self._idle.append(client)
        return reply

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for client in idle:
            await client.aclose()


__all__ = ["BlockingClients", "LeanClient"]
