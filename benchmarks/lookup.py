"""Leader lookup from a non-leader: leaderpool's local cache against a read from Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis
import redis_lock

from benchmarks.registry import Contender
from benchmarks.stats import summary
from leaderpool import AsyncElection, MemberConfig
from leaderpool.backend.keys import Keyspace


def per_call_us(call: Callable[[], Any], n: int) -> dict[str, Any]:
    """Latency of each of ``n`` calls, in microseconds (after 10 warm-up calls)."""
    for _ in range(10):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    return summary(samples, scale=1e-3)


def timeit_ns(call: Callable[[], Any], number: int, repeat: int = 5) -> float:
    """timeit-style: the best of ``repeat`` runs of ``number`` calls, in ns per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter_ns() - t0) / number)
    return round(best, 1)


def redis_read(contender: Contender, url: str, pool: str, n: int) -> dict[str, Any]:
    """A non-leader process asking Redis who leads, with the library's own call where it has one."""
    client = redis.Redis.from_url(url)
    try:
        key = contender.leader_key(pool)
        if contender.name == "python-redis-lock":
            lock = redis_lock.Lock(client, key[len("lock:") :])
            answer: Any = lock.get_owner_id()
            stats = per_call_us(lock.get_owner_id, n)
        else:
            answer = client.get(key)
            stats = per_call_us(lambda: client.get(key), n)
        return {"call": contender.lookup, "answer": repr(answer)[:80], "per_call_us": stats}
    finally:
        client.close()


def leaderpool_cache(url: str, pool: str, ttl: float, n: int) -> dict[str, Any]:
    """Two in-process members of a pool of their own: the follower's ``election.leader`` (the
    local cache) in ns per call, and its fresh read from Redis (``current_leader(fresh=True)``)."""

    async def measure() -> dict[str, Any]:
        first = AsyncElection(MemberConfig(pool=pool, member_id="lookup-a", ttl_s=ttl), url)
        second = AsyncElection(MemberConfig(pool=pool, member_id="lookup-b", ttl_s=ttl), url)
        await first.start()
        try:
            await first.wait_until_leader(timeout=10 * ttl + 5)
            await second.start()
            try:
                leader = await second.wait_for_leader(timeout=10 * ttl + 5)
                cached_ns = timeit_ns(lambda: second.leader, number=max(n * 50, 1000))
                samples = []
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    await second.current_leader(fresh=True)
                    samples.append(time.perf_counter_ns() - t0)
                raw = redis.Redis.from_url(url)
                try:
                    get_stats = per_call_us(lambda: raw.get(Keyspace(pool).leader), n)
                finally:
                    raw.close()
                return {
                    "call": "election.leader (local cache, in-process)",
                    "answer": f"{leader.member} term {leader.term}",
                    "cached_ns_per_call": cached_ns,
                    "fresh_read_us": summary(samples, scale=1e-3),
                    "get_us": get_stats,
                }
            finally:
                await second.stop()
        finally:
            await first.stop()

    return asyncio.run(measure())
