"""The dashboard's event stream: one shared reader of the pools, fanned out to every browser.

One :class:`Hub` per server reads the pools through the same notification-driven loop as
``status --watch`` (:func:`leaderpool.cli.watch.status_frames`: one watcher, one pub/sub
connection, however many browsers are open) and turns each change into a Server-Sent Event:

- ``status``: the ``status --json`` document, whenever a leader, term or member changed (and
  first to every new subscriber);
- ``redis``: ``{"state": "lost", "error": ...}`` when reading the pools failed, ``{"state":
  "ok"}`` once it works again (and first to every new subscriber).

Broadcasting never waits for a browser: each :class:`Subscriber` has a bounded queue, and a
subscriber whose queue is full has fallen behind (a slow or vanished browser). It is dropped,
its connection aborted; its ``EventSource`` reconnects and starts again from the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.cli import status
from leaderpool.cli.watch import status_frames
from leaderpool.util.log import get_logger

QUEUE_SIZE = 32
"""Events a subscriber may have waiting; one more and it is dropped. Every ``status`` event is
the whole state, so a browser never needs a backlog: this only absorbs a burst."""

REFRESH_S = 1.0
"""The pools are re-read at least this often (lease countdowns, members whose lease ran out),
besides every notification."""

RETRY_S = 1.0
"""How long to wait before reading the pools again after Redis failed."""

log = get_logger("leaderpool.dashboard")


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One Server-Sent Event: ``event: ...``, optional ``id: ...``, one ``data:`` line of JSON."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


class Subscriber:
    """One browser's stream: a bounded queue of encoded events; ``None`` in it means: stop."""

    def __init__(self, on_drop: Callable[[], None], size: int) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self._on_drop = on_drop
        self.dropped = False

    def offer(self, event: bytes) -> bool:
        """Queue ``event`` without waiting; False (and the subscriber is dropped) when full."""
        if self.dropped:
            return False
        try:
            self._queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.drop()
            return False

    def drop(self) -> None:
        """Stop this stream: its writer sees ``None`` next, and a write it is blocked in fails."""
        if self.dropped:
            return
        self.dropped = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self._on_drop()

    async def next(self) -> bytes | None:
        return await self._queue.get()


class Hub:
    """Reads the pools on change and hands every subscriber the events; :meth:`run` is its loop."""

    def __init__(self, client: Any, prefix: str, *, queue_size: int = QUEUE_SIZE, refresh_s: float = REFRESH_S) -> None:
        self._client = client
        self._prefix = prefix
        self._queue_size = queue_size
        self._refresh_s = refresh_s
        self._subscribers: set[Subscriber] = set()
        self._event_id = 0
        self.status: dict[str, Any] | None = None
        """The last ``status --json`` document read (None before the first read)."""
        self.redis_error: str | None = None
        """Why the last read failed, while Redis is lost; None while it answers."""
        self.dropped = 0
        """How many subscribers were dropped for falling behind."""
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, on_drop: Callable[[], None] = lambda: None) -> Subscriber:
        """A new stream, starting with the Redis state and the latest status."""
        sub = Subscriber(on_drop, self._queue_size)
        sub.offer(self._redis_event())
        if self.status is not None:
            sub.offer(sse("status", self.status, self._event_id))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every stream and the loop (the server is shutting down)."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.drop()
        self._subscribers.clear()

    def _redis_event(self) -> bytes:
        if self.redis_error is None:
            return sse("redis", {"state": "ok"})
        return sse("redis", {"state": "lost", "error": self.redis_error})

    def _broadcast(self, event: bytes) -> None:
        for sub in list(self._subscribers):
            if not sub.offer(event):
                self._subscribers.discard(sub)
                self.dropped += 1
                log.warning("dashboard_client_dropped", reason="fell_behind", queue_size=self._queue_size)

    async def run(self) -> None:
        """Until closed: broadcast every change; on a Redis failure say so, retry, resume.

        Stop it with :meth:`close`, then cancel it: a cancellation that lands inside a Redis call
        can come out as a connection error, which alone would read as a lost Redis."""
        while not self.closed:
            try:
                frames = status_frames(self._client, [], self._prefix, interval=self._refresh_s)
                async with contextlib.aclosing(frames):
                    async for frame in frames:
                        if self.closed:
                            return
                        if self.redis_error is not None:
                            log.info("dashboard_redis_back")
                            self.redis_error = None
                            self._broadcast(self._redis_event())
                        if frame.changed or self.status is None:
                            self._event_id += 1
                            self.status = status.status_json(frame.statuses, frame.foreign)
                            self._broadcast(sse("status", self.status, self._event_id))
            except RETRYABLE as exc:
                if self.closed:
                    return
                error = str(exc) or type(exc).__name__
                if self.redis_error is None:
                    log.warning("dashboard_redis_lost", error=error, retry_s=RETRY_S)
                    self.redis_error = error
                    self._broadcast(self._redis_event())
                self.redis_error = error
                await asyncio.sleep(RETRY_S)
            except Exception as exc:  # a bug, or data no one expected: the streams must not go silent for good
                if self.closed:
                    return
                log.exception("dashboard_read_failed", error=repr(exc), retry_s=RETRY_S)
                await asyncio.sleep(RETRY_S)
