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

import random
import time
from collections.abc import Callable
from typing import Any

import redis

from benchmarks.harness import Holdable, acquire_release_us, handover_ns, run_section, stats_row, table
from benchmarks.stats import summary
from leaderpool.locks.semaphore import Semaphore

PERMITS = 2
TTL_S = 10.0
POLL_S = 0.05

TAKE = """
local free = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if free > 0 then redis.call('SET', KEYS[1], free - 1) return 1 end
return 0
"""


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


def factories(client: redis.Redis) -> dict[str, Callable[[str], Holdable]]:
    return {
        "leaderpool Semaphore": lambda name: Semaphore(client, name, permits=PERMITS, ttl_s=TTL_S),
        "Redisson-style (counter + pub/sub)": lambda name: CounterSemaphore(client, name, pubsub=True),
        "polling (counter, 50 ms)": lambda name: CounterSemaphore(client, name, pubsub=False),
    }


def _calls(client: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


def handover(url: str, name: str, rounds: int) -> dict[str, Any]:
    """Both permits held; a waiter thread blocks; one release; the time until the waiter holds
    a permit (ms), and the commands the whole system sent during the waiter's first second."""
    holder_client, waiter_client, stats_client = (redis.Redis.from_url(url) for _ in range(3))
    make_holder, make_waiter = factories(holder_client)[name], factories(waiter_client)[name]
    samples, waiting_calls = [], []
    jitter = random.Random(7)

    def count_a_second_of_waiting() -> None:
        before = _calls(stats_client)
        time.sleep(1.0)
        waiting_calls.append(_calls(stats_client) - before - 1)  # less our own INFO

    try:
        for r in range(rounds):
            resource = f"bench-sem-handover-{r}"
            held = [make_holder(resource), make_holder(resource)]
            for sem in held:
                sem.acquire()
            waiter = make_waiter(resource)
            # blocked by then; a release out of step with any poll
            took = handover_ns(held[0].release, waiter.acquire, then=waiter.release,
                               blocked_s=0.05 + jitter.uniform(0, POLL_S),
                               meanwhile=count_a_second_of_waiting if r == 0 else None)  # fmt: skip
            held[1].release()
            if took is not None:
                samples.append(took)
    finally:
        for c in (holder_client, waiter_client, stats_client):
            c.close()
    return {"ms": summary(samples, scale=1e-6, digits=2), "commands_during_1s_wait": waiting_calls[0]}


def measure(url: str, rounds: int) -> dict[str, Any]:
    """Every measurement: ``rounds`` hand-overs per implementation (20x as many uncontended calls)."""
    client = redis.Redis.from_url(url)
    try:
        made = factories(client)
        uncontended = {name: acquire_release_us(m, "bench-sem-uncontended", rounds * 20) for name, m in made.items()}
    finally:
        client.close()
    handovers = {name: handover(url, name, rounds) for name in uncontended}
    return {"permits": PERMITS, "ttl_s": TTL_S, "acquire_release_us": uncontended, "handover": handovers}


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The semaphores section of RESULTS.md."""
    if not section:
        return []
    keys = ("n", "p50", "p90", "p99")
    lines = ["", "## Semaphores", "", f"Uncontended acquire + release (us), {section.get('permits')} permits:", ""]
    lines += table("implementation", keys, (stats_row(name, stats) for name, stats in
                                            (section.get("acquire_release_us") or {}).items()))  # fmt: skip
    lines += ["", "Hand-over to a blocked waiter, from just before a release to the waiter holding a permit (ms),", ""]
    rows = (stats_row(name, h.get("ms"), keys) + f" {h.get('commands_during_1s_wait')} |"
            for name, h in (section.get("handover") or {}).items())  # fmt: skip
    lines += table("implementation", (*keys, "commands in 1 s of waiting"), rows)
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_section("python -m benchmarks.semaphores", __doc__, "semaphores", measure, markdown_lines,
                       default_rounds=50, argv=argv)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
