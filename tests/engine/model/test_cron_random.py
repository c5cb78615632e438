"""croniter's ``R`` (random) in a cron expression: each parse drew its own value, so each
scheduler process - a new leader after a failover, each ``explain`` - fired the job at its
own minute (a scheduling probe: ``R * * * *`` gave minute 26 in one run). A new job is
refused naming the field; a stored one is still read."""

from __future__ import annotations

import pytest

from distsched.model import TaskConfig, ValidationError, build_job


@pytest.mark.parametrize("expr, item, field", [
    ("R * * * *", "R", "minute"),
    ("0 R(9-17) * * *", "R(9-17)", "hour"),
    ("0 0 * * R", "R", "weekday"),
    ("R 0 12 * * *", "R", "second"),
])
def test_a_new_job_with_a_random_field_is_refused_naming_it(expr: str, item: str, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        build_job("r", cron=expr, target="x")
    assert refused.value.field == "cron"
    assert f"R (random) fields are not supported: {expr!r} has {item!r} in its {field} field" in str(refused.value)


def test_names_holding_an_r_are_no_random_field() -> None:
    assert build_job("m", cron="0 9 * MAR FRI", target="x").trigger.expr == "0 9 * MAR FRI"


def test_a_stored_job_with_a_random_field_is_still_read() -> None:
    data = build_job("r", cron="0 9 * * *", target="x").to_dict()
    data["trigger"]["expr"] = "R * * * *"
    assert TaskConfig.from_dict(data).trigger.expr == "R * * * *"
