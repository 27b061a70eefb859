"""One process of the big-pool benchmark: ``--members`` AsyncElections of ONE pool on one event
loop, sharing one Redis client (one connection pool, not one connection per member). Members
join one after another (``--gap``), so the default ranking follows the order.

Prints a protocol line per leadership won (``elected``) and one ``ready`` line once every member
knows the leader; late heartbeats are logged (JSON warnings on stderr). SIGTERM stops every member."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

import redis.asyncio

from benchmarks.scale_member import announce_elected, emit
from leaderpool import AsyncElection, MemberConfig
from leaderpool.cli.logs import configure_logging
from leaderpool.timeouts import within


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = redis.asyncio.BlockingConnectionPool.from_url(args.redis, max_connections=args.connections, timeout=None)
    client = redis.asyncio.Redis(connection_pool=pool)
    elections = []
    for i in range(args.members):
        member = f"{args.label}-{i:04d}"
        config = MemberConfig(
            pool=args.pool, member_id=member, ttl_s=args.ttl, priority=args.priority, fast_failover=args.fast_failover
        )
        elections.append(AsyncElection(config, client, on_elected=announce_elected(args.pool, member)))
    try:
        for e in elections:
            await e.start()
            await asyncio.sleep(args.gap)
        deadline = time.monotonic() + args.ready_timeout
        while time.monotonic() < deadline and not stop.is_set():
            if all(e.leader is not None for e in elections):
                emit("ready", member=args.label, count=len(elections))
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
    parser.add_argument("--pool", required=True)
    parser.add_argument("--label", required=True, help="member ids are LABEL-0000 ...")
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--priority", type=int, default=0)
    parser.add_argument("--no-fast-failover", dest="fast_failover", action="store_false")
    parser.add_argument("--gap", type=float, default=0.002, help="seconds between two members' joins")
    parser.add_argument("--connections", type=int, default=16, help="Redis connections this process may open")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    args = parser.parse_args()
    configure_logging(fmt="json", level="warning")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
