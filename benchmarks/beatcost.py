"""The cost of a beat, both sides (issue 25): ``--pools`` pools of ``--members`` members, all hosted
by this one process (one AsyncElection per member on one event loop, one shared Redis client), on
a throw-away redis-server. Once every pool is led and a warm-up has passed, over a steady window:

- Redis commands per member per beat (INFO commandstats, which counts the commands run inside
  scripts too), in all and without the script calls themselves (``EVALSHA``);
- this process's CPU per beat (user + system), every member's beats counted by Redis (the
  heartbeat script's calls);
- the beats that ran late (``heartbeat_late`` warnings).

``python -m benchmarks.beatcost [--redis URL] [--pools N] [--members M] [--ttl S] [--warmup S]
[--window S]`` prints one JSON line (without ``--redis``, on a throw-away redis-server; a server
given is flushed of nothing but its stats are read, so give it to this run alone). Run it against
another checkout with ``PYTHONPATH=<checkout>`` for an A/B on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import redis
import redis.asyncio

from leaderpool import AsyncElection, MemberConfig
from leaderpool.util.gc_tuning import quiet_gc

SCRIPT_COMMANDS = ("evalsha", "eval")
RUNNER_COMMANDS = {"info", "config|resetstat", "config|set", "ping", "hello", "client|setinfo", "client|setname"}


def _calls(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


async def _run(url: str, pools: int, members: int, ttl: float, warmup: float, window: float) -> dict[str, Any]:
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=16, timeout=None)
    client = redis.asyncio.Redis(connection_pool=pool)
    elections = [
        AsyncElection(MemberConfig(pool=f"cost{p}", member_id=f"m{m}", ttl_s=ttl), client)
        for p in range(pools)
        for m in range(members)
    ]
    await asyncio.gather(*(e.start() for e in elections))
    quiet_gc()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(e.leader is not None for e in elections):
        await asyncio.sleep(0.2)
    await asyncio.sleep(warmup)
    admin = redis.Redis.from_url(url)
    calls0, cpu0, t0 = _calls(admin), time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    calls1, cpu1, t1 = _calls(admin), time.process_time(), time.monotonic()
    led = sum(1 for e in elections if e.leader is not None)
    await asyncio.gather(*(e.stop() for e in elections), return_exceptions=True)
    await client.aclose()
    delta = {k: v - calls0.get(k, 0) for k, v in calls1.items() if k not in RUNNER_COMMANDS}
    delta = {k: v for k, v in delta.items() if v > 0}
    scripts = sum(delta.get(k, 0) for k in SCRIPT_COMMANDS)
    total = sum(delta.values())
    expected_beats = (t1 - t0) * len(elections) / (ttl / 3)
    beats = scripts  # in a steady pool every script call is a beat (glances and claims are rare)
    admin.close()
    return {
        "pools": pools,
        "members": members,
        "members_in_process": len(elections),
        "ttl_s": ttl,
        "window_s": round(t1 - t0, 2),
        "led_pools_of_members": f"{led}/{len(elections)}",
        "beats": beats,
        "beats_expected": round(expected_beats),
        "commands_per_beat": round(total / beats, 3) if beats else None,
        "commands_inside_scripts_per_beat": round((total - scripts) / beats, 3) if beats else None,
        "by_command_per_beat": {k: round(v / beats, 3) for k, v in sorted(delta.items())} if beats else {},
        "client_cpu_us_per_beat": round((cpu1 - cpu0) * 1e6 / beats, 1) if beats else None,
        "client_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
    }


def measure(
    pools: int, members: int, ttl: float, warmup: float, window: float, url: str | None = None
) -> dict[str, Any]:
    """One run (on a redis-server of its own unless ``url`` is given)."""
    if url is not None:
        return asyncio.run(_run(url, pools, members, ttl, warmup, window))
    from leaderpool.testing.redis_server import RedisServer

    with RedisServer() as server:
        return asyncio.run(_run(server.url, pools, members, ttl, warmup, window))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.beatcost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--redis", help="redis URL of a server of this run's own (default: start one)")
    p.add_argument("--pools", type=int, default=400)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--ttl", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--window", type=float, default=20.0)
    args = p.parse_args(argv)
    if args.pools < 1 or args.members < 1 or args.ttl <= 0 or args.window <= 0:
        print("beatcost: need --pools, --members >= 1 and --ttl, --window > 0", file=sys.stderr)
        return 2
    from leaderpool.console.logs import configure_logging

    configure_logging(fmt="json", level=os.environ.get("BEATCOST_LOG", "warning"))
    out = measure(args.pools, args.members, args.ttl, args.warmup, args.window, args.redis)
    import leaderpool

    out["leaderpool"] = os.path.dirname(os.path.dirname(str(leaderpool.__file__)))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
