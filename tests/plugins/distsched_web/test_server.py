"""plugins/distsched_web/server.py: what the server logs of a store that is down."""

from __future__ import annotations

import logging

from distsched_web.server import _Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _said(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "distsched.web"]


def test_a_repeated_warning_is_said_once_a_window_with_the_count_of_repeats(caplog):
    caplog.set_level(logging.WARNING, logger="distsched.web")
    clock = Clock()
    repeats = _Repeats(window=60.0, clock=clock)
    for _ in range(50):  # a dashboard's live refresh against a store that is down
        repeats.warning("web: the store did not answer: ConnectionError")
        clock.now += 1.0
    assert _said(caplog) == ["web: the store did not answer: ConnectionError"]
    clock.now += 10.0  # 60 s after the first
    repeats.warning("web: the store did not answer: ConnectionError")
    assert _said(caplog)[1:] == ["web: the store did not answer: ConnectionError (49 more in the last 60s)"]


def test_another_text_is_said_at_once_and_a_quiet_text_again_without_a_count(caplog):
    caplog.set_level(logging.WARNING, logger="distsched.web")
    clock = Clock()
    repeats = _Repeats(window=60.0, clock=clock)
    repeats.warning("web: the store did not answer: TimeoutError")
    repeats.warning("web: the store cannot be opened: schema is outdated")
    clock.now += 61.0
    repeats.warning("web: the store did not answer: TimeoutError")
    assert _said(caplog) == ["web: the store did not answer: TimeoutError",
                             "web: the store cannot be opened: schema is outdated",
                             "web: the store did not answer: TimeoutError"]


def test_it_remembers_a_bounded_number_of_texts():
    repeats = _Repeats(window=60.0, clock=Clock())
    for i in range(_Repeats.MAX_TEXTS * 3):
        repeats.warning(f"web: the store cannot be opened: error {i}")
    assert len(repeats._seen) == _Repeats.MAX_TEXTS
