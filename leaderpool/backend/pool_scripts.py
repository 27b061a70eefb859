"""The Lua scripts: every multi-key step of the protocol runs atomically inside Redis.

Each script opens with its contract (KEYS, ARGV, reply), then names its inputs. Scripts are
registered once per client and called by EVALSHA; redis-py reloads them on NOSCRIPT (for
example after a Redis restart). Time always comes from Redis (``TIME``), never from a client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from leaderpool.backend.baddata import CHECKED_READS, is_bad_data_reply, type_guard
from leaderpool.backend.protocol import HANDOFF_PREFIX, SEPARATOR
from leaderpool.errors import BadPoolData
from leaderpool.util.constants import HISTORY_MAXLEN

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
# and their watch reports (without, it only reads: for tooling, and for replicas).
_LIVE_MEMBERS = """
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
_RANKING = """
local RANK_SCAN, RANK_BATCH = 64, 8
local function rank_heads(ranking_key, leases_key, now, leader, resigned)
  local first, nxt, spare_first, spare_next, gone = false, false, false, false, {}
  for start = 0, RANK_SCAN - 1, RANK_BATCH do
    local batch = redis.call('ZRANGE', ranking_key, start, start + RANK_BATCH - 1)
    for i = 1, #batch do
      local m = batch[i]
      local lease = redis.call('ZSCORE', leases_key, m)
      if not lease then
        gone[#gone + 1] = m
      elseif tonumber(lease) > now then
        if m == resigned then
          spare_first = m
          if m ~= leader then spare_next = m end
        else
          if not first then first = m end
          if not nxt and m ~= leader then nxt = m end
        end
      end
      if first and nxt then break end
    end
    if (first and nxt) or #batch < RANK_BATCH then break end
  end
  for i = 1, #gone do redis.call('ZREM', ranking_key, gone[i]) end
  return first or spare_first, nxt or spare_next
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
_SPLIT_LEADER = (
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
_WIRE = (
    _SPLIT_LEADER
    + """
local function leader_value(term, member)
  return term .. SEP .. member
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
_RAISE_TERM = """
-- counter: the term counter as read (GET; garbage counts as lost)
local function raise_term(term_key, recovery_key, counter, seen, ttl_ms)
  if seen > (tonumber(counter or '0') or 0) then
    redis.call('SET', term_key, string.format('%d', seen))
    redis.call('SET', recovery_key, '1', 'PX', ttl_ms)
  end
end
"""
_TERM_GUARD = (
    _RAISE_TERM
    + """
local function guard_term(term_key, recovery_key, seen, ttl_ms)
  raise_term(term_key, recovery_key, redis.call('GET', term_key), seen, ttl_ms)
end
"""
)

REGISTER = (
    """
-- register: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] term counter, KEYS[4] recovery,
-- KEYS[5] ranking zset; ARGV[1] member, ARGV[2] record JSON, ARGV[3] ttl_ms, ARGV[4] events channel,
-- ARGV[5] highest term the member has seen, ARGV[6] its rank score.
-- Stores the member's record, starts its lease, ranks it and announces it. Returns the Redis time (ms).
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
redis.call('ZADD', KEYS[5], ARGV[6], member)
announce(channel, 'joined', 0, '', member)
return now
"""
)

HEARTBEAT = (
    """
-- heartbeat: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] term counter,
-- KEYS[5] recovery, KEYS[6] resigned, KEYS[7] leader_conn, KEYS[8] watching hash; ARGV[1] member,
-- ARGV[2] ttl_ms, ARGV[3] the leader value this member holds ("" if following), ARGV[4] "1" to
-- list the live members (and who just resigned) as well, ARGV[5] highest term seen, ARGV[6] the
-- client id of the leader's registered connection ("" none), ARGV[7] the member's watch report
-- ("" unchanged, "-" none, else the leader value whose endpoint it is connected to);
-- KEYS[9] ranking zset.
-- Refreshes the member's lease and, when leading, renews the leader key if it still holds
-- ARGV[3] (compare-and-set on member and term), with the registration of its connection; drops
-- a few lapsed members. O(log N) without ARGV[4]: the ranking's head says who is first and next,
-- read by about one beat in three, a leader's too (a safety net: members learn of changes from
-- the pool's messages and glance), the rest of the beats are O(1).
-- Returns {status, now, leader value or false, leader pttl, resigned or false,
--          µs until the lead can be claimed, the leader's registration or false,
--          how many members are live, who ranks first or false (-1: not read this beat),
--          who is next after the leader or false, member, record, deadline, ...};
-- status 1 ok (renewed when leading), 0 leading but the key is no longer ours, -1 unknown member.
-- Hostile data: every key this beat may touch is read with a command of its type, or checked
-- with TYPE, before the first write (see leaderpool.backend.baddata.CHECKED_READS); a key of another type
-- refuses the beat (BADDATA) with nothing written. An ordinary follower beat touches five keys.
local members_key, leases_key, leader_key, term_key, recovery_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, ttl_ms, held, want_members, seen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local leader_conn_key, watching_key, conn, watch = KEYS[7], KEYS[8], ARGV[6], ARGV[7]
"""
    + _NOW
    + _SPLIT_LEADER
    + _RAISE_TERM
    + CHECKED_READS
    + """
local ranks = want_members == '1' or now % 3 == 0
-- reads first: they check the types of the keys written below
local is_member = checked('hash', 'HEXISTS', members_key, member)
local counter = checked('string', 'GET', term_key)
checked('zset', 'ZSCORE', leases_key, member)  -- only to check the type: the lease is written next
local value = checked('string', 'GET', leader_key)
local registration = checked('string', 'GET', leader_conn_key)
local resigned = ranks and checked('string', 'GET', KEYS[6])
if seen > (tonumber(counter or '0') or 0) then check_type(recovery_key, 'string') end
if ranks or watch ~= '' then check_type(watching_key, 'hash') end
if ranks then check_type(KEYS[9], 'zset') end
if bad_data then return bad_data end
raise_term(term_key, recovery_key, counter, seen, ttl_ms)
if is_member == 0 then
  return {-1, now}
end
redis.call('ZADD', leases_key, now + ttl_ms, member)
if watch == '-' then
  redis.call('HDEL', watching_key, member)
elseif watch ~= '' then
  redis.call('HSET', watching_key, member, watch)
end
local status = 1
if value and (tonumber((split_leader(value))) or seen) < seen then
  -- A lead in a term below one this member saw: granted again after Redis lost its data, to a
  -- member that knew no earlier term (nothing could hold its claim). It ends now; its holder
  -- finds the key gone at its next renewal, and claims wait out the recovery (raise_term).
  redis.call('DEL', leader_key, leader_conn_key)
  value, registration = false, false
end
if held ~= '' then
  if value == held then
    redis.call('PEXPIRE', leader_key, ttl_ms)
    if conn ~= '' then
      registration = split_leader(held) .. SEP .. conn
      redis.call('SET', leader_conn_key, registration, 'PX', ttl_ms)
    end
  else
    status = 0
  end
end
local pttl = redis.call('PTTL', leader_key)
local reply = {status, now, value, pttl, false, free_in_us(pttl), registration,
               redis.call('ZCOUNT', leases_key, '(' .. now, '+inf'), -1, false}
if ranks then  -- its functions defined only here: an ordinary beat does not pay for them
"""
    + _RANKING
    + """
  prune_lapsed(members_key, leases_key, watching_key, KEYS[9], now, 4)
  reply[5] = resigned
  local _, holder = split_leader(value or nil)
  reply[9], reply[10] = rank_heads(KEYS[9], leases_key, now, holder, resigned)
end
if want_members == '1' then
"""
    + _LIVE_MEMBERS
    + """
  local live = live_members(members_key, leases_key, now, true, watching_key, KEYS[9])
  for i = 1, #live do reply[#reply + 1] = live[i] end
end
return reply
"""
)

OBSERVE = (
    """
-- observe: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] resigned key,
-- KEYS[5] watching hash (lapsed members' watch reports are dropped with them), KEYS[6] leader_conn,
-- KEYS[7] ranking zset (lapsed members leave it too);
-- ARGV[1] "1" to drop lapsed members first ("0": read only), ARGV[2] "1" to return the watch
-- reports as well (for status).
-- Reads the whole pool at one instant.
-- Returns {now, leader value or false, leader pttl, resigned member or false,
--          µs until the lead can be claimed, the leader's registration or false,
--          {member, report, ...} or false, member, record, deadline, ...}.
local members_key, leases_key, leader_key, resigned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
"""
    + _NOW
    + _LIVE_MEMBERS
    + """
local pttl = redis.call('PTTL', leader_key)
local reply = {now, redis.call('GET', leader_key), pttl, redis.call('GET', resigned_key), free_in_us(pttl),
               redis.call('GET', KEYS[6]), ARGV[2] == '1' and redis.call('HGETALL', KEYS[5])}
local live = live_members(members_key, leases_key, now, ARGV[1] == '1', KEYS[5], KEYS[7])
for i = 1, #live do reply[#reply + 1] = live[i] end
return reply
"""
)

# Takes a vacant lead for a live member (the claim script, and the bury script after it removed a
# dead leader). Returns the claim's reply (see CLAIM).
_CLAIM_LEAD = """
local function claim_lead(leader_key, term_key, members_key, leases_key, history_key, recovery_key,
                          leader_conn_key, member, ttl_ms, seen, channel, conn)
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
  if conn ~= '' then
    redis.call('SET', leader_conn_key, term .. SEP .. conn, 'PX', ttl_ms)
  else
    redis.call('DEL', leader_conn_key)
  end
  redis.call('ZADD', leases_key, now + ttl_ms, member)
  redis.call('XADD', history_key, 'MAXLEN', '~', HISTORY_MAXLEN, '*',
             'event', 'elected', 'term', term, 'member', member, 'reason', '', 't_ms', now)
  announce(channel, 'elected', term, '', member)
  return {1, term, now}
end
"""

CLAIM = (
    """
-- claim: KEYS[1] leader key, KEYS[2] term counter, KEYS[3] members hash, KEYS[4] leases zset,
-- KEYS[5] history stream, KEYS[6] recovery, KEYS[7] leader_conn; ARGV[1] member, ARGV[2] ttl_ms,
-- ARGV[3] highest term the member has seen, ARGV[4] events channel, ARGV[5] the client id of the
-- connection the member registers for its leadership ("" none).
-- Takes a vacant lead (SET NX PX) for a live member. The new term is above both the stored
-- counter and every term any live member has reported, so terms never go back even if Redis
-- lost data. Returns {1, term, now} when elected, {0, leader value, pttl, µs until it can be
-- claimed} when the lead is held,
-- {-1, now} when the member is not live in the pool, {-2, ms} while claims wait for recovery.
local member, ttl_ms, seen, channel, conn = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
"""
    + _NOW
    + _WIRE
    + _TERM_GUARD
    + _CLAIM_LEAD
    + """
return claim_lead(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                  member, ttl_ms, seen, channel, conn)
"""
)

# Ends a lead for a reason: hands it straight to the successor when that member is live and no
# term recovery is under way (one step instead of release-then-claim: the successor acts on the
# announcement, which carries Redis's time), else deletes the key so the next in line claims.
_GIVE_UP = """
local function give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                       held_term, member, reason, successor, ttl_ms, now, leader_conn_key)
  -- the successor registers its own connection at its first renewal
  redis.call('DEL', leader_conn_key)
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
-- KEYS[5] leases zset, KEYS[6] recovery, KEYS[7] leader_conn; ARGV[1] the leader value held, ARGV[2] reason,
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
                   term, member, reason, successor, ttl_ms, now, KEYS[7])}
"""
)

LEAVE = (
    """
-- leave: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] history stream,
-- KEYS[5] term counter, KEYS[6] recovery, KEYS[7] leader_conn, KEYS[8] watching hash, KEYS[9] ranking;
-- ARGV[1] member, ARGV[2] reason, ARGV[3] events channel,
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
redis.call('HDEL', KEYS[8], member)
redis.call('ZREM', KEYS[9], member)
local held_term, holder = split_leader(redis.call('GET', leader_key) or nil)
local released, handed = 0, 0
if holder == member then
  -- the hand-over is announced first: the successor acts on the first message it reads
  released = held_term
  handed = give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                   released, member, reason, successor, ttl_ms, now, KEYS[7])
end
announce(channel, event, 0, reason, member)
return {was_member, released, handed}
"""
)

BURY = (
    """
-- bury: KEYS[1] leader key, KEYS[2] term counter, KEYS[3] members hash, KEYS[4] leases zset,
-- KEYS[5] history stream, KEYS[6] recovery, KEYS[7] leader_conn, KEYS[8] watching hash, KEYS[9] ranking;
-- ARGV[1] the dead leader's value "<term>|<member>", ARGV[2] its registration "<term>|<client id>"
-- as read, ARGV[3] reason, then the claim's ARGV: ARGV[4] claimant, ARGV[5] ttl_ms, ARGV[6] highest
-- term the claimant has seen, ARGV[7] events channel, ARGV[8] the claimant's client id ("" none);
-- ARGV[9] the dead leader's connection channel to prove its death by ("" proved already).
-- The claimant saw the leader's liveness endpoint close, and the leader's process died if its
-- registered connection is gone: proved already (CLIENT LIST, or a refused reconnect), or here,
-- by the connection's own channel having no subscriber any more (PUBSUB NUMSUB; the registration
-- says the connection subscribed to it before it was written, and it never unsubscribes).
-- Then compare-and-delete on member and term, and on the registration, so a newer lead (or a
-- leader that registered a new connection) is never touched; the dead member leaves the pool
-- with it, and the claimant claims as usual (a higher term). Returns {-3} when the lead or its
-- registration had changed, {-4} when the connection is still subscribed or Redis refused to
-- say (nothing done either way), else the claim's reply (see CLAIM).
local value, registration, reason = ARGV[1], ARGV[2], ARGV[3]
local member, ttl_ms, seen, channel, conn = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local proof_channel = ARGV[9]
"""
    + _NOW
    + _WIRE
    + _TERM_GUARD
    + _CLAIM_LEAD
    + """
if redis.call('GET', KEYS[1]) ~= value or redis.call('GET', KEYS[7]) ~= registration then
  return {-3}
end
if proof_channel ~= '' then
  -- pcall: an ACL without PUBSUB NUMSUB is no proof, and no script error either
  local counts = redis.pcall('PUBSUB', 'NUMSUB', proof_channel)
  if type(counts) ~= 'table' or counts.err or tonumber(counts[2]) ~= 0 then
    return {-4}
  end
end
local dead_term, dead = split_leader(value)
redis.call('DEL', KEYS[1], KEYS[7])
redis.call('HDEL', KEYS[3], dead)
redis.call('ZREM', KEYS[4], dead)
redis.call('HDEL', KEYS[8], dead)
redis.call('ZREM', KEYS[9], dead)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', HISTORY_MAXLEN, '*',
           'event', 'released', 'term', dead_term, 'member', dead, 'reason', reason, 't_ms', now)
announce(channel, 'released', dead_term, reason, dead)
return claim_lead(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                  member, ttl_ms, seen, channel, conn)
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

GLANCE = (
    """
-- glance: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] resigned key,
-- KEYS[5] leader_conn, KEYS[6] ranking zset; ARGV[1] the member looking.
-- What a follower needs after a change, in O(log N) (observe lists the whole pool):
-- Returns {now, leader value or false, leader pttl, resigned or false, µs until the lead can be
--          claimed, the leader's registration or false, who ranks first or false, who is next
--          after the leader or false, the leader's record or false, the member's lease deadline
--          or false, the member's record or false, how many members are live}.
local members_key, leases_key, leader_key, resigned_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
"""
    + _NOW
    + _WIRE
    + _RANKING
    + """
local value = redis.call('GET', leader_key)
local pttl = redis.call('PTTL', leader_key)
local resigned = redis.call('GET', resigned_key)
local _, holder = split_leader(value or nil)
local first, nxt = rank_heads(KEYS[6], leases_key, now, holder, resigned)
local record = holder and redis.call('HGET', members_key, holder) or false
return {now, value, pttl, resigned, free_in_us(pttl), redis.call('GET', KEYS[5]), first, nxt, record,
        redis.call('ZSCORE', leases_key, ARGV[1]), redis.call('HGET', members_key, ARGV[1]),
        redis.call('ZCOUNT', leases_key, '(' .. now, '+inf')}
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


# ---- unique names (leaderpool.names.registry) ----
# A name's record starts with its owner, '{"pool":...,"member":...,' (leaderpool.names.registry builds
# it, JSON with a fixed key order), so a script compares owners by prefix without decoding.

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
-- over from another holder (re_register_name).
-- Gives the name to a live member until its lease ends (its heartbeat moves the deadline on).
-- Returns {1, ms until the name's deadline} when registered (or already ours: the value is
-- updated), {0, holder record, ms left} when another live member holds it, {-1} when the
-- member is not live.
local owners_key, deadlines_key, leases_key, members_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name, owner, record, member, channel, takeover = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
"""
    + _NOW
    + _NAMES
    + """
local lease = redis.call('ZSCORE', leases_key, member)
if not lease or tonumber(lease) <= now or redis.call('HEXISTS', members_key, member) == 0 then
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
    + _NOW
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
    + _NOW
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
HEARTBEAT_ARITY = (9, 7)
"""How many keys and arguments the heartbeat script takes (:func:`leaderpool.backend.pool_store.heartbeat_call`)."""
LEAVE_ARITY = (9, 6)
"""How many keys and arguments the leave script takes (:func:`leaderpool.backend.pool_store.leave_call`)."""

HEARTBEAT_KEY_TYPES = ("hash", "zset", "string", "string", "string", "string", "string", "hash", "zset")
"""The heartbeat's keys' types: members, leases, leader, term, recovery, resigned, leader_conn,
watching, ranking. The heartbeat checks them itself, each only when a beat touches it
(:data:`~leaderpool.backend.baddata.CHECKED_READS`); a TYPE per key before every beat cost Redis more
than the beat (``python -m benchmarks.type_guard`` compares both)."""
LEAVE_KEY_TYPES = ("hash", "zset", "string", "stream", "string", "string", "string", "hash", "zset")
"""The leave script's: members, leases, leader, history, term, recovery, leader_conn, watching, ranking."""

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

# ---- cluster-wide locks (leaderpool.locks.blocking_lock) ----

LOCK_ACQUIRE = """
-- lock_acquire: KEYS[1] lock key (python-redis-lock's "lock:NAME"), KEYS[2] fencing-token
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
        # key_types: checked before anything runs (hostile data: see leaderpool.backend.baddata)
        self._script = client.register_script(type_guard(key_types) + source if key_types else source)

    async def __call__(self, keys: Sequence[str], args: Sequence[str | bytes | int] = ()) -> Any:
        return await self.translated(self._script(keys=keys, args=args))

    @property
    def sha(self) -> str:
        """The script's SHA1 (for EVALSHA in a batch: :mod:`leaderpool.backend.batching`)."""
        return str(self._script.sha)

    def raw(self, keys: Sequence[str], args: Sequence[str | bytes | int] = ()) -> Awaitable[Any]:
        """The script called directly (loading it if Redis lost it), errors untranslated."""
        return self._script(keys=keys, args=args)  # type: ignore[no-any-return]

    async def queue(self, pipeline: Any, keys: Sequence[str], args: Sequence[str | bytes | int] = ()) -> None:
        """Add this script to a redis-py pipeline (run it with :meth:`translated`)."""
        await self._script(keys=keys, args=args, client=pipeline)

    async def translated(self, call: Awaitable[Any]) -> Any:
        """Await ``call`` (this script, or a pipeline holding it), its errors translated."""
        try:
            return await call
        except Exception as exc:
            if is_bad_data_reply(exc):
                bad = BadPoolData(f"script {self.name} refused: {exc}: delete or repair that key")
                bad.problem = str(exc)
                raise bad from exc
            # imported on the error path: a one-shot CLI command runs scripts without redis-py
            from leaderpool.backend.redis_errors import COMMAND_REFUSED, translate

            if not isinstance(exc, COMMAND_REFUSED):
                raise
            translated = translate(exc, script=self.name)
            assert translated is not None  # an error reply to a script is always translated
            raise translated from exc


class Scripts:
    """The scripts registered on one client."""

    def __init__(self, client: ScriptHost) -> None:
        h, z, s, x = "hash", "zset", "string", "stream"  # the type each KEYS[i] must have, if it exists
        pool_leave = LEAVE_KEY_TYPES
        self.register = NamedScript(client, "register", REGISTER, (h, z, s, s, z))
        self.heartbeat = NamedScript(client, "heartbeat", HEARTBEAT)  # checks its keys itself
        self.observe = NamedScript(client, "observe", OBSERVE, (h, z, s, s, h, s, z))
        self.glance = NamedScript(client, "glance", GLANCE, (h, z, s, s, s, z))
        self.claim = NamedScript(client, "claim", CLAIM, (s, s, h, z, x, s, s))
        self.release = NamedScript(client, "release", RELEASE, (s, s, x, s, z, s, s))
        self.leave = NamedScript(client, "leave", LEAVE, pool_leave)
        self.leader_record = NamedScript(client, "leader_record", LEADER_RECORD, (s, h))
        self.bury = NamedScript(client, "bury", BURY, (s, s, h, z, x, s, s, h, z))
        self.fenced_set = NamedScript(client, "fenced_set", FENCED_SET)
        self.name_register = NamedScript(client, "name_register", NAME_REGISTER)
        self.name_unregister = NamedScript(client, "name_unregister", NAME_UNREGISTER)
        self.names_read = NamedScript(client, "names_read", NAMES_READ)
        unchecked = (None,) * HEARTBEAT_ARITY[0]  # the pool's keys: the heartbeat checks them
        self.heartbeat_names = NamedScript(client, "heartbeat_names", HEARTBEAT_NAMES, (*unchecked, h, z))
        self.leave_names = NamedScript(client, "leave_names", LEAVE_NAMES, (*pool_leave, h, z))
        self.names_drop_owner = NamedScript(client, "names_drop_owner", NAMES_DROP_OWNER)


_registered: WeakKeyDictionary[ScriptHost, Scripts] = WeakKeyDictionary()


def scripts_for(client: ScriptHost) -> Scripts:
    """The :class:`Scripts` of ``client``, registered on first use."""
    scripts = _registered.get(client)
    if scripts is None:
        scripts = _registered[client] = Scripts(client)
    return scripts
