"""Schedule-slot drift across failovers: how late a periodic singleton task starts, in steady
state and at a crash of the leader.

Three ``leaderpool-worker --every PERIOD`` processes share one schedule; each round SIGKILLs the
leader (and starts a replacement, so a follower is always waiting). Every run records its slot and
when it began (same machine, same clock as Redis's). Reported: the lateness of runs in steady
state (start - slot), and at each failover the gap between the last run before the kill and the
first after it -- bounded by the lease plus one period -- and how late that first run was; plus
the slots run twice (must be 0) and the slots lost (a slot the killed leader had claimed and not
begun: at most one per kill).

``python -m benchmarks.schedule_drift [--quick] [--rounds N] [--period S] [--ttl S] [--out DIR]``
writes ``schedule-drift-TIMESTAMP.json`` to ``benchmarks/results/``; ``python -m benchmarks``
runs it as its ``schedule_drift`` section on its own server.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.drift_task import RUNS_FILE
from benchmarks.results_file import run_alone
from benchmarks.stats import summary
from leaderpool.testing.processes import Child, ChildGroup, clean_env

HERE = Path(__file__).resolve().parent
POOL = "bench-drift"
PATIENCE_S = 30.0


def _runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _wait(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + PATIENCE_S
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"schedule drift: {what} did not happen within {PATIENCE_S:.0f}s")
        time.sleep(0.02)
    return found


def measure(url: str, rounds: int, period_s: float, ttl_s: float) -> dict[str, Any]:
    """Run ``rounds`` crash rounds against ``url``; the measurements."""
    with tempfile.TemporaryDirectory(prefix="leaderpool-drift-") as tmp:
        runs_file = Path(tmp) / "runs.jsonl"
        kills = _crash_rounds(url, runs_file, rounds, period_s, ttl_s)
        return _analyse(_runs(runs_file), kills, period_s, ttl_s)


def _crash_rounds(url: str, runs_file: Path, rounds: int, period_s: float, ttl_s: float) -> list[tuple[float, str]]:
    """Three workers on one schedule; ``rounds`` times: four runs, then SIGKILL the leader and
    start a replacement. Returns when (unix time) and whom each kill hit."""
    env = clean_env(**{RUNS_FILE: str(runs_file), "PYTHONPATH": str(HERE.parent)})
    group = ChildGroup()
    names = (f"m{i}" for i in itertools.count())

    def start() -> Child:
        name = next(names)
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", url, "--pool", POOL, "--member-id", name,
                "--ttl", repr(ttl_s), "--json-events", "--task", "benchmarks.drift_task:record_run",
                "--every", repr(period_s), "--schedule-name", "drift"]  # fmt: skip
        return group.start(argv, name=name, env=env, stderr="/dev/null")

    kills: list[tuple[float, str]] = []
    try:
        members = [start() for _ in range(3)]
        for _ in range(rounds):
            leader = _wait(lambda: _leader(members), "an election")
            _wait_for_runs(runs_file, 4, "four runs in steady state")
            kills.append((leader.signal(signal.SIGKILL), leader.name))
            members.remove(leader)
            members.append(start())
            _wait(lambda: any(r["t"] > kills[-1][0] for r in _runs(runs_file)), "a run after the failover")
        _wait_for_runs(runs_file, 2, "runs after the last failover")
    finally:
        group.close(grace=0)
    return kills


def _wait_for_runs(runs_file: Path, more: int, what: str) -> None:
    wanted = len(_runs(runs_file)) + more
    _wait(lambda: len(_runs(runs_file)) >= wanted, what)


def _leader(members: list[Child]) -> Child | None:
    """The one member whose last elected/revoked event is ``elected``; None while not exactly one."""

    def leads(m: Child) -> bool:
        transitions = [e["event"] for e in m.events if e["event"] in ("elected", "revoked")]
        return bool(transitions) and transitions[-1] == "elected"

    leading = [m for m in members if leads(m)]
    return leading[0] if len(leading) == 1 else None


def _analyse(
    runs: list[dict[str, Any]], kills: list[tuple[float, str]], period_s: float, ttl_s: float
) -> dict[str, Any]:
    slots = [r["slot"] for r in runs]
    twice = len(slots) - len(set(slots))
    grid = sorted({round(s / period_s) for s in slots})
    lost = (grid[-1] - grid[0] + 1 - len(grid)) if grid else 0
    kill_times = [k for k, _ in kills]
    near_kill = {
        i for i, r in enumerate(runs) for k in kill_times if k - period_s <= r["t"] <= k + ttl_s + 2 * period_s
    }
    steady = [r["t"] - r["slot"] for i, r in enumerate(runs) if i not in near_kill]
    gaps, first_late, from_kill = [], [], []
    for k in kill_times:
        before = [r for r in runs if r["t"] <= k]
        after = [r for r in runs if r["t"] > k]
        if before and after:
            gaps.append(after[0]["t"] - before[-1]["t"])
            first_late.append(after[0]["t"] - after[0]["slot"])
            from_kill.append(after[0]["t"] - k)
    return {
        "period_s": period_s,
        "ttl_s": ttl_s,
        "rounds": len(kills),
        "runs": len(runs),
        "steady_lateness_ms": summary(steady, scale=1e3),
        "failover_gap_s": summary(gaps),
        "gap_bound_s": ttl_s + period_s,
        "within_bound": all(g <= ttl_s + period_s for g in gaps),
        "first_run_lateness_ms": summary(first_late, scale=1e3),
        "kill_to_first_run_ms": summary(from_kill, scale=1e3),
        "slots_run_twice": twice,
        "slots_lost": lost,
    }


def table(result: dict[str, Any]) -> str:
    s, g, f = result["steady_lateness_ms"], result["failover_gap_s"], result["first_run_lateness_ms"]
    return "\n".join([
        f"every {result['period_s']:g}s, ttl {result['ttl_s']:g}s, {result['rounds']} SIGKILLs of the leader, "
        f"{result['runs']} runs",
        f"steady lateness (start - slot): p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms",
        f"gap at a failover: p50 {g['p50']:.3f}s, max {g['max']:.3f}s "
        f"(bound: ttl + period = {result['gap_bound_s']:g}s)",
        f"first run after a failover, late by: p50 {f['p50']:.0f} ms, max {f['max']:.0f} ms",
        f"slots run twice: {result['slots_run_twice']}, slots lost (claimed by the killed leader): "
        f"{result['slots_lost']}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.schedule_drift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="2 rounds: a smoke run of a few seconds")
    p.add_argument("--rounds", type=int, help="SIGKILLs of the leader (10; quick 2)")
    p.add_argument("--period", type=float, default=0.25, help="the schedule's period, seconds (0.25)")
    p.add_argument("--ttl", type=float, default=1.0, help="the workers' lease, seconds (1)")
    p.add_argument("--out", type=Path, help="directory for the JSON result (benchmarks/results)")
    p.add_argument("--name", help="result file name without .json (schedule-drift-TIMESTAMP)")
    args = p.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 10)

    return run_alone(
        "schedule-drift",
        lambda url: measure(url, rounds, args.period, args.ttl),
        table,
        out=args.out,
        name=args.name,
        quick=args.quick,
    )


if __name__ == "__main__":
    raise SystemExit(main())
