"""Delivering election events to application callbacks, in order, off the election loop.

Callbacks never run on the election loop itself: a slow ``on_elected`` must not delay a
heartbeat. The asyncio face runs them in a dispatcher task (a callback may be a coroutine
function); the blocking face runs them on a dispatcher thread. Either way the core gets an
awaitable that completes once the callback returned, so a graceful hand-over can wait for the
application to stop its leader work before the key is released.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from leaderpool.events import Elected, Event, LeaderChanged, LeaderInfo, Revoked, RevokeReason
from leaderpool.util.log import get_logger
from leaderpool.util.threads import start_thread

log = get_logger("leaderpool")

OnElected = Callable[[int], Any]
OnRevoked = Callable[[RevokeReason], Any]
OnLeaderChanged = Callable[[LeaderInfo | None], Any]


@dataclass(frozen=True)
class Callbacks:
    on_elected: OnElected | None = None
    on_revoked: OnRevoked | None = None
    on_leader_changed: OnLeaderChanged | None = None

    def call(self, event: Event) -> Any:
        """Invoke the callback for ``event``; returns what it returned (maybe a coroutine)."""
        if isinstance(event, Elected) and self.on_elected:
            return self.on_elected(event.term)
        if isinstance(event, Revoked) and self.on_revoked:
            return self.on_revoked(event.reason)
        if isinstance(event, LeaderChanged) and self.on_leader_changed:
            return self.on_leader_changed(event.leader)
        return None


class LoopDispatcher:
    """Runs callbacks (sync or async) one after another in a task on the election's loop."""

    def __init__(self, callbacks: Callbacks) -> None:
        self._callbacks = callbacks
        self._queue: asyncio.Queue[tuple[Event, asyncio.Future[None]] | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderpool-dispatch")

    def submit(self, event: Event) -> Awaitable[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, done))
        return done

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            event, done = item
            try:
                result = self._callbacks.call(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("callback_failed", event_type=type(event).__name__)
            finally:
                if not done.done():
                    done.set_result(None)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task


class ThreadDispatcher:
    """Runs plain callbacks one after another on a dedicated thread (the blocking face)."""

    def __init__(self, callbacks: Callbacks, name: str) -> None:
        self._callbacks = callbacks
        self._queue: queue.SimpleQueue[tuple[Event, concurrent.futures.Future[None]] | None] = queue.SimpleQueue()
        self._thread = start_thread(self._run, name)

    def submit(self, event: Event) -> Awaitable[None]:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put((event, done))
        return asyncio.wrap_future(done)  # called on the election loop

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, done = item
            try:
                self._callbacks.call(event)
            except Exception:
                log.exception("callback_failed", event_type=type(event).__name__)
            finally:
                done.set_result(None)

    @property
    def is_current_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def close(self, timeout: float | None = None) -> None:
        self._queue.put(None)
        if not self.is_current_thread:
            self._thread.join(timeout)
