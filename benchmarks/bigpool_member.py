"""One process of the big-pool benchmark: ``--members`` AsyncElections of ONE pool on one event
loop, sharing one Redis client (one connection pool, not one connection per member). Members
join one after another (``--gap``), so the default ranking follows the order.

Prints a protocol line per leadership won (``elected``) and one ``ready`` line once every member
knows the leader; late heartbeats are logged (JSON warnings on stderr). SIGTERM stops every member."""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.scale_member import announce_elected, hold, shared_client
from leaderpool import AsyncElection, MemberConfig
from leaderpool.console.logs import configure_logging


async def run(args: argparse.Namespace) -> None:
    client = shared_client(args.redis, args.connections)
    elections = []
    for i in range(args.members):
        member = f"{args.label}-{i:04d}"
        config = MemberConfig(
            pool=args.pool, member_id=member, ttl_s=args.ttl, priority=args.priority, fast_failover=args.fast_failover
        )
        elections.append(AsyncElection(config, client, on_elected=announce_elected(args.pool, member)))

    async def starting() -> None:  # one after another: the default ranking follows the order
        for e in elections:
            await e.start()
            await asyncio.sleep(args.gap)

    await hold(elections, client, starting(), args.label, args.ready_timeout)


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
