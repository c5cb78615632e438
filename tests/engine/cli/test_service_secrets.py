"""The long-running roles' messages about their store (distsched.cli.service) mask a URL's
password wherever an error's text carries one: the warning of each failed attempt to open the
store, the command's error when the open fails for good, and the error of a sync again
after a data loss."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click
import pytest

from distsched.cli.service import SyncAgainOnDataLoss, wait_for_store

SECRET = "hunter2-secret"
#: An error whose text names the store with its password, as a driver's message may.
MESSAGE = f"cannot reach redis://app:{SECRET}@cache.internal:6379/0 (connection refused)"


class _Store:
    """What ``wait_for_store`` calls on the app: ``wait_for_storage``, here failing with an error
    whose text holds the URL - after ``attempts`` retried failures (each reported through
    ``on_retry``), or at once."""

    def __init__(self, error: BaseException, attempts: int = 0) -> None:
        self.error = error
        self.attempts = attempts

    async def wait_for_storage(self, *, stop: asyncio.Event, retry: bool, on_retry: Any) -> bool:
        for attempt in range(1, self.attempts + 1):
            on_retry(attempt, self.error, 0.1)
        if self.attempts:
            return True
        raise self.error


def test_a_failed_open_names_the_store_without_its_password() -> None:
    with pytest.raises(click.ClickException) as raised:
        asyncio.run(wait_for_store(_Store(RuntimeError(MESSAGE)), asyncio.Event(), fail_fast=True, role="worker",
                                   url="redis://app:***@cache.internal:6379/0"))
    assert SECRET not in raised.value.message
    assert "redis://app:***@cache.internal:6379/0 (connection refused)" in raised.value.message


def test_each_failed_attempt_is_warned_about_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="distsched.cli"):
        assert asyncio.run(wait_for_store(_Store(ConnectionError(MESSAGE), attempts=2), asyncio.Event(),
                                          fail_fast=False, role="worker", url="redis://app:***@cache.internal:6379/0"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # two attempts, then "reachable after 3 attempts"
    assert all(SECRET not in line for line in lines), lines
    assert "redis://app:***@cache.internal:6379/0 (connection refused)" in lines[0]


def test_a_failed_sync_again_is_logged_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ConnectionError(MESSAGE)

    async def lose() -> None:
        listener = SyncAgainOnDataLoss(fails, "jobs.toml")
        listener(type("Lost", (), {"kind": "store.data_lost"})())
        assert listener._running is not None
        await listener._running

    with caplog.at_level(logging.ERROR, logger="distsched.cli"):
        asyncio.run(lose())
    [line] = [r.getMessage() for r in caplog.records]
    assert SECRET not in line
    assert "(cannot reach redis://app:***@cache.internal:6379/0 (connection refused))" in line
