"""The Lua of the unique names (:mod:`leaderpool.names.registry`), registered once per client as
:class:`NameScripts`.

Each script opens with its contract (KEYS, ARGV, reply), then names its inputs. A member holding
names beats and leaves with scripts that wrap the pool's own (:data:`HEARTBEAT_NAMES`,
:data:`LEAVE_NAMES`), so its names follow its lease in the same step.
"""

from __future__ import annotations

from leaderpool.backend.lua_snippets import INCARNATION, NOW
from leaderpool.backend.pool_scripts import HEARTBEAT, HEARTBEAT_ARITY, LEAVE, LEAVE_ARITY, LEAVE_KEY_TYPES
from leaderpool.backend.script_registry import Lua, ScriptSet

# A name's record starts with its owner, '{"pool":...,"member":...,"incarnation":...,'
# (leaderpool.names.registry builds it, JSON with a fixed key order), so a script compares owners
# by prefix without decoding: with the incarnation, one run's; without, every run's of the member.

_NAMES = """
local function owned_by(record, owner)
  return record ~= false and record ~= nil and string.sub(record, 1, #owner) == owner
end
-- drops names whose holder's lease ended; returns how many
local function prune_names(owners_key, deadlines_key, now)
  local dead = redis.call('ZRANGEBYSCORE', deadlines_key, '-inf', now)
  for i = 1, #dead do
    redis.call('HDEL', owners_key, dead[i])
    redis.call('ZREM', deadlines_key, dead[i])
  end
  return #dead
end
"""

NAME_REGISTER = (
    """
-- name_register: KEYS[1] names owners hash, KEYS[2] names deadlines zset, KEYS[3] the member's
-- pool leases zset, KEYS[4] its pool members hash; ARGV[1] name, ARGV[2] owner prefix,
-- ARGV[3] record, ARGV[4] member, ARGV[5] names events channel, ARGV[6] "1" to take the name
-- over from another holder (re_register_name), ARGV[7] the member's incarnation ("" no check).
-- Gives the name to a live member until its lease ends (its heartbeat moves the deadline on).
-- Returns {1, ms until the name's deadline} when registered (or already ours: the value is
-- updated), {0, holder record, ms left} when another live member holds it, {-1} when the
-- member is not live (or the record under its id is another incarnation's).
local owners_key, deadlines_key, leases_key, members_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name, owner, record, member, channel, takeover = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
"""
    + NOW
    + _NAMES
    + INCARNATION
    + """
local lease = redis.call('ZSCORE', leases_key, member)
if not lease or tonumber(lease) <= now or not same_run(redis.call('HGET', members_key, member), ARGV[7] or '') then
  return {-1}
end
prune_names(owners_key, deadlines_key, now)
local current = redis.call('HGET', owners_key, name)
if current and not owned_by(current, owner) and takeover ~= '1' then
  return {0, current, tonumber(redis.call('ZSCORE', deadlines_key, name) or now) - now}
end
redis.call('HSET', owners_key, name, record)
redis.call('ZADD', deadlines_key, lease, name)
if current ~= record then
  redis.call('PUBLISH', channel, 'registered|' .. name)
end
return {1, tonumber(lease) - now}
"""
)

NAME_UNREGISTER = (
    """
-- name_unregister: KEYS[1] names owners hash, KEYS[2] names deadlines zset; ARGV[1] name,
-- ARGV[2] owner prefix ("" for an operator: whoever holds it), ARGV[3] names events channel.
-- Returns {1, the record removed} or {0} when the name is not held (by that owner).
local owners_key, deadlines_key = KEYS[1], KEYS[2]
local name, owner, channel = ARGV[1], ARGV[2], ARGV[3]
"""
    + NOW
    + _NAMES
    + """
prune_names(owners_key, deadlines_key, now)
local current = redis.call('HGET', owners_key, name)
if not current or not owned_by(current, owner) then return {0} end
redis.call('HDEL', owners_key, name)
redis.call('ZREM', deadlines_key, name)
redis.call('PUBLISH', channel, 'unregistered|' .. name)
return {1, current}
"""
)

NAMES_READ = (
    """
-- names_read: KEYS[1] names owners hash, KEYS[2] names deadlines zset; ARGV the names to read
-- (none: every name). Only reads (a lapsed name is reported missing, not removed).
-- Returns {now, name, record, ms left, ...} for the names held, in name order for all.
local owners_key, deadlines_key = KEYS[1], KEYS[2]
"""
    + NOW
    + """
local out = {now}
local function add(name, deadline)
  local record = redis.call('HGET', owners_key, name)
  if record and deadline and tonumber(deadline) > now then
    out[#out + 1] = name
    out[#out + 1] = record
    out[#out + 1] = tonumber(deadline) - now
  end
end
if #ARGV == 0 then
  local live = redis.call('ZRANGEBYSCORE', deadlines_key, '(' .. now, '+inf', 'WITHSCORES')
  local order = {}
  for i = 1, #live, 2 do order[#order + 1] = {live[i], live[i + 1]} end
  table.sort(order, function(a, b) return a[1] < b[1] end)
  for i = 1, #order do add(order[i][1], order[i][2]) end
else
  for i = 1, #ARGV do add(ARGV[i], redis.call('ZSCORE', deadlines_key, ARGV[i])) end
end
return out
"""
)

NAMES_DROP_OWNER = (
    """
-- names_drop_owner: KEYS[1] names owners hash, KEYS[2] names deadlines zset; ARGV[1] owner
-- prefix, ARGV[2] names events channel.
-- Frees every name the owner holds (an operator evicted it), each announced.
-- Returns the names freed.
local owners_key, deadlines_key, owner, channel = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
"""
    + _NAMES
    + """
local all, freed = redis.call('HGETALL', owners_key), {}
for i = 1, #all, 2 do
  if owned_by(all[i + 1], owner) then
    redis.call('HDEL', owners_key, all[i])
    redis.call('ZREM', deadlines_key, all[i])
    redis.call('PUBLISH', channel, 'unregistered|' .. all[i])
    freed[#freed + 1] = all[i]
  end
end
return freed
"""
)

# A member holding names beats with this script instead of HEARTBEAT: the same step, wrapped
# (its early returns become the function's), then its names' deadlines follow the lease, so the
# steady state stays one EVALSHA per member per heartbeat. A name whose deadline passed (the
# member was paused past its lease) or that another member took over is reported lost.
HEARTBEAT_NAMES = (
    (
        """
-- heartbeat_names: KEYS[1..K] and ARGV[1..A] as heartbeat (K, A: HEARTBEAT_ARITY), then the
-- names owners hash and deadlines zset; the owner prefix, then the names the member holds.
-- Returns {heartbeat's reply, {names lost}}. An unknown member (evicted, or Redis lost it)
-- loses every name it held. The names keys' types are checked before (type_guard), the pool's
-- by the heartbeat: a refusal (BADDATA) is this script's, nothing written.
local function pool_beat()
"""
        + HEARTBEAT
        + """
end
local beat = pool_beat()
if beat.err then return beat end
"""
        + _NAMES
        + """
local owners_key, deadlines_key, owner = KEYS[@K@ + 1], KEYS[@K@ + 2], ARGV[@A@ + 1]
local now, ttl_ms, lost = beat[2], tonumber(ARGV[2]), {}
for i = @A@ + 2, #ARGV do
  local name = ARGV[i]
  local record = redis.call('HGET', owners_key, name)
  local deadline = tonumber(redis.call('ZSCORE', deadlines_key, name) or '0')
  if owned_by(record, owner) and deadline > now and beat[1] ~= -1 then
    redis.call('ZADD', deadlines_key, now + ttl_ms, name)
  else
    lost[#lost + 1] = name
    if owned_by(record, owner) then
      redis.call('HDEL', owners_key, name)
      redis.call('ZREM', deadlines_key, name)
    end
  end
end
return {beat, lost}
"""
    )
    .replace("@K@", str(HEARTBEAT_ARITY[0]))
    .replace("@A@", str(HEARTBEAT_ARITY[1]))
)

LEAVE_NAMES = (
    (
        """
-- leave_names: KEYS[1..K] and ARGV[1..A] as leave (K, A: LEAVE_ARITY), then the names owners
-- hash and deadlines zset; the owner prefix, the names events channel, then the names the
-- member holds. Leaves as leave does, then frees the member's names, each announced
-- ("unregistered|NAME") after the pool's own messages, so a standby takes it at once.
-- Returns leave's reply.
local function pool_leave()
"""
        + LEAVE
        + """
end
local left = pool_leave()
"""
        + _NAMES
        + """
local owners_key, deadlines_key, owner, channel = KEYS[@K@ + 1], KEYS[@K@ + 2], ARGV[@A@ + 1], ARGV[@A@ + 2]
for i = @A@ + 3, #ARGV do
  local name = ARGV[i]
  if owned_by(redis.call('HGET', owners_key, name), owner) then
    redis.call('HDEL', owners_key, name)
    redis.call('ZREM', deadlines_key, name)
    redis.call('PUBLISH', channel, 'unregistered|' .. name)
  end
end
return left
"""
    )
    .replace("@K@", str(LEAVE_ARITY[0]))
    .replace("@A@", str(LEAVE_ARITY[1]))
)


_h, _z = "hash", "zset"  # the type each KEYS[i] must have, if it exists
_UNCHECKED = (None,) * HEARTBEAT_ARITY[0]  # the pool's keys: the heartbeat checks them


class NameScripts(ScriptSet):
    """The name registry's scripts (:class:`~leaderpool.names.registry.NameStore` calls them)."""

    name_register = Lua("name_register", NAME_REGISTER)
    name_unregister = Lua("name_unregister", NAME_UNREGISTER)
    names_read = Lua("names_read", NAMES_READ)
    heartbeat_names = Lua("heartbeat_names", HEARTBEAT_NAMES, (*_UNCHECKED, _h, _z))
    leave_names = Lua("leave_names", LEAVE_NAMES, (*LEAVE_KEY_TYPES, _h, _z))
    names_drop_owner = Lua("names_drop_owner", NAMES_DROP_OWNER)
