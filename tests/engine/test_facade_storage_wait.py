"""DistributeSchedule.wait_for_storage and the unreachable/refused classification (17.6)."""

from __future__ import annotations

import asyncio

import pytest

from distsched import DistributeSchedule
from distsched.facade import store_unreachable
from distsched.plugin.errors import PluginError, UnknownName


class ConnectionError_(Exception):
    pass


ConnectionError_.__name__ = "ConnectionError"  # as a client library names it (not OSError)


class AuthenticationError(ConnectionError_):  # redis-py: a wrong password is a ConnectionError
    pass


def _wrapped(cause: BaseException) -> PluginError:
    try:
        raise PluginError("storage 'x' could not open x://") from cause
    except PluginError as exc:
        return exc


@pytest.mark.parametrize("error, retry", [
    (ConnectionRefusedError(111, "refused"), True),
    (asyncio.TimeoutError(), True),
    (_wrapped(ConnectionError_("Error 111 connecting")), True),
    (_wrapped(AuthenticationError("invalid password")), False),
    (UnknownName("no storage plugin handles nosuch://"), False),
    (ValueError("bad"), False),
])
def test_unreachable_or_refused(error, retry):
    assert store_unreachable(error) is retry


async def test_wait_for_storage_stops_when_asked_and_raises_a_refusal():
    app = DistributeSchedule("redis://127.0.0.1:1/0")
    stop = asyncio.Event()
    seen = []

    def on_retry(attempt, exc, delay):
        seen.append((attempt, delay))
        if attempt == 2:
            stop.set()

    assert await app.wait_for_storage(stop=stop, on_retry=on_retry, max_delay=0.2) is False
    assert [a for a, _ in seen] == [1, 2] and all(0 < d <= 0.2 for _, d in seen)
    with pytest.raises(PluginError):
        await app.wait_for_storage(retry=False)
    refused = DistributeSchedule("nosuch://x")
    with pytest.raises(UnknownName):
        await refused.wait_for_storage()
