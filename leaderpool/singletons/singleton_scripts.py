"""The Lua of the singletons (:mod:`leaderpool.singletons.singleton_store` calls it), registered
once per client as :class:`SingletonScripts`.

An owner is ``"<term>|<incarnation>|<member>"`` in the owners hash. It owns while it is live:
its pool lease (the pool's leases zset, kept by its one heartbeat) is in the future, the pool's
record under its id is the same run, and, when it registered a connection channel, that channel
still has a subscriber (its process's kernel closed the connection at a crash: Redis dropped the
subscription, which proves the death in milliseconds, as fast failover's bury does). No
singleton has a lease of its own: a member's liveness is its one lease, however many it holds.

Each script opens with its contract (KEYS, ARGV, reply), then names its inputs.
"""

from __future__ import annotations

from leaderpool.backend.lua_snippets import INCARNATION, NOW
from leaderpool.backend.script_registry import Lua, ScriptSet

_VERSION = """
-- bumps the singletons' version (any write of placement or ownership). A fresh key starts from
-- Redis's clock in microseconds (a string of digits, so INCR goes on from it): a Redis that lost
-- its data does not give back a version a member or the placer read before.
local function bump_version(key)
  if redis.call('INCR', key) == 1 then
    local t = redis.call('TIME')
    redis.call('SET', key, t[1] .. string.format('%06d', tonumber(t[2])))
  end
end
"""

_OWNERS = """
-- "<term>|<incarnation>|<member>" -> term, incarnation, member (nil for garbage)
local function split_owner(value)
  if not value then return nil end
  local term, run, member = string.match(value, '^(%d+)|([^|]*)|(.+)$')
  if not term then return nil end
  return tonumber(term), run, member
end
-- whether member's run is live: lease ahead, the same run in the pool's record, and its
-- registered connection channel (if any) still subscribed
local function member_live(leases_key, members_key, smembers_key, member, run, now)
  local lease = redis.call('ZSCORE', leases_key, member)
  if not lease or tonumber(lease) <= now then return false end
  if not same_run(redis.call('HGET', members_key, member), run) then return false end
  local reg = redis.call('HGET', smembers_key, member)
  if reg then
    local channel = string.match(reg, '^[^|]*|(.+)$')
    if channel then
      -- pcall: an ACL without PUBSUB NUMSUB is no proof of a death, and no script error either
      local counts = redis.pcall('PUBSUB', 'NUMSUB', channel)
      if type(counts) == 'table' and not counts.err and tonumber(counts[2]) == 0 then return false end
    end
  end
  return true
end
"""

SINGLETON_SYNC = (
    """
-- singleton_sync: KEYS[1] pool leases zset, KEYS[2] pool members hash, KEYS[3] singleton members
-- hash, KEYS[4] assign hash, KEYS[5] epoch, KEYS[6] owners hash, KEYS[7] events channel,
-- KEYS[8] terms hash, KEYS[9] version; ARGV[1] member, ARGV[2] incarnation, ARGV[3] registration
-- "<weight>|<connection channel>", ARGV[4] the assignment epoch the member last read, then
-- pairs name, term it holds that it wants checked.
-- A member's one call per beat: registers it as running singletons (announced when new or
-- changed), confirms its lease (one lease for all it holds), lists its assignment when it moved,
-- and checks the names it sends. It sends them only when the version moved since it last checked
-- (an owner record can change only with it), so a steady beat costs a few commands whatever it
-- holds. A term it holds above the counter (Redis lost data) raises the counter: terms never go
-- back for a singleton that was running.
-- Returns {1, ms left of its lease, epoch, {names assigned to it} or false when the epoch is
-- unchanged, {names sent and held no more}, version}; {-1} when it is not a live member (then
-- it holds nothing).
local leases_key, members_key, smembers_key, assign_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local epoch_key, owners_key, channel, terms_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local version_key = KEYS[9]
local member, run, registration, seen_epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
"""
    + NOW
    + INCARNATION
    + """
local lease = redis.call('ZSCORE', leases_key, member)
if not lease or tonumber(lease) <= now or not same_run(redis.call('HGET', members_key, member), run) then
  return {-1}
end
if redis.call('HGET', smembers_key, member) ~= registration then
  redis.call('HSET', smembers_key, member, registration)
  redis.call('PUBLISH', channel, 'member|' .. member)
end
local lost = {}
for i = 5, #ARGV, 2 do
  if (tonumber(redis.call('HGET', terms_key, ARGV[i]) or '0') or 0) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', terms_key, ARGV[i], ARGV[i + 1])
  end
  if redis.call('HGET', owners_key, ARGV[i]) ~= ARGV[i + 1] .. '|' .. run .. '|' .. member then
    lost[#lost + 1] = ARGV[i]
  end
end
local epoch = redis.call('GET', epoch_key) or '0'
local assigned = false
if epoch ~= seen_epoch then
  assigned = {}
  local all = redis.call('HGETALL', assign_key)
  for i = 1, #all, 2 do
    if all[i + 1] == member then assigned[#assigned + 1] = all[i] end
  end
end
return {1, tonumber(lease) - now, epoch, assigned, lost, redis.call('GET', version_key) or ''}
"""
)

SINGLETON_CLAIM = (
    """
-- singleton_claim: KEYS[1] pool leases zset, KEYS[2] pool members hash, KEYS[3] singleton members
-- hash, KEYS[4] singletons set, KEYS[5] assign hash, KEYS[6] owners hash, KEYS[7] terms hash,
-- KEYS[8] state hash, KEYS[9] events channel, KEYS[10] version; ARGV[1] member, ARGV[2]
-- incarnation, then names.
-- Claims each name assigned to the member, refusing while another live owner holds it: the new
-- term is one above the highest granted (also when the record is already ours: the member
-- stopped it, say at its deadline, and every start gets a term of its own). Returns {-1} when
-- the member is not live, else {1, {name, status, term, detail}...}: status 1 claimed (detail:
-- the saved state or false), 0 held by another live owner (detail: its member), -2 not a
-- singleton or not assigned to us (term 0, detail false).
local leases_key, members_key, smembers_key, names_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local assign_key, owners_key, terms_key, state_key, channel = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local version_key = KEYS[10]
local member, run = ARGV[1], ARGV[2]
"""
    + NOW
    + INCARNATION
    + _OWNERS
    + _VERSION
    + """
if not member_live(leases_key, members_key, smembers_key, member, run, now) then
  return {-1}
end
local out, seen = {}, {}  -- seen: each previous owner's liveness, asked once per script
for i = 3, #ARGV do
  local name = ARGV[i]
  if redis.call('SISMEMBER', names_key, name) == 0 or redis.call('HGET', assign_key, name) ~= member then
    out[#out + 1] = {name, -2, 0, false}
  else
    local held = redis.call('HGET', owners_key, name)
    local term, owner_run, owner = split_owner(held)
    local ours = term and owner == member and owner_run == run
    local who = term and (owner_run .. '|' .. owner)
    if term and not ours and seen[who] == nil then
      seen[who] = member_live(leases_key, members_key, smembers_key, owner, owner_run, now)
    end
    if term and not ours and seen[who] then
      out[#out + 1] = {name, 0, term, owner}
    else
      local granted = math.max(tonumber(redis.call('HGET', terms_key, name) or '0') or 0, term or 0) + 1
      redis.call('HSET', terms_key, name, granted)
      redis.call('HSET', owners_key, name, granted .. '|' .. run .. '|' .. member)
      bump_version(version_key)
      redis.call('PUBLISH', channel, 'claimed|' .. name)
      out[#out + 1] = {name, 1, granted, redis.call('HGET', state_key, name)}
    end
  end
end
return {1, out}
"""
)

SINGLETON_RELEASE = (
    """
-- singleton_release: KEYS[1] owners hash, KEYS[2] state hash, KEYS[3] singleton members hash,
-- KEYS[4] events channel, KEYS[5] version; ARGV[1] member, ARGV[2] incarnation, ARGV[3] "1" when the member
-- stops running singletons (it leaves: its registration goes too), then triples name, term,
-- state record ("" keeps the saved one). Frees each name the member owns at that term (term 0:
-- at any term of this run, for a claim whose reply it never got), saving its state first (the
-- hand-off), each announced ("released|NAME"). Returns the names freed.
local owners_key, state_key, smembers_key, channel, version_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, run, leaving = ARGV[1], ARGV[2], ARGV[3]
"""
    + _VERSION
    + """
local freed = {}
for i = 4, #ARGV, 3 do
  local name, term, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local held = redis.call('HGET', owners_key, name)
  local cut = held and string.find(held, '|', 1, true)
  if held == term .. '|' .. run .. '|' .. member
     or (term == '0' and cut and string.sub(held, cut + 1) == run .. '|' .. member) then
    if record ~= '' then redis.call('HSET', state_key, name, record) end
    redis.call('HDEL', owners_key, name)
    bump_version(version_key)
    redis.call('PUBLISH', channel, 'released|' .. name)
    freed[#freed + 1] = name
  end
end
if leaving == '1' and redis.call('HDEL', smembers_key, member) == 1 then
  bump_version(version_key)
  redis.call('PUBLISH', channel, 'left|' .. member)
end
return freed
"""
)

SINGLETON_SAVE = """
-- singleton_save: KEYS[1] owners hash, KEYS[2] state hash; ARGV[1] member, ARGV[2] incarnation,
-- ARGV[3] name, ARGV[4] term, ARGV[5] state record. Saves the state while the member owns the
-- name at that term (fenced: a deposed owner's late save is refused). Returns 1 saved, 0 refused.
local owners_key, state_key = KEYS[1], KEYS[2]
local member, run, name, term, record = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', owners_key, name) ~= term .. '|' .. run .. '|' .. member then
  return 0
end
redis.call('HSET', state_key, name, record)
return 1
"""

SINGLETON_SURVEY = (
    """
-- singleton_survey: KEYS[1] pool leases zset, KEYS[2] pool members hash, KEYS[3] singleton
-- members hash, KEYS[4] singletons set, KEYS[5] assign hash, KEYS[6] owners hash, KEYS[7] pins
-- hash, KEYS[8] version; ARGV[1] the fingerprint the placer last placed from ("": read all).
-- Read only: what the placer places from. The fingerprint covers every input of the placement:
-- the version (names, assignment, owners, pins) and the live members running singletons with
-- their records and registrations (an owner is live only as its member is). Returns
-- {fingerprint, {{member, pool record, weight}... of the live members}} when it is the one given
-- (nothing to place anew: a few commands per member, whatever the number of singletons), else
-- {fingerprint, live members, {names}, {name, member assigned...}, {name, owner value, 1 live /
-- 0 not...}, {name, pinned member...}}.
local leases_key, members_key, smembers_key, names_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local assign_key, owners_key, pins_key, version_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
"""
    + NOW
    + INCARNATION
    + _OWNERS
    + """
local live, inputs = {}, {redis.call('GET', version_key) or ''}
local regs = redis.call('HGETALL', smembers_key)
for i = 1, #regs, 2 do
  if member_live(leases_key, members_key, smembers_key, regs[i], '', now) then
    live[#live + 1] = {regs[i], redis.call('HGET', members_key, regs[i]) or '', string.match(regs[i + 1], '^([^|]*)')}
    inputs[#inputs + 1] = regs[i] .. '\\n' .. live[#live][2] .. '\\n' .. regs[i + 1]
  end
end
table.sort(inputs)
local digest = redis.sha1hex or function(s) return s end  -- a Lua without it (fakeredis): the inputs
local fingerprint = digest(table.concat(inputs, '\\n'))
if fingerprint == ARGV[1] then return {fingerprint, live} end
local owners, seen = {}, {}  -- seen: each run's liveness, asked once however many it owns
local all = redis.call('HGETALL', owners_key)
for i = 1, #all, 2 do
  local term, run, owner = split_owner(all[i + 1])
  local up = false
  if term then
    local who = run .. '|' .. owner
    if seen[who] == nil then seen[who] = member_live(leases_key, members_key, smembers_key, owner, run, now) end
    up = seen[who]
  end
  owners[#owners + 1] = all[i]
  owners[#owners + 1] = all[i + 1]
  owners[#owners + 1] = up and 1 or 0
end
return {fingerprint, live, redis.call('SMEMBERS', names_key), redis.call('HGETALL', assign_key), owners,
        redis.call('HGETALL', pins_key)}
"""
)

SINGLETON_ASSIGN = (
    """
-- singleton_assign: KEYS[1] the pool's leader key, KEYS[2] assign hash, KEYS[3] epoch, KEYS[4]
-- events channel, KEYS[5] the pool's leases zset, KEYS[6] singleton members hash, KEYS[7]
-- version; ARGV[1] the
-- placer's lead "<term>|<member>", then pairs name, member ("" takes the assignment away).
-- Fenced by the lead: only the leader of that term places. Drops the registrations of members
-- the pool has forgotten (a crashed member's, once its lapsed lease was pruned). Returns 1
-- written (the epoch bumped and "assigned" announced when anything changed), 0 not the leader.
local leader_key, assign_key, epoch_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local leases_key, smembers_key, version_key = KEYS[5], KEYS[6], KEYS[7]
"""
    + _VERSION
    + """
if redis.call('GET', leader_key) ~= ARGV[1] then
  return 0
end
local registered = redis.call('HKEYS', smembers_key)
for i = 1, #registered do
  if not redis.call('ZSCORE', leases_key, registered[i]) then
    redis.call('HDEL', smembers_key, registered[i])
    bump_version(version_key)
  end
end
local changed = false
for i = 2, #ARGV, 2 do
  local name, member = ARGV[i], ARGV[i + 1]
  if member == '' then
    if redis.call('HDEL', assign_key, name) == 1 then changed = true end
  elseif redis.call('HGET', assign_key, name) ~= member then
    redis.call('HSET', assign_key, name, member)
    changed = true
  end
end
if changed then
  redis.call('INCR', epoch_key)
  bump_version(version_key)
  redis.call('PUBLISH', channel, 'assigned')
end
return 1
"""
)

SINGLETON_NAMES = (
    """
-- singleton_names: KEYS[1] singletons set, KEYS[2] assign hash, KEYS[3] pins hash, KEYS[4] epoch,
-- KEYS[5] events channel, KEYS[6] version; ARGV[1] "add" or "remove", then names. Adds names to the pool, or
-- removes them (with their assignment and pin: their owners stop them). Returns how many changed.
local names_key, assign_key, pins_key, epoch_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local version_key = KEYS[6]
"""
    + _VERSION
    + """
local changed = 0
for i = 2, #ARGV do
  if ARGV[1] == 'add' then
    changed = changed + redis.call('SADD', names_key, ARGV[i])
  else
    changed = changed + redis.call('SREM', names_key, ARGV[i])
    redis.call('HDEL', pins_key, ARGV[i])
    redis.call('HDEL', assign_key, ARGV[i])
  end
end
if changed > 0 then
  redis.call('INCR', epoch_key)
  bump_version(version_key)
  redis.call('PUBLISH', channel, 'names')
end
return changed
"""
)

SINGLETON_PIN = (
    """
-- singleton_pin: KEYS[1] singletons set, KEYS[2] pins hash, KEYS[3] events channel, KEYS[4]
-- version; ARGV[1] name,
-- ARGV[2] member ("" unpins). An operator's move: the placer keeps the name on that member while
-- it is live. Returns 1 done, 0 not a singleton of the pool.
local names_key, pins_key, channel, version_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name, member = ARGV[1], ARGV[2]
"""
    + _VERSION
    + """
if redis.call('SISMEMBER', names_key, name) == 0 then return 0 end
if member == '' then redis.call('HDEL', pins_key, name) else redis.call('HSET', pins_key, name, member) end
bump_version(version_key)
redis.call('PUBLISH', channel, 'names')
return 1
"""
)

_h, _s, _z, _v = "hash", "set", "zset", "string"  # the type each KEYS[i] must have, if it exists


class SingletonScripts(ScriptSet):
    """The singletons' scripts (:class:`~leaderpool.singletons.singleton_store.SingletonStore` calls them)."""

    singleton_sync = Lua("singleton_sync", SINGLETON_SYNC, (_z, _h, _h, _h, _v, _h, None, _h, _v))
    singleton_claim = Lua("singleton_claim", SINGLETON_CLAIM, (_z, _h, _h, _s, _h, _h, _h, _h, None, _v))
    singleton_release = Lua("singleton_release", SINGLETON_RELEASE, (_h, _h, _h, None, _v))
    singleton_save = Lua("singleton_save", SINGLETON_SAVE, (_h, _h))
    singleton_survey = Lua("singleton_survey", SINGLETON_SURVEY, (_z, _h, _h, _s, _h, _h, _h, _v))
    singleton_assign = Lua("singleton_assign", SINGLETON_ASSIGN, (_v, _h, _v, None, _z, _h, _v))
    singleton_names = Lua("singleton_names", SINGLETON_NAMES, (_s, _h, _h, _v, None, _v))
    singleton_pin = Lua("singleton_pin", SINGLETON_PIN, (_s, _h, None, _v))
