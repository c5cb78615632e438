"""Schedules in words (distsched.model.words)."""

import pytest

from distsched.model import AtTrigger, CronTrigger, EveryTrigger
from distsched.model.words import cron_words, duration_words, schedule_words


@pytest.mark.parametrize("seconds, words", [(0.25, "250ms"), (2, "2s"), (90, "1m30s"), (3600, "1h"),
                                            (86400 + 1800, "1d30m"), (1.5, "1.5s")])
def test_durations(seconds, words):
    assert duration_words(seconds) == words


def test_triggers():
    assert schedule_words(EveryTrigger(10.0)) == "every 10s"
    assert schedule_words(CronTrigger("0 9 * * 1-5", "Europe/Paris")) == \
        "at 09:00, Monday through Friday (cron '0 9 * * 1-5', Europe/Paris)"
    assert schedule_words(CronTrigger("@hourly")) == "every hour (cron '@hourly')"
    assert schedule_words(CronTrigger("15 10 * * * *")).startswith("at 15 seconds past the minute, at 10 minutes")
    assert schedule_words(AtTrigger(1893456000.0)) == "once at 2030-01-01T00:00:00Z"
    assert schedule_words(None) == "no schedule"


def test_an_expression_it_cannot_describe_is_shown_as_it_is(monkeypatch):
    import cron_descriptor

    def broken(*args, **kwargs):
        raise RuntimeError("no")

    monkeypatch.setattr(cron_descriptor, "ExpressionDescriptor", broken)
    assert cron_words("1 2 3 4 5") == "cron '1 2 3 4 5'"
