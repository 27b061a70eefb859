"""What many singletons cost in steady state (issue 27's target: 10,000 singletons over 10
members on one Redis at a 5 s lease, Redis under 25 % of a core, 0 late beats).

``members`` real worker processes (``leaderpool-worker --singletons-count N --task
leaderpool.worker.tasks:idle --json-events``) start at once; once every singleton is
placed and running (each member holding at most ceil(N/M)), a settling pause, then a steady
window: Redis CPU (INFO cpu, user + sys, over the wall time), commands/s by command (INFO
commandstats, which counts the commands run inside Lua too), each member process's CPU (psutil),
and what went late or wrong in the window: the election's ``heartbeat_late`` warnings, the
singletons' failed syncs, and any singleton stopped (``"ownership deadline passed"`` and every
other reason: in a steady pool none stops).

``python -m benchmarks.singletons_cost [--quick] [--singletons N] [--members M] [--ttl S]
[--window S] [--out DIR]`` writes ``singletons-cost-TIMESTAMP.json`` and ``.md``;
``python -m benchmarks`` runs it as its ``singletons_cost`` section (the same scenario; ``--quick``: 120 over 3).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import redis

from benchmarks.cost import Snapshot, between
from benchmarks.results_file import fill_defaults, write_result
from benchmarks.scenarios import progress
from benchmarks.singletons import Pool
from leaderpool.testing.redis_server import RedisServer

TARGET_REDIS_CPU_PCT = 25.0
LATE_EVENTS = ("heartbeat_late", "singletons_sync_failed", "singletons_turn_failed", "singletons_place_failed")
"""Warnings that say a beat (the election's, or the singletons' sync) ran late or failed."""
_EVENT = re.compile(r'"event": ?"([a-z_]+)"')


def _warnings(path: Path, start: int) -> tuple[Counter[str], list[str]]:
    """Warning events in the workers' shared stderr log from byte ``start`` on, and the
    singletons stopped with a ``why`` (the owner's deadline passing, say)."""
    found: Counter[str] = Counter()
    whys: list[str] = []
    with open(path, "rb") as f:
        f.seek(start)
        for raw in f:
            line = raw.decode(errors="replace")
            if '"warning"' not in line and '"error"' not in line:
                continue
            match = _EVENT.search(line)
            event = match.group(1) if match else "other"
            found[event] += 1
            if event == "singleton_stopped":
                try:
                    whys.append(str(json.loads(line).get("why")))
                except ValueError:
                    whys.append("?")
    return found, whys


def measure(
    url: str, singletons: int, members: int, ttl: float, window: float, settle: float, log_dir: Path | None = None
) -> dict[str, Any]:
    names = [f"m{i:02d}" for i in range(members)]
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="leaderpool-singletons-cost-"))
    log_path = log_dir / "workers.log"
    pool = Pool(url, "bench-scost", singletons, ttl=ttl, stderr=log_path, log_format="json")
    client = redis.Redis.from_url(url)
    t0 = time.monotonic()
    try:
        children = {}
        for m in names:
            children[m] = pool.start(m)
        progress(f"singletons cost: {members} workers started, waiting for {singletons} singletons placed and running")
        pool.until(pool.balanced(set(names)), "every singleton placed and running", patience=120 + singletons / 50)
        placed_s = time.monotonic() - t0
        progress(f"singletons cost: all running after {placed_s:.1f}s; settling {settle:g}s, window {window:g}s")
        time.sleep(settle)
        pool.drain()
        stopped_before = Counter(pool.stops)
        log_start = log_path.stat().st_size
        procs = {m: psutil.Process(c.pid) for m, c in children.items()}
        cpu0 = {m: sum(p.cpu_times()[:2]) for m, p in procs.items()}
        before = Snapshot(client)
        time.sleep(window)
        after = Snapshot(client)
        cpu1 = {m: sum(p.cpu_times()[:2]) for m, p in procs.items()}
        wall = after.t - before.t
        pool.drain()
        warnings, whys = _warnings(log_path, log_start)
        steady = between(before, after)
        member_cpu = {m: round(100 * (cpu1[m] - cpu0[m]) / wall, 2) for m in names}
        scripts = {k: v for k, v in steady["by_command_per_s"].items() if k in ("evalsha", "eval")}
        per_member = steady["commands_per_s"] / members
        return {
            "singletons": singletons,
            "members": members,
            "ttl_s": ttl,
            "heartbeat_s": round(ttl / 3, 3),
            "window_s": round(wall, 1),
            "placed_s": round(placed_s, 1),
            "redis_cpu_pct": steady["redis_cpu_pct"],
            "target_redis_cpu_pct": TARGET_REDIS_CPU_PCT,
            "commands_per_s": steady["commands_per_s"],
            "commands_per_s_per_member": round(per_member, 2),
            "commands_per_s_per_singleton": round(steady["commands_per_s"] / singletons, 4),
            "commands_per_member_beat": round(per_member * ttl / 3, 1),
            "script_calls_per_s": round(sum(scripts.values()), 2),
            "steady": steady,
            "member_cpu_pct": member_cpu,
            "member_cpu_pct_total": round(sum(member_cpu.values()), 1),
            "member_cpu_pct_max": max(member_cpu.values()),
            "late_beats": sum(warnings[e] for e in LATE_EVENTS),
            "singletons_stopped_in_window": (pool.stops - stopped_before).total(),
            "stopped_reasons": dict(pool.stops - stopped_before),
            "stopped_why": dict(Counter(whys)),
            "warnings_in_window": dict(warnings),
            "load_avg": [round(x, 2) for x in psutil.getloadavg()],
            "cpus": psutil.cpu_count(),
        }
    finally:
        client.close()
        pool.close()


OPTIONS = ("singletons", "members", "ttl", "window", "settle")
FULL = (10000, 10, 5.0, 60.0, 10.0)
"""The issue's scenario (``python -m benchmarks``' section, and this module's defaults), in :data:`OPTIONS` order."""
QUICK = (120, 3, 1.0, 2.0, 0.5)


def measure_full(url: str) -> dict[str, Any]:
    return measure(url, *FULL)


def measure_quick(url: str) -> dict[str, Any]:
    return measure(url, *QUICK)


def markdown_lines(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    if "error" in r:
        return ["## Singletons: steady cost", "", f"Failed: {r['error']}", ""]
    met = r["redis_cpu_pct"] < r["target_redis_cpu_pct"] and r["late_beats"] == 0
    return [
        "## Singletons: steady cost",
        "",
        f"{r['singletons']:,} singletons over {r['members']} worker processes, lease {r['ttl_s']:g} s, "
        f"a {r['window_s']:g} s window once all were running (placed in {r['placed_s']:g} s):",
        "",
        "| measure | value |",
        "|---|---|",
        f"| Redis CPU (target < {r['target_redis_cpu_pct']:g} % of a core) | {r['redis_cpu_pct']} % |",
        f"| Redis commands/s (Lua's included) | {r['commands_per_s']} |",
        f"| ... per member / per singleton | {r['commands_per_s_per_member']} / {r['commands_per_s_per_singleton']} |",
        f"| ... per member per beat | {r['commands_per_member_beat']} |",
        f"| member CPU, each (max) / all | {r['member_cpu_pct_max']} % / {r['member_cpu_pct_total']} % |",
        f"| late beats (heartbeat_late, failed syncs) | {r['late_beats']} |",
        f"| singletons stopped in the window | {r['singletons_stopped_in_window']} |",
        "",
        f"Commands/s by command: {', '.join(f'{k} {v}' for k, v in r['steady']['by_command_per_s'].items())}. "
        f"Target {'met' if met else 'NOT met'}.",
        "",
    ]


def table(r: dict[str, Any]) -> str:
    return "\n".join(markdown_lines(r))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.singletons_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke run: 120 singletons over 3 members, 2 s window")
    p.add_argument("--singletons", type=int, help="singletons (10000; quick 120)")
    p.add_argument("--members", type=int, help="worker processes (10; quick 3)")
    p.add_argument("--ttl", type=float, help="lease, seconds (5; quick 1)")
    p.add_argument("--window", type=float, help="steady window, seconds (60; quick 2)")
    p.add_argument("--settle", type=float, help="pause between all running and the window, seconds (10; quick 0.5)")
    p.add_argument("--out", type=Path, help="results directory (benchmarks/results)")
    p.add_argument("--name", help="the result file's name, without .json")
    args = p.parse_args(argv)
    fill_defaults(args, zip(OPTIONS, FULL, QUICK, strict=True))
    if args.singletons < 1 or args.members < 1 or args.window <= 0:
        print("singletons_cost: need --singletons >= 1, --members >= 1 and --window > 0", file=sys.stderr)
        return 2
    with RedisServer() as server:
        result = measure(server.url, args.singletons, args.members, args.ttl, args.window, args.settle)
        result["redis"] = {"version": server.version, "binary": server.binary}
    result["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    path = write_result(result, "singletons-cost", args.out, name=args.name, quick=args.quick)
    path.with_suffix(".md").write_text(table(result) + "\n")
    print(table(result))
    print(f"written to {path} (and .md)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
