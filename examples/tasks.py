"""Task functions for examples/jobs.toml. Only functions marked @task can be run by jobs.

Importing this module also starts a tiny HTTP endpoint on a free loopback port, so the
example's `http` job has something to call without the internet; its URL is published as
the environment variable DISTSCHED_EXAMPLE_URL, which the job's target references as
${DISTSCHED_EXAMPLE_URL} (resolved by the worker when the task runs).
"""

import asyncio
import datetime
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from distsched import task


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ok", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _start_example_endpoint():
    if "DISTSCHED_EXAMPLE_URL" in os.environ:
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["DISTSCHED_EXAMPLE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"


_start_example_endpoint()


@task
def tick(message="tick"):
    """Succeeds at once: a periodic job."""
    return f"{message} at {datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}"


@task
def always_fails(reason="the upstream is down"):
    """Raises every time: shows the retry policy at work."""
    raise ConnectionError(reason)


@task
async def slow(seconds=3.0):
    """Sleeps longer than its job's timeout: shows a timeout."""
    await asyncio.sleep(seconds)
    return "finished (too late)"


@task(name="add")
def add(a, b):
    return a + b
