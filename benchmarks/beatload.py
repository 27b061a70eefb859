"""Redis's share of many pools, without the clients: ``pools`` x 5 members registered on a
throw-away redis-server (member ``a`` leading each pool), then their heartbeats (the script the
members send: four follower beats and one leader renewal per pool and heartbeat) driven from this
process in pipelines of ``--batch``, as fast as it can or at the members' real rate (lease 5 s,
heartbeat 1.67 s), whichever is slower. Redis CPU per beat (INFO cpu, all in: parsing, the script,
replies) and the projection to the real rate: what Redis needs for that many pools when the clients
keep up. The keyspace events the members turn on are on (no one subscribed).

``python -m benchmarks.beatload [--pools N] [--seconds S] [--batch B] [--out DIR]`` writes
``beatload-<time>.json`` and prints a summary."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.results_file import write_result
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.lead_scripts import CLAIM
from leaderpool.backend.pool_scripts import HEARTBEAT, REGISTER
from leaderpool.backend.pool_store import heartbeat_call
from leaderpool.backend.protocol import LeaderValue
from leaderpool.members import MemberInfo, rank_score
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.constants import NEEDED_KEYSPACE_FLAGS

MEMBERS = ("a", "b", "c", "d", "e")
TTL_MS = 5000


def _cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _set_up(client: redis.Redis, pools: int) -> list[tuple[Any, list[Any]]]:
    """Every pool's members registered, ``a`` leading; the beats of one heartbeat of all."""
    register, claim = client.script_load(REGISTER), client.script_load(CLAIM)
    beats = []
    pipe = client.pipeline(transaction=False)
    for p in range(pools):
        k = Keyspace(f"load-{p}")
        for i, m in enumerate(MEMBERS):
            record = MemberInfo(m, "n", "h", 1, 0, 1 + i).record_json()
            pipe.evalsha(register, 5, k.members, k.leases, k.term, k.recovery, k.ranking,
                         m, record, 10**9, k.events, 0, rank_score(0, 1 + i))  # fmt: skip
        pipe.evalsha(claim, 7, k.leader, k.term, k.members, k.leases, k.history, k.recovery, k.leader_conn,
                     "a", 10**9, 0, k.events, "7")  # fmt: skip
        # ordinary beats: no record read (a member reads it on late beats and every eighth)
        beats.append(heartbeat_call(k, "a", TTL_MS * 100, LeaderValue(1, "a"), False, 1, "7", check=False))
        beats.extend(heartbeat_call(k, m, TTL_MS * 100, None, False, 1, check=False) for m in MEMBERS[1:])
        if p % 200 == 199:
            pipe.execute()
    pipe.execute()
    return beats


def measure(pools: int, seconds: float, batch: int) -> dict[str, Any]:
    real_rate = pools * len(MEMBERS) / (TTL_MS / 3000)
    with RedisServer() as server:
        client = redis.Redis(port=server.port)
        client.config_set("notify-keyspace-events", NEEDED_KEYSPACE_FLAGS)
        beats = _set_up(client, pools)
        sha = client.script_load(HEARTBEAT)
        client.config_resetstat()
        cpu0, t0, sent = _cpu_s(client), time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            pipe = client.pipeline(transaction=False)
            for keys, args in beats[sent % len(beats) : sent % len(beats) + batch]:
                pipe.evalsha(sha, len(keys), *keys, *args)
            sent += len(pipe.command_stack)
            pipe.execute()
            ahead = sent / real_rate - (time.monotonic() - t0)
            if ahead > 0:  # no faster than the members would beat
                time.sleep(ahead)
        wall, cpu = time.monotonic() - t0, _cpu_s(client) - cpu0
        stats = client.info("commandstats")
        client.close()
        version = server.version
    us_per_beat = cpu * 1e6 / sent
    return {
        "pools": pools,
        "members": pools * len(MEMBERS),
        "batch": batch,
        "redis": version,
        "wall_s": round(wall, 2),
        "beats": sent,
        "beats_per_s": round(sent / wall),
        "real_rate_per_s": round(real_rate),
        "redis_cpu_pct": round(100 * cpu / wall, 1),
        "redis_cpu_us_per_beat": round(us_per_beat, 2),
        "script_us_per_call": float(stats["cmdstat_evalsha"]["usec_per_call"]),
        "redis_cpu_pct_at_real_rate": round(us_per_beat * real_rate / 1e4, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.beatload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--pools", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=50, help="beats per pipeline")
    parser.add_argument("--out", type=Path, help="directory for the result file (benchmarks/results)")
    ns = parser.parse_args()
    if ns.pools < 1 or ns.seconds <= 0 or ns.batch < 1:
        parser.error("need --pools >= 1, --seconds > 0 and --batch >= 1")
    r = measure(ns.pools, ns.seconds, ns.batch)
    path = write_result(r, "beatload", ns.out)
    print(
        f"{r['pools']} pools x 5: {r['beats_per_s']} beats/s driven (real rate {r['real_rate_per_s']}/s), Redis "
        f"{r['redis_cpu_pct']}% = {r['redis_cpu_us_per_beat']} us per beat (script {r['script_us_per_call']} us); "
        f"at the real rate: {r['redis_cpu_pct_at_real_rate']}% of a core"
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
