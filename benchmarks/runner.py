"""``python -m benchmarks``: one redis-server, every contender in turn on it, one result file.

Order: the floor (PING, keyspace notification); the CLI's start-up (:mod:`benchmarks.startup`);
then, for each contender, a pool of three processes: a steady window (cost), leader lookup, crash
rounds, handoff rounds, and the safety check over the pool's whole timeline; then the scale test.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    cost,
    exec_tree,
    floor,
    jobs,
    locks,
    lookup,
    queued_locks,
    report,
    schedule_drift,
    semaphores,
    singletons,
    singletons_cost,
    startup,
)
from benchmarks.fastfail import death_floor, run_fast_failover
from benchmarks.registry import NAMES, Contender, contenders
from benchmarks.scale import run_scale
from benchmarks.scenarios import BenchError, PoolRun, progress
from benchmarks.stats import summary
from leaderpool.console.logs import configure_logging
from leaderpool.testing.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KEYSPACE_FLAGS = "Kg$x"  # what leaderpool's watcher needs; enabled for every contender alike


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2-3 rounds, ttl 1 s: a smoke run of ~30 s")
    p.add_argument("--ttl", type=float, help="the lease for every contender, seconds (2; quick 1)")
    p.add_argument("--rounds", type=int, help="crash-failover rounds per contender (20; quick 2)")
    p.add_argument("--handoff-rounds", type=int, help="graceful-handoff rounds per contender (30; quick 2)")
    p.add_argument("--window", type=float, help="steady-state window for the cost, seconds (6; quick 1)")
    p.add_argument("--contenders", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}")
    p.add_argument("--skip-scale", action="store_true", help="leave out the 1,000-pool test")
    p.add_argument("--scale-pools", type=int, help="pools in the scale test (1000; quick 20)")
    p.add_argument("--scale-members", type=int, help="members per pool = processes (5; quick 3)")
    p.add_argument("--scale-ttl", type=float, help="lease in the scale test (5, the default; quick 1)")
    p.add_argument("--scale-window", type=float, help="steady window of the scale test, seconds (15; quick 2)")
    p.add_argument("--skip-fast", action="store_true", help="leave out crash failover with fast failover on/off")
    p.add_argument("--fast-ttls", help="leases for the fast-failover rounds, comma-separated seconds (2,10; quick 1)")
    p.add_argument("--fast-rounds", type=int, help="crash rounds per lease with fast failover on (20; quick 2)")
    p.add_argument("--fast-rounds-off", type=int, help="... and with it off, waiting for the lease (5; quick 1)")
    p.add_argument("--skip-jobs", action="store_true", help="leave out the jobs benchmark (leaderpool, RQ, arq)")
    p.add_argument("--out", type=Path, help="directory for the JSON (and markdown) results (benchmarks/results)")
    p.add_argument("--name", help="result file name without .json (a timestamp)")
    p.add_argument(
        "--docs", action="store_true", help="also rewrite the latest full run's section of docs/benchmarks.md"
    )
    p.add_argument(
        "--render",
        type=Path,
        metavar="RESULT_JSON",
        help="run nothing: rewrite benchmarks/RESULTS.md (and docs/benchmarks.md with --docs) from a result file",
    )
    args = p.parse_args(argv)
    q = args.quick
    defaults = {
        "ttl": 1.0 if q else 2.0, "rounds": 2 if q else 20, "handoff_rounds": 2 if q else 30,
        "window": 1.0 if q else 6.0, "scale_pools": 20 if q else 1000, "scale_members": 3 if q else 5,
        "scale_ttl": 1.0 if q else 5.0, "scale_window": 2.0 if q else 15.0,
        "fast_ttls": "1" if q else "2,10", "fast_rounds": 2 if q else 20, "fast_rounds_off": 1 if q else 5,
    }  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        p.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    args.names = names
    try:
        args.fast_ttl_list = [float(t) for t in str(args.fast_ttls).split(",") if t.strip()]
    except ValueError:
        p.error(f"--fast-ttls: comma-separated seconds, got {args.fast_ttls!r}")
    return args


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "note": "a shared 2-core VM (other agents were working on it)"
            if os.cpu_count() == 2 else ""}  # fmt: skip


def source_state() -> dict[str, Any]:
    """The commit benchmarked, and whether the library's files differ from it."""

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=HERE.parent, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return ""

    return {"commit": git("rev-parse", "HEAD").strip(), "leaderpool_dirty": bool(git("status", "--porcelain",
            "leaderpool").strip())}  # fmt: skip


def run_contender(c: Contender, url: str, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    n_lookup = 200 if args.quick else 2000
    run = PoolRun(c, url, f"bench-{c.name}", args.ttl, 3, log)
    out: dict[str, Any] = {"title": c.title, "module": c.module}
    try:
        run.start()
        leader = run.wait_stable()
        progress(f"{c.name}: 3 members up, {leader.name} leads; cost window {args.window:.0f}s x 2")
        steady = cost.steady_window(run.redis, args.window)
        pids = run.pids()
        monitored = cost.monitor_window(url, args.window, pids)
        per_proc = {label: sum(cmds.values()) for label, cmds in monitored["by_process_per_s"].items()}
        followers = [v for label, v in per_proc.items() if label != leader.name]
        out["cost"] = {
            "members": len(pids),
            "commandstats": steady,
            "monitor": monitored,
            "total_incl_lua_per_member_per_s": round(steady["commands_per_s"] / len(pids), 3),
            "client_issued_per_member_per_s": round(monitored["client_commands_per_s"] / len(pids), 3),
            "leader_client_per_s": round(per_proc.get(leader.name, 0.0), 3),
            "follower_client_per_s": round(sum(followers) / len(followers), 3) if followers else None,
            "redis_cpu_pct": steady["redis_cpu_pct"],
        }
        progress(f"{c.name}: {steady['commands_per_s']:.1f} cmd/s incl. Lua, "
                 f"{monitored['client_commands_per_s']:.1f} sent by clients; lookup")  # fmt: skip
        out["lookup"] = {"redis_read": lookup.redis_read(c, url, run.pool, n_lookup)}
        if c.name == "leaderpool":
            out["lookup"]["cache"] = lookup.leaderpool_cache(url, "bench-lookup", args.ttl, n_lookup)
        crashes = []
        for i in range(args.rounds):
            crashes.append(run.crash_round())
            r = crashes[-1]
            progress(f"{c.name}: crash {i + 1}/{args.rounds}: "
                     + (f"{r['from_expiry_s'] * 1000:.1f} ms after expiry, {r['from_kill_s'] * 1000:.0f} ms after kill"
                        if r["ok"] and r["from_expiry_s"] is not None else str(r)))  # fmt: skip
        handoffs = []
        for i in range(args.handoff_rounds):
            handoffs.append(run.handoff_round())
            r = handoffs[-1]
            progress(f"{c.name}: handoff {i + 1}/{args.handoff_rounds}: "
                     + (f"{r['from_signal_s'] * 1000:.1f} ms" if r["ok"] else str(r)))  # fmt: skip
        run.wait_stable()
        ok = [r for r in crashes if r["ok"]]
        out["failover"] = {
            "rounds": len(crashes),
            "failed_rounds": len(crashes) - len(ok),
            "from_expiry_ms": summary([r["from_expiry_s"] for r in ok if r["from_expiry_s"] is not None], scale=1e3),
            "from_kill_ms": summary([r["from_kill_s"] for r in ok], scale=1e3),
            "overhead_beyond_ttl_ms": summary([r["from_kill_s"] - args.ttl for r in ok], scale=1e3),
            "samples": crashes,
        }
        ok = [r for r in handoffs if r["ok"]]
        out["handoff"] = {
            "rounds": len(handoffs),
            "failed_rounds": len(handoffs) - len(ok),
            "from_signal_ms": summary([r["from_signal_s"] for r in ok], scale=1e3),
            "from_release_ms": summary([r["from_revoked_s"] for r in ok if r["from_revoked_s"] is not None], scale=1e3),
            "samples": handoffs,
        }
    except BenchError as exc:
        out["error"] = str(exc)
        progress(f"{c.name}: FAILED: {exc}")
    finally:
        out["safety"] = run.safety()
        run.close()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        rendered = json.loads(args.render.read_text())
        (HERE / "RESULTS.md").write_text(report.with_kept_text(report.results_markdown(rendered), HERE / "RESULTS.md"))
        if args.docs:
            report.update_docs(HERE.parent / "docs" / "benchmarks.md", report.docs_section(rendered))
        print(report.headline_markdown(rendered))
        return 0
    configure_logging(fmt="json", level="warning")
    chosen = contenders(args.names)
    for c in chosen:
        if c.whole_seconds and args.ttl != int(args.ttl):
            print(f"python -m benchmarks: error: {c.name} takes whole seconds only; use --ttl 1, 2, ...",
                  file=sys.stderr)  # fmt: skip
            return 2
    out_dir = args.out or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    name = args.name or (("quick-" if args.quick else "") + time.strftime("%Y%m%d-%H%M%S"))
    # with --out (the test suite's runs) the processes' logs go beside the results, not into /tmp
    log_dir = out_dir / f"{name}-logs" if args.out else Path(tempfile.mkdtemp(prefix="leaderpool-bench-logs-"))
    log_dir.mkdir(exist_ok=True)
    started = time.time()
    server = RedisServer(extra_args=("--notify-keyspace-events", KEYSPACE_FLAGS))
    results: dict[str, Any] = {}
    try:
        server.start()
        progress(f"redis-server {server.version} on {server.url}; logs in {log_dir}")
        results["meta"] = {
            "name": name,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "machine": machine(),
            "source": source_state(),
            "redis": {"version": server.version, "binary": server.binary, "notify_keyspace_events": KEYSPACE_FLAGS},
            "settings": {k: getattr(args, k) for k in ("quick", "ttl", "rounds", "handoff_rounds", "window",
                                                       "scale_pools", "scale_members", "scale_ttl", "scale_window",
                                                       "fast_ttls", "fast_rounds", "fast_rounds_off")},
            "members_per_pool": 3,
            "leaderpool_impl": "leaderpool.worker",
        }  # fmt: skip
        progress("floor: PING and keyspace notification")
        results["floor"] = floor.measure(server.url, 200 if args.quick else 2000)
        progress("startup: leaderpool-cli status, history and doctor from a shell")
        results["startup"] = startup.measure(server.url, 3 if args.quick else startup.RUNS)
        progress("schedule drift: a periodic task (--every 0.25) across SIGKILLs of its leader")
        try:
            results["schedule_drift"] = schedule_drift.measure(server.url, 2 if args.quick else 10, 0.25, args.ttl)
        except RuntimeError as exc:
            results["schedule_drift"] = {"error": str(exc)}
            progress(f"schedule drift: FAILED: {exc}")
        progress("locks: acquire/release and hand-over beside python-redis-lock and redis-py; whereis_name")
        results["locks"] = locks.measure(server.url, 3 if args.quick else 100)
        progress("semaphores: acquire/release and hand-over beside a Redisson-style and a polling semaphore")
        results["semaphores"] = semaphores.measure(server.url, 3 if args.quick else 30)
        progress("queued locks: read-write and fair locks beside Redisson-style patterns and python-redis-lock")
        results["queued_locks"] = queued_locks.measure(server.url, 2 if args.quick else 30)
        progress("singletons: a kind hand-off, a join's rebalance, a SIGKILL of a member holding many")
        try:
            results["singletons"] = singletons.measure(server.url, args.quick)
        except RuntimeError as exc:
            results["singletons"] = {"error": str(exc)}
            progress(f"singletons: FAILED: {exc}")
        progress("singletons cost: many singletons over worker processes, a steady window")
        try:
            results["singletons_cost"] = singletons_cost.measure_quick(server.url) if args.quick else (
                singletons_cost.measure_full(server.url))  # fmt: skip
        except RuntimeError as exc:
            results["singletons_cost"] = {"error": str(exc)}
            progress(f"singletons cost: FAILED: {exc}")
        progress("exec tree: --exec's whole process tree across SIGKILLs of its worker")
        try:
            results["exec_tree"] = exec_tree.measure(server.url, 3 if args.quick else 30)
        except RuntimeError as exc:
            results["exec_tree"] = {"error": str(exc)}
            progress(f"exec tree: FAILED: {exc}")
        results["contenders"] = {}
        for c in chosen:
            with open(log_dir / f"{c.name}.log", "w") as log:
                results["contenders"][c.name] = run_contender(c, server.url, args, log)
        if args.skip_fast:
            results["fast_failover"] = {}
        else:
            progress(f"fast failover on/off: leases {args.fast_ttls} s; the floor: SIGKILL to the peer's EOF")
            results["floor"].update(death_floor(max(3, args.fast_rounds)))
            if not args.quick:  # the same after an idle stretch as long as a 10 s lease's heartbeat
                results["floor"].update(death_floor(8, idle_s=3.0))
            with open(log_dir / "fast_failover.log", "w") as log:
                results["fast_failover"] = run_fast_failover(
                    server.url, args.fast_ttl_list, args.fast_rounds, args.fast_rounds_off, log
                )
        if args.skip_scale:
            results["scale"] = {"skipped": True}
        else:
            progress(f"scale: {args.scale_pools} pools x {args.scale_members} members, ttl {args.scale_ttl}s")
            with open(log_dir / "scale.log", "w") as log:
                try:
                    results["scale"] = run_scale(server.url, args.scale_pools, args.scale_members, args.scale_ttl,
                                                 args.scale_window, log)  # fmt: skip
                except BenchError as exc:
                    results["scale"] = {"error": str(exc)}
                    progress(f"scale: FAILED: {exc}")
        if args.skip_jobs:
            results["jobs"] = {"skipped": True}
        else:
            progress("jobs: leaderpool, RQ and arq, one consuming worker each")
            with open(log_dir / "jobs.log", "w") as log:
                results["jobs"] = jobs.measure(server.url, quick=args.quick, ttl=args.ttl, log=log)
    finally:
        server.cleanup()
    results["meta"]["duration_s"] = round(time.time() - started, 1)
    results["targets"] = report.targets(results)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    markdown = report.results_markdown(results)
    if args.out is None and not args.quick:
        (RESULTS / "latest.json").write_text(path.read_text())
        (HERE / "RESULTS.md").write_text(report.with_kept_text(markdown, HERE / "RESULTS.md"))
    else:
        (out_dir / f"{name}.md").write_text(markdown)
    if args.docs:
        report.update_docs(HERE.parent / "docs" / "benchmarks.md", report.docs_section(results))
    progress(f"done in {results['meta']['duration_s']:.0f}s: {path}")
    print(report.headline_markdown(results))
    failed = [n for n, r in results["contenders"].items() if "error" in r] + (["scale"] if "error" in results.get(
        "scale", {}) else [])  # fmt: skip
    failed += [f"fast failover {k} {m}" for k, runs in results.get("fast_failover", {}).items()
               for m, r in runs.items() if "error" in r]  # fmt: skip
    failed += [f"jobs:{n}" for n, r in results["jobs"].items() if isinstance(r, dict) and "error" in r]
    failed += ["exec tree"] if "error" in results["exec_tree"] or results["exec_tree"]["order_violations"] else []
    return 1 if failed else 0
