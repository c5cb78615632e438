"""The ``/metrics`` HTTP server beside an engine: prometheus-client's own threaded server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import start_http_server

from . import OBSERVER_NAME, observer_for

log = logging.getLogger("distsched.metrics")


class MetricsServer:
    """A running ``/metrics`` endpoint; ``aclose()`` stops it and the engine's observer."""

    def __init__(self, engine: Any, httpd: Any, thread: Any, owns_observer: bool) -> None:
        self.engine = engine
        self._httpd = httpd
        self._thread = thread
        self._owns_observer = owns_observer
        host, port = httpd.server_address[:2]
        self.port: int = port
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"

    @classmethod
    def start(cls, engine: Any, host: str, port: int, *, max_jobs: int | None = None) -> MetricsServer:
        owns = engine.plugins.hook_manager.get_plugin(OBSERVER_NAME) is None
        observer = observer_for(engine, max_jobs=max_jobs)
        try:
            # A daemon thread running the standard library's WSGI server; metric updates
            # (on the engine's loop) and scrapes (on this thread) are made safe by the
            # library's locks.
            httpd, thread = start_http_server(port, addr=host, registry=observer.registry)
        except BaseException:
            if owns:
                engine.plugins.unregister(OBSERVER_NAME)
            raise
        server = cls(engine, httpd, thread, owns)
        log.info("metrics on %s", server.url)
        return server

    async def aclose(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        self._httpd = None
        await asyncio.to_thread(httpd.shutdown)  # waits for serve_forever's poll (<= 0.5 s)
        httpd.server_close()
        self._thread.join(timeout=5.0)
        if self._owns_observer:
            self.engine.plugins.unregister(OBSERVER_NAME)
