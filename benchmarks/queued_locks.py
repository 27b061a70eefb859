"""Read-write locks and fair locks: leaderpool's :class:`~leaderpool.locks.rwlock.ReadWriteLock` and
``Lock(fair=True)`` beside what a user would otherwise pick, on one redis-server:

- **Redisson-style** ``RReadWriteLock`` and ``RFairLock`` (:mod:`benchmarks.redisson_style`:
  a broadcast channel per read-write lock, a channel per waiter for the fair lock);
- **python-redis-lock** (beside the fair lock only: it is a mutex, not fair; its waiters
  ``BLPOP`` one signal list, so a release wakes one of them, in no set order).

Measured, each with ``rounds`` samples (p50/p90/p99):

- **acquire**: one uncontended acquire alone (us), on a fresh object each time;
- **hand-over**: a waiter blocked in another thread (its own connection); from just before the
  release to the waiter holding (ms): for the read-write lock a writer to a waiting reader and a
  reader to a waiting writer;
- **woken per release**: one holder and :data:`WAITERS` waiters (writers, for the read-write
  lock), one release: how many waiters sent Redis anything in the next 300 ms (1 is the ideal:
  the one now first; more is a thundering herd), median over the rounds;
- **reader throughput**: :data:`READERS` threads each taking and releasing a read hold in a loop
  (holds per second, all together);
- **a killed holder's permit**: a process holds leaderpool's one-permit semaphore with a
  :data:`RECLAIM_LEASE_S` lease, a waiter blocks; SIGKILL the holder: the time until the waiter
  holds (its death proved by its liveness connection being gone; the others here wait for the
  lease to end). Not in a quick run (each round waits up to 2 s).

``python -m benchmarks.queued_locks [--quick] [--rounds N] [--out DIR]`` writes
``queued-locks-TIMESTAMP.json``; ``python -m benchmarks`` runs it as its ``queued locks`` section.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redis
import redis_lock

from benchmarks.harness import (
    JOIN_S,
    Holdable,
    acquire_us,
    handovers_ms,
    holds_per_s,
    run_section,
    stats_row,
    table,
    wait_until,
    woken_by_one_release,
)
from benchmarks.redisson_style import RedissonStyleFairLock, RedissonStyleRWLock
from benchmarks.stats import summary
from leaderpool.locks.blocking_lock import Lock
from leaderpool.locks.rwlock import ReadWriteLock
from leaderpool.locks.semaphore import Semaphore
from leaderpool.testing.processes import ChildGroup, clean_env

TTL_S = 10
WAITERS = 4
READERS = 4
RECLAIM_LEASE_S = 30.0
ROOT = Path(__file__).resolve().parent.parent

Maker = Callable[[redis.Redis, str], Holdable]


def rw_makers(side: str) -> dict[str, Maker]:
    """Each read-write lock's ``side`` (``read`` or ``write``) on a client and a resource."""

    def leaderpool(client: redis.Redis, name: str) -> Holdable:
        rw = ReadWriteLock(client, name, ttl_s=TTL_S)
        return rw.read() if side == "read" else rw.write()

    def redisson(client: redis.Redis, name: str) -> Holdable:
        return RedissonStyleRWLock(client, name, side, lease_ms=TTL_S * 1000)

    return {"leaderpool ReadWriteLock": leaderpool, "Redisson-style RReadWriteLock": redisson}


def fair_makers() -> dict[str, Maker]:
    return {
        "leaderpool Lock(fair=True)": lambda client, name: Lock(client, name, ttl_s=TTL_S, fair=True),
        "Redisson-style RFairLock": lambda client, name: RedissonStyleFairLock(client, name, lease_ms=TTL_S * 1000),
        "python-redis-lock (not fair)": lambda client, name: redis_lock.Lock(
            client, f"{{{name}}}", expire=TTL_S, auto_renewal=True
        ),
    }


def handover_ms(url: str, make_holder: Maker, make_waiter: Maker, rounds: int, resource: str) -> dict[str, Any]:
    """``rounds`` hand-overs from a holder (``make_holder``) to one blocked waiter (``make_waiter``)."""
    return handovers_ms(url, make_holder, make_waiter, rounds, lambda r: f"{resource}-{r}")


def woken(url: str, make: Maker, rounds: int, resource: str) -> dict[str, Any]:
    counts = [woken_by_one_release(url, make, f"{resource}-{r}", waiters=WAITERS) for r in range(rounds)]
    return {"median": statistics.median(counts), "max": max(counts), "rounds": len(counts)}


def uncontended_us(url: str, make: Maker, n: int, resource: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        return acquire_us(lambda name: make(client, name), resource, n)
    finally:
        client.close()


def _on(resource: str, make: Maker) -> Callable[[redis.Redis], Holdable]:
    return lambda client: make(client, resource)


def measure_rw(url: str, rounds: int, herd_rounds: int, window_s: float) -> dict[str, Any]:
    reads, writes = rw_makers("read"), rw_makers("write")
    out: dict[str, Any] = {}
    for name in reads:
        out[name] = {
            "acquire_read_us": uncontended_us(url, reads[name], rounds * 10, "bench-rw-uncontended"),
            "acquire_write_us": uncontended_us(url, writes[name], rounds * 10, "bench-rw-uncontended"),
            "handover_write_to_read_ms": handover_ms(url, writes[name], reads[name], rounds, "bench-rw-w2r"),
            "handover_read_to_write_ms": handover_ms(url, reads[name], writes[name], rounds, "bench-rw-r2w"),
            "writers_woken_per_release": woken(url, writes[name], herd_rounds, "bench-rw-herd"),
            "reader_holds_per_s": holds_per_s(
                _on("bench-rw-readers", reads[name]), url, threads=READERS, window_s=window_s
            ),
        }
    return out


def measure_fair(url: str, rounds: int, herd_rounds: int) -> dict[str, Any]:
    return {
        name: {
            "acquire_us": uncontended_us(url, make, rounds * 10, "bench-fair-uncontended"),
            "handover_ms": handover_ms(url, make, make, rounds, "bench-fair-handover"),
            "woken_per_release": woken(url, make, herd_rounds, "bench-fair-herd"),
        }
        for name, make in fair_makers().items()
    }


def _take(waiter: Semaphore, got: list[float]) -> None:
    if waiter.acquire():
        got.append(time.time())


def _queued(client: redis.Redis, resource: str) -> bool:
    return 1 == client.zcard(f"leaderpool:semaphore-queue:{{{resource}}}")


def reclaim_after_sigkill_ms(url: str, rounds: int) -> dict[str, Any]:
    """``rounds`` times: a holder process (``tests.support.recipes_procs``) takes the one permit,
    a waiter thread blocks, the holder is SIGKILLed; the ms until the waiter holds."""
    client = redis.Redis.from_url(url)
    samples: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="leaderpool-bench-reclaim-") as tmp, ChildGroup() as group:
            for r in range(rounds):
                resource = f"bench-reclaim-{r}"
                argv = [sys.executable, "-m", "tests.support.recipes_procs", "permit", url, resource, "holder",
                        str(Path(tmp) / "log"), "1", "120", "1", str(RECLAIM_LEASE_S)]  # fmt: skip
                holder = group.start(argv, name=f"holder-{r}", env=clean_env(PYTHONPATH=str(ROOT)), cwd=ROOT)
                holder.wait_for(lambda e: e["event"] == "acquired", JOIN_S)
                waiter = Semaphore(client, resource, permits=1, ttl_s=RECLAIM_LEASE_S, timeout=2 * RECLAIM_LEASE_S)
                got: list[float] = []
                thread = threading.Thread(target=_take, args=(waiter, got), daemon=True)
                thread.start()
                wait_until(partial(_queued, client, resource), "the waiter in the queue", JOIN_S)
                killed = holder.kill()
                thread.join(2 * RECLAIM_LEASE_S)
                if got:
                    samples.append((got[0] - killed) * 1000)
                waiter.release()
    finally:
        client.close()
    return {"lease_s": RECLAIM_LEASE_S, "ms": summary(samples, digits=1)}


def measure(url: str, rounds: int) -> dict[str, Any]:
    """Every measurement: ``rounds`` hand-overs, 10x as many uncontended acquires; a quick run
    (``rounds`` < 20) counts wake-ups once and reads for 0.1 s."""
    quick = rounds < 20
    herd_rounds, window_s = (1, 0.1) if quick else (max(5, rounds // 4), 1.0)
    return {
        "ttl_s": TTL_S,
        "waiters": WAITERS,
        "readers": READERS,
        "rounds": rounds,
        "rwlock": measure_rw(url, rounds, herd_rounds, window_s),
        "fair_lock": measure_fair(url, rounds, herd_rounds),
        # each round waits up to a waiter's 2 s wait: left out of a quick run (tests/locks/test_fast_reclaim)
        "reclaim_after_sigkill": None if quick else reclaim_after_sigkill_ms(url, 10),
    }


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The section of RESULTS.md."""
    if not section:
        return []
    keys = ("n", "p50", "p90", "p99")
    rw, fair = section.get("rwlock") or {}, section.get("fair_lock") or {}
    lines = ["", "## Read-write locks and fair locks", ""]
    lines += [f"Uncontended acquire alone (us), ttl {section.get('ttl_s')} s:", ""]
    lines += table("implementation", keys, [
        *(stats_row(f"{name}: read", r.get("acquire_read_us"), keys) for name, r in rw.items()),
        *(stats_row(f"{name}: write", r.get("acquire_write_us"), keys) for name, r in rw.items()),
        *(stats_row(name, f.get("acquire_us"), keys) for name, f in fair.items()),
    ])  # fmt: skip
    lines += ["", "Hand-over to a blocked waiter, from just before the release to the waiter holding (ms):", ""]
    lines += table("implementation", keys, [
        *(stats_row(f"{name}: writer -> reader", r.get("handover_write_to_read_ms"), keys) for name, r in rw.items()),
        *(stats_row(f"{name}: reader -> writer", r.get("handover_read_to_write_ms"), keys) for name, r in rw.items()),
        *(stats_row(name, f.get("handover_ms"), keys) for name, f in fair.items()),
    ])  # fmt: skip
    lines += ["", f"Waiters woken by one release ({section.get('waiters')} blocked; writers for the read-write "
              "lock; median / max over the rounds),", f"and {section.get('readers')} readers' holds per second:",
              ""]  # fmt: skip
    rows = [f"| {name} | {r['writers_woken_per_release']['median']} / {r['writers_woken_per_release']['max']} | "
            f"{r.get('reader_holds_per_s')} |" for name, r in rw.items()]  # fmt: skip
    rows += [f"| {name} | {f['woken_per_release']['median']} / {f['woken_per_release']['max']} | - |"
             for name, f in fair.items()]  # fmt: skip
    lines += table("implementation", ("woken per release", "reader holds/s"), rows)
    reclaim = section.get("reclaim_after_sigkill")
    if reclaim:
        ms = reclaim.get("ms") or {}
        lines += ["", f"A killed holder's permit (leaderpool `Semaphore`, lease {reclaim.get('lease_s')} s) held by a "
                  f"waiter {ms.get('p50')} ms p50 / {ms.get('max')} ms max after the SIGKILL (n={ms.get('n')}); "
                  "without the proof of death, at the lease end."]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_section("python -m benchmarks.queued_locks", __doc__, "queued-locks", measure, markdown_lines,
                       default_rounds=30, argv=argv, write_markdown=True)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
