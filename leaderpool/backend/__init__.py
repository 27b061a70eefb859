"""The Redis backend: everything leaderpool writes into Redis and reads back, and how it talks to it.
The capabilities above it (the election, fast failover, names, locks, schedules, jobs) never
format a key, parse a reply or catch a redis-py exception themselves.

- Layout and wire: :mod:`.keys` (every key and channel, :class:`Keyspace`), :mod:`.protocol`
  (what is written and read back, typed at the boundary), :mod:`.baddata` (hostile data: skipped,
  said once).
- Lua: :mod:`.script_registry` (the one registry every capability declares its :class:`ScriptSet`
  on), the pool's own scripts in :mod:`.pool_scripts` (membership) and :mod:`.lead_scripts` (the
  lead), with the snippets they share in :mod:`.lua_snippets`.
- Calls: :mod:`.pool_store` (:class:`PoolStore`, one method per script), :mod:`.batching` (a
  process's heartbeats sent together), :mod:`.scan`.
- Notifications: :mod:`.watcher` (one pub/sub connection per loop and server), :mod:`.cluster_watcher`
  (the same on a Redis Cluster), :mod:`.shared_watcher` (the factory), :mod:`.listener`
  (:class:`NotificationSource`).
- Connecting: :mod:`.clients` (asyncio clients from what the user gives), :mod:`.connect` (blocking
  clients, Sentinel and Cluster), :mod:`.urls`, :mod:`.redis_errors` (the one place redis-py's
  exceptions are translated), :mod:`.acl` (the minimal ACL rules).

This package's ``__init__`` imports nothing: the CLI's one-shot commands read :mod:`.keys` and
:mod:`.protocol` without loading redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.backend.keys import Keyspace
    from leaderpool.backend.listener import NotificationSource
    from leaderpool.backend.pool_store import PoolStore
    from leaderpool.backend.script_registry import ScriptSet
    from leaderpool.backend.shared_watcher import shared_watcher
    from leaderpool.backend.watcher import Watcher

__all__ = ["Keyspace", "NotificationSource", "PoolStore", "ScriptSet", "Watcher", "shared_watcher"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Keyspace": "keys",
        "NotificationSource": "listener",
        "PoolStore": "pool_store",
        "ScriptSet": "script_registry",
        "Watcher": "watcher",
        "shared_watcher": "shared_watcher",
    },
)
