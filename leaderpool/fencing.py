"""Fenced writes: a SET that a newer term's write has made impossible for an older term.

The highest term accepted for a key lives next to it, on the same Cluster slot, *per pool*:
``{KEY}:fence:POOL`` (``KEY:fence:POOL`` when the key has a hash tag). Terms of different pools
are unrelated counters, so a pool's fence never refuses another pool's writes; two pools that
write one key are not fenced against each other. Without a pool (``pool=None``) the fence is
``{KEY}:fence``, shared by every writer of the key.

Two functions, one behaviour: a write with a term older than the highest accepted raises
:class:`~leaderpool.errors.StaleTerm`. :func:`fenced_set` takes a blocking ``redis.Redis``,
:func:`afenced_set` an asyncio ``redis.asyncio.Redis``.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from leaderpool.backend.keys import fence_key
from leaderpool.backend.protocol import FenceResult, text
from leaderpool.backend.redis_errors import COMMAND_REFUSED, REDIS_FAILURES, translate
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


def _result(reply: Any, key: str, term: int, pool: str | None) -> FenceResult:
    written, highest = bool(int(reply[0])), int(text(reply[1]))
    if not written:
        raise StaleTerm(
            f"term {term} is older than term {highest} that already wrote {key!r}",
            highest=highest,
            pool=pool,
            term=term,
        )
    return FenceResult(True, highest)


def _translated(exc: BaseException, pool: str | None, term: int) -> BaseException:
    return translate(exc, script="fenced_set", pool=pool, term=term) or exc


async def afenced_set(
    client: redis.asyncio.Redis, key: str, value: str | bytes, term: int, px: int = 0, *, pool: str | None = None
) -> FenceResult:
    """SET ``key`` to ``value`` (expiring after ``px`` ms if > 0) only if ``term`` is at least the
    highest term that wrote it under ``pool``'s fence; else raise :class:`StaleTerm`."""
    if not isinstance(client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
        raise TypeError(f"afenced_set() needs an asyncio client, got {type(client).__name__}: use fenced_set()")
    reply = await FenceScripts.on(client).fenced_set(keys=[key, fence_key(key, pool)], args=[term, _encoded(value), px])
    return _result(reply, key, term, pool)


def fenced_set(
    client: redis.Redis, key: str, value: str | bytes, term: int, px: int = 0, *, pool: str | None = None
) -> FenceResult:
    """The blocking :func:`afenced_set`, for a ``redis.Redis`` client."""
    if not isinstance(client, redis.Redis | redis.RedisCluster):
        raise TypeError(f"fenced_set() needs a blocking client, got {type(client).__name__}: use afenced_set()")
    script = FenceScripts.on(client).fenced_set
    try:
        reply = script.blocking(keys=[key, fence_key(key, pool)], args=[term, _encoded(value), px])
    except (*COMMAND_REFUSED, *REDIS_FAILURES) as exc:
        raise _translated(exc, pool, term) from exc
    return _result(reply, key, term, pool)


def _encoded(value: str | bytes) -> str | bytes:
    if not isinstance(value, str | bytes):
        raise TypeError(f"a fenced value must be str or bytes, got {type(value).__name__}")
    return value
