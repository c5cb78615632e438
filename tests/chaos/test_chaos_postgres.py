"""The chaos harness's smoke profile on PostgreSQL (``--storage postgres``, issue 14): real
scheduler and worker processes on a throwaway PostgreSQL cluster (initdb + pg_ctl on a free
port) under kill -9, SIGSTOP (with the zombie-leader pause), ``pg_ctl stop -m immediate`` and
restart, and network cuts through the harness's proxy.

One run of ``tests/chaos/run.py --profile smoke --storage postgres`` (a subprocess, about
80-100 s) is shared by the tests below, as in test_chaos.py. ``CHAOS_SEED`` picks the seed
(default 7).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from chaos_run import early_profile, has_postgres  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.skipif(not has_postgres(), reason="PostgreSQL server binaries (initdb, pg_ctl) or asyncpg "
                                                            "are not installed")]


@pytest.fixture(scope="module")
def pg_smoke(tmp_path_factory, pytestconfig):
    """One smoke run on a throwaway PostgreSQL cluster (initdb + pg_ctl on a free port): the
    same faults, with pg_ctl stop -m immediate + restart as the store's fault."""
    run_dir = tmp_path_factory.mktemp("chaos-pg") / "run"
    return early_profile("pg_smoke", pytestconfig, run_dir)[1]


def test_postgres_smoke_at_most_one_dispatch_per_slot_no_task_lost_no_stale_result(pg_smoke):
    assert pg_smoke["storage"] == "postgres"
    assert pg_smoke["slots_dispatched_twice"] == 0 and pg_smoke["attempts_dispatched_twice"] == 0
    assert pg_smoke["tasks_dispatched_twice"] == 0
    assert pg_smoke["slots_missing"] == 0 and not pg_smoke["slots_skipped"] and pg_smoke["slot_tasks_vanished"] == 0
    assert pg_smoke["tasks_acked"] >= 2000
    assert pg_smoke["tasks_lost"] == 0, pg_smoke["tasks_by_state"]
    assert pg_smoke["tasks_non_terminal"] == 0
    assert pg_smoke["timeouts"]["running_past_timeout_and_grace"] == 0
    assert pg_smoke["stale_results_accepted"] == 0
    assert pg_smoke["attempts_run_by_a_worker_not_dispatched_to"] == 0 and pg_smoke["attempts_started_twice"] == 0
    assert pg_smoke["duplicate_executions_unexplained"] == 0 and pg_smoke["stream_runs_beyond_dispatches"] == 0


def test_postgres_smoke_zombie_leader_is_fenced(pg_smoke):
    # Accepted leader writes come from the audit table (commit times), refusals from the
    # server log (DSFEN); the RESP wire log does not apply.
    writes = pg_smoke["store_leader_writes"]
    assert writes["accepted"] > 0 and writes["accepted_from_a_superseded_term"] == 0
    assert writes["acquisitions"] >= 3 and writes["acquisition_terms_increasing"]
    assert pg_smoke["wire_leader_writes"] == "n/a on postgres"
    assert pg_smoke["dispatches_from_a_superseded_term"] == 0 and pg_smoke["dispatches_outside_a_term"] == 0
    assert pg_smoke["terms_strictly_increasing"]
    assert pg_smoke["fenced_writes_refused"] > 0
    zombies = pg_smoke["zombie_pauses"]
    # Every late write of a paused leader is refused (the DSFEN count of the server log rose
    # across each such pause). Whether the resumed node steps down on that refusal or on its
    # renewal's timeout, which also expired during the pause, is a race: not asserted.
    assert zombies["write_in_flight"] >= 1 and zombies["refused_on_wire"] == zombies["write_in_flight"]


def test_postgres_smoke_recovers_unaided_within_bounds(pg_smoke):
    assert pg_smoke["faults"].get("pg-crash", 0) >= 2
    assert pg_smoke["postgres_recovery"]["n"] >= 2 and pg_smoke["postgres_recovery"]["not_recovered"] == 0
    assert pg_smoke["manual_steps"] == 0
    assert not pg_smoke["worker_processes_out_of_service"]
    assert not pg_smoke["exit_codes_not_zero"]
    takeover, redispatch = pg_smoke["takeover_kill9"], pg_smoke["redispatch"]
    assert takeover["n"] >= 2 and takeover["no_takeover"] == 0 and takeover["over_bound"] == 0, takeover
    assert redispatch["n"] >= 1 and redispatch["over_bound"] == 0, redispatch
    assert pg_smoke["cuts"]["n"] >= 2
    assert pg_smoke["ok"], {k: v for k, v in pg_smoke["properties"].items() if not v}


@pytest.fixture
def pg_fence_check(tmp_path, pytestconfig):
    """The fence-check profile on PostgreSQL with the no-fence mutant (``chaos_run.EARLY``)."""
    return early_profile("pg_fence_check", pytestconfig, tmp_path / "run")


def test_the_postgres_harness_catches_a_leader_write_without_fence(pg_fence_check):
    """On PostgreSQL the fence is checked in the database: the mutant turns the plugin's
    check (renamed chaos_fence_checked by the harness) into a no-op, and the harness must
    find the paused leader's late write committed after a higher term was acquired."""
    returncode, fig = pg_fence_check
    assert returncode != 0
    assert fig["store_leader_writes"]["accepted_from_a_superseded_term"] >= 1
    assert not fig["properties"]["zombie_leader"] and not fig["properties"]["fenced_writes_refused"]
