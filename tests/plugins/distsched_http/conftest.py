"""A real HTTP server on 127.0.0.1 (a thread per connection) for the http/rpc executor tests."""

from __future__ import annotations

import email.utils
import gzip
import json
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from distsched.model import Task, TaskSpec
from distsched.plugin.manager import PluginManager
from distsched.plugin.registry import FunctionRegistry
from distsched.ports import ExecutorContext

HUGE_SIZE = 20 * 1024 * 1024
HUGE_CHUNK = 64 * 1024
#: About 305 KB of gzip that inflates to 300 MiB of zeros (the bomb of issue 16.5).
BOMB_INFLATED = 300 * 1024 * 1024


def _gzip_bomb() -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    return b"".join(z.compress(block) for _ in range(BOMB_INFLATED // len(block))) + z.flush()


_BOMB: list[bytes] = []


def gzip_bomb() -> bytes:
    if not _BOMB:
        _BOMB.append(_gzip_bomb())
    return _BOMB[0]


class FixtureServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.flaky_calls = 0
        self.release = threading.Event()  # lets /slow answer (set at teardown)
        self.huge_done = threading.Event()
        self.huge_sent = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.fixture = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    @property
    def fixture(self) -> FixtureServer:
        return self.server.fixture  # type: ignore[attr-defined]

    def _reply(self, status: int, body: bytes | str | object = b"", *, content_type: str = "text/plain",
               headers: dict[str, str] | None = None) -> None:
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        record = {
            "method": self.command,
            "path": split.path,
            "target": self.path,
            "headers": dict(self.headers.items()),
            "body": body.decode("utf-8", "replace"),
            "client": self.client_address,
        }
        fx = self.fixture
        with fx.lock:
            fx.requests.append(record)
        route = split.path
        if route == "/ok":
            self._reply(200, {"ok": True})
        elif route == "/text":
            self._reply(200, "hello", content_type="text/plain; charset=utf-8")
        elif route == "/flaky":
            with fx.lock:
                fx.flaky_calls += 1
                calls = fx.flaky_calls
            if calls == 1:
                self._reply(500, "try again")
            else:
                self._reply(200, {"ok": True, "calls": calls})
        elif route == "/ratelimit":
            self._reply(429, "slow down", headers={"Retry-After": "2"})
        elif route == "/unavailable":
            when = email.utils.formatdate(time.time() + 30, usegmt=True)
            self._reply(503, "maintenance", headers={"Retry-After": when})
        elif route.startswith("/status/"):
            self._reply(int(route.rsplit("/", 1)[1]), "status")
        elif route == "/slow":
            fx.release.wait(10)
            self._reply(200, {"slow": True})
        elif route == "/huge":
            self._huge()
        elif route == "/echo-headers":
            self._reply(200, {k: v for k, v in record.items() if k != "client"})
        elif route == "/gzip-bomb":  # compressed although the client asked for identity
            try:
                self._reply(200, gzip_bomb(), content_type="text/plain", headers={"Content-Encoding": "gzip"})
            except OSError:  # the client stopped reading at its limit and hung up: the point
                self.close_connection = True
        elif route == "/gzip-small":
            self._reply(200, gzip.compress(b'{"small": true}'), content_type="application/json",
                        headers={"Content-Encoding": "gzip"})
        elif route == "/deflate-small":
            encoder = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS if "raw" in query else zlib.MAX_WBITS)
            self._reply(200, encoder.compress(b"deflated") + encoder.flush(), content_type="text/plain",
                        headers={"Content-Encoding": "deflate"})
        elif route == "/echo-escaped":  # the request's headers as other JSON encoders write them
            text = json.dumps({"headers": record["headers"], "target": record["target"]})
            style = query.get("style", ["php"])[0]
            if style == "php":  # json_encode: "/" as "\/", non-ASCII as \uXXXX
                text = text.replace("/", "\\/")
            else:  # Go's encoding/json ("go") or Gson ("gson", upper-case hex): <, >, &, ' as \uXXXX
                for char in "<>&'":
                    escape = f"\\u{ord(char):04x}"
                    text = text.replace(char, escape.upper().replace("\\U", "\\u") if style == "gson" else escape)
            self._reply(200, text, content_type="application/json")
        elif route == "/sized":  # ?n=bytes&fill=x: a JSON document or a text of about n bytes
            size, fill = int(query["n"][0]), query.get("fill", ["x"])[0]
            if query.get("type", ["json"])[0] == "json":
                self._reply(200, '{"data": "' + fill * (size - 12) + '"}', content_type="application/json")
            else:
                self._reply(200, (fill * size).encode("latin-1"), content_type="text/plain; charset=latin-1")
        elif route == "/deep":  # valid JSON nested deeper than Python's parser can go
            depth = int(query.get("n", ["30000"])[0])
            self._reply(200, "[" * depth + "]" * depth, content_type="application/json")
        elif route == "/nan":  # Python's json accepts NaN; it is not JSON
            self._reply(200, '{"a": NaN}', content_type="application/json")
        elif route == "/unavailable-br":  # a 503 whose body the client cannot decode
            self._reply(503, b"\x0b\x02\x80down\x03", content_type="text/plain",
                        headers={"Content-Encoding": "br", "Retry-After": "7"})
        elif route == "/brotli":
            self._reply(200, b"\x0b\x02\x80hello\x03", content_type="text/plain", headers={"Content-Encoding": "br"})
        elif route == "/redirect":
            self._reply(302, "", headers={"Location": query["to"][0]})
        elif route == "/rpc":
            self._rpc(body)
        else:
            self._reply(404, "not found")

    def _huge(self) -> None:
        fx = self.fixture
        sent = 0
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(HUGE_SIZE))
            self.end_headers()
            chunk = b"x" * HUGE_CHUNK
            while sent < HUGE_SIZE:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:  # the client hung up: that is the point
            self.close_connection = True
        finally:
            fx.huge_sent = sent
            fx.huge_done.set()

    def _rpc(self, body: bytes) -> None:
        request = json.loads(body)
        rid, method, params = request.get("id"), request.get("method"), request.get("params")
        if method == "add":
            values = params.values() if isinstance(params, dict) else params
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "result": sum(values)})
        elif method == "fail":
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "boom"}})
        elif method == "error":  # params: {"code": ..., "message": ...}
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "error": params})
        elif method == "garbage":
            self._reply(200, "<html>not json</html>", content_type="text/html")
        elif method == "wrong_id":
            self._reply(200, {"jsonrpc": "2.0", "id": "someone-else", "result": 1})
        elif method == "both":
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "result": 1, "error": {"code": 1, "message": "x"}})
        elif method == "no_version":
            self._reply(200, {"id": rid, "result": 1})
        elif method == "neither":
            self._reply(200, {"jsonrpc": "2.0", "id": rid})
        elif method == "nested":
            self._reply(200, "[" * 30000 + "]" * 30000, content_type="application/json")
        elif method == "nan":
            text = json.dumps({"jsonrpc": "2.0", "id": rid, "result": 0}).replace("0}", "NaN}")
            self._reply(200, text, content_type="application/json")
        elif method == "big_result":  # params: [bytes]
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "result": "r" * params[0]})
        elif method == "big_data":  # params: [bytes]
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "big",
                                                                     "data": "d" * params[0]}})
        elif method == "unavailable_br":
            self._reply(503, b"\x0b\x02\x80down\x03", content_type="application/json",
                        headers={"Content-Encoding": "br", "Retry-After": "7"})
        elif method == "http500":
            self._reply(500, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "internal"}})
        else:
            self._reply(200, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


@pytest.fixture
def server():
    srv = FixtureServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def refused_url() -> str:
    """A URL on a port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/ok"


@pytest.fixture(scope="session")
def plugin_manager() -> PluginManager:
    return PluginManager()


@pytest.fixture
async def make_executor(plugin_manager):
    """Builds executors through the plugin system and closes them at teardown."""
    created = []

    def make(name: str = "http", context: ExecutorContext | None = None, **settings):
        if context is None:
            context = ExecutorContext(functions=FunctionRegistry(), concurrency=4, settings=settings)
        executor = plugin_manager.executors.get(name).factory(context)
        created.append(executor)
        return executor

    yield make
    for executor in created:
        await executor.close()


def make_task(target: str, *, executor: str = "http", timeout: float = 2.0, dispatch: bool = True,
              **spec) -> Task:
    task = Task(id="t1", spec=TaskSpec(executor=executor, target=target, timeout=timeout, **spec), created_at=0.0)
    if dispatch:
        task.dispatch("w1", 0.0)
    return task


@pytest.fixture
def task_factory():
    return make_task
