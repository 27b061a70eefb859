"""The Lua scripts: every multi-key step of the protocol runs atomically inside Redis.

Each script opens with its contract (KEYS, ARGV, reply), then names its inputs. Scripts are
registered once per client and called by EVALSHA; redis-py reloads them on NOSCRIPT (for
example after a Redis restart). Time always comes from Redis (``TIME``), never from a client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from leaderpool.baddata import is_bad_data_reply, type_guard
from leaderpool.constants import HISTORY_MAXLEN
from leaderpool.errors import BadPoolData
from leaderpool.protocol import HANDOFF_PREFIX, SEPARATOR

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Redis lets a key go once its millisecond clock is past the expiry: microseconds from now
-- until a key with this PTTL can be claimed (-1: no such key or no expiry)
local function free_in_us(pttl)
  if pttl < 0 then return -1 end
  return pttl * 1000 + 1000 - tonumber(t[2]) % 1000
end
"""

# Lists live members as member, record, deadline triples; with prune, first drops lapsed ones
# (without, it only reads: for tooling, and for replicas).
_LIVE_MEMBERS = """
local function live_members(members_key, leases_key, now, prune)
  if prune then
    local dead = redis.call('ZRANGEBYSCORE', leases_key, '-inf', now)
    for i = 1, #dead do
      redis.call('ZREM', leases_key, dead[i])
      redis.call('HDEL', members_key, dead[i])
    end
  end
  local out = {}
  local leases = redis.call('ZRANGEBYSCORE', leases_key, '(' .. now, '+inf', 'WITHSCORES')
  for i = 1, #leases, 2 do
    local record = redis.call('HGET', members_key, leases[i])
    if record then
      out[#out + 1] = leases[i]
      out[#out + 1] = record
      out[#out + 1] = leases[i + 1]
    end
  end
  return out
end
"""

# The leader value "<term>|<member>" and the pool message "<event>|<term>|<detail>|<member>"
# (see leaderpool.protocol, whose constants these helpers are built from).
_WIRE = (
    """
local SEP = '"""
    + SEPARATOR
    + """'
local function leader_value(term, member)
  return term .. SEP .. member
end
-- the term (a string) and the member of a leader value; nil for none, and for a value that is
-- not ours (hostile data: a lead held by someone unknown, see leaderpool.baddata)
local function split_leader(value)
  if not value then return nil, nil end
  local bar = string.find(value, SEP, 1, true)
  if not bar or not tonumber(string.sub(value, 1, bar - 1)) then return nil, nil end
  return string.sub(value, 1, bar - 1), string.sub(value, bar + 1)
end
local function announce(channel, event, term, detail, member)
  redis.call('PUBLISH', channel, event .. SEP .. term .. SEP .. detail .. SEP .. member)
end
local HANDOFF = '"""
    + HANDOFF_PREFIX
    + """'
local HISTORY_MAXLEN = """
    + str(HISTORY_MAXLEN)
    + """
"""
)

# Members report the highest term they have seen. A report above Redis's counter means Redis
# lost data (restart without persistence, failover to a lagging replica): raise the counter and
# hold claims for one lease, so every live member reports in before a new term is granted.
_TERM_GUARD = """
local function guard_term(term_key, recovery_key, seen, ttl_ms)
  local counter = tonumber(redis.call('GET', term_key) or '0') or 0  -- garbage: as if lost
  if seen > counter then
    redis.call('SET', term_key, string.format('%d', seen))
    redis.call('SET', recovery_key, '1', 'PX', ttl_ms)
  end
end
"""

REGISTER = (
    """
-- register: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] term counter, KEYS[4] recovery;
-- ARGV[1] member, ARGV[2] record JSON, ARGV[3] ttl_ms, ARGV[4] events channel,
-- ARGV[5] highest term the member has seen.
-- Stores the member's record, starts its lease and announces it. Returns the Redis time (ms).
local members_key, leases_key, term_key, recovery_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, record, ttl_ms, channel, seen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
"""
    + _NOW
    + _WIRE
    + _TERM_GUARD
    + """
guard_term(term_key, recovery_key, seen, ttl_ms)
redis.call('HSET', members_key, member, record)
redis.call('ZADD', leases_key, now + ttl_ms, member)
announce(channel, 'joined', 0, '', member)
return now
"""
)

HEARTBEAT = (
    """
-- heartbeat: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] term counter,
-- KEYS[5] recovery, KEYS[6] resigned; ARGV[1] member, ARGV[2] ttl_ms, ARGV[3] the leader value this
-- member holds ("" if following), ARGV[4] "1" to list the live members (and who just resigned)
-- as well, ARGV[5] highest term seen.
-- Refreshes the member's lease and, when leading, renews the leader key if it still holds
-- ARGV[3] (compare-and-set on member and term).
-- Returns {status, now, leader value or false, leader pttl, resigned or false,
--          µs until the lead can be claimed, member, record, deadline, ...};
-- status 1 ok (renewed when leading), 0 leading but the key is no longer ours, -1 unknown member.
local members_key, leases_key, leader_key, term_key, recovery_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, ttl_ms, held, want_members, seen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
"""
    + _NOW
    + _LIVE_MEMBERS
    + _TERM_GUARD
    + """
guard_term(term_key, recovery_key, seen, ttl_ms)
if redis.call('HEXISTS', members_key, member) == 0 then
  return {-1, now}
end
redis.call('ZADD', leases_key, now + ttl_ms, member)
local status = 1
local value = redis.call('GET', leader_key)
if held ~= '' then
  if value == held then
    redis.call('PEXPIRE', leader_key, ttl_ms)
  else
    status = 0
  end
end
local pttl = redis.call('PTTL', leader_key)
local reply = {status, now, value, pttl, false, free_in_us(pttl)}
if want_members == '1' then
  reply[5] = redis.call('GET', KEYS[6])
  local live = live_members(members_key, leases_key, now, true)
  for i = 1, #live do reply[#reply + 1] = live[i] end
end
return reply
"""
)

OBSERVE = (
    """
-- observe: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] resigned key;
-- ARGV[1] "1" to drop lapsed members first ("0": read only).
-- Reads the whole pool at one instant.
-- Returns {now, leader value or false, leader pttl, resigned member or false,
--          µs until the lead can be claimed, member, record, deadline, ...}.
local members_key, leases_key, leader_key, resigned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
"""
    + _NOW
    + _LIVE_MEMBERS
    + """
local pttl = redis.call('PTTL', leader_key)
local reply = {now, redis.call('GET', leader_key), pttl, redis.call('GET', resigned_key), free_in_us(pttl)}
local live = live_members(members_key, leases_key, now, ARGV[1] == '1')
for i = 1, #live do reply[#reply + 1] = live[i] end
return reply
"""
)

CLAIM = (
    """
-- claim: KEYS[1] leader key, KEYS[2] term counter, KEYS[3] members hash, KEYS[4] leases zset,
-- KEYS[5] history stream, KEYS[6] recovery; ARGV[1] member, ARGV[2] ttl_ms, ARGV[3] highest term
-- the member has seen, ARGV[4] events channel.
-- Takes a vacant lead (SET NX PX) for a live member. The new term is above both the stored
-- counter and every term any live member has reported, so terms never go back even if Redis
-- lost data. Returns {1, term, now} when elected, {0, leader value, pttl, µs until it can be
-- claimed} when the lead is held,
-- {-1, now} when the member is not live in the pool, {-2, ms} while claims wait for recovery.
local leader_key, term_key, members_key, leases_key, history_key, recovery_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local member, ttl_ms, seen, channel = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
"""
    + _NOW
    + _WIRE
    + _TERM_GUARD
    + """
local deadline = redis.call('ZSCORE', leases_key, member)
if not deadline or tonumber(deadline) <= now or redis.call('HEXISTS', members_key, member) == 0 then
  return {-1, now}
end
local held = redis.call('GET', leader_key)
if held then
  local pttl = redis.call('PTTL', leader_key)
  return {0, held, pttl, free_in_us(pttl)}
end
guard_term(term_key, recovery_key, seen, ttl_ms)
if redis.call('EXISTS', recovery_key) == 1 then
  return {-2, redis.call('PTTL', recovery_key)}
end
local term = tonumber(redis.call('GET', term_key) or '0') or 0
if term < seen then term = seen end
term = string.format('%d', term + 1)
redis.call('SET', term_key, term)
redis.call('SET', leader_key, leader_value(term, member), 'PX', ttl_ms, 'NX')
redis.call('ZADD', leases_key, now + ttl_ms, member)
redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
           'event', 'elected', 'term', term, 'member', member, 'reason', '', 't_ms', now)
announce(channel, 'elected', term, '', member)
return {1, term, now}
"""
)

# Ends a lead for a reason: hands it straight to the successor when that member is live and no
# term recovery is under way (one step instead of release-then-claim: the successor acts on the
# announcement, which carries Redis's time), else deletes the key so the next in line claims.
_GIVE_UP = """
local function give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                       held_term, member, reason, successor, ttl_ms, now)
  redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
             'event', 'released', 'term', held_term, 'member', member, 'reason', reason, 't_ms', now)
  local lease = successor ~= '' and redis.call('ZSCORE', leases_key, successor)
  if lease and tonumber(lease) > now and redis.call('EXISTS', recovery_key) == 0 then
    local counter = tonumber(redis.call('GET', term_key) or '0') or 0
    local term = string.format('%d', math.max(counter, tonumber(held_term)) + 1)
    redis.call('SET', term_key, term)
    redis.call('SET', leader_key, leader_value(term, successor), 'PX', ttl_ms)
    redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
               'event', 'elected', 'term', term, 'member', successor, 'reason', 'handoff', 't_ms', now)
    announce(channel, 'elected', term, HANDOFF .. now, successor)
    return tonumber(term)
  end
  redis.call('DEL', leader_key)
  announce(channel, 'released', held_term, reason, member)
  return 0
end
"""

RELEASE = (
    """
-- release: KEYS[1] leader key, KEYS[2] resigned key, KEYS[3] history stream, KEYS[4] term counter,
-- KEYS[5] leases zset, KEYS[6] recovery; ARGV[1] the leader value held, ARGV[2] reason,
-- ARGV[3] ms to rank the member last (0: none), ARGV[4] events channel, ARGV[5] successor
-- ("" for none), ARGV[6] the successor's lease (ms).
-- Gives up the lead only if the key still holds ARGV[1] (compare-and-set on member and term);
-- ranks the member last (ARGV[3]) either way.
-- Returns {1, the successor's term or 0} when released, {0, 0} when the key was no longer ours.
local leader_key, resigned_key, history_key, term_key, leases_key, recovery_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local held, reason, exclude_ms, channel, successor, ttl_ms =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
"""
    + _NOW
    + _WIRE
    + _GIVE_UP
    + """
local term, member = split_leader(held)
-- ranked last even if the lead lapsed meanwhile (say, its on_revoked outlasted the lease):
-- a member that asked to resign must not win the next election instead of its successor
if exclude_ms > 0 then
  redis.call('SET', resigned_key, member, 'PX', exclude_ms)
end
if redis.call('GET', leader_key) ~= held then return {0, 0} end
return {1, give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                   term, member, reason, successor, ttl_ms, now)}
"""
)

LEAVE = (
    """
-- leave: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] history stream,
-- KEYS[5] term counter, KEYS[6] recovery; ARGV[1] member, ARGV[2] reason, ARGV[3] events channel,
-- ARGV[4] event ("left" or "evicted"), ARGV[5] successor ("" for none), ARGV[6] its lease (ms).
-- Removes the member and, if it leads, ends its lead in the same step, so no one waits for a
-- member that has gone. Returns {1 if it was a member else 0, the released term or 0,
-- the successor's term or 0}.
local members_key, leases_key, leader_key, history_key, term_key, recovery_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local member, reason, channel, event, successor, ttl_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
"""
    + _NOW
    + _WIRE
    + _GIVE_UP
    + """
local was_member = redis.call('HDEL', members_key, member)
redis.call('ZREM', leases_key, member)
local held_term, holder = split_leader(redis.call('GET', leader_key) or nil)
local released, handed = 0, 0
if holder == member then
  -- the hand-over is announced first: the successor acts on the first message it reads
  released = held_term
  handed = give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                   released, member, reason, successor, ttl_ms, now)
end
announce(channel, event, 0, reason, member)
return {was_member, released, handed}
"""
)

LEADER_RECORD = (
    """
-- leader_record: KEYS[1] leader key, KEYS[2] members hash.
-- Returns {leader value, pttl, the leader's member record or false}, or {} when vacant.
local leader_key, members_key = KEYS[1], KEYS[2]
"""
    + _WIRE
    + """
local value = redis.call('GET', leader_key)
if not value then return {} end
local _, holder = split_leader(value)
return {value, redis.call('PTTL', leader_key), holder and redis.call('HGET', members_key, holder) or false}
"""
)

FENCED_SET = """
-- fenced_set: KEYS[1] resource key, KEYS[2] its fence key (same slot);
-- ARGV[1] writer's term, ARGV[2] value, ARGV[3] px (0: no expiry).
-- Writes only when the term is >= the highest term accepted for the resource, and records it.
-- Returns {1, term} when written, {0, highest accepted term} when refused.
local resource_key, fence_key = KEYS[1], KEYS[2]
local term, value, px = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local highest = tonumber(redis.call('GET', fence_key) or '0')
if term < highest then return {0, string.format('%d', highest)} end
redis.call('SET', fence_key, string.format('%d', term))
if px > 0 then
  redis.call('SET', resource_key, value, 'PX', px)
else
  redis.call('SET', resource_key, value)
end
return {1, string.format('%d', term)}
"""


class ScriptHost(Protocol):
    """A client that registers scripts: ``register_script(source)`` returns a callable taking
    ``keys=`` and ``args=`` whose result is awaited (redis-py's asyncio client, or the CLI's
    one-shot adapter)."""

    def register_script(self, script: str) -> Any: ...


class NamedScript:
    """One registered script, called by EVALSHA (redis-py reloads it on NOSCRIPT). An error reply
    becomes :class:`~leaderpool.errors.ScriptError` naming the script (or, for ``NOPERM`` and the
    like, :class:`~leaderpool.errors.RedisAuthFailed`); connection failures pass through."""

    def __init__(self, client: ScriptHost, name: str, source: str, key_types: Sequence[str | None] = ()) -> None:
        self.name = name
        # key_types: checked before anything runs (hostile data: see leaderpool.baddata)
        self._script = client.register_script(type_guard(key_types) + source if key_types else source)

    async def __call__(self, keys: Sequence[str], args: Sequence[str | bytes | int] = ()) -> Any:
        return await self.translated(self._script(keys=keys, args=args))

    async def queue(self, pipeline: Any, keys: Sequence[str], args: Sequence[str | bytes | int] = ()) -> None:
        """Add this script to a redis-py pipeline (run it with :meth:`translated`)."""
        await self._script(keys=keys, args=args, client=pipeline)

    async def translated(self, call: Awaitable[Any]) -> Any:
        """Await ``call`` (this script, or a pipeline holding it), its errors translated."""
        try:
            return await call
        except Exception as exc:
            if is_bad_data_reply(exc):
                raise BadPoolData(f"script {self.name} refused: {exc}: delete or repair that key") from exc
            # imported on the error path: a one-shot CLI command runs scripts without redis-py
            from leaderpool.redis_errors import COMMAND_REFUSED, translate

            if not isinstance(exc, COMMAND_REFUSED):
                raise
            translated = translate(exc, script=self.name)
            assert translated is not None  # an error reply to a script is always translated
            raise translated from exc


class Scripts:
    """The scripts registered on one client."""

    def __init__(self, client: ScriptHost) -> None:
        h, z, s, x = "hash", "zset", "string", "stream"  # the type each KEYS[i] must have, if it exists
        self.register = NamedScript(client, "register", REGISTER, (h, z, s, s))
        self.heartbeat = NamedScript(client, "heartbeat", HEARTBEAT, (h, z, s, s, s, s))
        self.observe = NamedScript(client, "observe", OBSERVE, (h, z, s, s))
        self.claim = NamedScript(client, "claim", CLAIM, (s, s, h, z, x, s))
        self.release = NamedScript(client, "release", RELEASE, (s, s, x, s, z, s))
        self.leave = NamedScript(client, "leave", LEAVE, (h, z, s, x, s, s))
        self.leader_record = NamedScript(client, "leader_record", LEADER_RECORD, (s, h))
        self.fenced_set = NamedScript(client, "fenced_set", FENCED_SET)


_registered: WeakKeyDictionary[ScriptHost, Scripts] = WeakKeyDictionary()


def scripts_for(client: ScriptHost) -> Scripts:
    """The :class:`Scripts` of ``client``, registered on first use."""
    scripts = _registered.get(client)
    if scripts is None:
        scripts = _registered[client] = Scripts(client)
    return scripts
