"""``distsched status`` shows what each worker advertises - its executors and the functions its
``local`` executor runs, by which the leader routes tasks (Worker.executors, Worker.functions)
- on a real Redis with real worker processes: one with many functions, one dedicated to a
third-party executor loaded with ``-p``, and the record of an older worker that says neither.

Before, neither was shown anywhere: "why does this worker get no ``cmd`` task?" had no answer."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from distsched import DistributeSchedule
from distsched.testing import make_worker
from distsched.testing.processes import wait_until

FUNCTIONS = [f"report_{i:02d}" for i in range(14)]

PLUGIN = """\
from distsched import hookimpl
from distsched.model import Outcome


class Cmd:
    def __init__(self, context):
        pass

    async def run(self, task):
        return Outcome.success("ran")


@hookimpl
def distsched_register_executors(registry):
    registry.add("cmd", Cmd, description="a third-party executor")
"""


def _register_older_worker(url: str) -> None:
    """A record as a worker of an earlier version writes it: no executors, no functions."""
    async def main() -> None:
        app = DistributeSchedule(url)
        try:
            storage = await app.storage()
            await storage.workers.register(make_worker("older-worker", now=storage.clock()))
        finally:
            await app.stop()

    asyncio.run(main())


def test_status_shows_each_workers_executors_and_functions(distsched_cli: Any, distsched_process: Any,
                                                           redis_server: Any, tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    url = redis_server.url_for(namespace=f"exec{uuid.uuid4().hex[:10]}")
    (tmp_path / "many_functions.py").write_text(
        "import distsched\n" + "".join(f"\n@distsched.task\ndef {name}():\n    return 1\n" for name in FUNCTIONS))
    (tmp_path / "cmd_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # the in-process status loads the plugin too
    distsched_process("plain", "worker", "--storage", url, "--name", "plain", "--import", "many_functions",
                      "--heartbeat-interval", "0.5")
    distsched_process("dedicated", "-p", "cmd_plugin", "--disable-plugin", "http", "worker", "--storage", url,
                      "--name", "dedicated", "--heartbeat-interval", "0.5")
    _register_older_worker(url)

    def three_workers() -> dict[str, Any] | None:
        result = distsched_cli("status", "--storage", url, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        ids = sorted(w["id"].split("-")[0] for w in data["workers"])
        return data if ids == ["dedicated", "older", "plain"] else None

    data = wait_until(three_workers, 30, what="the two worker processes registered")
    by_name = {w["id"].split("-")[0]: w for w in data["workers"]}
    # --json: the full lists, as each worker advertised them
    assert by_name["plain"]["executors"] == ["http", "local", "rpc"]
    assert by_name["plain"]["functions"] == FUNCTIONS
    assert by_name["dedicated"]["executors"] == ["cmd", "local"]
    assert by_name["dedicated"]["functions"] == []
    assert by_name["older"]["executors"] == [] and by_name["older"]["functions"] == []

    text = distsched_cli("status", "--storage", url).output
    lines = text.splitlines()

    def detail(name: str) -> str:
        """The executors line under the worker's own line."""
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(by_name[name]["id"]))
        return lines[at + 1].strip()

    # a long function list is capped and says how many more
    plain = detail("plain")
    assert plain.startswith("executors http, local, rpc; functions report_00, report_01"), text
    assert plain.endswith(" more)") and "report_13" not in plain, text
    shown = plain.split("functions ", 1)[1].split(" (+")[0].split(", ")
    assert plain.endswith(f"(+{len(FUNCTIONS) - len(shown)} more)"), text
    assert len(plain) <= 100, plain
    assert detail("dedicated") == "executors cmd, local; functions none (gets no local task)", text
    assert detail("older") == "executors not said (an older worker: gets every task)", text
