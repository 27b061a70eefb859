"""Many pools on one Redis, alone (issue 13): the scale section of ``python -m benchmarks``
(:mod:`benchmarks.scale`) on its own redis-server, at any size.

``python -m benchmarks.manypools [--quick] [--pools N] [--members M] [--ttl S] [--window S]
[--out DIR]`` writes ``manypools-TIMESTAMP.json`` to ``benchmarks/results/``: set-up time, steady
Redis CPU and commands/s, worker CPU and memory (also per 1,000 members), the warnings the workers
logged (late heartbeats, timed-out calls), and the mass kill of the process that leads a tenth of
the pools (``--lead-share 10``; 1: every pool), every one of them led again within the lease + 1 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.results_file import fill_defaults, run_alone
from benchmarks.scale import run_scale


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    load = [round(x, 2) for x in psutil.getloadavg()]
    t0 = time.monotonic()
    with tempfile.NamedTemporaryFile("w+", prefix="manypools-", suffix=".log", delete=False) as log:
        out = run_scale(url, args.pools, args.members, args.ttl, args.window, log, args.lead_share)
    members = args.pools * args.members
    out["worker_cpu_pct_per_1000_members"] = round(out["worker_cpu_pct_total"] * 1000 / members, 2)
    rss = sum(w["rss_mb"] for w in out["workers"].values())
    out["worker_rss_mb_per_1000_members"] = round(rss * 1000 / members, 1)
    out["redis_cpu_pct"] = out["steady"]["redis_cpu_pct"]
    out["cpus"], out["load_avg_at_start"] = psutil.cpu_count(), load
    out["load_avg_at_end"] = [round(x, 2) for x in psutil.getloadavg()]
    out["took_s"] = round(time.monotonic() - t0, 1)
    return out


def table(r: dict[str, Any]) -> str:
    k = r["mass_kill"]
    return "\n".join(
        [
            f"{r['pools']} pools x {r['members']} members, lease {r['ttl_s']} s: set-up {r['setup_s']} s",
            f"steady: Redis CPU {r['redis_cpu_pct']}%, {r['steady']['commands_per_s']:.0f} commands/s; workers "
            f"{r['worker_cpu_pct_per_1000_members']}% CPU and {r['worker_rss_mb_per_1000_members']} MB"
            " per 1,000 members",
            f"warnings: {r['worker_warnings']}",
            f"mass kill of the process leading {k['pools_led_by_killed_process']} pools: all led again "
            f"{k['all_led_again']} after {k['all_led_from_kill_s']} s; {k['pools_led_again_within_bound']} within "
            f"the lease + 1 s ({k['bound_s']} s)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.manypools", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (20 pools x 3)")
    p.add_argument("--pools", type=int, help="pools (10000; quick 20)")
    p.add_argument("--members", type=int, help="members per pool = processes (5; quick 3)")
    p.add_argument("--ttl", type=float, help="lease (5 s, the default; quick 1 s)")
    p.add_argument("--window", type=float, help="steady window, seconds (15; quick 2)")
    p.add_argument("--lead-share", type=int, default=10,
                   help="the killed process leads every K-th pool (10: a tenth; 1: every pool)")  # fmt: skip
    p.add_argument("--out", type=Path, help="directory for the result file")
    p.add_argument("--name", help="result file name without .json (manypools-TIMESTAMP)")
    args = p.parse_args(argv)
    q = args.quick
    fill_defaults(args, (("pools", 10000, 20), ("members", 5, 3), ("ttl", 5.0, 1.0), ("window", 15.0, 2.0)))
    if args.pools < 1 or args.members < 2 or args.lead_share < 1:
        print("manypools: need --pools >= 1, --members >= 2 and --lead-share >= 1", file=sys.stderr)
        return 2
    return run_alone("manypools", lambda url: measure(url, args), table, out=args.out, name=args.name, quick=q)


if __name__ == "__main__":
    raise SystemExit(main())
