"""One process of the scale test: ``--pools`` AsyncElections on one event loop sharing one Redis
client (as many services on one node would), one per pool ``<prefix>0`` ... ``<prefix>N-1``.

Prints a protocol line per leadership won (``elected`` with its ``pool``), and one ``ready`` line
(with ``count``) once every pool's leader is known locally. SIGTERM stops every election."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable

import redis.asyncio

from leaderpool import AsyncElection, MemberConfig
from leaderpool.cli.logs import configure_logging
from leaderpool.timeouts import within


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields, "t": time.time()}) + "\n")
    sys.stdout.flush()


def announce_elected(pool: str, member: str) -> Callable[[int], None]:
    return lambda term: emit("elected", pool=pool, member=member, term=term)


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = redis.asyncio.BlockingConnectionPool.from_url(args.redis, max_connections=args.connections, timeout=None)
    client = redis.asyncio.Redis(connection_pool=pool)
    elections = []
    for i in range(args.pools):
        name = f"{args.prefix}{i}"
        elections.append(
            AsyncElection(
                MemberConfig(pool=name, member_id=args.member_id, ttl_s=args.ttl),
                client,
                on_elected=announce_elected(name, args.member_id),
            )
        )
    try:
        await asyncio.gather(*(e.start() for e in elections))
        deadline = time.monotonic() + args.ready_timeout
        while time.monotonic() < deadline and not stop.is_set():
            known = sum(1 for e in elections if e.leader is not None)
            if known == len(elections):
                emit("ready", member=args.member_id, count=known)
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await within(stop.wait(), 0.1)
        await stop.wait()
    finally:
        await asyncio.gather(*(e.stop() for e in elections), return_exceptions=True)
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True, help="pool names are PREFIX0 ... PREFIX<N-1>")
    parser.add_argument("--pools", type=int, required=True)
    parser.add_argument("--member-id", required=True)
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--connections", type=int, default=16, help="Redis connections this process may open")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    args = parser.parse_args()
    configure_logging(fmt="json", level="warning")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
