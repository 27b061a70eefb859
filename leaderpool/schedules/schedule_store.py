"""The schedules of a pool in Redis: one hash, ``leaderpool:{POOL}:schedules``, schedule name ->
a JSON record of its last run and next slot, changed only by the scripts below.

Each slot is **claimed** before it runs, by a script that checks the pool's leader key still
holds the claiming lead (``"<term>|<member>"``: a stale leader -- paused, cut off, replaced --
cannot claim) and that the slot comes after the last one claimed (no slot runs twice), and not
before its time on Redis's clock. The record (all times unix ms on Redis's clock)::

    {"spec": "every 5s", "catch_up": "once", "last_slot_ms": ..., "term": 7, "member": "a",
     "started_ms": ..., "finished_ms": ..., "outcome": "running|ok|failed|stopped",
     "runs": 12, "next_slot_ms": ..., "paused": true, "paused_ms": ..., "paused_by": "ops",
     "skipped_ms": ..., "skipped": 3}

**Paused** (``leaderpool-cli schedules pause POOL NAME``): the claim script refuses every slot while
the record says so, and records it as skipped (``skipped_ms``, the latest; ``skipped``, how many):
whoever leads, now or after a failover, runs none of them, and none counts as missed. Resumed, the
next slot runs on time; the slots that fell during the pause are not caught up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

from leaderpool.backend.baddata import report
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue, text
from leaderpool.backend.script_registry import Lua, ScriptHost, ScriptSet
from leaderpool.schedules.slot_log import LOG_SLOT, SlotOutcome

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- a record that is not ours (hostile data: not JSON, not an object, numbers that are not) is
-- read as none, and overwritten by the next run (see leaderpool.backend.baddata)
local function record_of(schedules_key, name)
  local raw = redis.call('HGET', schedules_key, name)
  local ok, record = pcall(cjson.decode, raw or '{}')
  if not ok or type(record) ~= 'table' then return {} end
  for _, field in ipairs({'last_slot_ms', 'term', 'runs', 'paused_ms', 'skipped_ms', 'skipped'}) do
    if record[field] ~= nil and not tonumber(record[field]) then record[field] = nil end
  end
  if record.paused ~= true then record.paused = nil end
  return record
end
"""

SCHEDULE_READ = (
    """
-- schedule_read: KEYS[1] schedules hash; ARGV[1] a schedule name ("" for all of them).
-- Returns {now, name, record JSON, name, record JSON, ...} (the one asked for, if it exists).
local schedules_key, name = KEYS[1], ARGV[1]
"""
    + _NOW_MS
    + """
local reply = {now}
if name == '' then
  local all = redis.call('HGETALL', schedules_key)
  for i = 1, #all do reply[#reply + 1] = all[i] end
else
  local raw = redis.call('HGET', schedules_key, name)
  if raw then reply[2] = name; reply[3] = raw end
end
return reply
"""
)

SCHEDULE_PLAN = (
    """
-- schedule_plan: KEYS[1] leader key, KEYS[2] schedules hash; ARGV[1] the leader value held,
-- ARGV[2] schedule name, ARGV[3] spec, ARGV[4] catch-up policy, ARGV[5] next slot (unix ms).
-- Records the schedule's spec and the slot its leader waits for, while the leader key holds
-- ARGV[1]. Returns {1, now} recorded, {-1, now} not the leader.
local leader_key, schedules_key = KEYS[1], KEYS[2]
local held, name, spec, catch_up, next_slot = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
"""
    + _NOW_MS
    + """
if redis.call('GET', leader_key) ~= held then return {-1, now} end
local record = record_of(schedules_key, name)
record.spec, record.catch_up, record.next_slot_ms = spec, catch_up, next_slot
redis.call('HSET', schedules_key, name, cjson.encode(record))
return {1, now}
"""
)

SCHEDULE_CLAIM = (
    """
-- schedule_claim: KEYS[1] leader key, KEYS[2] schedules hash, KEYS[3] slot log; ARGV[1] the leader value held
-- ("<term>|<member>"), ARGV[2] schedule name, ARGV[3] slot (unix ms), ARGV[4] spec,
-- ARGV[5] catch-up policy, ARGV[6] the held term, ARGV[7] the held member.
-- Claims the slot for a run: only while the leader key holds ARGV[1], only for a slot after the
-- last one claimed, and not before the slot's time on Redis's clock.
-- While the schedule is paused, a slot that is due is recorded as skipped instead (no run), and logged.
-- Returns {1, now} claimed, {0, now, last slot} not after the last one claimed or skipped, {-1, now}
-- not the leader, {-2, now} too early, {-3, now} paused: the slot is skipped.
local leader_key, schedules_key = KEYS[1], KEYS[2]
local held, name, slot, spec, catch_up = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local term, member = tonumber(ARGV[6]), ARGV[7]
"""
    + _NOW_MS
    + LOG_SLOT
    + """
if redis.call('GET', leader_key) ~= held then return {-1, now} end
local record = record_of(schedules_key, name)
local last = math.max(tonumber(record.last_slot_ms or -1), tonumber(record.skipped_ms or -1))
if slot <= last then return {0, now, string.format('%d', last)} end
if slot > now then return {-2, now} end
if record.paused then
  record.skipped_ms, record.skipped, record.next_slot_ms = slot, (record.skipped or 0) + 1, nil
  redis.call('HSET', schedules_key, name, cjson.encode(record))
  log_slot(KEYS[3], {'schedule', name, 'slot', ARGV[3], 'outcome', 'skipped', 'term', ARGV[6], 'member', member})
  return {-3, now}
end
record.spec, record.catch_up = spec, catch_up
record.last_slot_ms, record.started_ms, record.finished_ms = slot, now, nil
record.term, record.member = term, member
record.outcome, record.runs, record.next_slot_ms = 'running', (record.runs or 0) + 1, nil
redis.call('HSET', schedules_key, name, cjson.encode(record))
return {1, now}
"""
)

SCHEDULE_FINISH = (
    """
-- schedule_finish: KEYS[1] schedules hash, KEYS[2] slot log; ARGV[1] schedule name, ARGV[2] slot (unix ms),
-- ARGV[3] term, ARGV[4] outcome, ARGV[5] the next slot (unix ms), ARGV[6] member, ARGV[7] when the run
-- started (unix ms, Redis's clock; "" unknown).
-- Records how the run of ARGV[2] ended, if the record still shows that run (slot and term), and logs it.
-- Returns {1, now} recorded, {0, now} the record moved on.
local schedules_key, name, slot, term = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local outcome, next_slot = ARGV[4], tonumber(ARGV[5])
"""
    + _NOW_MS
    + LOG_SLOT
    + """
local record = record_of(schedules_key, name)
local fields = {'schedule', name, 'slot', ARGV[2], 'outcome', outcome, 'term', ARGV[3], 'member', ARGV[6],
                'finished', string.format('%d', now)}
if ARGV[7] ~= '' then fields[#fields + 1] = 'started'; fields[#fields + 1] = ARGV[7] end
log_slot(KEYS[2], fields)  -- every run's end, even one the record has moved past (overlapping runs, catch-up)
if tonumber(record.last_slot_ms or -1) ~= slot or tonumber(record.term or -1) ~= term then return {0, now} end
record.outcome, record.finished_ms, record.next_slot_ms = outcome, now, next_slot
redis.call('HSET', schedules_key, name, cjson.encode(record))
return {1, now}
"""
)


SCHEDULE_PASSED = (
    """
-- schedule_passed: KEYS[1] leader key, KEYS[2] slot log, KEYS[3] schedules hash; ARGV[1] the leader
-- value held, ARGV[2] schedule name, ARGV[3] the first slot passed over, ARGV[4] the last, ARGV[5]
-- how many, ARGV[6] term, ARGV[7] member, ARGV[8] 'missed' (nobody ran them in time) or 'skipped'
-- (the overlap policy dropped them: recorded, so no later lead runs them).
-- Logs the stretch while the leader key holds ARGV[1]. Returns {1, now} logged, {-1, now} not the leader.
local schedules_key, name, last = KEYS[3], ARGV[2], tonumber(ARGV[4])
"""
    + _NOW_MS
    + LOG_SLOT
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, now} end
if ARGV[8] == 'skipped' then
  local record = record_of(schedules_key, name)
  if last > tonumber(record.skipped_ms or -1) then record.skipped_ms = last end
  record.skipped = (record.skipped or 0) + tonumber(ARGV[5])
  redis.call('HSET', schedules_key, name, cjson.encode(record))
end
log_slot(KEYS[2], {'schedule', name, 'slot', ARGV[3], 'outcome', ARGV[8], 'last', ARGV[4], 'count', ARGV[5],
                   'term', ARGV[6], 'member', ARGV[7]})
return {1, now}
"""
)

SCHEDULE_READ_LOG = """
-- schedule_read_log: KEYS[1] slot log; ARGV[1] schedule name ("" for every one), ARGV[2] how many.
-- Returns the latest ARGV[2] entries of that schedule, newest first, each as its field list
-- (the whole capped log is read at most, in batches).
local log_key, name, want = KEYS[1], ARGV[1], tonumber(ARGV[2])
local found, from = {}, '+'
while #found < want do
  local batch = redis.call('XREVRANGE', log_key, from, '-', 'COUNT', 500)
  for _, entry in ipairs(batch) do
    local fields = entry[2]
    local schedule
    for i = 1, #fields - 1, 2 do
      if fields[i] == 'schedule' then schedule = fields[i + 1] end
    end
    if name == '' or schedule == name then found[#found + 1] = fields end
    if #found >= want then break end
  end
  if #batch < 500 then break end
  from = '(' .. batch[#batch][1]
end
return found
"""

SCHEDULE_PAUSE = (
    """
-- schedule_pause: KEYS[1] schedules hash; ARGV[1] schedule name, ARGV[2] '1' pause, '0' resume,
-- ARGV[3] who asked (free text, shown by the listing).
-- Returns {1, now} done, {0, now} no such schedule.
local schedules_key, name, pause, by = KEYS[1], ARGV[1], ARGV[2] == '1', ARGV[3]
"""
    + _NOW_MS
    + """
if not redis.call('HGET', schedules_key, name) then return {0, now} end
local record = record_of(schedules_key, name)
if pause then
  if not record.paused then record.paused, record.paused_ms, record.paused_by = true, now, by end
else
  record.paused, record.paused_ms, record.paused_by = nil, nil, nil
end
redis.call('HSET', schedules_key, name, cjson.encode(record))
return {1, now}
"""
)


class ClaimStatus(IntEnum):
    CLAIMED = 1
    ALREADY_CLAIMED = 0
    NOT_LEADER = -1
    TOO_EARLY = -2
    PAUSED = -3


class Claim(NamedTuple):
    status: ClaimStatus
    now_ms: int
    last_slot_ms: int | None = None


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule as Redis holds it: its spec, its last run (slot, by whom, when, how it ended)
    and the next slot its leader waits for (None while nobody plans it)."""

    name: str
    spec: str = ""
    catch_up: str = ""
    last_slot_ms: int | None = None
    term: int | None = None
    member: str | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    outcome: str | None = None
    runs: int = 0
    next_slot_ms: int | None = None
    paused_ms: int | None = None
    """When the schedule was paused (None: it runs)."""
    paused_by: str | None = None
    skipped_ms: int | None = None
    """The latest slot skipped while paused."""
    skipped: int = 0

    @property
    def paused(self) -> bool:
        return self.paused_ms is not None

    @property
    def last_passed_ms(self) -> int | None:
        """The latest slot run or skipped: the next one comes after it."""
        passed = [ms for ms in (self.last_slot_ms, self.skipped_ms) if ms is not None]
        return max(passed) if passed else None

    @classmethod
    def parse(cls, name: Any, raw: Any) -> ScheduleRecord:
        fields = json.loads(text(raw))

        def number(key: str) -> int | None:
            value = fields.get(key)
            return None if value is None else int(value)

        return cls(
            name=text(name),
            spec=str(fields.get("spec", "")),
            catch_up=str(fields.get("catch_up", "")),
            last_slot_ms=number("last_slot_ms"),
            term=number("term"),
            member=fields.get("member"),
            started_ms=number("started_ms"),
            finished_ms=number("finished_ms"),
            outcome=fields.get("outcome"),
            runs=number("runs") or 0,
            next_slot_ms=number("next_slot_ms"),
            paused_ms=number("paused_ms") if fields.get("paused") is True else None,
            paused_by=str(fields["paused_by"]) if fields.get("paused") is True and "paused_by" in fields else None,
            skipped_ms=number("skipped_ms"),
            skipped=number("skipped") or 0,
        )

    def to_json(self) -> dict[str, Any]:
        """Times as unix seconds (null when unknown)."""

        def seconds(ms: int | None) -> float | None:
            return None if ms is None else ms / 1000

        return {
            "name": self.name,
            "spec": self.spec,
            "catch_up": self.catch_up,
            "last_slot": seconds(self.last_slot_ms),
            "term": self.term,
            "member": self.member,
            "started": seconds(self.started_ms),
            "finished": seconds(self.finished_ms),
            "outcome": self.outcome,
            "runs": self.runs,
            "next_slot": seconds(self.next_slot_ms),
            "paused": self.paused,
            "paused_since": seconds(self.paused_ms),
            "paused_by": self.paused_by,
            "skipped": self.skipped,
        }


_h, _s, _x = "hash", "string", "stream"  # the type each KEYS[i] must have, if it exists (leaderpool.backend.baddata)


class ScheduleScripts(ScriptSet):
    """A pool's schedules' scripts."""

    read = Lua("schedule_read", SCHEDULE_READ, (_h,))
    plan = Lua("schedule_plan", SCHEDULE_PLAN, (_s, _h))
    claim = Lua("schedule_claim", SCHEDULE_CLAIM, (_s, _h, _x))
    finish = Lua("schedule_finish", SCHEDULE_FINISH, (_h, _x))
    passed = Lua("schedule_passed", SCHEDULE_PASSED, (_s, _x, _h))
    read_log = Lua("schedule_read_log", SCHEDULE_READ_LOG, (_x,))
    pause = Lua("schedule_pause", SCHEDULE_PAUSE, (_h,))


class ScheduleStore:
    """The Redis I/O of a pool's schedules, on an asyncio client (or the CLI's one-shot adapter)."""

    def __init__(self, client: ScriptHost, keys: Keyspace) -> None:
        self.keys = keys
        self._scripts = ScheduleScripts.on(client)

    async def read(self, name: str = "") -> tuple[int, list[ScheduleRecord]]:
        """Redis's time (ms) and the schedule ``name`` (every schedule for ``""``), by name."""
        reply = await self._scripts.read(keys=[self.keys.schedules], args=[name])
        records = []
        for i in range(1, len(reply) - 1, 2):
            try:
                records.append(ScheduleRecord.parse(reply[i], reply[i + 1]))
            except (ValueError, TypeError, AttributeError, RecursionError) as exc:  # not ours: skipped
                report("schedule_record_skipped", text(reply[i]), problem=f"{type(exc).__name__}: {str(exc)[:100]}")
        return int(reply[0]), sorted(records, key=lambda r: r.name)

    async def plan(self, held: LeaderValue, name: str, spec: str, catch_up: str, next_slot_ms: int) -> tuple[bool, int]:
        """Record the next slot the leader ``held`` waits for; (recorded, Redis's time)."""
        status, now = await self._scripts.plan(
            keys=[self.keys.leader, self.keys.schedules], args=[held.encode(), name, spec, catch_up, next_slot_ms]
        )
        return int(status) == 1, int(now)

    async def claim(self, held: LeaderValue, name: str, slot_ms: int, spec: str, catch_up: str) -> Claim:
        reply = await self._scripts.claim(
            keys=[self.keys.leader, self.keys.schedules, self.keys.slot_log],
            args=[held.encode(), name, slot_ms, spec, catch_up, held.term, held.member],
        )
        status = ClaimStatus(int(reply[0]))
        last = int(text(reply[2])) if status is ClaimStatus.ALREADY_CLAIMED else None
        return Claim(status, int(reply[1]), last)

    async def finish(
        self,
        name: str,
        slot_ms: int,
        term: int,
        outcome: str,
        next_slot_ms: int,
        member: str = "",
        started_ms: int | None = None,
    ) -> bool:
        """Log how the run of ``slot_ms`` ended and, if the record still shows that run, record it."""
        started = "" if started_ms is None else started_ms
        status, _now = await self._scripts.finish(
            keys=[self.keys.schedules, self.keys.slot_log],
            args=[name, slot_ms, term, outcome, next_slot_ms, member, started],
        )
        return int(status) == 1

    async def set_paused(self, name: str, paused: bool, by: str = "") -> bool:
        """Pause (or resume) schedule ``name``; False when the pool has no such schedule."""
        status, _now = await self._scripts.pause(keys=[self.keys.schedules], args=[name, "1" if paused else "0", by])
        return int(status) == 1

    async def passed_over(
        self, held: LeaderValue, name: str, first_ms: int, last_ms: int, count: int, outcome: str = "missed"
    ) -> bool:
        """Log a stretch of slots passed over (while ``held`` leads): ``missed``, or ``skipped`` by
        the overlap policy (recorded: no later lead runs them). True when logged."""
        status, _now = await self._scripts.passed(
            keys=[self.keys.leader, self.keys.slot_log, self.keys.schedules],
            args=[held.encode(), name, first_ms, last_ms, count, held.term, held.member, outcome],
        )
        return int(status) == 1

    async def slot_log(self, name: str = "", count: int = 20) -> list[SlotOutcome]:
        """The latest ``count`` entries of the slot log (of schedule ``name``; all for ``""``),
        newest first. Entries that are not ours are skipped."""
        reply = await self._scripts.read_log(keys=[self.keys.slot_log], args=[name, count])
        found = []
        for entry in reply:
            fields = dict(zip(entry[::2], entry[1::2], strict=False))
            try:
                found.append(SlotOutcome.parse(fields))
            except (KeyError, ValueError, TypeError) as exc:
                report("slot_log_entry_skipped", name, problem=f"{type(exc).__name__}: {str(exc)[:100]}")
        return found
