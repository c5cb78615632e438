"""A job whose end_date has passed is listed as `ended` by `distsched jobs list` (not with a
stale next time; `--json`: "ended": true), and stays stored until removed: a jobs file with
one is synced (stored as ended, with a warning) rather than refused."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

JOBS = """
[[jobs]]
name = "over"
every = "1h"
target = "t"
end_date = "2020-01-01T00:00:00Z"

[[jobs]]
name = "running"
every = "1h"
target = "t"
end_date = "9999-01-01T00:00:00Z"
"""


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        return f"memory://ended-{tag}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database").url_for(schema=f"le{tag}")
    return request.getfixturevalue("redis_server").url_for(namespace=f"le{tag}")


def test_an_ended_job_is_listed_as_ended(distsched_cli, tmp_path, url):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    synced = distsched_cli("jobs", "sync", str(path), "--storage", url)
    assert synced.exit_code == 0, synced.output
    result = distsched_cli("jobs", "list", "--storage", url)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert rows["over"].split()[-1] == "ended", rows["over"]
    assert rows["running"].split()[-1] != "ended", rows["running"]
    data = {j["name"]: j for j in json.loads(distsched_cli("jobs", "list", "--storage", url, "--json").stdout)}
    assert data["over"]["ended"] is True and data["over"]["next_fire_at"] is None
    assert data["running"]["ended"] is False and data["running"]["next_fire_at"] is not None
