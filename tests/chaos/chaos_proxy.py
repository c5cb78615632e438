"""The chaos harness's TCP proxy in front of Redis (one per scheduler): network cuts
(``drop``, ``blackhole``, ``delay``), one request held in the network (:meth:`Proxy.arm_hold`),
and a log of every fenced leader write with the store's answer, read off the RESP stream
(:class:`WireLog`). All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

LOOPBACK = "127.0.0.1"


def resp_end(buf: bytearray, pos: int = 0) -> int:
    """Offset just past the RESP2/RESP3 value starting at ``pos``; -1 when incomplete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return -1
    kind = buf[pos:pos + 1]
    if kind in (b"+", b"-", b":", b",", b"#", b"_", b"("):
        return nl + 2
    n = int(buf[pos + 1:nl])
    if kind in (b"$", b"=", b"!"):
        end = nl + 2 + n + 2 if n >= 0 else nl + 2
        return end if end <= len(buf) else -1
    if kind in (b"*", b"~", b">", b"%", b"|"):
        p = nl + 2
        for _ in range(max(0, n) * (2 if kind in (b"%", b"|") else 1)):
            p = resp_end(buf, p)
            if p < 0:
                return -1
        return p
    raise ValueError(f"not RESP: {bytes(buf[pos:pos + 20])!r}")


def resp_head(buf: bytearray, end: int, count: int) -> list[bytes]:
    """The first ``count`` bulk strings of the array ``buf[:end]`` (fewer if it is not one)."""
    out: list[bytes] = []
    if buf[:1] != b"*":
        return out
    p = buf.find(b"\r\n") + 2
    while len(out) < count and p < end and buf[p:p + 1] == b"$":
        nl = buf.find(b"\r\n", p)
        n = int(buf[p + 1:nl])
        out.append(bytes(buf[nl + 2:nl + 2 + n]))
        p = nl + 2 + n + 2
    return out


class WireLog:
    """Pairs each client command with its reply (RESP is in order per connection) and records
    every fenced leader write - ``EVALSHA <sha> 1 <ns>:op:<id> <ns> <node|term> ...``, or
    ``FCALL <function> ...`` with the same arguments (the lean connection, Redis 7+) - with
    its outcome (``OK`` accepted, ``FENCED`` refused) and the time Redis answered."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.c_buf = bytearray()
        self.s_buf = bytearray()
        self.pending: deque[str | None] = deque()
        self.broken = False

    def client(self, chunk: bytes) -> None:
        self._guard(self._client, chunk)

    def server(self, chunk: bytes) -> None:
        self._guard(self._server, chunk)

    def _guard(self, parse: Any, chunk: bytes) -> None:
        if self.broken:
            return
        try:
            parse(chunk)
        except Exception:  # never let the log break the forwarding
            self.broken = True
            self.proxy.unparsed += 1

    def _client(self, chunk: bytes) -> None:
        self.c_buf += chunk
        while self.c_buf:
            end = resp_end(self.c_buf)
            if end < 0:
                return
            head = resp_head(self.c_buf, end, 6)
            token = None
            if len(head) == 6 and head[0].upper() in (b"EVALSHA", b"FCALL") and head[2] == b"1" and b":op:" in head[3] \
                    and b"|" in head[5]:
                token = head[5].decode("utf-8", "replace")
            self.pending.append(token)
            del self.c_buf[:end]

    def _server(self, chunk: bytes) -> None:
        self.s_buf += chunk
        while self.s_buf:
            end = resp_end(self.s_buf)
            if end < 0:
                return
            token = self.pending.popleft() if self.pending else None
            if token is not None:
                head = resp_head(self.s_buf, end, 1)
                outcome = head[0].decode() if head else bytes(self.s_buf[:min(end, 40)]).decode("utf-8", "replace")
                self.proxy.writes.append((time.time(), token, outcome))
                if outcome == "FENCED":
                    self.proxy.fenced.append(time.time())
            del self.s_buf[:end]


class Proxy:
    """A loopback TCP proxy in front of Redis for one process.

    Modes: ``pass``; ``drop`` (reset every connection, refuse new ones); ``blackhole`` (hold
    every byte, in both directions, until the mode changes - a partition that TCP rides out;
    new connections are accepted but not connected upstream meanwhile); ``delay`` (each chunk
    is forwarded ``delay`` seconds after it arrived, in order, each way); ``reply-drop``
    (requests reach Redis and are executed, its replies are discarded - a one-way cut of the
    return path; new connections are connected; a connection that lost a reply is reset
    when the mode changes back).

    It also logs every fenced leader write passing through (:class:`WireLog`): its token
    (node and term) and whether the store accepted it or refused it as FENCED - seen on the
    wire even when the client stopped waiting for the reply.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.mode = "pass"
        self.delay = 0.0
        self.fenced: list[float] = []
        #: (time Redis answered, "node|term", "OK" / "FENCED" / error) per fenced leader write
        self.writes: list[tuple[float, str, str]] = []
        self.unparsed = 0
        self.connections = 0
        self.refused = 0
        self.reset = 0
        #: Reply chunks discarded in ``reply-drop`` mode.
        self.replies_dropped = 0
        self._changed = asyncio.Event()
        self._conns: set[_ProxyConn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._hold_marker: bytes | None = None
        self.hold_caught = asyncio.Event()
        self._hold_release = asyncio.Event()
        self.held: list[float] = []

    def arm_hold(self, marker: bytes) -> asyncio.Event:
        """Hold (do not forward) the next client chunk that contains ``marker`` until
        :meth:`release_hold`: one request stuck in the network. Returns an event set once one
        is held."""
        self._hold_marker = marker
        self.hold_caught = asyncio.Event()
        self._hold_release = asyncio.Event()
        return self.hold_caught

    def release_hold(self) -> None:
        self._hold_marker = None
        self._hold_release.set()

    async def _maybe_hold(self, chunk: bytes) -> None:
        marker = self._hold_marker
        if marker is None or marker not in chunk:
            return
        self._hold_marker = None
        self.held.append(time.time())
        release = self._hold_release
        self.hold_caught.set()
        await release.wait()

    def make_wire_log(self) -> Any:
        """The per-connection wire log (RESP: :class:`WireLog`; chaos_pg.PgProxy: none)."""
        return WireLog(self)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        assert mode in ("pass", "drop", "blackhole", "delay", "reply-drop"), mode
        self.mode, self.delay = mode, delay
        if mode == "drop":
            for conn in list(self._conns):
                conn.abort()
                self.reset += 1
        if mode != "reply-drop":
            # A connection that lost part of its reply stream cannot carry on (the next reply
            # would answer an earlier request): it is reset when the cut heals, as TCP would
            # once the return path is back and the peers disagree.
            for conn in list(self._conns):
                if conn.replies_dropped:
                    conn.abort()
                    self.reset += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_change(self, timeout: float | None = None) -> None:
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "drop":
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        conn = _ProxyConn(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)

    async def close(self) -> None:
        for conn in list(self._conns):
            conn.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def stats(self) -> dict[str, Any]:
        return {"port": self.port, "connections": self.connections, "refused": self.refused,
                "reset": self.reset, "replies_dropped": self.replies_dropped, "fenced_replies": len(self.fenced), "fenced_at": self.fenced,
                "leader_writes": self.writes, "unparsed_connections": self.unparsed}


class _ProxyConn:
    def __init__(self, proxy: Proxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.c_reader, self.c_writer = reader, writer
        self.u_reader: asyncio.StreamReader | None = None
        self.u_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.aborted = False
        #: Set once a reply chunk was discarded (``reply-drop``): the stream is broken for good.
        self.replies_dropped = False

    def abort(self) -> None:
        self.aborted = True
        for w in (self.c_writer, self.u_writer):
            if w is not None:
                w.transport.abort()
        for t in self.tasks:
            t.cancel()

    async def _release(self, received: float) -> None:
        """Wait until a chunk that arrived at ``received`` may go on, per the current mode."""
        proxy = self.proxy
        while True:
            if proxy.mode == "blackhole":
                await proxy.wait_change()
                continue
            if proxy.mode == "delay":
                due = received + proxy.delay - time.monotonic()
                if due > 0:
                    await proxy.wait_change(due)
                    continue
            return

    async def run(self) -> None:
        c2s: deque[tuple[float, bytes | None]] = deque()
        s2c: deque[tuple[float, bytes | None]] = deque()
        c2s_ready, s2c_ready = asyncio.Event(), asyncio.Event()
        self.wire = self.proxy.make_wire_log()
        reader_c = asyncio.create_task(self._read(self.c_reader, c2s, c2s_ready, parse=self.wire.client))
        self.tasks.append(reader_c)
        try:
            # Connect upstream only when the network lets the SYN through.
            await self._release(time.monotonic())
            if self.aborted:
                return
            try:
                self.u_reader, self.u_writer = await asyncio.open_connection(LOOPBACK, self.proxy.upstream_port)
            except OSError:
                self.abort()
                return
            reader_s = asyncio.create_task(self._read(self.u_reader, s2c, s2c_ready, parse=self.wire.server))
            to_s = asyncio.create_task(self._write(c2s, c2s_ready, self.u_writer, upstream=True))
            to_c = asyncio.create_task(self._write(s2c, s2c_ready, self.c_writer))
            self.tasks += [reader_s, to_s, to_c]
            # Until both directions are closed (each side half-closes the other), or one
            # side went away and the other has had time to answer what it held.
            await asyncio.wait({to_s, to_c}, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait({to_s, to_c, reader_s}, timeout=30)
        except asyncio.CancelledError:
            pass
        finally:
            for t in self.tasks:
                t.cancel()
            for w in (self.c_writer, self.u_writer):
                if w is not None:
                    w.transport.abort() if self.aborted else w.close()

    async def _read(self, reader: asyncio.StreamReader, queue: deque, ready: asyncio.Event, *,
                    parse: Any = None) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                if chunk and parse is not None:
                    # Replies are logged as Redis sends them: the outcome happened at the
                    # store, whether or not the client still waits for this reply.
                    parse(chunk)
                queue.append((time.monotonic(), chunk or None))
                ready.set()
                if not chunk:
                    return
        except (ConnectionError, OSError):
            queue.append((time.monotonic(), None))
            ready.set()

    async def _write(self, queue: deque, ready: asyncio.Event, writer: asyncio.StreamWriter, *,
                     upstream: bool = False) -> None:
        try:
            while True:
                while not queue:
                    ready.clear()
                    await ready.wait()
                received, chunk = queue[0]
                await self._release(received)
                if upstream and chunk is not None:
                    await self.proxy._maybe_hold(chunk)
                queue.popleft()
                if not upstream and chunk is not None and (self.proxy.mode == "reply-drop" or self.replies_dropped):
                    self.replies_dropped = True
                    self.proxy.replies_dropped += 1
                    continue
                if chunk is None:
                    # Half-close: the peer still gets (and answers) what was sent before.
                    if writer.can_write_eof():
                        writer.write_eof()
                    else:
                        writer.close()
                    return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            return
