"""The pool's membership scripts: register, heartbeat and leave (and forget, for an operator);
with the lead's (:mod:`leaderpool.backend.lead_scripts`) they are :class:`PoolScripts`, registered
once per client on :mod:`leaderpool.backend.script_registry`.

Every multi-key step of the protocol runs atomically inside Redis. Each script opens with its
contract (KEYS, ARGV, reply), then names its inputs; the pieces they share are
:mod:`leaderpool.backend.lua_snippets`. Time always comes from Redis (``TIME``), never from a client.
"""

from __future__ import annotations

from leaderpool.backend import lead_scripts
from leaderpool.backend.baddata import CHECKED_READS
from leaderpool.backend.lua_snippets import (
    GIVE_UP,
    INCARNATION,
    LIVE_MEMBERS,
    NOW,
    RAISE_TERM,
    RANKING,
    SPLIT_LEADER,
    TERM_GUARD,
    WIRE,
)
from leaderpool.backend.script_registry import Lua, ScriptSet

REGISTER = (
    """
-- register: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] term counter, KEYS[4] recovery,
-- KEYS[5] ranking zset, KEYS[6] leader key; ARGV[1] member, ARGV[2] record JSON, ARGV[3] ttl_ms,
-- ARGV[4] events channel, ARGV[5] highest term the member has seen, ARGV[6] its rank score,
-- ARGV[7] its incarnation ("": no check, as tools register), ARGV[8] the incarnation of a holder
-- proved dead, whose live record it may replace ("" none).
-- Stores the member's record, starts its lease, ranks it and announces it, unless the id is held
-- by another incarnation: its record's lease runs (and it is not the one proved dead), or a lead
-- is held under the id while the record is not ours (an earlier run's lead: never inherited, it
-- ends as any lead of a dead or frozen leader does). Returns {1, now} when registered,
-- {0, now, the record under the id or false, its lease left (ms), the lead's pttl or -2} when held.
local members_key, leases_key, term_key, recovery_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, record, ttl_ms, channel, seen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local incarnation, replace = ARGV[7] or '', ARGV[8] or ''
"""
    + NOW
    + WIRE
    + TERM_GUARD
    + INCARNATION
    + """
if incarnation ~= '' then
  local current = redis.call('HGET', members_key, member)
  local lease = tonumber(redis.call('ZSCORE', leases_key, member) or '0')
  local left = current and lease - now or 0
  if not same_run(current, incarnation) then
    local dead = replace ~= '' and same_run(current, replace)
    local _, holder = split_leader(redis.call('GET', KEYS[6]) or nil)
    if holder == member then
      return {0, now, current or false, left, redis.call('PTTL', KEYS[6])}
    end
    if current and left > 0 and not dead then
      return {0, now, current, left, -2}
    end
  end
end
guard_term(term_key, recovery_key, seen, ttl_ms)
redis.call('HSET', members_key, member, record)
redis.call('ZADD', leases_key, now + ttl_ms, member)
redis.call('ZADD', KEYS[5], ARGV[6], member)
announce(channel, 'joined', 0, '', member)
return {1, now}
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
-- KEYS[9] ranking zset; ARGV[8] the member's incarnation ("" no check); KEYS[10] lead_until;
-- ARGV[9] "1" to read the member's record (checking its incarnation) and the ranking's head this
-- beat (a listing beat does anyway): the member asks every eighth beat, and on a late one.
-- Refreshes the member's lease (ZADD XX: a lease that is gone is not started again, the member is
-- unknown) and, when leading, renews the leader key if it still holds ARGV[3] (compare-and-set on
-- member and term) to the deadline now + ttl, which it writes beside (lead_until), with the
-- registration of its connection. A follower reads the lead, its registration and its deadline in
-- one MGET (PTTL only when the deadline is not the lead's: the first beats after a claim), the term
-- counter only when the lead's term is below the term it saw (or there is no lead), its record only
-- when asked (a beat after a gap: another run may have taken the id; and every eighth beat): an
-- ordinary follower beat is TIME, MGET, ZADD. A beat asked to (ARGV[9], and every beat with
-- ARGV[4]) also reads the ranking's head, which says who is first and next and, in a pool
-- smaller than a batch, how many are live (else ZCOUNT) and who lapsed (dropped; else a few by
-- ZRANGEBYSCORE).
-- Returns {status, now, leader value or false, leader pttl, resigned or false,
--          µs until the lead can be claimed, the leader's registration or false,
--          how many members are live (-1: not counted this beat), who ranks first or false (-1: not
--          read this beat), who is next after the leader or false, member, record, deadline, ...};
-- status 1 ok (renewed when leading), 0 leading but the key is no longer ours, -1 unknown member
-- (no lease, no record, or the record of another incarnation of the id: nothing is refreshed or
-- renewed, only a term reported above the counter is raised).
-- Hostile data: before its first write the beat reads each key it writes with a command of its
-- type (checked: a WRONGTYPE becomes the BADDATA refusal), or checks it with TYPE, or writes it
-- first with a command of its type (ZADD on the leases: it fails before anything is written); MGET
-- reads a key of another type as absent, so a string key it would write that MGET found absent is
-- checked with TYPE (the lead while vacant, lead_until and leader_conn at a term's first renewal).
local members_key, leases_key, leader_key, term_key, recovery_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, ttl_ms, held, want_members, seen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local leader_conn_key, watching_key, conn, watch = KEYS[7], KEYS[8], ARGV[6], ARGV[7]
local until_key, ranking_key = KEYS[10], KEYS[9]
"""
    + NOW
    + SPLIT_LEADER
    + RAISE_TERM
    + CHECKED_READS
    + INCARNATION
    + RANKING
    + """
local ranks = want_members == '1' or ARGV[9] == '1'
local check = ranks
-- reads first: they check the types of the keys written below
local read = ranks and redis.call('MGET', leader_key, leader_conn_key, until_key, KEYS[6])
             or redis.call('MGET', leader_key, leader_conn_key, until_key)
local value, registration, deadline_read, resigned = read[1], read[2], read[3], read[4] or false
local term_text = split_leader(value or nil)
local value_term = term_text and tonumber(term_text)
local record = check and checked('hash', 'HGET', members_key, member)
local counter = false
if not value_term or value_term < seen then
  counter = checked('string', 'GET', term_key)
  if seen > (tonumber(counter or '0') or 0) then check_type(recovery_key, 'string') end
end
if not value then check_type(leader_key, 'string') end
local stale = value_term and value_term < seen
if stale then check_type(leader_conn_key, 'string') check_type(until_key, 'string') end
if watch ~= '' then check_type(watching_key, 'hash') end
local renew = held ~= '' and value == held
if renew then
  if not deadline_read then check_type(until_key, 'string') end
  if conn ~= '' and not registration then check_type(leader_conn_key, 'string') end
end
local heads, first, nxt, gone, live, lapsed = false, false, false, {}, false, false
if ranks then heads = checked('zset', 'ZRANGE', ranking_key, 0, RANK_BATCH - 1) end
local head_leases = heads and #heads > 0 and checked('zset', 'ZMSCORE', leases_key, unpack(heads))
if heads and not bad_data then
  local _, holder = split_leader(value or nil)
  first, nxt, gone, live, lapsed = read_heads(ranking_key, leases_key, now, holder, resigned, heads,
                                              head_leases or {}, member)
  -- the prune drops lapsed members' records and watch reports too (ZRANGEBYSCORE's, in a bigger pool)
  if want_members == '1' or not lapsed or #lapsed > 0 then
    check_type(members_key, 'hash')
    check_type(watching_key, 'hash')
  end
end
if bad_data then return bad_data end
local function unknown()
  if counter then raise_term(term_key, recovery_key, counter, seen, ttl_ms) end
  return {-1, now}
end
if check and (not record or not same_run(record, ARGV[8] or '')) then return unknown() end
local refreshed = redis.pcall('ZADD', leases_key, 'XX', 'CH', now + ttl_ms, member)
if type(refreshed) == 'table' and refreshed.err then
  check_type(leases_key, 'zset')
  return bad_data or refreshed
end
if refreshed == 0 and not redis.call('ZSCORE', leases_key, member) then return unknown() end
if counter then raise_term(term_key, recovery_key, counter, seen, ttl_ms) end
if watch == '-' then
  redis.call('HDEL', watching_key, member)
elseif watch ~= '' then
  redis.call('HSET', watching_key, member, watch)
end
local status = 1
if stale then
  -- A lead in a term below one this member saw: granted again after Redis lost its data, to a
  -- member that knew no earlier term (nothing could hold its claim). It ends now; its holder
  -- finds the key gone at its next renewal, and claims wait out the recovery (raise_term).
  redis.call('DEL', leader_key, leader_conn_key, until_key)
  value, registration, deadline_read, renew = false, false, false, false
end
local pttl
if renew then
  local deadline = now + ttl_ms
  redis.call('PEXPIREAT', leader_key, deadline)
  redis.call('SET', until_key, term_text .. SEP .. deadline, 'PXAT', deadline)
  if conn ~= '' then
    registration = term_text .. SEP .. conn
    redis.call('SET', leader_conn_key, registration, 'PXAT', deadline)
  end
  pttl = ttl_ms
else
  if held ~= '' then status = 0 end
  local until_term, deadline = split_leader(deadline_read or nil)
  if not value then
    pttl = -2
  elseif until_term and tonumber(until_term) == value_term then
    pttl = math.max(tonumber(deadline) - now, 0)
  else
    pttl = redis.call('PTTL', leader_key)
  end
end
local reply = {status, now, value, pttl, false, free_in_us(pttl), registration, -1, -1, false}
if ranks then
  if not live then
    live = redis.call('ZCOUNT', leases_key, '(' .. now, '+inf')
    prune_lapsed(members_key, leases_key, watching_key, ranking_key, now, 4)
  else
    for i = 1, #lapsed do
      redis.call('ZREM', leases_key, lapsed[i])
      redis.call('ZREM', ranking_key, lapsed[i])
      redis.call('HDEL', members_key, lapsed[i])
      redis.call('HDEL', watching_key, lapsed[i])
    end
  end
  for i = 1, #gone do redis.call('ZREM', ranking_key, gone[i]) end
  reply[5], reply[8], reply[9], reply[10] = resigned, live, first, nxt
end
if want_members == '1' then
"""
    + LIVE_MEMBERS
    + """
  local live_list = live_members(members_key, leases_key, now, true, watching_key, ranking_key)
  for i = 1, #live_list do reply[#reply + 1] = live_list[i] end
end
return reply
"""
)

LEAVE = (
    """
-- leave: KEYS[1] members hash, KEYS[2] leases zset, KEYS[3] leader key, KEYS[4] history stream,
-- KEYS[5] term counter, KEYS[6] recovery, KEYS[7] leader_conn, KEYS[8] watching hash, KEYS[9] ranking;
-- ARGV[1] member, ARGV[2] reason, ARGV[3] events channel,
-- ARGV[4] event ("left" or "evicted"), ARGV[5] successor ("" for none), ARGV[6] its lease (ms),
-- ARGV[7] the leaving incarnation ("": whichever, as an operator evicts).
-- Nothing is done when the record under the id is another incarnation's (the id was taken
-- over after this one lapsed: its record and any lead are the other's).
-- Removes the member and, if it leads, ends its lead in the same step, so no one waits for a
-- member that has gone. Returns {1 if it was a member else 0, the released term or 0,
-- the successor's term or 0}.
local members_key, leases_key, leader_key, history_key, term_key, recovery_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local member, reason, channel, event, successor, ttl_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
"""
    + NOW
    + WIRE
    + GIVE_UP
    + INCARNATION
    + """
local current = redis.call('HGET', members_key, member)
if current and not same_run(current, ARGV[7] or '') then
  return {0, 0, 0}
end
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
                   released, member, reason, successor, ttl_ms, now, KEYS[7], members_key)
end
announce(channel, event, 0, reason, member)
return {was_member, released, handed}
"""
)

HEARTBEAT_ARITY = (10, 9)
"""How many keys and arguments the heartbeat script takes (:func:`leaderpool.backend.pool_store.heartbeat_call`)."""
LEAVE_ARITY = (9, 7)
"""How many keys and arguments the leave script takes (:func:`leaderpool.backend.pool_store.leave_call`)."""

HEARTBEAT_KEY_TYPES = ("hash", "zset", "string", "string", "string", "string", "string", "hash", "zset", "string")
"""The heartbeat's keys' types: members, leases, leader, term, recovery, resigned, leader_conn,
watching, ranking, lead_until. The heartbeat checks them itself, each only when a beat touches it
(:data:`~leaderpool.backend.baddata.CHECKED_READS`); a TYPE per key before every beat cost Redis more
than the beat (``python -m benchmarks.type_guard`` compares both)."""
LEAVE_KEY_TYPES = ("hash", "zset", "string", "stream", "string", "string", "string", "hash", "zset")
"""The leave script's: members, leases, leader, history, term, recovery, leader_conn, watching, ranking."""

FORGET = """
-- forget: KEYS[1] leader key, KEYS[2] leases zset, KEYS[3..] every other key of the pool;
-- ARGV[1] "1" to delete even with a leader or live members.
-- Returns {deleted keys (-1: refused), live members, leader value or false}.
local leader_key, leases_key = KEYS[1], KEYS[2]
local force = ARGV[1] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZCOUNT', leases_key, '(' .. now, '+inf')
local leader = redis.call('GET', leader_key)
if (live > 0 or leader) and not force then return {-1, live, leader} end
return {redis.call('DEL', unpack(KEYS)), live, leader}
"""

_h, _z, _s, _x = "hash", "zset", "string", "stream"  # the type each KEYS[i] must have, if it exists


class PoolScripts(ScriptSet):
    """A pool's scripts (:class:`~leaderpool.backend.pool_store.PoolStore` calls them)."""

    register = Lua("register", REGISTER, (_h, _z, _s, _s, _z, _s))
    heartbeat = Lua("heartbeat", HEARTBEAT)  # checks its keys itself
    observe = Lua("observe", lead_scripts.OBSERVE, (_h, _z, _s, _s, _h, _s, _z))
    glance = Lua("glance", lead_scripts.GLANCE, (_h, _z, _s, _s, _s, _z))
    claim = Lua("claim", lead_scripts.CLAIM, (_s, _s, _h, _z, _x, _s, _s))
    release = Lua("release", lead_scripts.RELEASE, (_s, _s, _x, _s, _z, _s, _s, _h))
    leave = Lua("leave", LEAVE, LEAVE_KEY_TYPES)
    leader_record = Lua("leader_record", lead_scripts.LEADER_RECORD, (_s, _h))
    bury = Lua("bury", lead_scripts.BURY, (_s, _s, _h, _z, _x, _s, _s, _h, _z))
    forget = Lua("forget", FORGET)
