"""asyncutil: the precise timer the worker starts schedule slots with."""

import asyncio
import time

from distsched.asyncutil import PreciseTimer


async def test_waiters_wake_at_their_instant_in_order() -> None:
    timer = PreciseTimer(time.monotonic)
    base = time.monotonic()
    woke: list[tuple[str, float]] = []

    async def wait(name: str, at: float) -> None:
        await timer.wait_until(at)
        woke.append((name, time.monotonic()))

    # added out of order; "c" is added while the timer already sleeps for "a"
    first = asyncio.gather(wait("b", base + 0.06), wait("a", base + 0.03))
    await asyncio.sleep(0)
    await asyncio.gather(first, wait("c", base + 0.01), wait("past", base - 1))
    assert [name for name, _ in woke] == ["past", "c", "a", "b"]
    for name, at in woke:
        target = {"past": base, "c": base + 0.01, "a": base + 0.03, "b": base + 0.06}[name]
        assert at >= target, f"{name} woke early"
    timer.close()


async def test_a_cancelled_waiter_does_not_stop_the_others() -> None:
    timer = PreciseTimer(time.monotonic)
    base = time.monotonic()
    gone = asyncio.ensure_future(timer.wait_until(base + 0.01))
    stays = asyncio.ensure_future(timer.wait_until(base + 0.02))
    await asyncio.sleep(0)
    gone.cancel()
    await stays
    assert time.monotonic() >= base + 0.02 and gone.cancelled()
    timer.close()


async def test_close_cancels_waiters() -> None:
    timer = PreciseTimer(time.monotonic)
    waiter = asyncio.ensure_future(timer.wait_until(time.monotonic() + 60))
    await asyncio.sleep(0)
    timer.close()
    await asyncio.gather(waiter, return_exceptions=True)
    assert waiter.cancelled()
