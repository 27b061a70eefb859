"""A member process running singletons, for the singletons' multi-process tests.

``python -m tests.support.singleton_member URL POOL MEMBER --count N``: joins POOL, runs its
share of ``shard-0..N-1`` and prints one JSON line per start and stop (``singleton_started``,
``singleton_stopped``: singleton, term, the state it resumed from or handed over, t). Each
singleton's state counts its owners: the new owner resumes from what the previous one saved.
SIGTERM stops it kindly: its singletons are handed over, then it leaves the pool."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from leaderpool import Election, MemberConfig, Singletons


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("pool")
    p.add_argument("member")
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--ttl", type=float, default=2.0)
    p.add_argument("--max-moves", type=int, default=2)
    args = p.parse_args()
    lock = threading.Lock()
    state: dict[str, dict[str, Any]] = {}

    def emit(event: str, **fields: Any) -> None:
        line = {"event": event, "member": args.member, "t": time.time(), **fields}
        with lock:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    def on_start(name: str, term: int, saved: Any) -> None:
        state[name] = dict(saved) if isinstance(saved, dict) else {"owners": 0}
        state[name]["owners"] += 1
        emit("singleton_started", singleton=name, term=term, state=saved)

    def on_stop(name: str, term: int, reason: str) -> Any:
        handed = state.pop(name, None)
        emit("singleton_stopped", singleton=name, term=term, reason=reason, state=handed)
        return handed

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = MemberConfig(pool=args.pool, member_id=args.member, ttl_s=args.ttl)
    election = Election(config, args.url)
    election.start()
    # the singletons stop (handing over) before the election leaves the pool
    with Singletons(election, count=args.count, on_start=on_start, on_stop=on_stop, max_moves=args.max_moves):
        emit("started")
        stop.wait()
    election.stop()
    emit("stopped")


if __name__ == "__main__":
    main()
