"""Coarse wake-ups shared by every member of an event loop: the heartbeats.

A process hosting thousands of members would otherwise arm one loop timer per member per beat
(a handle each, kept in the loop's heap with comparisons in Python) and wake them one by one in
different turns of the loop, each turn sending its own small batch to Redis. Heartbeats need no
such precision: rounded up to a tick of :data:`TICK_S`, the members due in one tick share one
timer and wake in the same turn, and their beats go to Redis in one batch
(:mod:`leaderpool.backend.batching`). Deadlines that need precision (a lease expiry the successor
watches, a leader's renew deadline) keep their own timers (:class:`leaderpool.util.alarm.Alarm`).
A follower's Redis calls are bounded on it too (:func:`coarse_within`): one timer per call, armed
and cancelled around every beat, cost a process of thousands of members more than the beat.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar
from weakref import WeakKeyDictionary

from leaderpool.util.timeouts import within

T = TypeVar("T")

TICK_S = 0.01
"""A heartbeat wakes at most this much later than due."""


class Ticker:
    """The coarse timer of one event loop: callbacks run at the end of their tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[Callable[[], object]]] = {}
        self._due: list[int] = []  # tick numbers with callbacks, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def call_later(self, delay: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` at the end of the tick ``delay`` seconds from now falls in (no way
        to cancel it: a callback checks whether it is still wanted)."""
        tick = math.ceil((self._loop.time() + max(delay, 0.0)) / TICK_S)
        waiters = self._slots.get(tick)
        if waiters is None:
            self._slots[tick] = [callback]
            heapq.heappush(self._due, tick)
            if self._armed_for is None or tick < self._armed_for:
                self._arm(tick)
        else:
            waiters.append(callback)

    def wait(self, delay: float) -> asyncio.Future[None]:
        """A future resolved at the end of the tick ``delay`` seconds from now falls in."""
        future: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not future.done():  # rung early: its sleeper is awake already
                future.set_result(None)

        self.call_later(delay, wake)
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
            for callback in self._slots.pop(heapq.heappop(self._due)):
                try:
                    callback()
                except Exception as exc:  # one caller's bug must not stop the others' wake-ups
                    self._loop.call_exception_handler({"message": "ticker callback failed", "exception": exc})
        if self._due:
            self._arm(self._due[0])


async def coarse_within(awaitable: Awaitable[T], timeout: float) -> T:
    """:func:`leaderpool.util.timeouts.within` to a tick (:data:`TICK_S`) late, on the shared ticker:
    no timer of its own per call (a follower's calls; a leader's are bounded exactly by its
    renew deadline). Raises :class:`TimeoutError` as ``asyncio.timeout`` does, and a
    cancellation of the caller always propagates."""
    task = asyncio.current_task()
    if task is None or sys.version_info < (3, 11):  # pragma: no cover - no task, or Python 3.10
        return await within(awaitable, timeout)
    cancelling, state = task.cancelling(), [False, False]  # [finished, fired]

    def expire() -> None:
        if not state[0]:
            state[1] = True
            task.cancel()

    ticker().call_later(timeout, expire)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if state[1] and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    finally:
        state[0] = True


_tickers: WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = WeakKeyDictionary()


def ticker() -> Ticker:
    """The running loop's ticker."""
    loop = asyncio.get_running_loop()
    found = _tickers.get(loop)
    if found is None:
        found = _tickers[loop] = Ticker(loop)
    return found
