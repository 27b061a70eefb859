"""tooz's groups in Redis, for the tooz driver (:mod:`leaderpool.tooz.driver`): the registry of
created groups and each group's joined members with their capabilities and leases.

tooz separates joining a group from running for its leadership (a member joins without being a
candidate, and a candidate need not have joined), while every leaderpool pool member is a
candidate. So the election of group ``G`` is leaderpool pool ``G`` (its members are the tooz
candidates) and the group's joined members are kept here, under the same hash tag, with leases
like a pool member's (Redis's clock, purged by whoever reads or beats next). A created group is a
marker key under the same hash tag, which every script checks, so each script touches one slot
(Redis Cluster); the list of groups for ``get_groups`` is a set beside it, updated by a separate
command after the marker changes. Every change is
announced on the group's events channel (:attr:`GroupKeys.events`), in the pool-message format,
so watchers learn of joins and departures without reading. No tooz import: the scripts and
their statuses are plain Redis.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from leaderpool.backend.protocol import SEPARATOR, PoolEvent
from leaderpool.backend.script_registry import Lua, ScriptSet
from leaderpool.util.naming import validate_name

__all__ = ["GroupKeys", "GroupStatus", "GroupStore", "JoinedMember", "Refreshed", "Snapshot"]

# Shared by every script: Redis's clock in ms, the pool-message format (leaderpool.backend.protocol's
# "<event>|<term>|<detail>|<member>", term 0) on the group's events channel, and the purge of
# members whose lease ran out, each announced as evicted.
_HELPERS = (
    """
local SEP = '"""
    + SEPARATOR
    + """'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function announce(channel, event, detail, member)
  redis.call('PUBLISH', channel, event .. SEP .. '0' .. SEP .. detail .. SEP .. member)
end
local function purge(members, joined, leases, now, channel)
  local dead = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  for _, m in ipairs(dead) do
    redis.call('HDEL', members, m)
    redis.call('HDEL', joined, m)
    announce(channel, '"""
    + PoolEvent.EVICTED.value
    + """', 'lapsed', m)
  end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', now) end
end
-- ms from now until the first lease ends, -1 for none
local function next_lapse(leases, now)
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return math.max(0, math.floor(tonumber(first[2]) - now))
end
"""
)

# Every script: KEYS created (the marker), members, joined, leases, all under the group's hash tag;
# ARGV[1] group, ARGV[2] events channel. The marker is '1' for a created group and the tombstone
# '0' for a while after its deletion (see GroupStore._adopt).

# ARGV[3] member, ARGV[4] capabilities JSON, ARGV[5] ttl ms. -> GroupStatus; announces the join.
_JOIN = (
    _HELPERS
    + """
if redis.call('GET', KEYS[1]) ~= '1' then return -1 end
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now, ARGV[2])
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return -2 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[3], now .. '|' .. now)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[3])
announce(ARGV[2], '"""
    + PoolEvent.JOINED.value
    + """', '', ARGV[3])
return 0
"""
)

# ARGV[3] member. -> GroupStatus; announces the departure.
_LEAVE = (
    _HELPERS
    + """
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now, ARGV[2])
if redis.call('HDEL', KEYS[2], ARGV[3]) == 0 then
  if redis.call('GET', KEYS[1]) ~= '1' then return -1 end
  return -2
end
redis.call('HDEL', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
announce(ARGV[2], '"""
    + PoolEvent.LEFT.value
    + """', 'left', ARGV[3])
return 0
"""
)

# ARGV[3] member, ARGV[4] capabilities JSON. -> GroupStatus.
_UPDATE = (
    _HELPERS
    + """
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now, ARGV[2])
local since = redis.call('HGET', KEYS[3], ARGV[3])
if not since then
  if redis.call('GET', KEYS[1]) ~= '1' then return -1 end
  return -2
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[3], string.match(since, '^[^|]*') .. '|' .. now)
return 0
"""
)

# -> -1 not created, or {members flat, joined flat, ms until the first lease ends (-1 none)}.
_READ = (
    _HELPERS
    + """
if redis.call('GET', KEYS[1]) ~= '1' then return -1 end
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now, ARGV[2])
return {redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]), next_lapse(KEYS[4], now)}
"""
)

# ARGV[3] ttl ms, ARGV[4] member. Purges (so members that beat evict the lapsed: nobody has to
# poll for them), then renews. -> {1 renewed or 0 no longer a member, ms until the first lease ends}.
_REFRESH = (
    _HELPERS
    + """
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now, ARGV[2])
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 0 then return {0, next_lapse(KEYS[4], now)} end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[4])
return {1, next_lapse(KEYS[4], now)}
"""
)

# ARGV[3] ms the tombstone lasts. -> -1 not created, -2 not empty, 0.
_DELETE = (
    _HELPERS
    + """
if redis.call('GET', KEYS[1]) ~= '1' then return -1 end
purge(KEYS[2], KEYS[3], KEYS[4], now_ms(), ARGV[2])
if redis.call('HLEN', KEYS[2]) > 0 then return -2 end
redis.call('SET', KEYS[1], '0', 'PX', ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 0
"""
)

# KEYS[1] created. -> 1 created now, 0 it already was.
_CREATE = """
if redis.call('GET', KEYS[1]) == '1' then return 0 end
redis.call('SET', KEYS[1], '1')
return 1
"""


class GroupScripts(ScriptSet):
    """The groups' scripts, on the driver's blocking client (called ``blocking``: the driver
    translates their errors for tooz)."""

    join = Lua("group_join", _JOIN)
    leave = Lua("group_leave", _LEAVE)
    update = Lua("group_update", _UPDATE)
    read = Lua("group_read", _READ)
    refresh = Lua("group_refresh", _REFRESH)
    delete = Lua("group_delete", _DELETE)
    create = Lua("group_create", _CREATE)


TOMBSTONE_MS = 60_000
"""How long a deleted group's marker says so: meanwhile the group's entry in the list of groups,
removed right after the marker, cannot make the group look like one of an earlier version."""


class GroupStatus(enum.IntEnum):
    OK = 0
    NO_GROUP = -1
    CONFLICT = -2  # join: already a member; leave/update: not a member; delete: not empty


@dataclass(frozen=True)
class GroupKeys:
    """The keys of one group, under the hash tag of the pool of the same name."""

    prefix: str
    group: str

    @property
    def registry(self) -> str:
        return f"{self.prefix}:tooz:{{groups}}"

    @property
    def created(self) -> str:
        """'1' while the group exists (the scripts' check, in the group's slot)."""
        return f"{self.prefix}:{{{self.group}}}:tooz:created"

    @property
    def members(self) -> str:
        return f"{self.prefix}:{{{self.group}}}:tooz:members"

    @property
    def joined(self) -> str:
        return f"{self.prefix}:{{{self.group}}}:tooz:joined"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:{{{self.group}}}:tooz:leases"

    @property
    def events(self) -> str:
        """Channel: ``joined``, ``left`` and ``evicted`` (a lease ran out) pool messages
        (:class:`~leaderpool.backend.protocol.PoolMessage`) for the group's joined members. A sibling of
        the pool's own events channel: the pool's members (the group's candidates) must not
        re-read their election on every tooz join, nor take a joined member's leave for their
        leader's."""
        return f"{self.prefix}:{{{self.group}}}:tooz:events"

    def all(self) -> list[str]:
        return [self.created, self.members, self.joined, self.leases]


@dataclass(frozen=True)
class JoinedMember:
    capabilities: Any
    created_at_ms: int
    updated_at_ms: int


class Snapshot(NamedTuple):
    """A group's live members, and when the first of their leases ends."""

    members: dict[str, JoinedMember]
    next_lapse_ms: int | None
    """Milliseconds from the read until the first lease ends (None: no member)."""


class Refreshed(NamedTuple):
    renewed: bool
    """False when the member is no longer in the group (its lease ran out, or it was made to leave)."""
    next_lapse_ms: int | None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _lapse(raw: Any) -> int | None:
    ms = int(raw)
    return None if ms < 0 else ms


class GroupStore:
    """One typed call per script; capabilities travel as JSON."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        scripts = GroupScripts.on(client)
        self._join, self._leave, self._update = scripts.join.blocking, scripts.leave.blocking, scripts.update.blocking
        self._read, self._refresh = scripts.read.blocking, scripts.refresh.blocking
        self._delete, self._create = scripts.delete.blocking, scripts.create.blocking

    def keys(self, group: str) -> GroupKeys:
        """The group's keys; a group id that could not be a pool name is a ConfigError."""
        return GroupKeys(self.prefix, validate_name("group id", group))

    def _call(self, script: Any, group: str, *args: Any) -> Any:
        keys = self.keys(group)
        reply = script(keys=keys.all(), args=[group, keys.events, *args])
        if reply == GroupStatus.NO_GROUP and self._adopt(keys):
            reply = script(keys=keys.all(), args=[group, keys.events, *args])
        return reply

    def _adopt(self, keys: GroupKeys) -> bool:
        """A group listed with no marker was created by a version without markers (or its
        deletion stopped between the marker and the list, over a tombstone ago): give it its
        marker. True when it now has one."""
        if not self.client.sismember(keys.registry, keys.group):
            return False
        return bool(self.client.set(keys.created, "1", nx=True))

    def create(self, group: str) -> bool:
        """False when the group already existed. The marker first, then the list (which a
        repeated create repairs, should the process have stopped in between)."""
        keys = self.keys(group)
        if self._adopt(keys):
            return False
        created = int(self._create(keys=[keys.created])) == 1
        self.client.sadd(keys.registry, group)
        return created

    def groups(self) -> list[str]:
        """The listed groups, less those deleted (tombstone) whose entry is still to go; one
        GET per group (a pipeline, which a cluster client splits by slot)."""
        listed = sorted(_text(g) for g in self.client.smembers(GroupKeys(self.prefix, "").registry))
        pipe = self.client.pipeline(transaction=False)
        for group in listed:
            pipe.get(GroupKeys(self.prefix, group).created)
        markers = pipe.execute()
        return [group for group, marker in zip(listed, markers, strict=True) if marker is None or _text(marker) == "1"]

    def delete(self, group: str) -> GroupStatus:
        """The group's keys go (its marker turns into a tombstone), then its entry in the list."""
        status = GroupStatus(int(self._call(self._delete, group, TOMBSTONE_MS)))
        if status is GroupStatus.OK:
            self.client.srem(self.keys(group).registry, group)
        return status

    def join(self, group: str, member: str, capabilities: Any, ttl_ms: int) -> GroupStatus:
        caps = json.dumps(capabilities, separators=(",", ":"))
        return GroupStatus(int(self._call(self._join, group, member, caps, ttl_ms)))

    def leave(self, group: str, member: str) -> GroupStatus:
        return GroupStatus(int(self._call(self._leave, group, member)))

    def update(self, group: str, member: str, capabilities: Any) -> GroupStatus:
        caps = json.dumps(capabilities, separators=(",", ":"))
        return GroupStatus(int(self._call(self._update, group, member, caps)))

    def refresh(self, group: str, member: str, ttl_ms: int) -> Refreshed:
        """Evict the group's lapsed members (announced), then move the member's lease on."""
        renewed, next_lapse = self._call(self._refresh, group, ttl_ms, member)
        return Refreshed(int(renewed) == 1, _lapse(next_lapse))

    def read(self, group: str) -> dict[str, JoinedMember] | None:
        """The live members of ``group``, or None when it was not created."""
        found = self.snapshot(group)
        return None if found is None else found.members

    def snapshot(self, group: str) -> Snapshot | None:
        """The live members of ``group`` and when the first lease ends; None when not created."""
        reply = self._call(self._read, group)
        if not isinstance(reply, list):
            return None
        caps_flat, joined_flat, next_lapse = reply
        times = {_text(joined_flat[i]): _text(joined_flat[i + 1]) for i in range(0, len(joined_flat), 2)}
        members: dict[str, JoinedMember] = {}
        for i in range(0, len(caps_flat), 2):
            member = _text(caps_flat[i])
            created, _, updated = times.get(member, "0|0").partition("|")
            members[member] = JoinedMember(json.loads(caps_flat[i + 1]), int(created or 0), int(updated or 0))
        return Snapshot(members, _lapse(next_lapse))
