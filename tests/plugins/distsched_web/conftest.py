"""A real dashboard server (uvicorn on a free loopback port) over a real engine, in a thread.

``web_server(token=..., storage=...)`` starts a DistributeSchedule (scheduler + worker in the
thread's own event loop, ``memory://`` unless told otherwise) and the dashboard beside it,
exactly as ``distsched run --web`` does; the test talks to it over HTTP like any client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from distsched import DistributeSchedule  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


class ServerThread:
    def __init__(self, storage: str = "memory://", *, token: str | None = None, engine: bool = True,
                 jobs: dict[str, dict[str, Any]] | None = None, plugins: tuple[Any, ...] = (),
                 config: dict[str, Any] | None = None, functions: dict[str, Callable[..., Any]] | None = None) -> None:
        self.storage, self.token, self.engine, self.jobs, self.plugins = storage, token, engine, jobs or {}, plugins
        #: More functions for its worker (name: function), beside ``add`` and ``boom``.
        self.functions = functions or {}
        #: More engine options (``lease_ttl=``, ``node_id=``...) for its DistributeSchedule.
        self.config = {"heartbeat_interval": 0.2, "heartbeat_ttl": 2.0, **(config or {})}
        self.port = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.app: DistributeSchedule | None = None
        self.thread = threading.Thread(target=self._thread, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        if not self.ready.wait(20):
            raise TimeoutError("the dashboard did not start within 20 s")
        if self.error is not None:
            raise self.error
        return self

    def _thread(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test by start()
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from distsched_web.server import serve

        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        app = self.app = DistributeSchedule(self.storage, plugins=self.plugins, **self.config)

        @app.task
        def add(a: int, b: int) -> int:
            return a + b

        @app.task
        def boom() -> None:
            raise RuntimeError("boom: the upstream said no")

        for name, function in self.functions.items():
            app.task(name=name)(function)

        if self.engine:
            await app.start()
        for name, fields in self.jobs.items():
            await app.add_job(name, replace=True, **fields)

        def ready(port: int) -> None:
            self.port = port
            self.ready.set()

        try:
            await serve(app, "127.0.0.1:0", self.stop_event, token=self.token, ready=ready)
        finally:
            await app.stop()

    def call(self, coro_factory: Callable[[DistributeSchedule], Any], timeout: float = 10) -> Any:
        """Run ``coro_factory(app)`` in the server's loop (to arrange data) and return its result."""
        assert self.loop is not None and self.app is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(self.app), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(20)
        assert not self.thread.is_alive(), "the dashboard did not stop within 20 s"


@pytest.fixture
def web_server() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def make(*args: Any, **kwargs: Any) -> ServerThread:
        server = ServerThread(*args, **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
