"""The chaos harness's faults2, skew-check and everysec profiles (issue 15.2): what the smoke
does not inject - network cuts between a worker and Redis (drop, blackhole), cuts that deliver
requests and drop the replies (a scheduler and a worker), a node's wall clock stepped +-30 s
under libfaketime (the leader and a worker) - and the loss of a Redis ``kill -9`` under
``appendfsync everysec``.

Each profile is one subprocess run of ``tests/chaos/run.py`` (faults2 about 90 s, skew-check
about 50 s, everysec about 60 s); the summary lines go to the terminal. ``CHAOS_SEED`` picks
the seed (default 7).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from distsched.testing.redis_server import redis_server_binary

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_run import early_profile, has_faketime  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.redis,
              pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not on PATH")]
needs_faketime = pytest.mark.skipif(not has_faketime(),
                                    reason="libfaketime is not installed (Debian package faketime)")

@pytest.fixture(scope="module")
def faults2(tmp_path_factory, pytestconfig):
    if not has_faketime():
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    return early_profile("faults2", pytestconfig, tmp_path_factory.mktemp("chaos") / "run")


@pytest.fixture
def skew_check(tmp_path, pytestconfig):
    """The skew-check profile with the wall-clock mutant (``chaos_run.EARLY``)."""
    return early_profile("skew_check", pytestconfig, tmp_path / "run")


@pytest.fixture
def everysec(tmp_path, pytestconfig):
    """The everysec profile (``chaos_run.EARLY``)."""
    return early_profile("everysec", pytestconfig, tmp_path / "run")


@needs_faketime
def test_every_promise_holds_under_the_new_faults(faults2):
    rc, fig = faults2
    assert rc == 0 and fig["ok"], {k: v for k, v in fig["properties"].items() if not v}
    assert fig["tasks_lost"] == 0 and fig["tasks_non_terminal"] == 0
    assert fig["slots_dispatched_twice"] == 0 and fig["slots_missing"] == 0
    assert fig["stale_results_accepted"] == 0


@needs_faketime
def test_a_worker_cut_off_from_redis_is_reaped_its_tasks_run_elsewhere_its_late_results_refused(faults2):
    _, fig = faults2
    cuts = [c for c in fig["worker_cuts"] if c["mode"] in ("drop", "blackhole")]
    assert {c["mode"] for c in cuts} == {"drop", "blackhole"}
    for c in cuts:
        assert c["reaped"] >= 1, c
        assert c["requeued"] == c["redispatched_elsewhere"] + c["redispatched_to_its_new_incarnation"] \
            + c["not_dispatched_again"], c
        assert c["late_results_accepted"] == 0, c
    assert sum(c["requeued"] for c in cuts) > 0
    assert fig["redispatch"]["over_bound"] == 0


@needs_faketime
def test_cuts_that_drop_replies_keep_the_promises(faults2):
    _, fig = faults2
    assert fig["reply_drop"]["n"] == 2
    assert fig["properties"]["reply_drop"] and fig["properties"]["partition"]
    assert all(c["late_results_accepted"] == 0 for c in fig["worker_cuts"])


@needs_faketime
def test_a_stepped_wall_clock_changes_nothing(faults2):
    _, fig = faults2
    skews = {d["kind"]: d for d in fig["clock_skew"]}
    assert set(skews) == {"skew-leader", "skew-worker"}
    for d in skews.values():
        lo, hi = d["wall_clock_offset_seen"]
        assert lo < -25 and hi > 25, d  # the node's wall clock really was off by +-30 s
        assert d["slots"] >= 100 and d["started"] == d["slots"] and d["early"] == 0 and d["late"] == 0, d
        assert not d["spurious"], d


@needs_faketime
def test_the_harness_catches_a_node_that_reads_its_wall_clock(skew_check):
    """The harness checks itself: with the store's clock made the node's wall clock (test-only
    mutant), a stepped clock fires and starts slots late or early, and the check must say so."""
    rc, fig = skew_check
    assert rc != 0
    assert not fig["properties"]["clock_skew"]
    assert sum(d["early"] + d["late"] for d in fig["clock_skew"]) > 0


def test_redis_kill9_under_everysec_is_measured_and_the_other_promises_hold(everysec):
    """`appendfsync everysec`: Redis is killed (-9) right after acknowledged submissions, while
    the jobs fire; the harness counts the acknowledged submissions and slot records that are
    gone (reported, not gated: a process crash loses what Redis had not written to the AOF,
    which is nothing unless a slow fsync made it postpone the write). Every promise that does
    not assume durability holds either way."""
    rc, fig = everysec
    loss = fig["aof_loss"]
    assert loss["appendfsync"] == "everysec" and loss["kills"] >= 3
    assert loss["acked_submissions"] >= 2000 and sum(1 for b in loss["burst_before_each_kill"] if b) >= 3
    assert loss["acked_submissions_lost"] >= 0 and loss["slot_records_lost"] >= 0
    assert rc == 0 and fig["ok"], {k: v for k, v in fig["properties"].items() if not v}
    assert fig["tasks_non_terminal"] == 0 and fig["stale_results_accepted"] == 0
    assert fig["wire_leader_writes"]["accepted_from_a_superseded_term"] == 0 and fig["terms_strictly_increasing"]
