"""The chaos harness's smoke profile (issue 7): real scheduler and worker processes on a
throwaway redis-server under kill -9, SIGSTOP, Redis restarts and stalls, and network cuts.

One run of ``tests/chaos/run.py --profile smoke`` (a subprocess, about 90 s) is shared by the
tests below; each asserts a group of its figures. ``CHAOS_SEED`` picks the seed (default 7).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from distsched.testing.redis_server import redis_server_binary

pytestmark = [pytest.mark.slow, pytest.mark.redis,
              pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")]

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from chaos_run import early_profile  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, pytestconfig):
    run_dir = tmp_path_factory.mktemp("chaos") / "run"
    return early_profile("smoke", pytestconfig, run_dir)[1]


def test_at_most_one_dispatch_per_slot_and_no_slot_lost(smoke):
    assert smoke["slots_dispatched_twice"] == 0 and smoke["attempts_dispatched_twice"] == 0
    assert smoke["tasks_dispatched_twice"] == 0
    assert smoke["slots_missing"] == 0 and not smoke["slots_skipped"] and smoke["slot_tasks_vanished"] == 0


def test_no_task_lost_and_everything_terminal(smoke):
    assert smoke["tasks_acked"] >= 2000
    assert smoke["tasks_lost"] == 0, smoke["tasks_by_state"]
    assert smoke["tasks_non_terminal"] == 0
    assert smoke["timeouts"]["running_past_timeout_and_grace"] == 0
    assert smoke["timeouts"]["hang_tasks_timed_out"] == smoke["timeouts"]["hang_tasks"]


def test_no_stale_result_accepted(smoke):
    # The stored result of every task is its current attempt's.
    assert smoke["stale_results_accepted"] == 0


def test_zombie_leader_cannot_write(smoke):
    assert smoke["wire_leader_writes"]["accepted_from_a_superseded_term"] == 0
    assert smoke["wire_leader_writes"]["accepted"] > 0 and smoke["wire_leader_writes"]["unparsed_connections"] == 0
    assert smoke["dispatches_from_a_superseded_term"] == 0 and smoke["dispatches_outside_a_term"] == 0
    assert smoke["terms_strictly_increasing"]


def test_fenced_writes_are_refused(smoke):
    # A leader paused with a write in flight past its lease is refused by the store (FENCED)
    # and steps down on it; the total counts every FENCED reply seen on the wire.
    assert smoke["fenced_writes_refused"] > 0
    zombies = smoke["zombie_pauses"]
    assert zombies["write_in_flight"] >= 1
    assert zombies["refused_on_wire"] == zombies["write_in_flight"]
    assert smoke["fenced_step_downs"] >= 1


def test_recovers_unaided(smoke):
    assert smoke["manual_steps"] == 0
    assert smoke["redis_recovery"]["n"] >= 3 and smoke["redis_recovery"]["not_recovered"] == 0
    assert not smoke["worker_processes_out_of_service"]
    assert not smoke["exit_codes_not_zero"]


def test_failover_and_redispatch_within_bounds(smoke):
    takeover, redispatch = smoke["takeover_kill9"], smoke["redispatch"]
    assert takeover["n"] >= 2 and takeover["no_takeover"] == 0 and takeover["over_bound"] == 0, takeover
    assert redispatch["n"] >= 1 and redispatch["over_bound"] == 0, redispatch


def test_every_attempt_runs_only_on_the_worker_it_was_dispatched_to(smoke):
    assert smoke["attempts_run_by_a_worker_not_dispatched_to"] == 0
    assert smoke["attempts_started_twice"] == 0
    assert smoke["results_accepted_from_a_worker_not_dispatched_to"] == 0
    assert smoke["duplicate_executions_unexplained"] == 0 and smoke["stream_runs_beyond_dispatches"] == 0


@pytest.fixture
def fence_check(tmp_path, pytestconfig):
    """The fence-check profile with the no-fence mutant (``chaos_run.EARLY``)."""
    return early_profile("fence_check", pytestconfig, tmp_path / "run")


def test_the_harness_catches_a_leader_write_without_fence(fence_check):
    """The harness checks itself: with the fence check removed from the leader-write scripts
    (test-only mutant loaded into the schedulers), a paused leader's late write is accepted,
    and the harness must report it and exit non-zero."""
    returncode, fig = fence_check
    assert returncode != 0
    assert fig["wire_leader_writes"]["accepted_from_a_superseded_term"] >= 1
    assert not fig["properties"]["zombie_leader"] and not fig["properties"]["fenced_writes_refused"]
