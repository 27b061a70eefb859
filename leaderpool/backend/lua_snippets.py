"""Lua that several scripts splice in: Redis's clock, the pool's wire format, the live members,
the ranking's head, whose run a record is, the term guard and the end of a lead. Each defines
locals and functions for the script text that follows it; the scripts themselves are
:mod:`leaderpool.backend.pool_scripts`, :mod:`leaderpool.backend.lead_scripts` and the
capabilities' (names, jobs) that build on them.
"""

from __future__ import annotations

from leaderpool.backend.protocol import HANDOFF_PREFIX, HANDOFF_RUN, SEPARATOR
from leaderpool.util.constants import HISTORY_MAXLEN

# Redis's clock: ``now`` (ms), and free_in_us(pttl), for the pool's, the names' and the jobs'
# scripts (time always comes from Redis, never from a client).
NOW = """
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
# and their watch reports (without, it only reads: for tooling, and for replicas).
LIVE_MEMBERS = """
local function live_members(members_key, leases_key, now, prune, watching_key, ranking_key)
  if prune then
    local dead = redis.call('ZRANGEBYSCORE', leases_key, '-inf', now)
    for i = 1, #dead do
      redis.call('ZREM', leases_key, dead[i])
      redis.call('HDEL', members_key, dead[i])
      if watching_key then redis.call('HDEL', watching_key, dead[i]) end
      if ranking_key then redis.call('ZREM', ranking_key, dead[i]) end
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

# The ranking zset (member -> leaderpool.members.rank_score) orders members best first, so its
# head answers who ranks first and who is next after the leader without listing the pool: O(log N)
# per beat however large the pool. The member who just resigned ranks last; entries without a
# live lease are skipped (and those with none at all dropped). The scan is bounded: false for
# "not found in the head" makes the member fall back to a full read.
RANKING = """
local RANK_SCAN, RANK_BATCH = 64, 8
-- reads the ranking's head (a batch's leases in one ZMSCORE), writing nothing; head and
-- head_leases, when given, are its first batch and their leases as already read. Returns who
-- ranks first and next (false: not found in the head), the entries to drop from the ranking (no
-- lease at all), and, when the whole ranking was read (a pool of fewer than RANK_BATCH members),
-- how many are live (self counts: it is beating) and who lapsed, else false, false.
local function read_heads(ranking_key, leases_key, now, leader, resigned, head, head_leases, self)
  local first, nxt, spare_first, spare_next, gone = false, false, false, false, {}
  local live, lapsed, whole = 0, {}, false
  for start = 0, RANK_SCAN - 1, RANK_BATCH do
    local batch = head or redis.call('ZRANGE', ranking_key, start, start + RANK_BATCH - 1)
    local leases = head_leases or (#batch > 0 and redis.call('ZMSCORE', leases_key, unpack(batch))) or {}
    head, head_leases = nil, nil
    for i = 1, #batch do
      local m, lease = batch[i], leases[i]
      if not lease then
        gone[#gone + 1] = m
      elseif tonumber(lease) > now or m == self then
        live = live + 1
        if m == resigned then
          spare_first = spare_first or m
          if m ~= leader then spare_next = spare_next or m end
        else
          if not first then first = m end
          if not nxt and m ~= leader then nxt = m end
        end
      else
        lapsed[#lapsed + 1] = m
      end
    end
    if #batch < RANK_BATCH then
      whole = start == 0
      break
    end
    if first and nxt then break end
  end
  if not whole then live, lapsed = false, false end
  return first or spare_first, nxt or spare_next, gone, live, lapsed
end
local function rank_heads(ranking_key, leases_key, now, leader, resigned)
  local first, nxt, gone = read_heads(ranking_key, leases_key, now, leader, resigned)
  for i = 1, #gone do redis.call('ZREM', ranking_key, gone[i]) end
  return first, nxt
end
-- drops a few members whose lease lapsed (a bounded share per call: beats keep the pool clean
-- without listing it)
local function prune_lapsed(members_key, leases_key, watching_key, ranking_key, now, limit)
  local dead = redis.call('ZRANGEBYSCORE', leases_key, '-inf', now, 'LIMIT', 0, limit)
  for i = 1, #dead do
    redis.call('ZREM', leases_key, dead[i])
    redis.call('ZREM', ranking_key, dead[i])
    redis.call('HDEL', members_key, dead[i])
    redis.call('HDEL', watching_key, dead[i])
  end
end
"""

# The leader value "<term>|<member>" and the pool message "<event>|<term>|<detail>|<member>"
# (see leaderpool.backend.protocol, whose constants these helpers are built from). The heartbeat needs
# only the first part (each function a script defines costs it a little on every call).
SPLIT_LEADER = (
    """
local SEP = '"""
    + SEPARATOR
    + """'
-- the term (a string) and the member of a leader value; nil for none, and for a value that is
-- not ours (hostile data: a lead held by someone unknown, see leaderpool.backend.baddata)
local function split_leader(value)
  if not value then return nil, nil end
  local bar = string.find(value, SEP, 1, true)
  if not bar or not tonumber(string.sub(value, 1, bar - 1)) then return nil, nil end
  return string.sub(value, 1, bar - 1), string.sub(value, bar + 1)
end
"""
)
WIRE = (
    SPLIT_LEADER
    + """
local function leader_value(term, member)
  return term .. SEP .. member
end
local function announce(channel, event, term, detail, member)
  redis.call('PUBLISH', channel, event .. SEP .. term .. SEP .. detail .. SEP .. member)
end
local HANDOFF, HANDOFF_RUN = '"""
    + HANDOFF_PREFIX
    + "', '"
    + HANDOFF_RUN
    + """'
local HISTORY_MAXLEN = """
    + str(HISTORY_MAXLEN)
    + """
"""
)

# A member record names its incarnation (the run of the process behind the member id): a script
# acting for a member checks that the record is that run's, so another process under the same id
# can neither beat, claim nor leave for it. Records are JSON written with sorted keys and no
# spaces (leaderpool.members.MemberInfo.record_json), and an incarnation is hex: a plain find. A
# record that names no run (an earlier version's, or data leaderpool did not write, which the
# member then writes again: see leaderpool.backend.baddata) is nobody's, so it does not refuse.
INCARNATION = """
-- true when the record is the incarnation's or names none; false for no record
-- ('' asks for no check: tools, older callers)
local function same_run(record, incarnation)
  if incarnation == '' then return true end
  if not record then return false end
  if not string.find(record, '"incarnation":"', 1, true) then return true end
  return string.find(record, '"incarnation":"' .. incarnation .. '"', 1, true) ~= nil
end
"""

# Members report the highest term they have seen. A report above Redis's counter means Redis
# lost data (restart without persistence, failover to a lagging replica): raise the counter and
# hold claims for one lease, so every live member reports in before a new term is granted.
RAISE_TERM = """
-- counter: the term counter as read (GET; garbage counts as lost)
local function raise_term(term_key, recovery_key, counter, seen, ttl_ms)
  if seen > (tonumber(counter or '0') or 0) then
    redis.call('SET', term_key, string.format('%d', seen))
    redis.call('SET', recovery_key, '1', 'PX', ttl_ms)
  end
end
"""
TERM_GUARD = (
    RAISE_TERM
    + """
local function guard_term(term_key, recovery_key, seen, ttl_ms)
  raise_term(term_key, recovery_key, redis.call('GET', term_key), seen, ttl_ms)
end
"""
)

# Ends a lead for a reason: hands it straight to the successor when that member is live and no
# term recovery is under way (one step instead of release-then-claim: the successor acts on the
# announcement, which carries Redis's time and the successor's run), else deletes the key so the
# next in line claims. The grant is published before the leader key is written, so it is the
# first message the successor reads (not the key's keyspace event): it acts on it in that read.
GIVE_UP = """
-- the run (incarnation) a member record names, '' for none
local function run_of(record)
  if not record then return '' end
  return string.match(record, '"incarnation":"([^"]*)"') or ''
end
local function give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                       held_term, member, reason, successor, ttl_ms, now, leader_conn_key, members_key)
  -- the successor registers its own connection at its first renewal
  redis.call('DEL', leader_conn_key)
  local lease = successor ~= '' and redis.call('ZSCORE', leases_key, successor)
  if lease and tonumber(lease) > now and redis.call('EXISTS', recovery_key) == 0 then
    local counter = tonumber(redis.call('GET', term_key) or '0') or 0
    local term = string.format('%d', math.max(counter, tonumber(held_term)) + 1)
    local run = run_of(redis.call('HGET', members_key, successor))
    announce(channel, 'elected', term, HANDOFF .. now .. HANDOFF_RUN .. run, successor)
    redis.call('SET', term_key, term)
    redis.call('SET', leader_key, leader_value(term, successor), 'PX', ttl_ms)
    redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
               'event', 'released', 'term', held_term, 'member', member, 'reason', reason, 't_ms', now)
    redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
               'event', 'elected', 'term', term, 'member', successor, 'reason', 'handoff', 't_ms', now)
    return tonumber(term)
  end
  redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
             'event', 'released', 'term', held_term, 'member', member, 'reason', reason, 't_ms', now)
  redis.call('DEL', leader_key)
  announce(channel, 'released', held_term, reason, member)
  return 0
end
"""
