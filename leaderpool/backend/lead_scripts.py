"""The pool's lead scripts: claim, release, bury (a dead leader's lead, then a claim), and the
reads a member and the tools make (observe, glance, leader_record). Registered with the
membership's as :class:`~leaderpool.backend.pool_scripts.PoolScripts`.

Each script opens with its contract (KEYS, ARGV, reply), then names its inputs; the pieces they
share are :mod:`leaderpool.backend.lua_snippets`.
"""

from __future__ import annotations

from leaderpool.backend.lua_snippets import GIVE_UP, INCARNATION, LIVE_MEMBERS, NOW, RANKING, TERM_GUARD, WIRE

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
    + NOW
    + LIVE_MEMBERS
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
# dead leader): live means its lease runs and the record under its id is its incarnation's.
# Returns the claim's reply (see CLAIM).
_CLAIM_LEAD = """
local function claim_lead(leader_key, term_key, members_key, leases_key, history_key, recovery_key,
                          leader_conn_key, member, ttl_ms, seen, channel, conn, incarnation)
  local deadline = redis.call('ZSCORE', leases_key, member)
  local record = redis.call('HGET', members_key, member)
  if not deadline or tonumber(deadline) <= now or not same_run(record, incarnation) then
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
-- connection the member registers for its leadership ("" none), ARGV[6] its incarnation ("" no check).
-- Takes a vacant lead (SET NX PX) for a live member. The new term is above both the stored
-- counter and every term any live member has reported, so terms never go back even if Redis
-- lost data. Returns {1, term, now} when elected, {0, leader value, pttl, µs until it can be
-- claimed} when the lead is held,
-- {-1, now} when the member is not live in the pool, {-2, ms} while claims wait for recovery.
local member, ttl_ms, seen, channel, conn = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
"""
    + NOW
    + WIRE
    + TERM_GUARD
    + INCARNATION
    + _CLAIM_LEAD
    + """
return claim_lead(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
                  member, ttl_ms, seen, channel, conn, ARGV[6] or '')
"""
)

RELEASE = (
    """
-- release: KEYS[1] leader key, KEYS[2] resigned key, KEYS[3] history stream, KEYS[4] term counter,
-- KEYS[5] leases zset, KEYS[6] recovery, KEYS[7] leader_conn, KEYS[8] members hash (the successor's run is
-- named in the grant); ARGV[1] the leader value held, ARGV[2] reason,
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
    + NOW
    + WIRE
    + GIVE_UP
    + """
local term, member = split_leader(held)
-- ranked last even if the lead lapsed meanwhile (say, its on_revoked outlasted the lease):
-- a member that asked to resign must not win the next election instead of its successor
if exclude_ms > 0 then
  redis.call('SET', resigned_key, member, 'PX', exclude_ms)
end
if redis.call('GET', leader_key) ~= held then return {0, 0} end
return {1, give_up(leader_key, term_key, leases_key, recovery_key, history_key, channel,
                   term, member, reason, successor, ttl_ms, now, KEYS[7], KEYS[8])}
"""
)

BURY = (
    """
-- bury: KEYS[1] leader key, KEYS[2] term counter, KEYS[3] members hash, KEYS[4] leases zset,
-- KEYS[5] history stream, KEYS[6] recovery, KEYS[7] leader_conn, KEYS[8] watching hash, KEYS[9] ranking;
-- ARGV[1] the dead leader's value "<term>|<member>", ARGV[2] its registration "<term>|<client id>"
-- as read, ARGV[3] reason, then the claim's ARGV: ARGV[4] claimant, ARGV[5] ttl_ms, ARGV[6] highest
-- term the claimant has seen, ARGV[7] events channel, ARGV[8] the claimant's client id ("" none);
-- ARGV[9] the dead leader's connection channel to prove its death by ("" proved already),
-- ARGV[10] the claimant's incarnation ("" no check).
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
    + NOW
    + WIRE
    + TERM_GUARD
    + INCARNATION
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
                  member, ttl_ms, seen, channel, conn, ARGV[10] or '')
"""
)

LEADER_RECORD = (
    """
-- leader_record: KEYS[1] leader key, KEYS[2] members hash.
-- Returns {leader value, pttl, the leader's member record or false}, or {} when vacant.
local leader_key, members_key = KEYS[1], KEYS[2]
"""
    + WIRE
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
    + NOW
    + WIRE
    + RANKING
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
