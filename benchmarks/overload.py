"""Overload, then recovery (issue 13): more members than the machine's clients can keep beating,
then the load drops, and every pool must be led again, by one member, and stay so.

``python -m benchmarks.overload [--quick] [--pools N] [--processes M] [--keep K] [--ttl S]
[--overload-s S] [--recover-s S] [--out DIR]`` starts M processes that each hold one member of
every pool (:mod:`benchmarks.scale_member`, all at once, as after a mass restart), samples every
pool's leader and the workers' warnings for ``--overload-s`` seconds, then stops all but K of
the processes (SIGTERM: a scale-down) and samples again until every pool has had a leader for a
whole lease (``recovered``) or ``--recover-s`` passes. Writes ``overload-TIMESTAMP.json`` to
``benchmarks/results/``: the samples (pools led, late heartbeats and timed-out calls per second,
CPU), the time to recover, and whether any pool was ever held by two members (read from Redis,
one key per pool: it cannot be).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import psutil
import redis

from benchmarks.results_file import fill_defaults, run_alone
from benchmarks.scale import leaders_of, warning_counts
from benchmarks.scenarios import progress
from leaderpool.testing.processes import Child, ChildGroup

SAMPLE_S = 2.0
"""Between two readings of every pool's leader (one pipeline of GETs)."""
PREFIX = "overload-"


def sample(
    client: redis.Redis, names: list[str], log: IO[str], handles: dict[str, psutil.Process], t0: float
) -> dict[str, Any]:
    holders = leaders_of(client, names)
    warnings = warning_counts(log)
    cpu = {}
    for label, p in handles.items():
        try:
            cpu[label] = sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return {
        "t_s": round(time.monotonic() - t0, 2),
        "pools_led": sum(1 for h in holders if h is not None),
        "heartbeat_late": warnings.get("heartbeat_late", 0),
        "redis_call_timed_out": warnings.get("redis_call_timed_out", 0),
        "cpu_s": cpu,
    }


def rates(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per sample: pools led, and warnings and CPU per second since the one before."""
    out = []
    for before, after in itertools.pairwise(samples):
        dt = max(after["t_s"] - before["t_s"], 1e-9)
        cpu = sum(after["cpu_s"].get(k, v) - v for k, v in before["cpu_s"].items() if k in after["cpu_s"])
        out.append(
            {
                "t_s": after["t_s"],
                "pools_led": after["pools_led"],
                "heartbeat_late_per_s": round((after["heartbeat_late"] - before["heartbeat_late"]) / dt, 1),
                "timed_out_per_s": round((after["redis_call_timed_out"] - before["redis_call_timed_out"]) / dt, 1),
                "workers_cpu_pct": round(100 * cpu / dt, 1),
            }
        )
    return out


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    names = [f"{PREFIX}{i}" for i in range(args.pools)]
    labels = [f"overload-p{i}" for i in range(args.processes)]
    procs = ChildGroup()
    client = redis.Redis.from_url(url)
    with tempfile.NamedTemporaryFile("w+", prefix="overload-", suffix=".log", delete=False) as log:
        try:
            started: dict[str, Child] = {}
            for label in labels:
                argv = [sys.executable, "-m", "benchmarks.scale_member", "--redis", url, "--prefix", PREFIX,
                        "--pools", str(args.pools), "--member-id", label, "--ttl", repr(args.ttl),
                        "--ready-timeout", "0"]  # fmt: skip
                started[label] = procs.start(argv, name=label, stderr=log)
            handles = {label: psutil.Process(c.pid) for label, c in started.items()}
            t0 = time.monotonic()
            progress(f"overload: {args.processes} processes x {args.pools} members, lease {args.ttl:g}s")
            loaded = [sample(client, names, log, handles, t0)]
            while time.monotonic() - t0 < args.overload_s:
                time.sleep(SAMPLE_S)
                loaded.append(sample(client, names, log, handles, t0))
                progress(f"overload: {loaded[-1]['pools_led']}/{args.pools} pools led at {loaded[-1]['t_s']}s")
            late_from = max(args.overload_s - 30, args.overload_s / 2)
            stopped = labels[args.keep :]
            t_drop = time.monotonic()
            for label in stopped:
                started[label].terminate()
            for label in stopped:
                try:
                    started[label].wait(args.recover_s)
                except subprocess.TimeoutExpired:
                    started[label].kill()
            progress(f"overload: {len(stopped)} processes stopped in {time.monotonic() - t_drop:.1f}s")
            recovering = [sample(client, names, log, handles, t0)]
            led_since: float | None = None
            recovered_at: float | None = None
            while time.monotonic() - t_drop < args.recover_s:
                time.sleep(SAMPLE_S)
                s = sample(client, names, log, handles, t0)
                recovering.append(s)
                now = time.monotonic()
                if s["pools_led"] == args.pools:
                    led_since = now if led_since is None else led_since
                    if now - led_since >= args.ttl:
                        recovered_at = led_since
                        break
                else:
                    led_since = None
                progress(f"overload: recovering, {s['pools_led']}/{args.pools} pools led")
            holders = leaders_of(client, names)
            return {
                "pools": args.pools,
                "processes": args.processes,
                "members": args.pools * args.processes,
                "kept_processes": args.keep,
                "ttl_s": args.ttl,
                "heartbeat_s": round(args.ttl / 3, 4),
                "overload_s": args.overload_s,
                "overloaded": rates(loaded),
                "pools_led_at_end_of_overload": loaded[-1]["pools_led"],
                # the last 30 s (or half) of the overload: past the start-up's contest for every pool
                "pools_led_late_in_overload": _spread([s["pools_led"] for s in loaded if s["t_s"] >= late_from]),
                "stopped_processes_took_s": round(recovering[0]["t_s"] - (t_drop - t0), 2),
                "recovering": rates(recovering),
                "recovered": recovered_at is not None,
                "all_led_from_drop_s": None if recovered_at is None else round(recovered_at - t_drop, 2),
                "pools_led_after": sum(1 for h in holders if h is not None),
                "leaders_in_stopped_processes_after": sum(1 for h in holders if h in stopped),
                "worker_warnings": warning_counts(log),
            }
        finally:
            procs.close()
            client.close()


def _spread(values: list[int]) -> dict[str, int] | None:
    return {"min": min(values), "max": max(values)} if values else None


def table(r: dict[str, Any]) -> str:
    late = [x["heartbeat_late_per_s"] for x in r["overloaded"]]
    after = [x["heartbeat_late_per_s"] for x in r["recovering"][-3:]]
    return "\n".join(
        [
            f"{r['processes']} processes x {r['pools']} pools ({r['members']} members), lease {r['ttl_s']} s",
            f"overloaded for {r['overload_s']} s: pools led {r['pools_led_at_end_of_overload']} at the end, "
            f"{r['pools_led_late_in_overload']} late in it; late heartbeats up to {max(late, default=0)}/s",
            f"load dropped to {r['kept_processes']} processes: every pool led for a whole lease "
            f"{'after ' + str(r['all_led_from_drop_s']) + ' s' if r['recovered'] else 'NEVER'}; "
            f"late heartbeats at the end {after}/s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overload", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (30 pools x 3, no overload)")
    p.add_argument("--pools", type=int, help="pools (5000; quick 30)")
    p.add_argument("--processes", type=int, help="processes, each a member of every pool (5; quick 3)")
    p.add_argument("--keep", type=int, help="processes kept when the load drops (2; quick 2)")
    p.add_argument("--ttl", type=float, help="lease (5 s; quick 1 s)")
    p.add_argument("--overload-s", type=float, help="how long to sample the overload (120; quick 3)")
    p.add_argument("--recover-s", type=float, help="how long recovery may take at most (300; quick 30)")
    p.add_argument("--out", type=Path, help="directory for the result file")
    p.add_argument("--name", help="result file name without .json (overload-TIMESTAMP)")
    args = p.parse_args(argv)
    q = args.quick
    fill_defaults(args, (
        ("pools", 5000, 30), ("processes", 5, 3), ("keep", 2, 2), ("ttl", 5.0, 1.0),
        ("overload_s", 120.0, 3.0), ("recover_s", 300.0, 30.0),
    ))  # fmt: skip
    if args.pools < 1 or not 1 <= args.keep < args.processes:
        print("overload: need --pools >= 1 and 1 <= --keep < --processes", file=sys.stderr)
        return 2
    return run_alone("overload", lambda url: run(url, args), table, out=args.out, name=args.name, quick=q)


if __name__ == "__main__":
    raise SystemExit(main())
