"""The Lua of the queued recipes (semaphores, read-write locks, fair locks), registered once per
client as :class:`QueueScripts`.

Every script shares one contract (the keys are :class:`~leaderpool.backend.keys.QueueKeys`)::

    KEYS[1] holders  zset   member -> lease deadline (Redis clock, ms)
    KEYS[2] queue    zset   waiting member -> arrival number
    KEYS[3] waiting  zset   waiting member -> waiter lease deadline (Redis clock, ms)
    KEYS[4] token    string the fencing-token counter
    KEYS[5] seq      string the arrival counter
    KEYS[6] permits  string the permit count in use (mode 'sem'): set while nobody holds or waits
    KEYS[7] conns    hash   holder -> the liveness channel of its process's Redis connection
    ARGV[1] the wake-up lists' prefix (a member's list is ARGV[1] .. member, on the same slot)
    ARGV[2] mode: 'sem' (at most ARGV[3] holders) or 'rw' (readers "r:ID" together, or one writer "w:ID")
    ARGV[3] permits (mode 'sem')
    ARGV[4] the member

Each script first drops the holders and waiters whose lease ended (a crashed process's permit is
reclaimed at its lease end, on Redis's clock) and, while anyone waits, the holders whose process
is proved dead (its liveness channel has no subscriber: :mod:`leaderpool.locks.holder_liveness`),
and last pushes onto the wake-up list of every queued member that may now take a permit:
waiters block in ``BLPOP`` on their own list, so a release wakes exactly the next in line, never
the whole queue.
"""

from __future__ import annotations

from leaderpool.backend.lua_snippets import NOW
from leaderpool.backend.script_registry import Lua, ScriptSet

WAKE_TTL_MS = 5000
"""How long a wake-up waits in its list for a waiter that is between two ``BLPOP``s."""

COMMON = (
    NOW
    + f"""
local holders_key, queue_key, waiting_key, token_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local permits_key, conns_key = KEYS[6], KEYS[7]
local wake_prefix, mode, permits, member = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

-- whether nobody is subscribed to a liveness channel any more: the connection, and its process,
-- is gone (pcall: a refused PUBSUB, or a server without it, proves nothing)
local function unsubscribed(channel)
  local counts = redis.pcall('PUBSUB', 'NUMSUB', channel)
  return type(counts) == 'table' and not counts.err and tonumber(counts[2]) == 0
end

-- drop lapsed holders (crashed or paused past their lease) and lapsed waiters; while anyone
-- waits, also the holders whose process is proved dead
local function prune()
  redis.call('ZREMRANGEBYSCORE', holders_key, '-inf', now)
  local dead = redis.call('ZRANGEBYSCORE', waiting_key, '-inf', now)
  for i = 1, #dead do
    redis.call('ZREM', queue_key, dead[i])
    redis.call('ZREM', waiting_key, dead[i])
    redis.call('DEL', wake_prefix .. dead[i])
  end
  if redis.call('ZCARD', queue_key) == 0 then return end
  local conns = redis.call('HGETALL', conns_key)
  for i = 1, #conns, 2 do
    if not redis.call('ZSCORE', holders_key, conns[i]) or unsubscribed(conns[i + 1]) then
      redis.call('ZREM', holders_key, conns[i])
      redis.call('HDEL', conns_key, conns[i])
    end
  end
end

local function is_writer(m) return string.sub(m, 1, 2) == 'w:' end

-- the queued members that may take a permit now, in arrival order
local function grantable()
  local held = redis.call('ZCARD', holders_key)
  if mode == 'sem' then
    local free = permits - held
    if free <= 0 then return {{}} end
    return redis.call('ZRANGE', queue_key, 0, free - 1)
  end
  -- 'rw', writer preference: a writer holds alone; while one waits, no new reader is let in
  if held > 0 and is_writer(redis.call('ZRANGE', holders_key, 0, 0)[1]) then return {{}} end
  local queued = redis.call('ZRANGE', queue_key, 0, -1)
  for i = 1, #queued do
    if is_writer(queued[i]) then
      if held == 0 then return {{queued[i]}} end
      return {{}}
    end
  end
  return queued
end

-- wake every member that may take a permit now (except the caller, who is awake)
local function wake(except)
  local heads = grantable()
  for i = 1, #heads do
    if heads[i] ~= except then
      local list = wake_prefix .. heads[i]
      redis.call('DEL', list)
      redis.call('RPUSH', list, '1')
      redis.call('PEXPIRE', list, {WAKE_TTL_MS})
    end
  end
end

local function leave_queue(m)
  redis.call('ZREM', queue_key, m)
  redis.call('ZREM', waiting_key, m)
  redis.call('DEL', wake_prefix .. m)
end
"""
)

QUEUE_ACQUIRE = (
    """
-- queue_acquire (the common contract above); ARGV[5] lease_ms, ARGV[6] the waiter lease in ms (0: do
-- not wait, leave the queue if not granted now), ARGV[7] the liveness channel of the caller's
-- process ("" none), recorded with a permit granted while it has a subscriber.
-- Joins the queue (if not in it), and takes a permit if the member is among those grantable,
-- with the next fencing token in the same step.
-- Returns {1, token} when taken; {0, ms until the first lease ends} when not (the longest the
-- caller need block on its wake-up list: a lease that ends sends no wake-up); {2, the permit
-- count in use} when others hold or wait with another count (nothing written).
"""
    + COMMON
    + """
local lease_ms, wait_lease_ms, liveness = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] or ''
prune()
if mode == 'sem' then
  local in_use = redis.call('GET', permits_key)
  local idle = redis.call('ZCARD', holders_key) == 0 and redis.call('ZCARD', queue_key) == 0
  if in_use and not idle and tonumber(in_use) ~= permits then
    return {2, tonumber(in_use) or -1}
  end
  if idle or not in_use then redis.call('SET', permits_key, permits) end
end
if not redis.call('ZSCORE', queue_key, member) then
  redis.call('ZADD', queue_key, redis.call('INCR', seq_key), member)
end
local heads = grantable()
for i = 1, #heads do
  if heads[i] == member then
    leave_queue(member)
    redis.call('ZADD', holders_key, now + lease_ms, member)
    if liveness ~= '' and not unsubscribed(liveness) then redis.call('HSET', conns_key, member, liveness) end
    local token = redis.call('INCR', token_key)
    wake(member)  -- more permits may be free (or more readers may join)
    return {1, token}
  end
end
if wait_lease_ms <= 0 then
  leave_queue(member)
  wake(member)  -- we may have stood in front (a waiting writer holds readers back)
  return {0, 0}
end
redis.call('ZADD', waiting_key, now + wait_lease_ms, member)
wake(member)
local until_ms = now + wait_lease_ms
local first_holder = redis.call('ZRANGE', holders_key, 0, 0, 'WITHSCORES')
if first_holder[2] then until_ms = math.min(until_ms, tonumber(first_holder[2])) end
local first_waiter = redis.call('ZRANGE', waiting_key, 0, 0, 'WITHSCORES')
if first_waiter[2] then until_ms = math.min(until_ms, tonumber(first_waiter[2])) end
return {0, math.max(until_ms - now, 0) + 1}
"""
)

QUEUE_EXTEND = (
    """
-- queue_extend (the common contract above); ARGV[5] lease_ms.
-- Pushes the member's lease deadline to now + lease_ms if it still holds a permit.
-- Returns 0 when extended, 1 when the permit is no longer ours (its lease ended: lost).
"""
    + COMMON
    + """
local lease_ms = tonumber(ARGV[5])
prune()
local result = 1
if redis.call('ZSCORE', holders_key, member) then
  redis.call('ZADD', holders_key, 'XX', now + lease_ms, member)
  result = 0
end
wake(nil)
return result
"""
)

QUEUE_LEAVE = (
    """
-- queue_leave (the common contract above).
-- Releases the member's permit, or takes it out of the queue (a waiter giving up), and wakes
-- whoever may take a permit now.
-- Returns 0 when it held a live permit, 1 when it held none (its lease had ended: lost, or it waited).
"""
    + COMMON
    + """
prune()
local result = 1
if redis.call('ZREM', holders_key, member) == 1 then result = 0 end
redis.call('HDEL', conns_key, member)
leave_queue(member)
wake(nil)
return result
"""
)

KEY_TYPES = ("zset", "zset", "zset", "string", "string", "string", "hash")
"""A key of another type is refused (``BADDATA``) before a script writes anything."""


class QueueScripts(ScriptSet):
    """The queued recipes' scripts; their errors are translated by the caller, which names the
    resource (:mod:`leaderpool.locks.queue_core`)."""

    acquire = Lua("queue_acquire", QUEUE_ACQUIRE, KEY_TYPES)
    extend = Lua("queue_extend", QUEUE_EXTEND, KEY_TYPES)
    leave = Lua("queue_leave", QUEUE_LEAVE, KEY_TYPES)
