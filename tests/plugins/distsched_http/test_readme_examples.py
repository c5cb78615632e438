"""The jobs-file examples of docs/http.md load and run against a real server."""

from __future__ import annotations

import re
from pathlib import Path

from distsched.jobs import load_jobs_file
from distsched.model import Task
from distsched.plugin.registry import FunctionRegistry
from distsched.ports import ExecutorContext

README = Path(__file__).resolve().parents[3] / "docs" / "http.md"


def toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


async def test_readme_examples_run(server, make_executor, tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "t0ken-value")
    text = "\n".join(toml_blocks()[:2]).replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    path = tmp_path / "jobs.toml"
    path.write_text(text, encoding="utf-8")
    jobs = load_jobs_file(path)
    context = ExecutorContext(functions=FunctionRegistry(), concurrency=4, settings=jobs.worker.settings)
    executors = {name: make_executor(name, context) for name in ("http", "rpc")}
    values = {}
    for job in jobs.jobs:
        task = Task(id=f"{job.name}#slot", spec=job.spec, job=job.name, created_at=0.0)
        task.dispatch("w1", 0.0)
        outcome = await executors[job.spec.executor].run(task)
        assert outcome.ok, (job.name, outcome)
        values[job.name] = outcome.value
    assert values == {"ping-api": {"ok": True}, "rpc-add": 5}
    ping = server.requests[0]
    assert ping["method"] == "POST"
    assert ping["headers"]["Authorization"] == "Bearer t0ken-value"
    assert ping["body"] == '{"source":"distsched"}'
