"""`distsched tasks submit --options JSON`: the executor's options of a one-off task.

`--executor rpc` was offered, but the rpc executor requires `options.method` and the command
had no way to give it: every such submission was refused (`options.method: rpc executor:
options.method is required`), and an http one-off could only be a GET without a body."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from distsched import DistributeSchedule


class _Rpc(BaseHTTPRequestHandler):
    """A JSON-RPC 2.0 endpoint: method ``sum`` adds its params."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request.get("method") == "sum":
            body = {"jsonrpc": "2.0", "id": request["id"], "result": sum(request["params"])}
        else:
            body = {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32601, "message": "no such method"}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rpc_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rpc"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _run_until_finished(url: str, task_id: str) -> Any:
    async def main() -> Any:
        app = DistributeSchedule(url)
        async with app.running():
            return await app.wait(task_id, timeout=20)

    return asyncio.run(main())


def test_an_rpc_task_submitted_from_the_command_line_runs(distsched_cli: Any, rpc_url: str) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    result = distsched_cli("tasks", "submit", rpc_url, "2", "3", "--executor", "rpc",
                           "--options", '{"method": "sum"}', "--id", "rpc-sum", "--storage", url)
    assert result.exit_code == 0 and result.stdout == "rpc-sum\n", result.output
    task = _run_until_finished(url, "rpc-sum")
    assert task.state.value == "succeeded" and task.result.value == 5, task


def test_options_must_be_a_json_object(distsched_cli: Any) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    bad = distsched_cli("tasks", "submit", "http://127.0.0.1:1/", "--executor", "http", "--options", "{method",
                        "--storage", url)
    assert bad.exit_code == 2 and "--options" in bad.output and "not JSON" in bad.output, bad.output
    listed = distsched_cli("tasks", "submit", "http://127.0.0.1:1/", "--executor", "http", "--options", "[1]",
                           "--storage", url)
    assert listed.exit_code == 2 and "--options" in listed.output and "must be a JSON object" in listed.output
    wrong = distsched_cli("tasks", "submit", "http://127.0.0.1:1/", "--executor", "http",
                          "--options", '{"method": 5}', "--storage", url)
    assert wrong.exit_code == 1 and "options.method" in wrong.output and "Traceback" not in wrong.output, wrong.output


def test_a_resubmission_with_other_options_says_which_task_runs(distsched_cli: Any) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    first = distsched_cli("tasks", "submit", "http://127.0.0.1:1/a", "--executor", "http",
                          "--options", '{"method": "POST"}', "--id", "same", "--storage", url)
    assert first.exit_code == 0 and "note:" not in first.output, first.output
    again = distsched_cli("tasks", "submit", "http://127.0.0.1:1/a", "--executor", "http",
                          "--options", '{"method": "POST"}', "--id", "same", "--storage", url)
    assert again.exit_code == 0 and "note:" not in again.output, again.output
    other = distsched_cli("tasks", "submit", "http://127.0.0.1:1/a", "--executor", "http",
                          "--options", '{"method": "DELETE"}', "--id", "same", "--storage", url)
    assert other.exit_code == 0 and "note: task 'same' already exists with another call" in other.stderr, other.output
