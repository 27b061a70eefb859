"""Counting semaphores: leaderpool's :class:`~leaderpool.locks.semaphore.Semaphore` beside two
patterns implemented here on one redis-server, each with 2 permits:

- **Redisson-style** (``RSemaphore``): a counter of free permits taken by a script (``DECR`` if
  above 0) and given back with ``INCR`` + ``PUBLISH``; a waiter subscribes to the channel and
  tries again on each message (no leases, no fencing, no order among waiters);
- **polling**: the same counter, and a waiter that tries again every 50 ms.

Measured:

- **acquire + release**: one uncontended permit taken and given back, per call (us);
- **hand-over**: both permits held, a waiter blocked in another thread (its own connection); the
  time from just before one permit's release to the waiter holding a permit (ms);
- **commands while waiting**: the Redis commands a waiter sent during a 1 s wait (from
  ``INFO commandstats``), for the hand-over's price.

``python -m benchmarks.semaphores [--quick] [--rounds N] [--out DIR]`` writes
``semaphores-TIMESTAMP.json``; ``python -m benchmarks`` runs it as its ``semaphores`` section.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import redis

from benchmarks.stats import summary
from leaderpool.locks.semaphore import Semaphore
from leaderpool.testing.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PERMITS = 2
TTL_S = 10.0
POLL_S = 0.05

TAKE = """
local free = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if free > 0 then redis.call('SET', KEYS[1], free - 1) return 1 end
return 0
"""


class _Sem(Protocol):
    def acquire(self) -> Any: ...
    def release(self) -> Any: ...


class CounterSemaphore:
    """A permit counter: ``pubsub=True`` waits for the release message (Redisson's RSemaphore),
    else polls every :data:`POLL_S`."""

    def __init__(self, client: redis.Redis, name: str, *, pubsub: bool) -> None:
        self.client, self.key, self.channel = client, f"bench-sem:{{{name}}}", f"bench-sem-released:{{{name}}}"
        self.pubsub = pubsub
        self.take = client.register_script(TAKE)

    def _try(self) -> bool:
        return int(self.take(keys=[self.key], args=[PERMITS])) == 1

    def acquire(self) -> bool:
        if self._try():
            return True
        if not self.pubsub:
            while not self._try():
                time.sleep(POLL_S)
            return True
        sub = self.client.pubsub()
        sub.subscribe(self.channel)
        try:
            while not self._try():
                sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            return True
        finally:
            sub.close()

    def release(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(self.key)
        pipe.publish(self.channel, "1")
        pipe.execute()


def factories(client: redis.Redis) -> dict[str, Callable[[str], _Sem]]:
    return {
        "leaderpool Semaphore": lambda name: Semaphore(client, name, permits=PERMITS, ttl_s=TTL_S),
        "Redisson-style (counter + pub/sub)": lambda name: CounterSemaphore(client, name, pubsub=True),
        "polling (counter, 50 ms)": lambda name: CounterSemaphore(client, name, pubsub=False),
    }


def acquire_release_us(make: Callable[[str], _Sem], n: int) -> dict[str, Any]:
    samples = []
    for i in range(n + 5):
        sem = make("bench-sem-uncontended")
        t0 = time.perf_counter_ns()
        sem.acquire()
        sem.release()
        if i >= 5:  # warm-up: scripts loaded, connections open
            samples.append(time.perf_counter_ns() - t0)
    return summary(samples, scale=1e-3, digits=1)


def _calls(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


def handover(url: str, name: str, rounds: int) -> dict[str, Any]:
    """Both permits held; a waiter thread blocks; one release; the time until the waiter holds
    a permit (ms), and the commands the whole system sent during the waiter's first second."""
    holder_client, waiter_client, stats_client = (redis.Redis.from_url(url) for _ in range(3))
    make_holder, make_waiter = factories(holder_client)[name], factories(waiter_client)[name]
    samples, waiting_calls = [], []
    jitter = random.Random(7)
    try:
        for r in range(rounds):
            resource = f"bench-sem-handover-{r}"
            held = [make_holder(resource), make_holder(resource)]
            for sem in held:
                sem.acquire()
            got: list[int] = []

            def wait(got: list[int] = got, resource: str = resource) -> None:
                sem = make_waiter(resource)
                sem.acquire()
                got.append(time.perf_counter_ns())
                sem.release()

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.05 + jitter.uniform(0, POLL_S))  # blocked by now; a release out of step with any poll
            if r == 0:
                before = _calls(stats_client)
                time.sleep(1.0)
                waiting_calls.append(_calls(stats_client) - before - 1)  # less our own INFO
            released = time.perf_counter_ns()
            held[0].release()
            waiter.join(30)
            held[1].release()
            if got:
                samples.append(got[0] - released)
    finally:
        for c in (holder_client, waiter_client, stats_client):
            c.close()
    return {"ms": summary(samples, scale=1e-6, digits=2), "commands_during_1s_wait": waiting_calls[0]}


def measure(url: str, rounds: int) -> dict[str, Any]:
    """Every measurement: ``rounds`` hand-overs per implementation (20x as many uncontended calls)."""
    client = redis.Redis.from_url(url)
    try:
        uncontended = {name: acquire_release_us(make, rounds * 20) for name, make in factories(client).items()}
    finally:
        client.close()
    handovers = {name: handover(url, name, rounds) for name in uncontended}
    return {"permits": PERMITS, "ttl_s": TTL_S, "acquire_release_us": uncontended, "handover": handovers}


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The semaphores section of RESULTS.md."""
    if not section:
        return []

    def row(name: str, stats: dict[str, Any], extra: str = "") -> str:
        return f"| {name} | {stats.get('n')} | {stats.get('p50')} | {stats.get('p90')} | {stats.get('p99')} |{extra}"

    lines = ["", "## Semaphores", "", f"Uncontended acquire + release (us), {section.get('permits')} permits:", ""]
    lines += ["| implementation | n | p50 | p90 | p99 |", "|---|---|---|---|---|"]
    lines += [row(name, stats) for name, stats in (section.get("acquire_release_us") or {}).items()]
    lines += ["", "Hand-over to a blocked waiter, from just before a release to the waiter holding a permit (ms),", ""]
    lines += ["| implementation | n | p50 | p90 | p99 | commands in 1 s of waiting |", "|---|---|---|---|---|---|"]
    for name, h in (section.get("handover") or {}).items():
        lines.append(row(name, h.get("ms") or {}, f" {h.get('commands_during_1s_wait')} |"))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.semaphores", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a few rounds only (numbers are meaningless)")
    p.add_argument("--rounds", type=int, default=50, help="hand-overs per implementation (50)")
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
    path = out / f"{'quick-' if args.quick else ''}semaphores-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(markdown_lines(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
