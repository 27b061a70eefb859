"""Leader work stops entirely: ``leaderpool-worker --exec`` across SIGKILLs of its worker.

Two workers in a pool (ttl 2 s, fast failover on), both with ``--exec`` of a command that first
records the time of its first act, then starts a helper in the background and a helper that
double-forks into a session of its own; each helper appends ``time.time_ns()`` to a file every
millisecond (an act). Each round SIGKILLs the leading worker and measures, from the SIGKILL:

- **last act of the old tree**: the latest tick of any of its processes;
- **first act of the new leader's command**;
- **old tree gone**: every process of it exited (a pidfd per process, read as they end);
- **gap**: the new command's first act minus the old tree's last act, which must be positive in
  every round (``order_violations`` counts the rounds where it was not).

A replacement worker joins before the next round, so each round kills a leader of a pool of two.
``python -m benchmarks.exec_tree [--quick] [--rounds N] [--out DIR]`` writes
``exec-tree-TIMESTAMP.json``; ``python -m benchmarks`` runs it as its ``exec tree`` section.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import run_section, stats_row, table, wait_until
from benchmarks.stats import summary
from leaderpool.testing.processes import Child, ChildGroup, clean_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROCS = ROOT / "tests" / "support" / "tree_procs.py"
TTL_S = 2.0
PATIENCE_S = 30.0
GONE_WAIT_S = 5.0


def command(base: Path) -> list[str]:
    """Each lead's command: its first act (``date``, before anything else), then the two helpers."""
    helper = f"{sys.executable} {PROCS}"
    script = (
        f'd={base}/term-$LEADERPOOL_TERM; mkdir -p "$d"; date +%s%N > "$d/first"; echo $$ >> "$d/pids"; '
        f'{helper} helper "$d" & {helper} doublefork "$d" & wait'
    )
    return ["--exec", "--", "sh", "-c", script]


def _ints(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split() if x.isdigit()] if path.exists() else []


def _ticks(directory: Path) -> list[int]:
    return [t for p in directory.glob("ticks-*") for t in _ints(p)]


class Pool:
    """Workers of one pool, all with the tree command; ``start`` adds one."""

    def __init__(self, url: str, base: Path, group: ChildGroup) -> None:
        self.url, self.base, self.group = url, base, group
        self.count = 0

    def start(self) -> Child:
        self.count += 1
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", self.url, "--pool", "bench-tree",
                "--member-id", f"m{self.count}", "--ttl", str(TTL_S), "--json-events", *command(self.base)]  # fmt: skip
        return self.group.add(Child(argv, name=f"m{self.count}", env=clean_env(PYTHONPATH=str(ROOT)), cwd=ROOT))


def _gone_at(pids: list[int], timeout: float) -> int | None:
    """``time.time_ns()`` when the last of ``pids`` exited (pidfds; None past ``timeout``)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue  # gone already
    last = time.time_ns()
    try:
        pending = set(fds)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.monotonic()))
            last = time.time_ns()
            pending -= set(ready)
        return None if pending else last
    finally:
        for fd in fds:
            os.close(fd)


def one_round(pool: Pool, leader: Child, follower: Child) -> dict[str, Any]:
    term = int(leader.wait_for(lambda e: e["event"] == "elected", PATIENCE_S)["term"])
    old = pool.base / f"term-{term}"
    wait_until(lambda: len(_ints(old / "pids")) >= 4 and _ticks(old), "the old tree's helpers", PATIENCE_S)
    follower.wait_for(lambda e: e["event"] == "leader" and e["member"] == leader.name, PATIENCE_S)
    pids = _ints(old / "pids")
    killed = time.time_ns()
    leader.proc.send_signal(signal.SIGKILL)
    gone = _gone_at(pids, GONE_WAIT_S)
    elected = follower.wait_for(lambda e: e["event"] == "elected", PATIENCE_S)
    new_term = int(elected["term"])
    first_file = pool.base / f"term-{new_term}" / "first"
    first_act = wait_until(lambda: first_file.exists() and first_file.read_text().strip(), "the first act",
                           PATIENCE_S)  # fmt: skip
    first = int(first_act)
    time.sleep(0.05)  # any act the old tree could still make would be in its files by now
    last = max(_ticks(old))
    return {
        "term": term,
        "last_act_after_kill_ms": (last - killed) / 1e6,
        "elected_after_kill_ms": (elected["t"] * 1e9 - killed) / 1e6,
        "first_act_after_kill_ms": (first - killed) / 1e6,
        "gone_after_kill_ms": None if gone is None else (gone - killed) / 1e6,
        "gap_ms": (first - last) / 1e6,
        "ordered": last < first,
    }


@contextlib.contextmanager
def _removed(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def measure(url: str, rounds: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="leaderpool-bench-tree-"))
    samples: list[dict[str, Any]] = []
    with _removed(base), ChildGroup() as group:
        pool = Pool(url, base, group)
        leader = pool.start()
        leader.wait_for(lambda e: e["event"] == "elected", PATIENCE_S)
        follower = pool.start()
        for _ in range(rounds):
            samples.append(one_round(pool, leader, follower))
            leader, follower = follower, pool.start()
        containment = next((part.split("=", 1)[1] for part in leader.stderr.split() if part.startswith("containment=")),
                           None)  # fmt: skip
    ordered = [s for s in samples if s["ordered"]]
    return {
        "ttl_s": TTL_S,
        "rounds": rounds,
        "containment": containment,
        "order_violations": len(samples) - len(ordered),
        "last_act_after_kill_ms": summary([s["last_act_after_kill_ms"] for s in samples], digits=2),
        "gone_after_kill_ms": summary([s["gone_after_kill_ms"] for s in samples if s["gone_after_kill_ms"]], digits=2),
        "elected_after_kill_ms": summary([s["elected_after_kill_ms"] for s in samples], digits=2),
        "first_act_after_kill_ms": summary([s["first_act_after_kill_ms"] for s in samples], digits=2),
        "gap_ms": summary([s["gap_ms"] for s in samples], digits=2),
        "samples": samples,
    }


def markdown_lines(section: dict[str, Any] | None) -> list[str]:
    """The section of RESULTS.md."""
    if not section:
        return []
    if "error" in section:
        return ["", "## Leader work stops entirely (`--exec`)", "", f"FAILED: {section['error']}"]

    keys = ("n", "p50", "p99", "max")
    lines = ["", "## Leader work stops entirely (`--exec`, SIGKILL of the leading worker)", ""]
    lines += [f"{section['rounds']} rounds, ttl {section['ttl_s']} s, the tree held by {section['containment']}; "
              f"rounds where the old tree acted after the new command: {section['order_violations']}.", ""]  # fmt: skip
    lines += table("from the SIGKILL (ms)", keys, [
        stats_row("last act of any process of the old tree", section["last_act_after_kill_ms"], keys),
        stats_row("every process of the old tree gone", section["gone_after_kill_ms"], keys),
        stats_row("the next leader elected (its `elected` event)", section["elected_after_kill_ms"], keys),
        stats_row("first act of the new leader's command", section["first_act_after_kill_ms"], keys),
        stats_row("gap: new first act minus old last act", section["gap_ms"], keys),
    ])  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    return run_section("python -m benchmarks.exec_tree", __doc__, "exec-tree", measure, markdown_lines,
                       default_rounds=30, argv=argv, server_args=("--notify-keyspace-events", "Kg$x"),
                       write_markdown=True, failed=lambda results: bool(results["order_violations"]))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
