"""The process's one background event loop, for threaded code that drives asyncio objects.

The blocking faces (:class:`~leaderpool.blocking.Election`, :class:`~leaderpool.pool_client.PoolClient`)
and the tooz driver's group events run their asyncio objects here, on one loop thread per
process: every blocking election of a process shares it, so they share one pub/sub connection
(the watcher is per loop and client). The loop starts on first use, on a thread of
:func:`~leaderpool.util.threads.start_thread` (which leaves the process's signals to the main
thread); a loop that was closed (a test that tore it down) is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from leaderpool.util.threads import start_thread

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """The process's background event loop, started on first use (class methods only: there is one)."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _loop: ClassVar[asyncio.AbstractEventLoop | None] = None

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        """The loop, started (with its thread) if it is not running yet."""
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                start_thread(loop.run_forever, "leaderpool-loop")
                cls._loop = loop
            return cls._loop

    @classmethod
    def submit(cls, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; returns at once with its future."""
        return asyncio.run_coroutine_threadsafe(coro, cls.loop())

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (up to ``timeout`` seconds). Never
        call it on the loop's own thread: it would wait for itself."""
        return cls.submit(coro).result(timeout)

    @classmethod
    def call_soon(cls, fn: Callable[..., object], *args: Any) -> None:
        """Have the loop call ``fn(*args)`` on its thread, without waiting for it."""
        cls.loop().call_soon_threadsafe(fn, *args)
