"""A bare member process for the core's multi-process tests (the worker has its own tests).

Prints one JSON line per callback on stdout; SIGTERM stops it gracefully."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from leaderpool import Election, MemberConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("pool")
    p.add_argument("member")
    p.add_argument("--ttl", type=float, default=1.0)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--takeover", action="store_true")
    args = p.parse_args()

    def emit(event: str, **fields: Any) -> None:
        line = {"event": event, "member": args.member, "t": time.time(), **fields}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    election = Election(
        MemberConfig(
            pool=args.pool, member_id=args.member, ttl_s=args.ttl, priority=args.priority, takeover=args.takeover
        ),
        args.url,
        on_elected=lambda term: emit("elected", term=term),
        on_revoked=lambda reason: emit("revoked", reason=reason.value),
        on_leader_changed=lambda leader: emit("leader", leader=leader.member if leader else None),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    election.start()
    emit("started")
    stop.wait()
    election.stop()
    emit("stopped")


if __name__ == "__main__":
    main()
