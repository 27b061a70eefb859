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

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.lock
import redis_lock

from benchmarks.lookup import timeit_ns
from benchmarks.stats import summary
from leaderpool import Election, MemberConfig
from leaderpool.locks.async_lock import AsyncLock
from leaderpool.locks.blocking_lock import Lock
from leaderpool.testing.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TTL_S = 10


class _SyncLock(Protocol):
    def acquire(self) -> Any: ...
    def release(self) -> Any: ...


def _factories(client: redis.Redis) -> dict[str, Callable[[str], _SyncLock]]:
    return {
        "leaderpool Lock": lambda name: Lock(client, name, ttl_s=TTL_S),
        "python-redis-lock": lambda name: redis_lock.Lock(client, f"{{{name}}}", expire=TTL_S, auto_renewal=True),
        "redis-py Lock": lambda name: redis.lock.Lock(client, f"lock:{{{name}}}", timeout=TTL_S),
    }


def acquire_release_us(make: Callable[[str], _SyncLock], n: int) -> dict[str, Any]:
    samples = []
    for i in range(n + 5):
        lock = make("bench-uncontended")
        t0 = time.perf_counter_ns()
        lock.acquire()
        lock.release()
        if i >= 5:  # warm-up: scripts loaded, connections open
            samples.append(time.perf_counter_ns() - t0)
    return summary(samples, scale=1e-3, digits=1)


def async_acquire_release_us(url: str, n: int) -> dict[str, Any]:
    async def run() -> list[int]:
        client = redis.asyncio.Redis.from_url(url)
        samples = []
        try:
            for i in range(n + 5):
                lock = AsyncLock(client, "bench-uncontended-async", ttl_s=TTL_S)
                t0 = time.perf_counter_ns()
                await lock.acquire()
                await lock.release()
                if i >= 5:
                    samples.append(time.perf_counter_ns() - t0)
        finally:
            await client.aclose()
        return samples

    return summary(asyncio.run(run()), scale=1e-3, digits=1)


def handover_ms(url: str, make_for: Callable[[redis.Redis], Callable[[str], _SyncLock]], rounds: int) -> dict[str, Any]:
    """A waiter thread blocks on the lock; the holder releases; the time until the waiter holds it."""
    holder_client, waiter_client = redis.Redis.from_url(url), redis.Redis.from_url(url)
    make_holder, make_waiter = make_for(holder_client), make_for(waiter_client)
    samples = []
    try:
        for _ in range(rounds):
            held = make_holder("bench-handover")
            held.acquire()
            got: list[int] = []

            def wait(got: list[int] = got) -> None:
                lock = make_waiter("bench-handover")
                lock.acquire()
                got.append(time.perf_counter_ns())
                lock.release()

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.02)  # the waiter is blocked by now (BLPOP, or redis-py's poll)
            released = time.perf_counter_ns()
            held.release()
            waiter.join(30)
            if got:
                samples.append(got[0] - released)
    finally:
        holder_client.close()
        waiter_client.close()
    return summary(samples, scale=1e-6, digits=2)


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


def _pick(name: str) -> Callable[[redis.Redis], Callable[[str], _SyncLock]]:
    return lambda client: _factories(client)[name]


def measure(url: str, rounds: int) -> dict[str, Any]:
    """Every measurement, ``rounds`` hand-overs per library (50x as many uncontended calls)."""
    client = redis.Redis.from_url(url)
    try:
        uncontended = {name: acquire_release_us(make, rounds * 50) for name, make in _factories(client).items()}
    finally:
        client.close()
    uncontended["leaderpool AsyncLock"] = async_acquire_release_us(url, rounds * 50)
    handover = {name: handover_ms(url, _pick(name), rounds) for name in _factories(client)}
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

    def row(name: str, stats: dict[str, Any]) -> str:
        return f"| {name} | {stats.get('n')} | {stats.get('p50')} | {stats.get('p90')} | {stats.get('p99')} |"

    lines = ["", "## Locks and names", "", f"Uncontended acquire + release (us), ttl {section.get('ttl_s')} s:", ""]
    lines += ["| library | n | p50 | p90 | p99 |", "|---|---|---|---|---|"]
    lines += [row(name, stats) for name, stats in (section.get("acquire_release_us") or {}).items()]
    lines += ["", "Hand-over to a blocked waiter, from just before the release to the waiter holding it (ms):", ""]
    lines += ["| library | n | p50 | p90 | p99 |", "|---|---|---|---|---|"]
    lines += [row(name, stats) for name, stats in (section.get("handover_ms") or {}).items()]
    w = section.get("whereis_name") or {}
    lines += ["", f"`whereis_name`: {w.get('cached_ns_per_call')} ns per cached lookup (blocking face), "
              f"{w.get('fresh_us_per_call')} us with `fresh=True` (one script on Redis)."]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.locks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a few rounds only (numbers are meaningless)")
    p.add_argument("--rounds", type=int, default=100, help="hand-overs per library (100)")
    p.add_argument("--out", type=Path, help=f"where to write the JSON ({RESULTS})")
    args = p.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    server = RedisServer()
    try:
        server.start()
        results = {"redis": server.version, **measure(server.url, rounds)}
    finally:
        server.cleanup()
    out = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{'quick-' if args.quick else ''}locks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
