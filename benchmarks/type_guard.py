"""What the heartbeat's key-type checks (hostile data, :data:`leaderpool.backend.baddata.CHECKED_READS`)
cost it: the heartbeat as shipped (``checked``: each key it touches read with a command of its
type, or TYPE), without any check (``unchecked``), and with the TYPE-per-key guard the scripts
used before (``type_guard``: :func:`leaderpool.backend.baddata.type_guard` of all nine keys in front).
Each is called alternately on one connection to a throw-away redis-server, as a follower's beat
and as the leader's (five members, one leading), and timed: round trip (client clock) and
Redis's own time per call (INFO commandstats). ``python -m benchmarks.type_guard [--calls N]
[--out DIR]`` writes ``type-guard-<time>.json`` and prints a summary."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.results_file import write_result
from leaderpool.backend.baddata import CHECKED_READS, type_guard
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.lead_scripts import CLAIM
from leaderpool.backend.pool_scripts import HEARTBEAT, HEARTBEAT_KEY_TYPES, REGISTER
from leaderpool.backend.pool_store import heartbeat_call
from leaderpool.backend.protocol import LeaderValue
from leaderpool.members import MemberInfo, rank_score
from leaderpool.testing.redis_server import RedisServer

# the same script with the checks made plain calls: what the checks cost
UNCHECKED_READS = """
local bad_data = false
local function check_type(key, want) end
local function checked(want, command, key, ...) return redis.call(command, key, ...) end
"""
assert CHECKED_READS in HEARTBEAT
VARIANTS = {
    "checked": HEARTBEAT,
    "unchecked": HEARTBEAT.replace(CHECKED_READS, UNCHECKED_READS),
    "type_guard": type_guard(HEARTBEAT_KEY_TYPES) + HEARTBEAT,
}
MEMBERS = ("a", "b", "c", "d", "e")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _pool(client: redis.Redis, keys: Keyspace) -> LeaderValue:
    """Five members, ``a`` leading; the leader value."""
    for i, member in enumerate(MEMBERS):
        record = MemberInfo(member, "n", "h", 1, 0, 1 + i).record_json()
        client.register_script(REGISTER)(
            keys=[keys.members, keys.leases, keys.term, keys.recovery, keys.ranking, keys.leader],
            args=[member, record, 10**9, keys.events, 0, rank_score(0, 1 + i), "", ""],
        )
    reply = client.register_script(CLAIM)(
        keys=[keys.leader, keys.term, keys.members, keys.leases, keys.history, keys.recovery, keys.leader_conn],
        args=["a", 10**9, 0, keys.events, "7"],
    )
    return LeaderValue(int(reply[1]), "a")


def measure(calls: int) -> dict[str, Any]:
    keys = Keyspace("bench")
    with RedisServer() as server:
        client = redis.Redis(port=server.port)
        held = _pool(client, keys)
        beats = {
            "follower": heartbeat_call(keys, "b", 10**9, None, False, held.term),
            "leader": heartbeat_call(keys, "a", 10**9, held, False, held.term, "7"),
        }
        scripts = {name: client.register_script(source) for name, source in VARIANTS.items()}
        results: dict[str, Any] = {}
        for beat, (beat_keys, args) in beats.items():
            round_trip: dict[str, list[float]] = {name: [] for name in scripts}
            for _ in range(calls):  # alternate, so all see the same machine
                for name, script in scripts.items():
                    start = time.perf_counter()
                    script(keys=beat_keys, args=args)
                    round_trip[name].append((time.perf_counter() - start) * 1e6)
            for name, script in scripts.items():
                client.config_resetstat()
                for _ in range(calls):
                    script(keys=beat_keys, args=args)
                stats = client.info("commandstats")
                inner = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_config"))
                results.setdefault(name, {})[beat] = {
                    "calls": calls,
                    "round_trip_p50_us": round(statistics.median(round_trip[name]), 1),
                    "round_trip_p99_us": round(_percentile(round_trip[name], 0.99), 1),
                    "redis_us_per_call": float(stats["cmdstat_evalsha"]["usec_per_call"]),
                    "commands_per_call": round(inner / calls, 2),
                }
        client.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.type_guard", description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--out", type=Path, help="directory for the result file (benchmarks/results)")
    ns = parser.parse_args()
    results = measure(ns.calls)
    path = write_result(results, "type-guard", ns.out)
    for name, by_beat in results.items():
        for beat, r in by_beat.items():
            print(
                f"{name:10} {beat:8} Redis {r['redis_us_per_call']} us and {r['commands_per_call']} commands per "
                f"call; round trip p50 {r['round_trip_p50_us']} us, p99 {r['round_trip_p99_us']} us"
            )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
