"""ElectionContract: one holder at a time, expiry, strictly increasing terms, release."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from distsched.model import PluginError, ValidationError

from ._harness import Harness, plugin_manager_for, poll


class ElectionContract:
    #: The election records the holder's renew interval in its lease record
    #: (``LeaseInfo.renew_interval``; the built-in ones do): set it True in your subclass, and
    #: ``lease()`` must give the holder's own. Left False, it may also give None - the status
    #: then estimates the interval from the lease TTL - but never another interval.
    records_renew_interval = False

    @pytest.fixture
    def election_url(self) -> str:  # pragma: no cover - must be overridden
        raise NotImplementedError("an ElectionContract subclass must provide the election_url fixture")

    @pytest.fixture
    def storage_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def election_harness(self, request: pytest.FixtureRequest, election_url: str,
                  storage_options: dict[str, Any]) -> Harness:
        return Harness(plugin_manager_for(request), election_url, storage_options)

    def test_one_holder_at_a_time(self, election_harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            a, b = await h.election(s), await h.election(s)
            fa = await a.acquire("a")
            assert fa is not None
            assert await b.acquire("b") is None
            assert await a.current() == fa
            assert await a.renew(fa) is True
            results = await asyncio.gather(*(b.acquire(f"n{i}") for i in range(10)))
            assert results == [None] * 10

        election_harness.run(body)

    def test_release_hands_over_with_a_higher_term(self, election_harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            a, b = await h.election(s), await h.election(s)
            fa = await a.acquire("a")
            assert fa is not None
            await a.release(fa)
            assert await a.current() is None
            fb = await b.acquire("b")
            assert fb is not None and fb.term > fa.term
            assert await a.renew(fa) is False, "a released lease cannot be renewed"
            await a.release(fa)  # releasing someone else's lease does nothing
            assert await b.current() == fb

        election_harness.run(body)

    def test_expiry_lets_another_node_in(self, election_harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            a = await h.election(s, ttl=0.3, renew_interval=0.1)
            b = await h.election(s, ttl=0.3, renew_interval=0.1)
            fa = await a.acquire("a")
            assert fa is not None
            got: list[Any] = []

            async def takeover() -> bool:
                fence = await b.acquire("b")
                if fence is not None:
                    got.append(fence)
                return bool(got)

            assert await poll(takeover, 5.0, 0.02)
            assert got[0].term > fa.term
            assert await a.renew(fa) is False

        election_harness.run(body)

    def test_refuses_a_lease_timing_that_cannot_work(self, election_harness: Harness) -> None:
        """A TTL that is not a positive number of seconds, or a renewal not shorter than the
        lease, is refused naming the field (``distsched.config.lease_timing``)."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            for ttl, renew, field in ((1.0, 1.0, "renew_interval"), (1.0, 2.0, "renew_interval"),
                                      (0, 0.1, "ttl"), (float("nan"), 0.1, "ttl"), (True, 0.1, "ttl"),
                                      (1.0, -1, "renew_interval")):
                with pytest.raises(PluginError) as refused:  # the plugin manager names the plugin
                    await h.election(s, ttl=ttl, renew_interval=renew)
                cause = refused.value.__cause__
                assert isinstance(cause, ValidationError) and cause.field == field, (ttl, renew, str(refused.value))

        election_harness.run(body)

    def test_terms_strictly_increase(self, election_harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            e = await h.election(s)
            terms = []
            for i in range(5):
                fence = await e.acquire(f"n{i}")
                assert fence is not None
                terms.append(fence.term)
                await e.release(fence)
            assert terms == sorted(set(terms))

        election_harness.run(body)

    def test_lease_info_in_store_time_says_expired_once_lapsed(self, election_harness: Harness) -> None:
        async def body(h: Harness) -> None:
            s = await h.storage()
            # A TTL long enough that a loaded machine reads and renews the lease before it
            # lapses (0.3 s once lapsed between acquire and the first read under load).
            a = await h.election(s, ttl=1.0, renew_interval=0.3)
            assert await a.lease() is None, "no lease was ever taken"
            fa = await a.acquire("a")
            assert fa is not None
            info = await a.lease()
            assert info is not None and (info.holder, info.term) == ("a", fa.term)
            assert not info.expired and info.acquired_at <= info.renewed_at < info.expires_at
            assert abs(info.now - s.clock()) < 1.0 and abs(info.expires_at - info.acquired_at - 1.0) < 0.05
            assert await a.renew(fa)
            renewed = await a.lease()
            assert renewed is not None and renewed.renewed_at >= info.renewed_at
            assert renewed.acquired_at == info.acquired_at

            async def lapsed() -> bool:
                got = await a.lease()
                return got is not None and got.expired

            assert await poll(lapsed, timeout=10.0)
            gone = await a.lease()
            assert gone is not None and gone.holder == "a" and gone.term == fa.term, "kept after it lapsed"
            fb = await a.acquire("b")
            assert fb is not None
            await a.release(fb)
            released = await a.lease()
            assert released is not None and released.holder == "b" and released.expired

        election_harness.run(body)

    def test_lease_info_carries_the_holders_renew_interval(self, election_harness: Harness) -> None:
        """``lease().renew_interval`` is the interval the holder took the lease with, as any
        node reads it (a status flags a renewal overdue by it), and kept by its renewals; the
        next holder's replaces it. None is allowed unless ``records_renew_interval``."""
        async def body(h: Harness) -> None:
            s = await h.storage()
            a = await h.election(s, ttl=10.0, renew_interval=2.5)
            b = await h.election(s, ttl=10.0, renew_interval=4.0)

            async def check(expected: float) -> None:
                info = await b.lease()  # read by another node than the holder
                assert info is not None
                got = info.renew_interval
                allowed = (expected,) if self.records_renew_interval else (expected, None)
                assert got in allowed, f"lease().renew_interval is {got!r}, the holder's is {expected}"

            fa = await a.acquire("a")
            assert fa is not None
            await check(2.5)
            assert await a.renew(fa)
            await check(2.5)
            await a.release(fa)
            assert await b.acquire("b") is not None
            await check(4.0)

        election_harness.run(body)
