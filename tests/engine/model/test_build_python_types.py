"""``build_job`` (``app.add_job``) takes the Python values an APScheduler or Celery user
passes: a ``datetime.timedelta`` for every duration and a ``zoneinfo.ZoneInfo`` for the time
zone; each was refused (``must be a duration such as '10s'``, ``must be an IANA time zone
name``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from distsched.model import ValidationError
from distsched.model.build import build_job


def test_durations_may_be_timedeltas() -> None:
    job = build_job("t", every=timedelta(minutes=5), target="f", timeout=timedelta(seconds=90),
                    misfire_grace=timedelta(0), retry={"max_attempts": 3, "delay": timedelta(seconds=2),
                                                       "max_delay": timedelta(minutes=1)})
    assert job.trigger.interval == 300.0
    assert job.spec.timeout == 90.0 and job.misfire.grace == 0.0
    assert (job.spec.retry.delay, job.spec.retry.max_delay) == (2.0, 60.0)
    assert job == build_job("t", every="5m", target="f", timeout="90s", misfire_grace="0s",
                            retry={"max_attempts": 3, "delay": "2s", "max_delay": "1m"})


def test_a_zone_may_be_a_zoneinfo_or_utc() -> None:
    paris = build_job("p", cron="0 9 * * *", timezone=ZoneInfo("Europe/Paris"), target="f")
    assert paris.trigger.timezone == "Europe/Paris"
    assert paris == build_job("p", cron="0 9 * * *", timezone="Europe/Paris", target="f")
    assert build_job("u", cron="0 9 * * *", timezone=timezone.utc, target="f").trigger.timezone == "UTC"
    naive = build_job("a", at=datetime(2030, 1, 1, 9), timezone=ZoneInfo("Europe/Paris"), target="f")
    assert naive.trigger.at == datetime(2030, 1, 1, 9, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


@pytest.mark.parametrize(("fields", "field"), [
    ({"cron": "0 9 * * *", "timezone": timezone(timedelta(hours=2))}, "timezone"),  # an offset has no rules
    ({"every": timedelta(0)}, "every"),
    ({"every": "1m", "timeout": timedelta(days=-1)}, "timeout"),
])
def test_what_has_no_meaning_is_still_refused_naming_the_field(fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_job("x", target="f", **fields)
    assert info.value.field == field
