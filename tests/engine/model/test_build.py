"""distsched.model.build: the first slot of a new job (first_fire)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from distsched.model import ValidationError, build_job, first_fire


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_a_cron_with_no_date_left_before_year_10000_says_so(zone):
    """Was: ``never fires (no matching date within the next years)`` - but the cron search
    covers the calendar's 400-year cycle (a cron no date matches is refused when it is
    built), so a valid cron meets this only when its next date is past year 9999 UTC, the
    last time kept: the message says that, and from when."""
    job = build_job("yearly", cron="0 0 1 1 *", timezone=zone, target="t")
    now = utc("9999-06-01T00:00:00")
    with pytest.raises(ValidationError) as caught:
        first_fire(job, now)
    assert caught.value.field == "cron" and caught.value.where == "job 'yearly'"
    assert str(caught.value) == ("job 'yearly': cron: '0 0 1 1 *' fires no more after 9999-06-01T00:00:00Z: its next "
                                 "date is after the end of year 9999 (UTC), the last time distsched keeps")


def test_a_rare_cron_date_far_ahead_is_a_first_slot_not_an_error():
    """Feb 29 on a Sunday: from 2033 the next is in 2060, 27 years on - found, not refused."""
    job = build_job("rare", cron="0 0 29 2 */7", target="t")
    assert first_fire(job, utc("2033-01-01T00:00:00")) == utc("2060-02-29T00:00:00")
