"""Child processes for the queued recipes' tests: ``python -m tests.support.recipes_procs KIND URL
RESOURCE NAME LOG ROUNDS ACT_S [PERMITS] [TTL_S]``.

KIND is ``permit`` (a :class:`~leaderpool.locks.semaphore.Semaphore` of PERMITS), ``read`` or
``write`` (a :class:`~leaderpool.locks.rwlock.ReadWriteLock`), or ``fair`` (``Lock(fair=True)``).
ROUNDS times: take it (printing ``{"event": "acquired", "token": T}``), then for ACT_S seconds
act every 20 ms: read the clock, stop if :attr:`holding` is false (``lost``), else append
``NAME TOKEN KIND TIME`` to LOG (the time read *before* the check, so a pause between the check
and the write records a time when it still held); release (``released``). Last, ``done``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import redis

from leaderpool.locks.blocking_lock import Lock
from leaderpool.locks.rwlock import ReadWriteLock
from leaderpool.locks.semaphore import QueuedHolder, Semaphore

STEP_S = 0.02


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def holder(client: redis.Redis, kind: str, resource: str, permits: int, ttl_s: float) -> QueuedHolder:
    if kind == "permit":
        return Semaphore(client, resource, permits=permits, ttl_s=ttl_s)
    if kind == "fair":
        made: QueuedHolder = Lock(client, resource, fair=True, ttl_s=max(1, round(ttl_s)))
        return made
    rw = ReadWriteLock(client, resource, ttl_s=ttl_s)
    return rw.read() if kind == "read" else rw.write()


def main(argv: list[str]) -> None:
    kind, url, resource, name, log_path, rounds, act_s = argv[:7]
    permits = int(argv[7]) if len(argv) > 7 else 1
    ttl_s = float(argv[8]) if len(argv) > 8 else 2.0
    client = redis.Redis.from_url(url)
    with open(log_path, "a") as log:
        for _ in range(int(rounds)):
            held = holder(client, kind, resource, permits, ttl_s)
            with held:
                emit("acquired", name=name, token=held.token)
                until = time.monotonic() + float(act_s)
                while time.monotonic() < until:
                    at = time.time()
                    if not held.holding:
                        emit("lost", name=name, token=held.token)
                        break
                    log.write(f"{name} {held.token} {kind} {at!r}\n")
                    log.flush()
                    time.sleep(STEP_S)
            emit("released", name=name, lost=held.lost)
    emit("done", name=name)
    client.close()


if __name__ == "__main__":
    main(sys.argv[1:])
