"""Time limits and cancellations that are never lost.

``asyncio.wait_for`` before Python 3.12 swallows a cancellation that arrives just as the awaited
thing finishes, and so can redis-py's asyncio client as a command finishes: the task carries on
as if never cancelled, and a loop stopped by ``cancel()`` runs on (a pool client's and a
member's ``stop()`` hung this way). :func:`within` is ``wait_for`` built on ``asyncio.timeout``
(3.11+), which keeps the cancellation; on 3.10 it awaits in the caller's own task under a timer
that cancels it, as ``asyncio.timeout`` does, and raises :class:`WaitTimedOut`, which both
``except TimeoutError`` and ``except asyncio.TimeoutError`` catch (two classes on 3.10).
:func:`cancel_and_wait` cancels again until the task has ended; :func:`keep_cancellation` makes
sure a call cannot swallow its caller's cancellation.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from leaderpool.util.block_timeout import MIN_BLOCK_S, block_timeout

__all__ = ["MIN_BLOCK_S", "WaitTimedOut", "block_timeout", "cancel_and_wait", "keep_cancellation", "within"]

T = TypeVar("T")

if sys.version_info >= (3, 11):
    WaitTimedOut = TimeoutError
else:  # pragma: no cover - Python 3.10

    class WaitTimedOut(TimeoutError, asyncio.TimeoutError):
        """A time limit ran out: the builtin and asyncio's TimeoutError at once."""


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable``, raising :class:`TimeoutError` after ``timeout`` seconds (None: no
    limit); a cancellation of the caller always propagates."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await _within_on_310(awaitable, timeout)  # pragma: no cover - Python 3.10


async def _within_on_310(awaitable: Awaitable[T], timeout: float | None) -> T:  # pragma: no cover
    """Python 3.10 has no ``Task.uncancel()``: a cancellation from outside that comes in the very
    turn the timer fires reads as the timeout (3.11's ``asyncio.timeout`` tells them apart)."""
    task = asyncio.current_task()
    if timeout is None or task is None:
        return await (awaitable if task is not None else asyncio.wait_for(awaitable, timeout))
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(max(timeout, 0.0), expire)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if fired:
            raise WaitTimedOut from None
        raise
    finally:
        timer.cancel()


async def keep_cancellation(awaitable: Awaitable[T]) -> T:
    """``await awaitable`` in a task of its own, so that a cancellation of the caller always
    reaches the caller. redis-py's asyncio client sends each command under ``asyncio.wait_for``
    when a socket timeout is set, and before Python 3.12 ``wait_for`` swallows a cancellation that
    arrives as the send completes: the command returns as if nothing happened, and a loop that
    runs "until cancelled" runs on (``run_schedule`` did, about 1 time in 10 on a loaded machine).
    Here the caller waits on a shield: a cancellation raises in the caller at once, and the call
    itself runs to its end (its result dropped, an error it raises retrieved)."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" for a call no one awaits


CANCEL_AGAIN_S = 0.1
"""How long :func:`cancel_and_wait` gives a cancelled task before cancelling it again."""


async def cancel_and_wait(task: asyncio.Task[Any], patience_s: float = 30.0) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again while it runs on:
    redis-py's asyncio client can swallow a cancellation that comes as a command finishes, and a
    loop stopped by ``cancel()`` then runs on forever (a member's ``stop()`` hung this way).
    Returns once the task ended; what it raised (other than the cancellation) is retrieved and
    dropped, as a loop being stopped has nothing left to say. Raises :class:`TimeoutError` when
    it still runs after ``patience_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while not task.done():
        if loop.time() > deadline:
            raise TimeoutError(f"task {task.get_name()} ignored cancellation for {patience_s:g}s")
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_S)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at exit
