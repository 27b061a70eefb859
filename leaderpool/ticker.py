"""Coarse wake-ups shared by every member of an event loop: the heartbeats.

A process hosting thousands of members would otherwise arm one loop timer per member per beat
(a handle each, kept in the loop's heap with comparisons in Python) and wake them one by one in
different turns of the loop, each turn sending its own small batch to Redis. Heartbeats need no
such precision: rounded up to a tick of :data:`TICK_S`, the members due in one tick share one
timer and wake in the same turn, and their beats go to Redis in one batch
(:mod:`leaderpool.batching`). Deadlines that need precision (a lease expiry the successor
watches, a leader's renew deadline) keep their own timers (:class:`leaderpool.alarm.Alarm`).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from weakref import WeakKeyDictionary

TICK_S = 0.01
"""A heartbeat wakes at most this much later than due."""


class Ticker:
    """The coarse timer of one event loop: futures resolved at the end of their tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[asyncio.Future[None]]] = {}
        self._due: list[int] = []  # tick numbers with waiters, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def wait(self, delay: float) -> asyncio.Future[None]:
        """A future resolved at the end of the tick ``delay`` seconds from now falls in."""
        tick = math.ceil((self._loop.time() + max(delay, 0.0)) / TICK_S)
        future: asyncio.Future[None] = self._loop.create_future()
        waiters = self._slots.get(tick)
        if waiters is None:
            self._slots[tick] = [future]
            heapq.heappush(self._due, tick)
            if self._armed_for is None or tick < self._armed_for:
                self._arm(tick)
        else:
            waiters.append(future)
        return future

    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = tick
        self._timer = self._loop.call_at(tick * TICK_S, self._fire)

    def _fire(self) -> None:
        fired = self._armed_for if self._armed_for is not None else 0
        self._timer = self._armed_for = None
        now_tick = max(fired, math.floor(self._loop.time() / TICK_S))  # the loop may run it a hair early
        while self._due and self._due[0] <= now_tick:
            for future in self._slots.pop(heapq.heappop(self._due)):
                if not future.done():  # rung early: its sleeper is awake already
                    future.set_result(None)
        if self._due:
            self._arm(self._due[0])


_tickers: WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = WeakKeyDictionary()


def ticker() -> Ticker:
    """The running loop's ticker."""
    loop = asyncio.get_running_loop()
    found = _tickers.get(loop)
    if found is None:
        found = _tickers[loop] = Ticker(loop)
    return found
