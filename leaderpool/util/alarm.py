"""A loop's sleep that a notification can cut short: the election loop sleeps until its next
deadline or until something rings, whichever comes first.

A bare future and timer handle, not an ``asyncio.Event`` and ``wait_for``: thousands of members
sleep and wake in one process, and this is the cheapest way to do it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from leaderpool.util.ticker import ticker


class Alarm:
    """Rings wake the sleeper at once; a ring while it was awake makes its next sleep return at
    once (unless the sleeper asks to sleep through it, as during a backoff)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._waiter: asyncio.Future[None] | None = None
        self.rung = False
        """Rung since the sleeper last slept (the successor's spin checks it too)."""

    def ring(self) -> None:
        self.rung = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def sleep_until(self, deadline: float, *, through_rings: bool = False, coarse: bool = False) -> None:
        """Sleep until ``deadline`` (on the clock) or a ring. A ring that came while we were
        awake returns at once, unless ``through_rings``. ``coarse``: a deadline that may come up
        to a tick late (a heartbeat), woken with the loop's other members due in that tick
        (:mod:`leaderpool.util.ticker`)."""
        rung, self.rung = self.rung, False
        if rung and not through_rings:
            return
        delay = deadline - self._clock()
        if delay <= 0:
            return
        if coarse:
            self._waiter = ticker().wait(delay)  # a ring resolves it early; the ticker skips it then
            try:
                await self._waiter
            finally:
                self._waiter = None
            self.rung = False
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, self.ring)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        self.rung = False

    def close(self) -> None:
        """The sleeper is done with this alarm (nothing to free here; a test clock that watches
        its sleepers stops waiting for this one)."""
