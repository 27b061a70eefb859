"""What the scripts' key-type check (hostile data, :func:`leaderpool.baddata.type_guard`) costs a
heartbeat: the heartbeat script with and without it, called alternately on one connection to a
throw-away redis-server, round trip (client clock) and Redis's own time per call (INFO
commandstats). ``python -m benchmarks.type_guard [--calls N] [--out DIR]`` writes
``type-guard-<time>.json`` and prints a summary."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import redis

from leaderpool.baddata import type_guard
from leaderpool.keys import Keyspace
from leaderpool.members import MemberInfo, rank_score
from leaderpool.scripts import HEARTBEAT, HEARTBEAT_KEY_TYPES, REGISTER
from leaderpool.store import heartbeat_call
from leaderpool.testing.redis_server import RedisServer


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(calls: int) -> dict[str, Any]:
    keys = Keyspace("bench")
    hb_keys, args = heartbeat_call(keys, "a", 5000, None, False, 0)
    with RedisServer() as server:
        client = redis.Redis(port=server.port)
        record = MemberInfo("a", "n", "h", 1, 0, 1).record_json()
        client.register_script(REGISTER)(
            keys=[keys.members, keys.leases, keys.term, keys.recovery, keys.ranking],
            args=["a", record, 10**9, keys.events, 0, rank_score(0, 1)],
        )
        scripts = {
            "plain": client.register_script(HEARTBEAT),
            "guarded": client.register_script(type_guard(HEARTBEAT_KEY_TYPES) + HEARTBEAT),
        }
        round_trip: dict[str, list[float]] = {name: [] for name in scripts}
        for _ in range(calls):  # alternate, so both see the same machine
            for name, script in scripts.items():
                start = time.perf_counter()
                script(keys=hb_keys, args=args)
                round_trip[name].append((time.perf_counter() - start) * 1e6)
        server_us: dict[str, float] = {}
        for name, script in scripts.items():
            client.config_resetstat()
            for _ in range(calls):
                script(keys=hb_keys, args=args)
            server_us[name] = float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
        client.close()
    return {
        name: {
            "calls": calls,
            "round_trip_p50_us": round(statistics.median(values), 1),
            "round_trip_p99_us": round(_percentile(values, 0.99), 1),
            "redis_us_per_call": server_us[name],
        }
        for name, values in round_trip.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.type_guard", description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ns = parser.parse_args()
    results = measure(ns.calls)
    ns.out.mkdir(parents=True, exist_ok=True)
    path = ns.out / f"type-guard-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    for name, r in results.items():
        print(
            f"{name:8} round trip p50 {r['round_trip_p50_us']} us, p99 {r['round_trip_p99_us']} us; "
            f"Redis {r['redis_us_per_call']} us per call"
        )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
