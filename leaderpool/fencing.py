"""Fenced writes: a SET that a newer term's write has made impossible for an older term.

The highest term accepted for a key lives next to it, on the same Cluster slot, *per pool*:
``{KEY}:fence:POOL`` (``KEY:fence:POOL`` when the key has a hash tag). Terms of different pools
are unrelated counters, so a pool's fence never refuses another pool's writes; two pools that
write one key are not fenced against each other. Without a pool (``pool=None``) the fence is
``{KEY}:fence``, shared by every writer of the key. A singleton of a pool
(:mod:`leaderpool.singletons`) has a fence of its own, ``{KEY}:fence:POOL:{NAME}``
(``singleton=NAME``): its terms count apart from the pool's and from the other singletons', so
its writes are fenced only against its own earlier owners.

Two functions, one behaviour: a write with a term older than the highest accepted raises
:class:`~leaderpool.errors.StaleTerm`. :func:`fenced_set` takes a blocking ``redis.Redis``,
:func:`afenced_set` an asyncio ``redis.asyncio.Redis``.
"""

from __future__ import annotations

import redis

from leaderpool.backend.fence_script import FENCED_SET, FenceScripts, afenced_set, encoded, parse_result
from leaderpool.backend.keys import fence_key
from leaderpool.backend.protocol import FenceResult
from leaderpool.backend.redis_errors import COMMAND_REFUSED, REDIS_FAILURES, translate

__all__ = ["FENCED_SET", "FenceScripts", "afenced_set", "fenced_set"]


def _translated(exc: BaseException, pool: str | None, term: int) -> BaseException:
    return translate(exc, script="fenced_set", pool=pool, term=term) or exc


def fenced_set(
    client: redis.Redis,
    key: str,
    value: str | bytes,
    term: int,
    px: int = 0,
    *,
    pool: str | None = None,
    singleton: str | None = None,
) -> FenceResult:
    """The blocking :func:`afenced_set`, for a ``redis.Redis`` client."""
    if not isinstance(client, redis.Redis | redis.RedisCluster):
        raise TypeError(f"fenced_set() needs a blocking client, got {type(client).__name__}: use afenced_set()")
    script = FenceScripts.on(client).fenced_set
    try:
        reply = script.blocking(keys=[key, fence_key(key, pool, singleton)], args=[term, encoded(value), px])
    except (*COMMAND_REFUSED, *REDIS_FAILURES) as exc:
        raise _translated(exc, pool, term) from exc
    return parse_result(reply, key, term, pool, singleton)
