"""Cluster-wide locks with fencing tokens, as Erlang's ``:global.set_lock`` / ``trans``, on
python-redis-lock's keys.

- :mod:`.blocking_lock`: :class:`Lock` and :func:`trans`, for threaded code.
- :mod:`.async_lock`: :class:`AsyncLock` and :func:`atrans`, on asyncio.
- :mod:`.lock_renewal`: the one thread that renews every held blocking lock of a process.
- :mod:`.lock_scripts`: their Lua (:class:`LockScripts`), on the one script registry.

The queued recipes (a holder per permit in a sorted set, a first-come-first-served queue, a
wake-up list per waiter), built once for every kind:

- :mod:`.semaphore` (:class:`Semaphore`, and :class:`~.semaphore.QueuedHolder`, the blocking holder)
  and :mod:`.async_semaphore` (:class:`AsyncSemaphore`): at most N holders.
- :mod:`.rwlock`: :class:`ReadWriteLock` and :class:`AsyncReadWriteLock`, writer preference.
- ``Lock(..., fair=True)`` / ``AsyncLock(..., fair=True)``: a one-permit queue (:mod:`.fair_lock`).
- :mod:`.queue_core` (what both faces share) and :mod:`.queue_scripts` (their Lua).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.locks.async_lock import AsyncLock, atrans
    from leaderpool.locks.async_semaphore import AsyncSemaphore
    from leaderpool.locks.blocking_lock import Lock, trans
    from leaderpool.locks.lock_scripts import LockScripts
    from leaderpool.locks.queue_scripts import QueueScripts
    from leaderpool.locks.rwlock import AsyncReadWriteLock, ReadWriteLock
    from leaderpool.locks.semaphore import Semaphore

__all__ = [
    "AsyncLock",
    "AsyncReadWriteLock",
    "AsyncSemaphore",
    "Lock",
    "LockScripts",
    "QueueScripts",
    "ReadWriteLock",
    "Semaphore",
    "atrans",
    "trans",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncLock": "async_lock",
        "AsyncReadWriteLock": "rwlock",
        "AsyncSemaphore": "async_semaphore",
        "QueueScripts": "queue_scripts",
        "ReadWriteLock": "rwlock",
        "Semaphore": "semaphore",
        "Lock": "blocking_lock",
        "LockScripts": "lock_scripts",
        "atrans": "async_lock",
        "trans": "blocking_lock",
    },
)
