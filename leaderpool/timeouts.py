"""Time limits on awaits that never lose a cancellation.

``asyncio.wait_for`` before Python 3.12 swallows a cancellation that arrives just as the awaited
thing finishes: the caller carries on as if never cancelled, and a loop stopped by ``cancel()``
runs on (a pool client's ``stop()`` hung this way). :func:`within` is ``wait_for`` built on
``asyncio.timeout`` (3.11+), which keeps the cancellation; on 3.10 it falls back to ``wait_for``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable``, raising :class:`TimeoutError` after ``timeout`` seconds (None: no
    limit); a cancellation of the caller always propagates."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)  # pragma: no cover - Python 3.10
