"""The Lua of the cluster-wide locks (:mod:`leaderpool.locks.blocking_lock`,
:mod:`leaderpool.locks.async_lock`), registered once per client as :class:`LockScripts`.

The locks speak python-redis-lock's protocol: its own extend and unlock scripts, and
leaderpool's acquire, which hands out a fencing token in the same step.
"""

from __future__ import annotations

import redis_lock

from leaderpool.backend.script_registry import Lua, ScriptSet

LOCK_ACQUIRE = """
-- lock_acquire: KEYS[1] lock key ("PREFIX:lock:{RESOURCE}"), KEYS[2] fencing-token
-- counter on the same slot; ARGV[1] our random id, ARGV[2] ttl_ms.
-- Takes the lock as python-redis-lock does (SET NX with an expiry) and, in the same step, hands
-- out the next fencing token, so tokens grow in the order the lock was held.
-- Returns {1, token} when taken, {0, the lock's pttl (-1: held without expiry)} when held.
local lock_key, token_key = KEYS[1], KEYS[2]
local id, ttl_ms = ARGV[1], tonumber(ARGV[2])
if redis.call('SET', lock_key, id, 'NX', 'PX', ttl_ms) then
  return {1, redis.call('INCR', token_key)}
end
return {0, redis.call('PTTL', lock_key)}
"""


class LockScripts(ScriptSet):
    """The locks' scripts. Their errors are left to the lock, which translates them
    (:func:`~leaderpool.backend.redis_errors.translate_redis_errors`): call them ``raw`` (asyncio)
    or ``blocking``."""

    acquire = Lua("lock_acquire", LOCK_ACQUIRE)
    extend = Lua("lock_extend", redis_lock.EXTEND_SCRIPT)  # python-redis-lock's own
    unlock = Lua("lock_unlock", redis_lock.UNLOCK_SCRIPT)  # python-redis-lock's own
