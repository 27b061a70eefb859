"""Time limits and cancellations that are never lost.

``asyncio.wait_for`` before Python 3.12 swallows a cancellation that arrives just as the awaited
thing finishes, and so can redis-py's asyncio client as a command finishes: the task carries on
as if never cancelled, and a loop stopped by ``cancel()`` runs on (a pool client's and a
member's ``stop()`` hung this way). :func:`within` is ``wait_for`` built on ``asyncio.timeout``
(3.11+), which keeps the cancellation (on 3.10 it falls back to ``wait_for``);
:func:`cancel_and_wait` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable``, raising :class:`TimeoutError` after ``timeout`` seconds (None: no
    limit); a cancellation of the caller always propagates."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)  # pragma: no cover - Python 3.10


MIN_BLOCK_S = 0.01
"""The shortest timeout leaderpool gives a blocking Redis command (``BLPOP``). Redis 6 turns it
into whole milliseconds by truncating the seconds it read times 1000, and 0 blocks for ever: a
0.4 ms wait did, and so does exactly 1 ms ("0.001" reads as 0.99999... ms; found when a lock
test hung until the client's socket timeout). 10 ms is clear of that edge, and still below the
resolution Redis gives blocked clients' timeouts (100 ms at the default ``hz``)."""


def block_timeout(seconds: float) -> float:
    """``seconds`` as a blocking command's timeout: at least :data:`MIN_BLOCK_S`, never 0."""
    return max(seconds, MIN_BLOCK_S)


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
