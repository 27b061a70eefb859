"""Redisson's ``RReadWriteLock`` and ``RFairLock``, re-implemented minimally for the benchmarks
(written from their documented behaviour and Lua's shape, not copied): what a team porting the
Java recipes to Python would build.

- **read-write lock**: one hash per lock, ``mode`` (``read`` / ``write``) and a count per holder,
  one ``PEXPIRE`` on the whole hash as the lease. A reader is let in whenever the mode is
  ``read`` (no writer preference: a stream of readers can starve a writer). Each waiter
  subscribes to the lock's one channel; the last holder out deletes the hash and ``PUBLISH``es,
  and **every** subscriber tries again (a broadcast); a waiter also tries again when the lock's
  ttl (returned by the refused try) runs out.
- **fair lock**: the lock key, a list of waiters in arrival order and a sorted set of their
  timeouts (each waiter's timeout is the one before it plus ``wait_ms``, so a dead waiter is
  skipped); granted only to the head of the list; the release ``PUBLISH``es on the channel of
  the head waiter alone (``CHANNEL:ID``).

Neither has fencing tokens or a renewal watchdog here (the benchmark's holds are far shorter than
the lease).
"""

from __future__ import annotations

import time
import uuid

import redis
import redis.client

GRANTED = -1
"""What a try script returns when it took the lock (else the ms to wait at most)."""

RW_TRY = """
-- KEYS[1] the lock hash; ARGV[1] 'read' or 'write', ARGV[2] lease ms, ARGV[3] holder; returns -1 or the lock's pttl
local lock, want, lease_ms, holder = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local mode = redis.call('HGET', lock, 'mode')
if mode == false or (mode == 'read' and want == 'read') then
  redis.call('HSET', lock, 'mode', want)
  redis.call('HINCRBY', lock, holder, 1)
  redis.call('PEXPIRE', lock, lease_ms)
  return -1
end
return redis.call('PTTL', lock)
"""

RW_UNLOCK = """
-- KEYS[1] the lock hash, KEYS[2] its channel; ARGV[1] holder; returns 1 if it held
local lock, channel, holder = KEYS[1], KEYS[2], ARGV[1]
if redis.call('HEXISTS', lock, holder) == 0 then return 0 end
if redis.call('HINCRBY', lock, holder, -1) <= 0 then redis.call('HDEL', lock, holder) end
if redis.call('HLEN', lock) <= 1 then  -- nobody left but the mode: free, tell every waiter
  redis.call('DEL', lock)
  redis.call('PUBLISH', channel, 'unlocked')
end
return 1
"""

FAIR_TRY = """
-- KEYS[1] lock, KEYS[2] queue list, KEYS[3] timeouts zset; ARGV[1] lease ms, ARGV[2] holder,
-- ARGV[3] wait ms per waiter, ARGV[4] now ms (the client's clock); returns -1 or the ms to wait
local lock, queue, timeouts = KEYS[1], KEYS[2], KEYS[3]
local lease_ms, holder, wait_ms, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
-- waiters at the head whose turn passed unclaimed are dead: skip them
while true do
  local head = redis.call('LINDEX', queue, 0)
  if head == false then break end
  local turn_ends = redis.call('ZSCORE', timeouts, head)
  if turn_ends ~= false and tonumber(turn_ends) > now then break end
  redis.call('LPOP', queue)
  redis.call('ZREM', timeouts, head)
end
local head = redis.call('LINDEX', queue, 0)
if redis.call('EXISTS', lock) == 0 and (head == false or head == holder) then
  if head == holder then redis.call('LPOP', queue) end
  redis.call('ZREM', timeouts, holder)
  -- everyone behind moved up one place: a turn less to wait
  for _, waiter in ipairs(redis.call('ZRANGE', timeouts, 0, -1)) do
    redis.call('ZINCRBY', timeouts, -wait_ms, waiter)
  end
  redis.call('SET', lock, holder, 'PX', lease_ms)
  return -1
end
local mine = redis.call('ZSCORE', timeouts, holder)
if mine ~= false then return math.max(0, tonumber(mine) - wait_ms - now) end
local last = redis.call('LINDEX', queue, -1)
local ahead
if last ~= false then ahead = math.max(0, tonumber(redis.call('ZSCORE', timeouts, last) or now) - now)
else ahead = math.max(0, redis.call('PTTL', lock)) end
redis.call('ZADD', timeouts, ahead + wait_ms + now, holder)
redis.call('RPUSH', queue, holder)
return ahead
"""

FAIR_UNLOCK = """
-- KEYS[1] lock, KEYS[2] queue list; ARGV[1] holder, ARGV[2] the waiters' channel prefix; returns 1 if it held
local lock, queue, holder, channel_prefix = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if redis.call('GET', lock) ~= holder then return 0 end
redis.call('DEL', lock)
local head = redis.call('LINDEX', queue, 0)
if head ~= false then redis.call('PUBLISH', channel_prefix .. head, 'unlocked') end
return 1
"""


def _wait_for(sub: redis.client.PubSub, wait_ms: int) -> None:
    """Block until a message on ``sub`` or ``wait_ms`` (at least 1 ms, at most 10 s)."""
    deadline = time.monotonic() + min(max(wait_ms, 1), 10_000) / 1000
    while (left := deadline - time.monotonic()) > 0:
        if sub.get_message(ignore_subscribe_messages=True, timeout=left) is not None:
            return


class RedissonStyleRWLock:
    """One side (``read`` or ``write``) of a Redisson-style read-write lock; ``acquire`` blocks."""

    def __init__(self, client: redis.Redis, name: str, side: str, *, lease_ms: int) -> None:
        self.client, self.side, self.lease_ms = client, side, lease_ms
        self.key, self.channel = f"bench-rrw:{{{name}}}", f"bench-rrw-released:{{{name}}}"
        self.holder = uuid.uuid4().hex
        self._try, self._unlock = client.register_script(RW_TRY), client.register_script(RW_UNLOCK)

    def _attempt(self) -> int:
        return int(self._try(keys=[self.key], args=[self.side, self.lease_ms, self.holder]))

    def acquire(self) -> bool:
        if self._attempt() == GRANTED:
            return True
        sub = self.client.pubsub()
        sub.subscribe(self.channel)
        try:
            while (wait_ms := self._attempt()) != GRANTED:
                _wait_for(sub, wait_ms)
            return True
        finally:
            sub.close()

    def release(self) -> None:
        self._unlock(keys=[self.key, self.channel], args=[self.holder])


class RedissonStyleFairLock:
    """A Redisson-style fair lock; ``acquire`` blocks, woken on its own channel."""

    def __init__(self, client: redis.Redis, name: str, *, lease_ms: int, wait_ms: int = 5000) -> None:
        self.client, self.lease_ms, self.wait_ms = client, lease_ms, wait_ms
        self.keys = [f"bench-rfair:{{{name}}}", f"bench-rfair-queue:{{{name}}}", f"bench-rfair-timeouts:{{{name}}}"]
        self.channel_prefix = f"bench-rfair-released:{{{name}}}:"
        self.holder = uuid.uuid4().hex
        self._try, self._unlock = client.register_script(FAIR_TRY), client.register_script(FAIR_UNLOCK)

    def _attempt(self) -> int:
        now_ms = int(time.time() * 1000)
        return int(self._try(keys=self.keys, args=[self.lease_ms, self.holder, self.wait_ms, now_ms]))

    def acquire(self) -> bool:
        if self._attempt() == GRANTED:
            return True
        sub = self.client.pubsub()
        sub.subscribe(self.channel_prefix + self.holder)
        try:
            while (wait_ms := self._attempt()) != GRANTED:
                _wait_for(sub, wait_ms)
            return True
        finally:
            sub.close()

    def release(self) -> None:
        self._unlock(keys=self.keys[:2], args=[self.holder, self.channel_prefix])
