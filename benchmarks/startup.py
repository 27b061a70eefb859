"""How long ``leaderpool-cli`` takes from a shell: ``status``, ``history`` and ``doctor`` run N
times each against a redis-server with one live pool, beside ``redis-cli GET`` (the floor of a
one-command tool, when installed) and ``python -c pass`` (the interpreter's own start).
Wall time per run, as a shell script sees it; median and p90 (30 runs).

The target: a command that talks to Redis once (``status``, ``history``) in 100 ms or less
(the interpreter alone starts in about 19 ms on the reference machine). The commands run as an
installed package runs them, from compiled bytecode: ``PYTHONDONTWRITEBYTECODE`` is dropped from
their environment so the warm-up run writes the caches. A missed target is exit 1 (a full run;
``--quick`` only checks that the benchmark runs).

``python -m benchmarks.startup [--quick] [--runs N] [--out DIR]`` writes
``startup-TIMESTAMP.json`` to ``benchmarks/results/`` (``quick-startup-...`` with ``--quick``);
``python -m benchmarks`` runs it as its ``startup`` section on its own server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.results_file import run_alone
from benchmarks.stats import summary

POOL = "bench-startup"
TARGET_MS = 100.0
RUNS = 30
ONE_CALL = ("status", "history")
"""The commands that talk to Redis once, which the target is about."""


def cli_argv() -> list[str]:
    """The console script users run (beside this interpreter), else ``python -m leaderpool.cli``."""
    script = Path(sys.executable).parent / "leaderpool-cli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "leaderpool.cli"]


def wall_ms(argv: Sequence[str], runs: int) -> list[float]:
    """Run ``argv`` once to warm the page cache, then ``runs`` times; each run's wall time in ms."""
    samples = []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: .pyc cached
    for i in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(list(argv), capture_output=True, timeout=60, env=env)
        took = (time.perf_counter() - started) * 1000
        if done.returncode not in (0, 1):  # doctor exits 1 on a test server's warnings with --strict only
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
        if i:
            samples.append(took)
    return samples


def _pool_with_a_leader(url: str) -> subprocess.Popen[bytes]:
    """One worker leading POOL, so status and history have something to show."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "leaderpool.worker", "--redis", url, "--pool", POOL, "--member-id", "m1", "--ttl", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = subprocess.run([*cli_argv(), "--redis", url, "status", "--json", "--pool", POOL], capture_output=True)
        if done.returncode == 0 and json.loads(done.stdout)["pools"][0]["leader"]:
            return worker
        time.sleep(0.1)
    worker.kill()
    worker.wait(10)
    raise RuntimeError("the benchmark's worker was not elected within 30 s")


def measure(url: str, runs: int) -> dict[str, Any]:
    """Every command's wall time against ``url`` (a server this benchmark may add a pool to)."""
    cli = [*cli_argv(), "--redis", url]
    worker = _pool_with_a_leader(url)
    try:
        commands = {
            "status": wall_ms([*cli, "status"], runs),
            "status_json": wall_ms([*cli, "status", "--json", "--pool", POOL], runs),
            "history": wall_ms([*cli, "history", POOL], runs),
            "doctor": wall_ms([*cli, "doctor"], runs),
        }
    finally:
        worker.kill()
        worker.wait(10)
    out: dict[str, Any] = {
        "runs": runs,
        "cli": " ".join(cli_argv()),
        "commands_ms": {name: summary(samples, digits=1) for name, samples in commands.items()},
        "python_startup_ms": summary(wall_ms([sys.executable, "-c", "pass"], runs), digits=1),
        "redis_cli_get_ms": None,
        "target_ms": TARGET_MS,
    }
    redis_cli = shutil.which("redis-cli")
    if redis_cli:
        out["redis_cli_get_ms"] = summary(wall_ms([redis_cli, "-u", url, "GET", "bench:startup"], runs), digits=1)
    medians = [out["commands_ms"][name]["p50"] for name in ONE_CALL]
    out["met"] = all(m <= TARGET_MS for m in medians)
    # on a loaded machine both slow down: status's median over the interpreter's says what it adds
    out["status_over_python"] = round(out["commands_ms"]["status"]["p50"] / out["python_startup_ms"]["p50"], 2)
    return out


def table(result: dict[str, Any]) -> str:
    rows = [("command", "p50 ms", "p90 ms")]
    for name, s in result["commands_ms"].items():
        rows.append((f"leaderpool-cli {name.replace('_', ' --')}", f"{s['p50']:.0f}", f"{s['p90']:.0f}"))
    for label, key in (("redis-cli GET", "redis_cli_get_ms"), ("python -c pass", "python_startup_ms")):
        if result.get(key):
            rows.append((label, f"{result[key]['p50']:.0f}", f"{result[key]['p90']:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    verdict = "met" if result["met"] else "NOT met"
    if "status_over_python" in result:
        lines.append(f"status takes {result['status_over_python']:g}x python -c pass (the target: 100 / 19 = 5.3x)")
    lines.append(f"target: status and history in {TARGET_MS:.0f} ms or less (median of {result['runs']}): {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="3 runs per command: a smoke run of a few seconds")
    p.add_argument("--runs", type=int, help=f"runs per command ({RUNS}; quick 3)")
    p.add_argument("--out", type=Path, help="directory for the JSON result (benchmarks/results)")
    p.add_argument("--name", help="result file name without .json (startup-TIMESTAMP)")
    args = p.parse_args(argv)
    runs = args.runs or (3 if args.quick else RUNS)
    met: list[bool] = []

    def measured(url: str) -> dict[str, Any]:
        result = measure(url, runs)
        met.append(result["met"])
        return result

    code = run_alone("startup", measured, table, out=args.out, name=args.name, quick=args.quick)
    return code or (0 if args.quick or all(met) else 1)  # the guard: a slower start-up fails the run


if __name__ == "__main__":
    raise SystemExit(main())
