"""RetryPolicy: attempts, fixed/exponential backoff, jitter, Retry-After, validation."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distsched.model import RetryPolicy, ValidationError
from distsched.model.retry import MAX_ATTEMPTS_LIMIT, MAX_DELAY_LIMIT

# Seconds: zero, tiny, ordinary and huge values, all valid.
seconds = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=MAX_DELAY_LIMIT, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=3600).map(float),
)
rands = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)
jitters = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def policies(draw, backoff=st.sampled_from(["fixed", "exponential"]), jitter=jitters):
    delay = draw(seconds)
    max_delay = draw(st.floats(min_value=delay, max_value=MAX_DELAY_LIMIT, allow_nan=False))
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=MAX_ATTEMPTS_LIMIT)),
        backoff=draw(backoff),
        delay=delay,
        max_delay=max_delay,
        jitter=draw(jitter),
    )


def attempts_of(policy: RetryPolicy):
    return st.integers(min_value=1, max_value=policy.max_attempts + 5)


# -- stop condition ------------------------------------------------------------------------


@given(policy=policies(), data=st.data(), rand=rands)
@settings(max_examples=50)
def test_delay_is_none_exactly_when_the_attempts_are_used_up(policy, data, rand):
    n = data.draw(attempts_of(policy))
    delay = policy.delay_after(n, rand=rand)
    assert (delay is None) == (n >= policy.max_attempts)


def test_max_attempts_one_never_retries():
    policy = RetryPolicy(max_attempts=1)
    assert policy.delay_after(1) is None


def test_attempt_below_one_is_refused():
    with pytest.raises(ValidationError) as exc:
        RetryPolicy(max_attempts=3).delay_after(0)
    assert exc.value.field == "attempt"


# -- bounds --------------------------------------------------------------------------------


@given(policy=policies(), data=st.data(), rand=rands)
@settings(max_examples=50)
def test_delay_always_between_zero_and_max_delay(policy, data, rand):
    n = data.draw(st.integers(min_value=1, max_value=max(1, policy.max_attempts - 1)))
    delay = policy.delay_after(n, rand=rand)
    if n >= policy.max_attempts:
        assert delay is None
        return
    assert delay is not None and math.isfinite(delay)
    assert 0.0 <= delay <= policy.max_delay


@given(policy=policies(), rand=st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10))
@settings(max_examples=50)
def test_delay_bounded_even_for_a_rand_outside_the_unit_interval(policy, rand):
    if policy.max_attempts < 2:
        return
    delay = policy.delay_after(1, rand=rand)
    assert 0.0 <= delay <= policy.max_delay


# -- shapes without jitter -----------------------------------------------------------------


@given(policy=policies(backoff=st.just("fixed"), jitter=st.just(0.0)), data=st.data(), rand=rands)
@settings(max_examples=50)
def test_fixed_backoff_is_constant_without_jitter(policy, data, rand):
    if policy.max_attempts < 2:
        return
    n = data.draw(st.integers(min_value=1, max_value=policy.max_attempts - 1))
    assert policy.delay_after(n, rand=rand) == min(policy.delay, policy.max_delay) == policy.delay
    assert policy.delay_after(1, rand=rand) == policy.delay_after(n, rand=rand)


@given(policy=policies(backoff=st.just("exponential"), jitter=st.just(0.0)), data=st.data())
@settings(max_examples=50)
def test_exponential_backoff_formula_without_jitter(policy, data):
    if policy.max_attempts < 2:
        return
    n = data.draw(st.integers(min_value=1, max_value=policy.max_attempts - 1))
    expected = min(policy.delay * 2.0 ** (n - 1), policy.max_delay)
    assert policy.delay_after(n) == expected


@given(policy=policies(backoff=st.just("exponential"), jitter=st.just(0.0)))
@settings(max_examples=30)
def test_exponential_backoff_is_non_decreasing_without_jitter(policy):
    delays = [policy.delay_after(n) for n in range(1, policy.max_attempts)]
    assert all(a <= b for a, b in pairwise(delays))
    if delays:
        assert delays[-1] <= policy.max_delay


def test_exponential_examples():
    policy = RetryPolicy(max_attempts=10, backoff="exponential", delay=1.0, max_delay=10.0)
    assert [policy.delay_after(n) for n in range(1, 10)] == [1, 2, 4, 8, 10, 10, 10, 10, 10]
    assert policy.delay_after(10) is None


def test_exponential_with_a_tiny_delay_still_follows_the_formula():
    # Regression: the exponent used to be capped at 64, so a tiny (but valid) delay never
    # reached max_delay.
    policy = RetryPolicy(max_attempts=1000, delay=1e-30, max_delay=5.0)
    assert policy.delay_after(200) == 5.0
    assert policy.delay_after(999) == 5.0


def test_rand_is_ignored_without_jitter():
    policy = RetryPolicy(max_attempts=3, delay=2.0, max_delay=100.0)
    assert policy.delay_after(1, rand=0.0) == policy.delay_after(1, rand=0.99) == 2.0


# -- jitter --------------------------------------------------------------------------------


@given(policy=policies(), data=st.data(), rand=rands)
@settings(max_examples=50)
def test_jitter_stays_within_its_fraction_of_the_unjittered_delay(policy, data, rand):
    if policy.max_attempts < 2:
        return
    n = data.draw(st.integers(min_value=1, max_value=policy.max_attempts - 1))
    plain = RetryPolicy(
        max_attempts=policy.max_attempts,
        backoff=policy.backoff,
        delay=policy.delay,
        max_delay=policy.max_delay,
        jitter=0.0,
    ).delay_after(n)
    jittered = policy.delay_after(n, rand=rand)
    slack = 1e-9 * max(1.0, plain)
    assert abs(jittered - plain) <= policy.jitter * plain + slack
    assert jittered <= policy.max_delay


def test_jitter_extremes():
    policy = RetryPolicy(max_attempts=3, backoff="fixed", delay=10.0, max_delay=100.0, jitter=0.2)
    assert policy.delay_after(1, rand=0.0) == pytest.approx(8.0)
    assert policy.delay_after(1, rand=0.5) == pytest.approx(10.0)
    assert policy.delay_after(1, rand=0.999999) == pytest.approx(12.0, abs=1e-4)


def test_jitter_is_capped_at_max_delay():
    policy = RetryPolicy(max_attempts=3, backoff="fixed", delay=10.0, max_delay=10.0, jitter=0.5)
    assert policy.delay_after(1, rand=0.99) == 10.0
    assert policy.delay_after(1, rand=0.0) == pytest.approx(5.0)


# -- Retry-After ---------------------------------------------------------------------------


@given(policy=policies(), hint=seconds, rand=rands)
@settings(max_examples=50)
def test_retry_after_honoured_below_max_delay_and_capped_above(policy, hint, rand):
    if policy.max_attempts < 2:
        assert policy.delay_after(1, retry_after=hint) is None
        return
    delay = policy.delay_after(1, rand=rand, retry_after=hint)
    if hint < policy.max_delay:
        assert delay == hint
    else:
        assert delay == policy.max_delay


def test_retry_after_examples():
    policy = RetryPolicy(max_attempts=3, delay=1.0, max_delay=30.0, jitter=0.5)
    assert policy.delay_after(1, rand=0.0, retry_after=7) == 7.0
    assert policy.delay_after(1, retry_after=3600) == 30.0
    assert policy.delay_after(1, retry_after=math.inf) == 30.0
    # A negative or NaN hint is ignored: the backoff applies.
    assert policy.delay_after(1, retry_after=-5) == 1.0
    assert policy.delay_after(1, retry_after=math.nan) == 1.0
    # The hint does not buy attempts beyond the budget.
    assert policy.delay_after(3, retry_after=1.0) is None


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 1_000_000}, "max_attempts"),
        ({"max_attempts": 1e6}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"backoff": "linear"}, "backoff"),
        ({"delay": -1.0}, "delay"),
        ({"delay": math.inf}, "delay"),
        ({"delay": math.nan}, "delay"),
        ({"delay": True}, "delay"),
        ({"delay": "1s"}, "delay"),
        ({"delay": MAX_DELAY_LIMIT + 1, "max_delay": MAX_DELAY_LIMIT}, "delay"),
        ({"max_delay": -0.5}, "max_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"max_delay": math.nan}, "max_delay"),
        ({"max_delay": False}, "max_delay"),
        ({"max_delay": MAX_DELAY_LIMIT * 2}, "max_delay"),
        ({"delay": 10.0, "max_delay": 5.0}, "max_delay"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": math.nan}, "jitter"),
        ({"jitter": True}, "jitter"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        RetryPolicy(**kwargs)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_limits_are_accepted():
    policy = RetryPolicy(max_attempts=MAX_ATTEMPTS_LIMIT, delay=0.0, max_delay=MAX_DELAY_LIMIT, jitter=1.0)
    assert policy.delay_after(MAX_ATTEMPTS_LIMIT - 1) == 0.0
    assert policy.delay_after(MAX_ATTEMPTS_LIMIT) is None


# -- serialisation -------------------------------------------------------------------------


@given(policy=policies())
@settings(max_examples=30)
def test_round_trip_through_json(policy):
    data = json.loads(json.dumps(policy.to_dict()))
    assert RetryPolicy.from_dict(data) == policy
