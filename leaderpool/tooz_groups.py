"""tooz's groups in Redis, for the tooz driver (:mod:`leaderpool.tooz_driver`): the registry of
created groups and each group's joined members with their capabilities and leases.

tooz separates joining a group from running for its leadership (a member joins without being a
candidate, and a candidate need not have joined), while every leaderpool pool member is a
candidate. So the election of group ``G`` is leaderpool pool ``G`` (its members are the tooz
candidates) and the group's joined members are kept here, under the same hash tag, with leases
like a pool member's (Redis's clock, purged by whoever reads next). No tooz import: the
scripts and their statuses are plain Redis.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import redis

from leaderpool.keys import validate_name

__all__ = ["GroupKeys", "GroupStatus", "GroupStore", "JoinedMember"]

# Shared by every script: Redis's clock in ms and the purge of members whose lease ran out.
_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function purge(members, joined, leases, now)
  local dead = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  for _, m in ipairs(dead) do
    redis.call('HDEL', members, m)
    redis.call('HDEL', joined, m)
  end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', now) end
end
"""

# KEYS: registry, members, joined, leases. ARGV: group, member, capabilities JSON, ttl ms.
_JOIN = (
    _HELPERS
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now)
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -2 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], now .. '|' .. now)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[2])
return 0
"""
)

# KEYS: registry, members, joined, leases. ARGV: group, member.
_LEAVE = (
    _HELPERS
    + """
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now)
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then
  if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
  return -2
end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
return 0
"""
)

# KEYS: registry, members, joined, leases. ARGV: group, member, capabilities JSON.
_UPDATE = (
    _HELPERS
    + """
local now = now_ms()
purge(KEYS[2], KEYS[3], KEYS[4], now)
local since = redis.call('HGET', KEYS[3], ARGV[2])
if not since then
  if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
  return -2
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], string.match(since, '^[^|]*') .. '|' .. now)
return 0
"""
)

# KEYS: registry, members, joined, leases. ARGV: group. -> -1, or {members flat, joined flat}.
_READ = (
    _HELPERS
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
purge(KEYS[2], KEYS[3], KEYS[4], now_ms())
return {redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"""
)

# KEYS: members, leases. ARGV: ttl ms, member. -> 1 renewed, 0 no longer a member.
_REFRESH = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
return 1
"""

# KEYS: registry, members, joined, leases. ARGV: group. -> -1 not created, -2 not empty, 0.
_DELETE = (
    _HELPERS
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
purge(KEYS[2], KEYS[3], KEYS[4], now_ms())
if redis.call('HLEN', KEYS[2]) > 0 then return -2 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 0
"""
)


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
    def members(self) -> str:
        return f"{self.prefix}:{{{self.group}}}:tooz:members"

    @property
    def joined(self) -> str:
        return f"{self.prefix}:{{{self.group}}}:tooz:joined"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:{{{self.group}}}:tooz:leases"

    def all(self) -> list[str]:
        return [self.registry, self.members, self.joined, self.leases]


@dataclass(frozen=True)
class JoinedMember:
    capabilities: Any
    created_at_ms: int
    updated_at_ms: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GroupStore:
    """One typed call per script; capabilities travel as JSON."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._join = client.register_script(_JOIN)
        self._leave = client.register_script(_LEAVE)
        self._update = client.register_script(_UPDATE)
        self._read = client.register_script(_READ)
        self._refresh = client.register_script(_REFRESH)
        self._delete = client.register_script(_DELETE)

    def keys(self, group: str) -> GroupKeys:
        """The group's keys; a group id that could not be a pool name is a ConfigError."""
        return GroupKeys(self.prefix, validate_name("group id", group))

    def create(self, group: str) -> bool:
        """False when the group already existed."""
        return int(self.client.sadd(self.keys(group).registry, group)) == 1

    def groups(self) -> list[str]:
        return sorted(_text(g) for g in self.client.smembers(GroupKeys(self.prefix, "").registry))

    def delete(self, group: str) -> GroupStatus:
        return GroupStatus(int(self._delete(keys=self.keys(group).all(), args=[group])))

    def join(self, group: str, member: str, capabilities: Any, ttl_ms: int) -> GroupStatus:
        caps = json.dumps(capabilities, separators=(",", ":"))
        return GroupStatus(int(self._join(keys=self.keys(group).all(), args=[group, member, caps, ttl_ms])))

    def leave(self, group: str, member: str) -> GroupStatus:
        return GroupStatus(int(self._leave(keys=self.keys(group).all(), args=[group, member])))

    def update(self, group: str, member: str, capabilities: Any) -> GroupStatus:
        caps = json.dumps(capabilities, separators=(",", ":"))
        return GroupStatus(int(self._update(keys=self.keys(group).all(), args=[group, member, caps])))

    def refresh(self, group: str, member: str, ttl_ms: int) -> bool:
        """Move the member's lease on; False when it is no longer a member (its lease ran out,
        or someone made it leave)."""
        keys = self.keys(group)
        return int(self._refresh(keys=[keys.members, keys.leases], args=[ttl_ms, member])) == 1

    def read(self, group: str) -> dict[str, JoinedMember] | None:
        """The live members of ``group``, or None when it was not created."""
        reply = self._read(keys=self.keys(group).all(), args=[group])
        if not isinstance(reply, list):
            return None
        caps_flat, joined_flat = reply
        times = {_text(joined_flat[i]): _text(joined_flat[i + 1]) for i in range(0, len(joined_flat), 2)}
        members: dict[str, JoinedMember] = {}
        for i in range(0, len(caps_flat), 2):
            member = _text(caps_flat[i])
            created, _, updated = times.get(member, "0|0").partition("|")
            members[member] = JoinedMember(json.loads(caps_flat[i + 1]), int(created or 0), int(updated or 0))
        return members
