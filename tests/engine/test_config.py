"""The engine's settings: the rules every election and the engine config share."""

import pytest

from distsched.config import LEASE_TTL_MAX, EngineConfig, lease_timing
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
