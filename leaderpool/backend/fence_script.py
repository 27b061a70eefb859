"""The fenced write's script and its asyncio call: the one implementation that the public face
(:mod:`leaderpool.fencing`, which adds the blocking twin) and the singletons' per-singleton fence
(:mod:`leaderpool.singletons`) both call. The fence key is built by
:func:`leaderpool.backend.keys.fence_key`.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio

from leaderpool.backend.keys import fence_key
from leaderpool.backend.protocol import FenceResult, text
from leaderpool.backend.script_registry import Lua, ScriptSet
from leaderpool.errors import StaleTerm

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


class FenceScripts(ScriptSet):
    """The fenced write's script, on an asyncio client or a blocking one."""

    fenced_set = Lua("fenced_set", FENCED_SET)


def parse_result(reply: Any, key: str, term: int, pool: str | None, singleton: str | None = None) -> FenceResult:
    written, highest = bool(int(reply[0])), int(text(reply[1]))
    if not written:
        whose = "" if singleton is None else f"singleton {singleton!r}'s "
        raise StaleTerm(
            f"{whose}term {term} is older than term {highest} that already wrote {key!r}",
            highest=highest,
            pool=pool,
            term=term,
        )
    return FenceResult(True, highest)


async def afenced_set(
    client: redis.asyncio.Redis,
    key: str,
    value: str | bytes,
    term: int,
    px: int = 0,
    *,
    pool: str | None = None,
    singleton: str | None = None,
) -> FenceResult:
    """SET ``key`` to ``value`` (expiring after ``px`` ms if > 0) only if ``term`` is at least the
    highest term that wrote it under ``pool``'s fence (``singleton``'s own, if given); else raise
    :class:`StaleTerm`."""
    if not isinstance(client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
        raise TypeError(f"afenced_set() needs an asyncio client, got {type(client).__name__}: use fenced_set()")
    fence = fence_key(key, pool, singleton)
    reply = await FenceScripts.on(client).fenced_set(keys=[key, fence], args=[term, encoded(value), px])
    return parse_result(reply, key, term, pool, singleton)


def encoded(value: str | bytes) -> str | bytes:
    if not isinstance(value, str | bytes):
        raise TypeError(f"a fenced value must be str or bytes, got {type(value).__name__}")
    return value
