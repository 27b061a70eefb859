"""A bare member process for the core's multi-process tests (the worker has its own tests).

Prints one JSON line per callback on stdout; SIGTERM stops it gracefully: by its own handler, or
with ``--until-signal blocking|asyncio`` by that face's ``run_until_signal()``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from typing import Any

from leaderpool import AsyncElection, Election, MemberConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("pool")
    p.add_argument("member")
    p.add_argument("--ttl", type=float, default=1.0)
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--takeover", action="store_true")
    p.add_argument("--until-signal", choices=["blocking", "asyncio"])
    args = p.parse_args()

    def emit(event: str, **fields: Any) -> None:
        line = {"event": event, "member": args.member, "t": time.time(), **fields}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    config = MemberConfig(
        pool=args.pool, member_id=args.member, ttl_s=args.ttl, priority=args.priority, takeover=args.takeover
    )
    callbacks: dict[str, Any] = {
        "on_elected": lambda term: emit("elected", term=term),
        "on_revoked": lambda reason: emit("revoked", reason=reason.value),
        "on_leader_changed": lambda leader: emit("leader", leader=leader.member if leader else None),
    }
    if args.until_signal == "asyncio":

        async def run() -> int | None:
            election = AsyncElection(config, args.url, **callbacks)
            await election.start()
            emit("started")
            return await election.run_until_signal()

        emit("stopped", signal=asyncio.run(run()))
        return
    election = Election(config, args.url, **callbacks)
    if args.until_signal == "blocking":
        election.start()
        emit("started")
        emit("stopped", signal=election.run_until_signal())
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    election.start()
    emit("started")
    stop.wait()
    election.stop()
    emit("stopped")


if __name__ == "__main__":
    main()
