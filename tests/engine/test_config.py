"""The engine's settings: the rules every election and the engine config share."""

import pytest

from distsched.config import LEASE_TTL_MAX, EngineConfig, WorkerConfig, lease_timing
from distsched.model import ValidationError


def test_lease_timing_takes_positive_seconds_the_renewal_shorter():
    assert lease_timing(10, 3) == (10.0, 3.0)
    assert lease_timing(LEASE_TTL_MAX, 1) == (LEASE_TTL_MAX, 1.0)


@pytest.mark.parametrize(("ttl", "renew", "field", "reason"), [
    (0, 1, "ttl", "positive number"),
    (float("nan"), 1, "ttl", "positive number"),
    (10, 10, "renew_interval", "shorter than the lease ttl"),
    # a store takes a lease claiming to run longer than this as broken (never lapsing)
    (LEASE_TTL_MAX + 1, 3, "ttl", "at most 3600 seconds"),
])
def test_lease_timing_refuses_naming_the_field(ttl, renew, field, reason):
    with pytest.raises(ValidationError) as info:
        lease_timing(ttl, renew)
    assert info.value.field == field and reason in info.value.reason


def test_the_engine_config_caps_the_lease_alike():
    with pytest.raises(ValidationError) as info:
        EngineConfig(storage="memory://", lease_ttl=LEASE_TTL_MAX + 1)
    assert info.value.field == "lease_ttl"


@pytest.mark.parametrize(("kw", "reason"), [
    # a worker holding fewer tasks than it runs at once could never register
    ({"concurrency": 8, "capacity": 2}, "must be at least concurrency (8), not 2"),
    ({"capacity": 0}, "between 1 and 1000000"),
    ({"capacity": True}, "between 1 and 1000000"),
])
def test_the_worker_config_refuses_a_capacity_under_its_concurrency(kw, reason):
    with pytest.raises(ValidationError) as info:
        WorkerConfig(**kw)
    assert info.value.field == "capacity" and reason in info.value.reason


def test_the_worker_config_takes_a_capacity_equal_to_its_concurrency():
    assert WorkerConfig(concurrency=4, capacity=4).capacity == 4 and WorkerConfig().capacity is None
