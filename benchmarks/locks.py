"""Cluster-wide locks and unique names: leaderpool's :class:`~leaderpool.locks.blocking_lock.Lock` (and its
asyncio face) beside plain python-redis-lock and redis-py's ``Lock``, on one redis-server.

- **acquire + release**: one uncontended acquisition and its release, per call (us); each lock
  renews itself where the library can (leaderpool, python-redis-lock ``auto_renewal``), since
  that is how a lock is used;
- **hand-over**: a waiter blocked on the lock in another thread (its own connection); the time
  from just before the holder's release to the waiter holding it (ms). python-redis-lock and
  leaderpool wake the waiter with the release signal; redis-py's Lock polls (``sleep=0.1``, its
  default);
- **whereis_name**: a member's cached lookup (the blocking face: a plain read) beside
  ``fresh=True`` (one script on Redis), ns per call.

``python -m benchmarks.locks [--quick] [--out DIR]`` writes ``locks-TIMESTAMP.json``;
``python -m benchmarks`` runs it as its ``locks`` section on its own server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio
import redis.lock
import redis_lock

from benchmarks.harness import WARM_UP, Holdable, acquire_release_us, handovers_ms, run_section, stats_row, table
from benchmarks.lookup import timeit_ns
from benchmarks.stats import summary
from leaderpool import Election, MemberConfig
from leaderpool.locks.async_lock import AsyncLock
from leaderpool.locks.blocking_lock import Lock

TTL_S = 10


def _factories(client: redis.Redis) -> dict[str, Callable[[str], Holdable]]:
    return {
        "leaderpool Lock": lambda name: Lock(client, name, ttl_s=TTL_S),
        "python-redis-lock": lambda name: redis_lock.Lock(client, f"{{{name}}}", expire=TTL_S, auto_renewal=True),
        "redis-py Lock": lambda name: redis.lock.Lock(client, f"lock:{{{name}}}", timeout=TTL_S),
    }


def async_acquire_release_us(url: str, n: int) -> dict[str, Any]:
    async def run() -> list[int]:
        client = redis.asyncio.Redis.from_url(url)
        samples = []
        try:
            for i in range(n + WARM_UP):
                lock = AsyncLock(client, "bench-uncontended-async", ttl_s=TTL_S)
                t0 = time.perf_counter_ns()
                await lock.acquire()
                await lock.release()
                if i >= WARM_UP:
                    samples.append(time.perf_counter_ns() - t0)
        finally:
            await client.aclose()
        return samples

    return summary(asyncio.run(run()), scale=1e-3, digits=1)


def handover_ms(url: str, library: str, rounds: int) -> dict[str, Any]:
    """A waiter thread blocks on the lock; the holder releases; the time until the waiter holds it."""

    def make(client: redis.Redis, name: str) -> Holdable:
        return _factories(client)[library](name)

    return handovers_ms(url, make, make, rounds, lambda _: "bench-handover")


def whereis(url: str, n: int) -> dict[str, Any]:
    with Election(MemberConfig(pool="bench-names", member_id="holder", ttl_s=5), url) as election:
        election.register_name("bench-service", "10.0.0.1:8080")
        election.whereis_name("bench-service")  # loads the cache
        return {
            "cached_ns_per_call": timeit_ns(lambda: election.whereis_name("bench-service"), n),
            "fresh_us_per_call": round(
                timeit_ns(lambda: election.whereis_name("bench-service", fresh=True), 200) / 1000, 1
            ),
        }


def measure(url: str, rounds: int) -> dict[str, Any]:
    """Every measurement, ``rounds`` hand-overs per library (50x as many uncontended calls)."""
    client = redis.Redis.from_url(url)
    try:
        made = _factories(client)
        uncontended = {name: acquire_release_us(m, "bench-uncontended", rounds * 50) for name, m in made.items()}
    finally:
        client.close()
    uncontended["leaderpool AsyncLock"] = async_acquire_release_us(url, rounds * 50)
    handover = {name: handover_ms(url, name, rounds) for name in _factories(client)}
    return {
        "ttl_s": TTL_S,
        "acquire_release_us": uncontended,
        "handover_ms": handover,
        "whereis_name": whereis(url, 20_000 if rounds >= 20 else 2_000),
    }


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The locks section of RESULTS.md."""
    if not section:
        return []
    keys = ("n", "p50", "p90", "p99")
    lines = ["", "## Locks and names", "", f"Uncontended acquire + release (us), ttl {section.get('ttl_s')} s:", ""]
    lines += table("library", keys, (stats_row(n, s) for n, s in (section.get("acquire_release_us") or {}).items()))
    lines += ["", "Hand-over to a blocked waiter, from just before the release to the waiter holding it (ms):", ""]
    lines += table("library", keys, (stats_row(n, s) for n, s in (section.get("handover_ms") or {}).items()))
    w = section.get("whereis_name") or {}
    lines += ["", f"`whereis_name`: {w.get('cached_ns_per_call')} ns per cached lookup (blocking face), "
              f"{w.get('fresh_us_per_call')} us with `fresh=True` (one script on Redis)."]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_section("python -m benchmarks.locks", __doc__, "locks", measure, markdown_lines,
                       default_rounds=100, argv=argv)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
