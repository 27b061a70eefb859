"""The shared coarse timer (:mod:`leaderpool.util.ticker`): heartbeats' wake-ups and followers' call
bounds, to a tick late. No timing asserted beyond generous bounds."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest

from leaderpool.util.alarm import Alarm
from leaderpool.util.ticker import TICK_S, coarse_within, ticker
from leaderpool.util.timeouts import within


def run(coro: object) -> None:
    asyncio.run(within(coro, 30))  # type: ignore[arg-type]


def test_waiters_due_in_one_tick_wake_together_and_in_order_of_ticks() -> None:
    async def main() -> None:
        t = ticker()
        woke: list[str] = []

        def note(name: str) -> Callable[[object], None]:
            return lambda _: woke.append(name)

        for name, delay in (("late", 0.05), ("a", 0.0), ("b", 0.001)):
            t.wait(delay).add_done_callback(note(name))
        await asyncio.sleep(0.2)
        assert ["a", "b", "late"] == woke

    run(main())


def test_a_rung_alarm_wakes_before_its_coarse_deadline() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        alarm = Alarm(loop.time)
        start = loop.time()
        loop.call_later(0.01, alarm.ring)
        await alarm.sleep_until(start + 10, coarse=True)
        assert loop.time() - start < 5
        await alarm.sleep_until(loop.time() + 0.02, coarse=True)  # the stale tick entry harms nothing
        await asyncio.sleep(0.05)

    run(main())


def test_coarse_within_returns_times_out_and_lets_a_cancellation_through() -> None:
    async def main() -> None:
        assert 7 == await coarse_within(asyncio.sleep(0, 7), 1.0)
        with pytest.raises(TimeoutError):
            await coarse_within(asyncio.sleep(10), TICK_S)
        await asyncio.sleep(3 * TICK_S)  # a bound whose call finished fires into nothing

        async def cancelled_from_outside() -> None:
            await coarse_within(asyncio.sleep(10), 5.0)

        task = asyncio.ensure_future(cancelled_from_outside())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is Python 3.11+")
def test_a_finished_call_is_not_cancelled_by_its_bound_later() -> None:
    async def main() -> None:
        assert 1 == await coarse_within(asyncio.sleep(0, 1), TICK_S)
        await asyncio.sleep(5 * TICK_S)  # the bound's tick passes while we sleep: no cancellation
        assert asyncio.current_task() is not None and 0 == asyncio.current_task().cancelling()  # type: ignore[union-attr]

    run(main())
