"""The Lua scripts of a pool's work: each opens with its contract, then names its inputs.

Every step that a stale leader must not take checks the leader key first: a leader acknowledges,
claims and dead-letters only while the key holds its own ``"<term>|<member>"``, so an ack from a
term that has ended is refused inside Redis, whatever the old leader believes.
"""

from __future__ import annotations

from leaderpool.backend.lua_snippets import NOW
from leaderpool.backend.script_registry import Lua, ScriptSet

# Whether some live member runs a handler (members that crashed stay in the handlers hash until
# they rejoin or the pool is forgotten: their lease decides).
_TAKERS = """
local function has_lease(leases_key, member, now)
  local deadline = redis.call('ZSCORE', leases_key, member)
  return deadline and tonumber(deadline) > now
end
local function live_takers(handlers_key, leases_key, now)
  local out = {}
  local names = redis.call('HKEYS', handlers_key)
  for i = 1, #names do
    if has_lease(leases_key, names[i], now) then out[#out + 1] = names[i] end
  end
  return out
end
"""

# Moves one pending job to the dead-letter stream (the job's payload, error and deliveries),
# which keeps about dead_cap entries (MAXLEN ~: the oldest go), and tells a waiting caller; the
# job leaves the job stream.
_DEAD_LETTER = """
local function dead_letter(stream, group, dead, dead_cap, id, error, deliveries)
  local entry = redis.call('XRANGE', stream, id, id)
  if #entry > 0 then
    local f = entry[1][2]
    local fields = {}
    for i = 1, #f, 2 do fields[f[i]] = f[i + 1] end
    redis.call('XADD', dead, 'MAXLEN', '~', dead_cap, '*', 'job', id, 'p', fields['p'] or 'null', 'error', error,
               'deliveries', deliveries)
    if fields['r'] then
      redis.call('RPUSH', fields['r'], cjson.encode({error = error, deliveries = tonumber(deliveries)}))
      redis.call('PEXPIRE', fields['r'], tonumber(fields['x'] or '60000'))
    end
  end
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
end
"""

SUBMIT = (
    """
-- submit: KEYS[1] job stream, KEYS[2] leases zset, KEYS[3] handlers hash;
-- ARGV[1] cap (unfinished jobs), ARGV[2] "1": refuse unless a live member runs a handler,
-- ARGV[3] reply key ("" for none), ARGV[4] reply ttl ms, ARGV[5..] payloads (JSON).
-- Appends every payload or none. Returns {1, id, ...}, {-1, length} when the stream holds the cap,
-- {-2} when nobody could take the jobs.
local stream, leases_key, handlers_key = KEYS[1], KEYS[2], KEYS[3]
local cap, need_taker, reply, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
"""
    + NOW
    + _TAKERS
    + """
if need_taker == '1' and #live_takers(handlers_key, leases_key, now) == 0 then return {-2} end
local length = redis.call('XLEN', stream)
if length + #ARGV - 4 > cap then return {-1, length} end
local out = {1}
for i = 5, #ARGV do
  if reply == '' then
    out[#out + 1] = redis.call('XADD', stream, '*', 'p', ARGV[i])
  else
    out[#out + 1] = redis.call('XADD', stream, '*', 'p', ARGV[i], 'r', reply, 'x', ttl)
  end
end
return out
"""
)

SETTLE = (
    """
-- settle: KEYS[1] job stream, KEYS[2] leader key, KEYS[3] dead-letter stream;
-- ARGV[1] the leader value held ("<term>|<member>"), ARGV[2] group, ARGV[3] max deliveries,
-- ARGV[4] the dead letters' cap, ARGV[5] n done, then n (id, reply key or "", reply ttl ms,
-- reply JSON) quadruples, then (id, error) pairs of failed jobs.
-- Only while the leader key holds ARGV[1]: acknowledges and deletes the done jobs and pushes
-- their replies to waiting callers (each reply list expires after the job's reply ttl); a failed
-- job delivered max times goes to the dead letters, else it is delivered again (XCLAIM: its
-- delivery count grows). Returns {0} when the key does not hold ARGV[1] (a stale term: nothing
-- changed), else {1, retried id, its delivery count, ..., '', dead-lettered id, ...}.
local stream, leader_key, dead = KEYS[1], KEYS[2], KEYS[3]
local held, group, max_deliveries, dead_cap, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
"""
    + _DEAD_LETTER
    + """
if redis.call('GET', leader_key) ~= held then return {0} end
local me = string.sub(held, string.find(held, '|', 1, true) + 1)
local i = 6
local plain = {}
for _ = 1, n do
  local id, reply_key, ttl, reply = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  if reply_key == '' then
    plain[#plain + 1] = id
  elseif redis.call('XACK', stream, group, id) == 1 then  -- a reply once, even if settled twice
    redis.call('RPUSH', reply_key, reply)
    redis.call('PEXPIRE', reply_key, ttl)
    redis.call('XDEL', stream, id)
  end
end
if #plain > 0 then
  redis.call('XACK', stream, group, unpack(plain))
  redis.call('XDEL', stream, unpack(plain))
end
local retried, dead_ids = {1}, {}
while i < #ARGV do
  local id, error = ARGV[i], ARGV[i + 1]
  i = i + 2
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p > 0 and p[1][2] == me then
    local deliveries = tonumber(p[1][4])
    if deliveries >= max_deliveries then
      dead_letter(stream, group, dead, dead_cap, id, error, deliveries)
      dead_ids[#dead_ids + 1] = id
    else
      redis.call('XCLAIM', stream, group, me, 0, id)
      retried[#retried + 1] = id
      retried[#retried + 1] = deliveries + 1
    end
  end
end
retried[#retried + 1] = ''
for j = 1, #dead_ids do retried[#retried + 1] = dead_ids[j] end
return retried
"""
)

RECLAIM = (
    """
-- reclaim: KEYS[1] job stream, KEYS[2] leader key, KEYS[3] dead-letter stream;
-- ARGV[1] the leader value held, ARGV[2] group, ARGV[3] max deliveries, ARGV[4] "1" on election:
-- also re-deliver this member's own pending jobs and forget consumers with nothing pending,
-- ARGV[5] how many jobs at most, ARGV[6] the dead letters' cap.
-- Only while the leader key holds ARGV[1]: creates the group (from the stream's start) if
-- missing, then claims for this member every job pending with another consumer (a leader that
-- died or lost its lead mid-job), at once, whatever its idle time; a job already delivered max
-- times goes to the dead letters instead (its consumers died with it: a poison job).
-- Returns {0} for a stale term, else {1, more (1 if the limit was hit), id, delivery count,
-- fields, ..., '', dead-lettered id, ...}.
local stream, leader_key, dead = KEYS[1], KEYS[2], KEYS[3]
local held, group, max_deliveries, on_election, limit, dead_cap =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5]), ARGV[6]
"""
    + _DEAD_LETTER
    + """
if redis.call('GET', leader_key) ~= held then return {0} end
local me = string.sub(held, string.find(held, '|', 1, true) + 1)
redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')  -- BUSYGROUP when it exists
local summary = redis.call('XPENDING', stream, group)
local out, dead_ids, taken = {1, 0}, {}, 0
local consumers = summary[4]
if consumers then
  for c = 1, #consumers do
    local name = consumers[c][1]
    if (name ~= me or on_election) and taken < limit then
      local pending = redis.call('XPENDING', stream, group, '-', '+', limit - taken, name)
      for j = 1, #pending do
        local id, deliveries = pending[j][1], tonumber(pending[j][4])
        if deliveries >= max_deliveries then
          dead_letter(stream, group, dead, dead_cap, id,
                      'its consumer stopped (died or lost the lead) in each of ' .. deliveries .. ' deliveries',
                      deliveries)
          dead_ids[#dead_ids + 1] = id
        else
          local claimed = redis.call('XCLAIM', stream, group, me, 0, id)
          if #claimed > 0 and claimed[1] and claimed[1][2] then
            out[#out + 1] = id
            out[#out + 1] = deliveries + 1
            out[#out + 1] = claimed[1][2]
            taken = taken + 1
          else  -- deleted from the stream meanwhile: nothing to run
            redis.call('XACK', stream, group, id)
          end
        end
      end
    end
  end
  if taken >= limit then out[2] = 1 end
end
if on_election then
  local info = redis.call('XINFO', 'CONSUMERS', stream, group)
  for c = 1, #info do
    local row = info[c]
    local name, pending = nil, nil
    for k = 1, #row, 2 do
      if row[k] == 'name' then name = row[k + 1] elseif row[k] == 'pending' then pending = row[k + 1] end
    end
    if name and name ~= me and tonumber(pending) == 0 then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
    end
  end
end
out[#out + 1] = ''
for j = 1, #dead_ids do out[#out + 1] = dead_ids[j] end
return out
"""
)

SEND = (
    """
-- send: KEYS[1] the member's inbox, KEYS[2] leases zset, KEYS[3] handlers hash;
-- ARGV[1] member, ARGV[2] request (JSON), ARGV[3] inbox ttl ms.
-- Queues the request only for a live member that runs a handler.
-- Returns 1 when queued, 0 when the member is not live, -1 when it runs no handler.
local inbox, leases_key, handlers_key = KEYS[1], KEYS[2], KEYS[3]
local member, request, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
"""
    + NOW
    + _TAKERS
    + """
if not has_lease(leases_key, member, now) then return 0 end
if redis.call('HEXISTS', handlers_key, member) == 0 then return -1 end
redis.call('RPUSH', inbox, request)
redis.call('PEXPIRE', inbox, ttl)
return 1
"""
)

TAKERS = (
    """
-- takers: KEYS[1] leases zset, KEYS[2] handlers hash.
-- Returns the live members that run a handler.
local leases_key, handlers_key = KEYS[1], KEYS[2]
"""
    + NOW
    + _TAKERS
    + """
return live_takers(handlers_key, leases_key, now)
"""
)

BACKLOG = """
-- backlog: KEYS[1] job stream, KEYS[2] dead-letter stream; ARGV[1] group, ARGV[2] how many
-- pending jobs to list (0: none).
-- Reads only. Returns {jobs in the stream (unfinished), pending (delivered, not acknowledged),
-- dead letters, 1 if either stream exists else 0, id, consumer, idle ms, deliveries, ...}.
local stream, dead, group, limit = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local length = redis.call('XLEN', stream)
local pending = 0
local out = {length, 0, redis.call('XLEN', dead), redis.call('EXISTS', stream, dead) > 0 and 1 or 0}
local summary = redis.pcall('XPENDING', stream, group)
if type(summary) == 'table' and not summary.err then
  pending = tonumber(summary[1])
  out[2] = pending
  if pending > 0 and limit > 0 then
    local rows = redis.call('XPENDING', stream, group, '-', '+', limit)
    for j = 1, #rows do
      for k = 1, 4 do out[#out + 1] = rows[j][k] end
    end
  end
end
return out
"""

REQUEUE = """
-- requeue: KEYS[1] dead-letter stream, KEYS[2] job stream; ARGV[1] the backlog's cap (unfinished
-- jobs), ARGV[2] "1" for all, else ARGV[3..] ids.
-- Submits dead letters again (as new jobs, without a caller waiting), oldest first, and removes
-- them, as many as the job stream has room for under the cap (as submit does; the rest stay).
-- Returns {how many were requeued, how many were left for want of room}.
local dead, stream, cap = KEYS[1], KEYS[2], tonumber(ARGV[1])
local room = cap - redis.call('XLEN', stream)
if room < 0 then room = 0 end
local entries = {}
if ARGV[2] == '1' then
  entries = redis.call('XRANGE', dead, '-', '+', 'COUNT', room + 1)
else
  for i = 3, #ARGV do
    local found = redis.call('XRANGE', dead, ARGV[i], ARGV[i])
    if #found > 0 then entries[#entries + 1] = found[1] end
  end
end
local done = math.min(#entries, room)
for i = 1, done do
  local f = entries[i][2]
  local payload = 'null'
  for k = 1, #f, 2 do if f[k] == 'p' then payload = f[k + 1] end end
  redis.call('XADD', stream, '*', 'p', payload)
  redis.call('XDEL', dead, entries[i][1])
end
local left = #entries - done
if ARGV[2] == '1' then left = redis.call('XLEN', dead) end
return {done, left}
"""


class JobScripts(ScriptSet):
    """A pool's work scripts (:class:`~leaderpool.jobs.job_store.JobStore` calls them)."""

    submit = Lua("submit", SUBMIT)
    settle = Lua("settle", SETTLE)
    reclaim = Lua("reclaim", RECLAIM)
    send = Lua("send", SEND)
    takers = Lua("takers", TAKERS)
    backlog = Lua("backlog", BACKLOG)
    requeue = Lua("requeue", REQUEUE)
