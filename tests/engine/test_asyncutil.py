"""asyncutil: the precise timer the worker starts schedule slots with."""

import asyncio
import time

import pytest

from distsched.asyncutil import LoopWatch, PreciseTimer

# how long the loop is held or a waiter released, to the millisecond (tests/chaos/conftest.py)
pytestmark = pytest.mark.timing


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


async def test_a_clock_that_steps_back_does_not_hold_the_loop() -> None:
    """``clock`` may be wall time: if it steps back just before an instant, the waiter waits
    for the instant again - but the timer must not busy-wait the whole step on the loop."""
    reads = {"n": 0}

    def clock() -> float:
        reads["n"] += 1
        return 100.0 if reads["n"] <= 3 else 90.0  # 10 s back after the first reads

    timer = PreciseTimer(clock)
    waiter = asyncio.ensure_future(timer.wait_until(100.001))
    started = time.monotonic()
    await asyncio.sleep(0.05)  # the loop must get here promptly
    assert time.monotonic() - started < 0.5
    assert not waiter.done(), "the instant has not come again"
    timer.close()
    await asyncio.gather(waiter, return_exceptions=True)


async def test_a_loop_that_woke_the_timer_late_gets_a_longer_lead() -> None:
    """A busy loop (a callback holding it 30 ms, as a loaded worker's loop or a process
    waiting for a CPU) wakes the timer late, and that slot starts late. The timer remembers
    it: for the next instant it leaves the loop earlier, well before a callback due 4 ms
    before the instant (inside the 3 ms lead of a timer that learnt nothing, it would run
    first), so that slot is released first. After LATE_WINDOW timely instants the lead is
    short again."""
    # block_share=1: the quick instants below all block the loop, as this test is about the lead
    timer = PreciseTimer(time.monotonic, block=0.003, max_block=0.025, block_share=1.0)
    loop = asyncio.get_running_loop()
    order: list[str] = []

    def hold_the_loop(name: str) -> None:
        order.append(name)
        time.sleep(0.03)

    async def slot(name: str, at: float) -> float:
        await timer.wait_until(at)
        order.append(name)
        return time.monotonic() - at

    first = time.monotonic() + 0.05
    loop.call_at(first - 0.005, hold_the_loop, "busy 1")  # before the timer's 3 ms lead
    late = await slot("slot 1", first)
    assert order == ["busy 1", "slot 1"] and late >= 0.02, (order, late)
    assert timer.lead() >= timer.block + 0.015, timer.lead()

    second = time.monotonic() + 0.05
    loop.call_at(second - 0.004, hold_the_loop, "busy 2")  # well inside the lead now
    await asyncio.gather(slot("slot 2", second), asyncio.sleep(0.09))
    assert order == ["busy 1", "slot 1", "slot 2", "busy 2"], order

    for i in range(timer.LATE_WINDOW):  # instants closer than the lead: no wait on the loop
        await slot(f"quick {i}", time.monotonic() + 0.002)
    assert timer.lead() < timer.block + 0.002, timer.lead()
    timer.close()


async def test_instants_close_together_do_not_hold_the_loop() -> None:
    """Schedule slots need not be whole seconds (``every=0.01`` is allowed): a worker with
    slots 10 ms apart must not have its loop blocked before every one of them - its other
    tasks, its heartbeats and its reports would wait in turn. The timer blocks the loop at
    most ``block_share`` of the last second; the other instants wait on the loop (to its
    millisecond), every waiter still released in order and never early."""
    timer = PreciseTimer(time.monotonic)
    base = time.monotonic() + 0.05
    instants = [base + 0.01 * i for i in range(100)]  # one second of slots 10 ms apart
    woke: list[tuple[float, float]] = []
    stalled = 0.0
    probing = True

    async def probe() -> None:
        nonlocal stalled
        while probing:
            before = time.monotonic()
            await asyncio.sleep(0.001)
            gap = time.monotonic() - before
            if gap > 0.005:  # the loop was held (a 1 ms sleep wakes within about 2 ms)
                stalled += gap

    async def wait(at: float) -> None:
        await timer.wait_until(at)
        woke.append((at, time.monotonic()))

    prober = asyncio.ensure_future(probe())
    await asyncio.gather(*(wait(at) for at in instants))
    probing = False
    await prober
    timer.close()
    assert [at for at, _ in woke] == instants, "released out of order"
    assert all(now >= at for at, now in woke), "a waiter woke early"
    # before: about 1 s of the 1 s held (every instant blocked the loop for its 10 ms lead)
    assert stalled < 0.3, f"the loop was held {stalled:.3f} s of about 1 s"
    # the instants beyond the share were released by the loop (about 1-2 ms late here), not
    # left for a later instant
    late = max(now - at for at, now in woke)
    assert late < 0.05, f"a waiter was released {late * 1000:.1f} ms late"


def _blocks(seconds: float) -> None:
    time.sleep(seconds)


async def test_the_loop_watch_names_where_a_callback_holds_the_loop() -> None:
    """A callback holding the loop 0.6 s (threshold 0.2 s) is reported once while it holds it,
    with the loop thread's frames innermost first (the blocking function), and once after;
    a loop that waits (an idle sleep longer than the threshold) is not reported."""
    watch = LoopWatch(threshold=0.2)
    held: list[tuple[float, str]] = []
    freed: list[float] = []
    got_freed = asyncio.Event()

    def on_freed(seconds: float) -> None:
        freed.append(seconds)
        got_freed.set()

    watch.start(lambda seconds, frames: held.append((seconds, frames[0].f_code.co_name)), on_freed)
    try:
        await asyncio.sleep(0.6)  # idle: the loop waits in its selector, it is not held
        assert held == [] and freed == []
        asyncio.get_running_loop().call_soon(_blocks, 0.6)
        await asyncio.wait_for(got_freed.wait(), 5)
    finally:
        watch.stop()
    assert len(held) == 1 and held[0][1] == "_blocks" and 0.2 < held[0][0] < 0.6, held
    assert len(freed) == 1 and freed[0] >= 0.6, freed


async def test_a_sleep_the_kernel_refuses_leaves_the_waiters_to_the_loop(monkeypatch, caplog) -> None:
    """Under libfaketime, ``time.sleep`` raised ``OSError(22)`` in the timer's runner: the runner
    died ("Task exception was never retrieved") and its waiters hung until the next
    ``wait_until`` - a schedule slot started 4.8 s late (a scheduling probe). The kernel's
    refusal is injected here: it cannot be had on demand."""
    import distsched.asyncutil as asyncutil

    def refused(seconds: float) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(asyncutil.time, "sleep", refused)
    timer = PreciseTimer(time.monotonic)
    base = time.monotonic()
    woke: list[str] = []

    async def wait(name: str, at: float) -> None:
        await timer.wait_until(at)
        assert time.monotonic() >= at, f"{name} woke early"
        woke.append(name)

    await asyncio.wait_for(asyncio.gather(wait("b", base + 0.06), wait("a", base + 0.03)), 2)
    assert woke == ["a", "b"]
    said = [r.getMessage() for r in caplog.records if "time.sleep failed" in r.getMessage()]
    assert len(said) == 1, said
    timer.close()
