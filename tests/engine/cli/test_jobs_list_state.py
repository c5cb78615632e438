"""`distsched jobs list` showed a paused or disabled job's stored next fire time, an old time
that does not say it will not fire: it shows `paused` / `disabled` in the NEXT column instead
(`--json` keeps `next_fire_at`; its `paused` and `enabled` fields say the state)."""

from __future__ import annotations

import json
import re
import textwrap
import uuid

import pytest

from distsched.cli.format import jobs_table

JOBS = """
[[jobs]]
name = "live"
every = "1h"
target = "t"

[[jobs]]
name = "held"
every = "1h"
target = "t"

[[jobs]]
name = "off"
every = "1h"
target = "t"
enabled = false
"""


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest) -> str:
    tag = uuid.uuid4().hex[:10]
    if request.param == "memory":
        return f"memory://list-{tag}"
    return request.getfixturevalue("redis_server").url_for(namespace=f"ls{tag}")


def test_paused_and_disabled_jobs_show_their_state_not_a_next_time(distsched_cli, tmp_path, url):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    assert distsched_cli("jobs", "sync", str(path), "--storage", url).exit_code == 0
    assert distsched_cli("jobs", "pause", "held", "--storage", url).exit_code == 0
    result = distsched_cli("jobs", "list", "--storage", url)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    for name, state in (("held", "paused"), ("off", "disabled")):
        assert rows[name].split()[-1] == state and not re.search(r"\d\d:\d\d:\d\d", rows[name]), rows[name]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", rows["live"]), rows["live"]
    data = {j["name"]: j for j in json.loads(distsched_cli("jobs", "list", "--storage", url, "--json").stdout)}
    assert data["held"]["paused"] is True and data["held"]["next_fire_at"] is not None
    assert data["off"]["enabled"] is False and data["live"]["paused"] is False and data["live"]["enabled"] is True


def test_a_paused_disabled_job_says_both():
    row = {"name": "x", "schedule": "every 1h", "executor": "local", "target": "t", "enabled": False,
           "paused": True, "next_fire_at": 1_800_000_000.0}
    (line,) = jobs_table([row])[1:]
    assert line.endswith(" paused, disabled") and "2027" not in line, line
