"""``distsched explain`` of a job with a window and a jitter: its slots inside the window
only, each with the time it starts (its jitter applied, the same everywhere), and `ended`
for a job whose end_date has passed."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime

from distsched.jobs import load_jobs_file

JOBS = """
[[jobs]]
name = "campaign"
cron = "*/5 * * * *"
target = "t"
start_date = 2030-01-01T09:00:00+01:00
end_date = "2030-01-01T08:12:00Z"
jitter = "30s"

[[jobs]]
name = "over"
every = "1m"
target = "t"
end_date = 2020-01-01T00:00:00Z
"""


def test_explain_shows_the_window_and_each_slots_jittered_start(distsched_cli, tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text(textwrap.dedent(JOBS))
    config = load_jobs_file(path).job("campaign")
    out = distsched_cli("explain", str(path), "campaign", "--after", "2029-12-31T00:00:00Z", "-n", "5")
    assert out.exit_code == 0, out.output
    assert "from 2030-01-01T08:00:00Z until 2030-01-01T08:12:00Z, jitter 30s" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("  ")]
    assert [r.split()[1] for r in rows] == ["2030-01-01T08:00:00Z", "2030-01-01T08:05:00Z", "2030-01-01T08:10:00Z"]
    slots = [s.at for s in config.upcoming(config.trigger.start - 1, 3)]
    data = json.loads(distsched_cli("explain", str(path), "campaign", "--after", "2029-12-31T00:00:00Z",
                                    "--json").stdout)[0]["slots"]
    for row, slot, item in zip(rows, slots, data, strict=True):
        start = config.start_at(slot)  # what the leader sets as the task's not_before
        assert slot < start <= slot + 30
        assert abs(datetime.fromisoformat(item["start_utc"].replace("Z", "+00:00")).timestamp() - start) < 1e-6
        assert row.endswith(f"starts {item['start_utc']}"), row
    over = distsched_cli("explain", str(path), "over")
    assert over.exit_code == 0 and "(ended: no fire time left before its end_date)" in over.stdout

