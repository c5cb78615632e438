"""Cron `H` (Jenkins' hashed values) gave croniter's raw "Hashed definitions must include
hash_id": it is refused naming the field; `L` and `#` (documented in docs/jobs-file.md) work."""

from __future__ import annotations

import pytest

from distsched.model import CronTrigger, ValidationError
from distsched.model.build import build_job
from distsched.model.times import iso_utc


@pytest.mark.parametrize(("expr", "word", "field"), [
    ("H * * * *", "H (hashed)", "minute"),
    ("0 H(0-5) * * *", "H (hashed)", "hour"),
    ("H/5 * * * *", "H (hashed)", "minute"),
    ("0 0 1,h * *", "H (hashed)", "day"),
    ("*/20 H * * * *", "H (hashed)", "minute"),
])
def test_hashed_and_random_fields_are_refused_naming_the_field(expr, word, field):
    with pytest.raises(ValidationError) as info:
        build_job("j", cron=expr, target="t")
    assert info.value.field == "cron"
    text = str(info.value)
    assert f"{word} fields are not supported" in text and f"its {field} field" in text, text
    assert "hash_id" not in text


@pytest.mark.parametrize(("expr", "after", "first"), [
    ("0 0 L * *", 1_796_083_200.0, "2026-12-31T00:00:00Z"),        # the last day of the month
    ("0 0 * * 1#1", 1_796_083_200.0, "2026-12-07T00:00:00Z"),      # the first Monday
    ("0 0 * * L5", 1_796_083_200.0, "2026-12-25T00:00:00Z"),       # the last Friday
    ("0 0 * * THU", 1_796_083_200.0, "2026-12-03T00:00:00Z"),      # a name holding an H
])
def test_last_and_nth_work(expr, after, first):
    assert iso_utc(CronTrigger(expr).next_after(after).at) == first
