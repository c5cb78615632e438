"""A hostile "Redis" server (issue 16.6): a tiny TCP server on loopback that speaks just
enough RESP for a client to connect (HELLO, AUTH, CLIENT, SELECT, PING answered) and then
answers the first real command with a huge bulk length (``$2000000000``) followed by a
trickle of bytes, each well within the socket timeout. ``distsched status`` against it must
fail within about its socket timeout with one clear line, and its RSS stay bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HANDSHAKE = {b"HELLO", b"AUTH", b"CLIENT", b"SELECT", b"PING", b"READONLY"}


class HostileServer:
    def __init__(self, header: bytes, trickle: float = 0.05, chunk: bytes = b"x" * 64) -> None:
        self.header = header
        self.trickle = trickle
        self.chunk = chunk
        self.stop = threading.Event()
        self.commands: list[bytes] = []
        self.sent = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.threads: list[threading.Thread] = []

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._client, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    @staticmethod
    def _command(f) -> list[bytes] | None:
        line = f.readline()
        if not line:
            return None
        if not line.startswith(b"*"):  # an inline command
            return line.split()
        args = []
        for _ in range(int(line[1:])):
            size = int(f.readline()[1:])
            args.append(f.read(size + 2)[:-2])
        return args

    def _client(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while not self.stop.is_set():
                args = self._command(f)
                if not args:
                    return
                name = args[0].upper()
                self.commands.append(name)
                if name == b"HELLO":  # RESP3, as redis-py asks for
                    conn.sendall(b"%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.4\r\n+proto\r\n:3\r\n")
                    continue
                if name in HANDSHAKE:
                    conn.sendall(b"+PONG\r\n" if name == b"PING" else b"+OK\r\n")
                    continue
                conn.sendall(self.header)
                while not self.stop.wait(self.trickle):
                    conn.sendall(self.chunk)
                    self.sent += len(self.chunk)
        except OSError:
            return
        finally:
            conn.close()

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for thread in self.threads:
            thread.join(5)
        self.sock.close()


def _run_measured(args: list[str], deadline: float) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run ``args``; return the result, the wall time and the peak RSS (KiB, from /proc)."""
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    status = Path(f"/proc/{proc.pid}/status")
    peak = 0
    while proc.poll() is None:
        if time.monotonic() - started > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"still running after {deadline} s (peak RSS {peak} KiB): {out}{err}")
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):  # exiting
            pass
        time.sleep(0.02)  # sampling /proc while the child runs; not a synchronisation
    out, err = proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, out, err), time.monotonic() - started, peak


DISTSCHED = [sys.executable, "-c", "from distsched.cli import main; main()"]


def _status(server: HostileServer, query: str = "", *, scheme: str = "redis", path: str = "/0",
            ) -> tuple[subprocess.CompletedProcess[str], float, int]:
    url = f"{scheme}://127.0.0.1:{server.port}{path}?connect_timeout=1{query}"
    return _run_measured([*DISTSCHED, "status", "--storage", url], deadline=60)


def _one_clear_line(result: subprocess.CompletedProcess[str], server: HostileServer) -> str:
    assert server.commands, "the client never spoke to the server"
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"127.0.0.1:{server.port}" in lines[0]
    return lines[0]


@pytest.mark.parametrize(("scheme", "path", "first"), [
    ("redis", "/0", None),
    # as a sentinel answering SENTINEL MASTERS: before its replies were capped too, 1.8 GB of
    # RSS within the socket timeout and a page-long MasterNotFoundError (measured)
    ("redis+sentinel", "/mymaster/0", b"SENTINEL"),
])
def test_a_flooded_huge_bulk_is_refused_at_the_reply_cap(scheme: str, path: str, first: bytes | None):
    """``$2000000000`` then data as fast as loopback goes: before the cap, 1.3 GB of RSS in
    the 5 s of the socket timeout (measured); now refused at ``max_reply`` (256 MiB)."""
    with HostileServer(b"$2000000000\r\n", trickle=0.0, chunk=b"x" * (1 << 20)) as server:
        result, took, peak_kib = _status(server, "&socket_timeout=5", scheme=scheme, path=path)
    assert first is None or first in server.commands
    line = _one_clear_line(result, server)
    assert "max_reply" in line and "268435456 bytes" in line, line
    assert took < 5 + 10, f"took {took:.1f} s"  # refused before the socket timeout, Python start aside
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_a_lower_max_reply_refuses_sooner_and_smaller():
    with HostileServer(b"$2000000000\r\n", trickle=0.0, chunk=b"x" * (1 << 20)) as server:
        result, _took, peak_kib = _status(server, "&socket_timeout=5&max_reply=8388608")
    assert "8388608 bytes" in _one_clear_line(result, server)
    assert peak_kib < 120 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_a_trickled_huge_bulk_fails_within_the_socket_timeout():
    """A trickle keeps every read within the socket timeout; redis-py times the whole reply,
    so it still fails on time, having buffered only the trickle."""
    with HostileServer(b"$2000000000\r\n", trickle=0.05) as server:
        result, took, peak_kib = _status(server, "&socket_timeout=1")
    line = _one_clear_line(result, server)
    assert "Timeout" in line, line
    assert took < 1 + 10, f"took {took:.1f} s"
    assert peak_kib < 120 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


async def test_without_hiredis_a_huge_bulk_is_refused_from_its_header():
    """The pure-Python parser (used where hiredis is not installed) refuses the bulk from
    its announced length, before reading any of it."""
    from redis.asyncio import ConnectionPool, Redis
    from redis.exceptions import InvalidResponse

    from distsched_redis.parser import CappedRESP3Parser

    capped = type("Capped", (CappedRESP3Parser,), {"max_reply": 1024 * 1024})
    with HostileServer(b"$2000000000\r\n", trickle=0.05) as server:
        pool = ConnectionPool(host="127.0.0.1", port=server.port, parser_class=capped, socket_timeout=5, protocol=3)
        client = Redis(connection_pool=pool)
        try:
            started = time.monotonic()
            with pytest.raises(InvalidResponse, match=r"2000000000 bytes exceeds the limit of 1048576 bytes"):
                await client.execute_command("TIME")
            assert time.monotonic() - started < 2  # not the 5 s socket timeout
        finally:
            await client.aclose()


@pytest.mark.parametrize("value", ["abc", "1", str(1 << 41), "1.5"])
def test_max_reply_option_is_checked(value):
    from distsched.model import ValidationError
    from distsched_redis.url import parse

    with pytest.raises(ValidationError, match="max_reply"):
        parse(f"redis://127.0.0.1:6390/0?max_reply={value}")
    assert parse("redis://127.0.0.1:6390/0?max_reply=1048576").max_reply == 1048576
