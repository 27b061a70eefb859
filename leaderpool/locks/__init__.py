"""Cluster-wide locks with fencing tokens, as Erlang's ``:global.set_lock`` / ``trans``, on
python-redis-lock's keys.

- :mod:`.blocking_lock`: :class:`Lock` and :func:`trans`, for threaded code.
- :mod:`.async_lock`: :class:`AsyncLock` and :func:`atrans`, on asyncio.
- :mod:`.lock_renewal`: the one thread that renews every held blocking lock of a process.
- :mod:`.lock_scripts`: their Lua (:class:`LockScripts`), on the one script registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.locks.async_lock import AsyncLock, atrans
    from leaderpool.locks.blocking_lock import Lock, trans
    from leaderpool.locks.lock_scripts import LockScripts

__all__ = ["AsyncLock", "Lock", "LockScripts", "atrans", "trans"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncLock": "async_lock",
        "Lock": "blocking_lock",
        "LockScripts": "lock_scripts",
        "atrans": "async_lock",
        "trans": "blocking_lock",
    },
)
