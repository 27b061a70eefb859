"""One process of the scale test: ``--pools`` AsyncElections on one event loop sharing one Redis
client (as many services on one node would), one per pool ``<prefix>0`` ... ``<prefix>N-1``;
once they have started, the collector is quieted (:func:`leaderpool.util.gc_tuning.quiet_gc`).

Prints a protocol line per leadership won (``elected`` with its ``pool``), and one ``ready`` line
(with ``count``) once every pool's leader is known locally. SIGTERM stops every election.

With ``--lead-share K`` (and ``--index``, ``--processes``) the leads are spread by priority:
process 0 is preferred in every K-th pool (``i % K == 0``), the other processes share the rest
(pool i goes to process ``1 + i % (processes - 1)``); members take over (``takeover``), so
whoever claimed a pool first hands it to its preferred member once that one has joined."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import redis.asyncio

from leaderpool import AsyncElection, MemberConfig
from leaderpool.console.logs import configure_logging
from leaderpool.util.gc_tuning import quiet_gc
from leaderpool.util.timeouts import within


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields, "t": time.time()}) + "\n")
    sys.stdout.flush()


def announce_elected(pool: str, member: str) -> Callable[[int], None]:
    return lambda term: emit("elected", pool=pool, member=member, term=term)


def shared_client(url: str, connections: int) -> redis.asyncio.Redis:
    """One client for every election of the process (one connection pool, at most ``connections``)."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=connections, timeout=None)
    return redis.asyncio.Redis(connection_pool=pool)


async def hold(
    elections: list[AsyncElection],
    client: redis.asyncio.Redis,
    starting: Awaitable[object],
    label: str,
    ready_timeout: float,
) -> None:
    """Start ``elections`` (``starting``) and run them until SIGTERM: say ``ready`` once each
    knows its leader (within ``ready_timeout``); then stop them all and close the client."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await starting
        quiet_gc()  # as a process hosting thousands of members should (leaderpool.util.gc_tuning)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and not stop.is_set():
            if all(e.leader is not None for e in elections):
                emit("ready", member=label, count=len(elections))
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await within(stop.wait(), 0.1)
        await stop.wait()
    finally:
        await asyncio.gather(*(e.stop() for e in elections), return_exceptions=True)
        await client.aclose()


def preferred_process(pool: int, share: int, processes: int) -> int:
    """The process whose member pool ``pool`` prefers (``--lead-share``)."""
    return 0 if pool % share == 0 else 1 + pool % (processes - 1)


async def run(args: argparse.Namespace) -> None:
    client = shared_client(args.redis, args.connections)
    elections = []
    for i in range(args.pools):
        name = f"{args.prefix}{i}"
        config = MemberConfig(pool=name, member_id=args.member_id, ttl_s=args.ttl)
        if args.lead_share:
            preferred = preferred_process(i, args.lead_share, args.processes) == args.index
            config = MemberConfig(
                pool=name, member_id=args.member_id, ttl_s=args.ttl, priority=1 if preferred else 0, takeover=True
            )
        elections.append(AsyncElection(config, client, on_elected=announce_elected(name, args.member_id)))
    starting = asyncio.gather(*(e.start() for e in elections))
    await hold(elections, client, starting, args.member_id, args.ready_timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True, help="pool names are PREFIX0 ... PREFIX<N-1>")
    parser.add_argument("--pools", type=int, required=True)
    parser.add_argument("--member-id", required=True)
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--connections", type=int, default=16, help="Redis connections this process may open")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--lead-share", type=int, default=0, help="process 0 preferred in every K-th pool (0: none)")
    parser.add_argument("--index", type=int, default=0, help="this process's index (with --lead-share)")
    parser.add_argument("--processes", type=int, default=1, help="how many processes (with --lead-share)")
    args = parser.parse_args()
    configure_logging(fmt="json", level="warning")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
