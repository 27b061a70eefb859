"""How fast ``leaderpool-cli dashboard`` tells every open browser about a new leader.

Three workers (lease 2 s) in one pool, the dashboard as users run it, N browsers reading
``/api/events`` (aiohttp clients) and one that never reads. Each round resigns the leader through
``POST /api/pools/POOL/resign``; for every browser, the time from the new leader's own
``elected`` JSON event (its ``t``) to the ``status`` event that shows it; and the spread between
the first and the last browser. Then ``GET /api/status`` N times, one after another.

The targets: the event reaches browsers within 100 ms of the election at the median and 250 ms at
p99 (it waits 50 ms on purpose, to read a burst of notifications once).

``python -m benchmarks.dashboard [--quick] [--rounds N] [--browsers N] [--out DIR]`` writes
``dashboard-TIMESTAMP.json`` to ``benchmarks/results/`` (``quick-dashboard-...`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.results_file import run_alone
from benchmarks.stats import summary
from leaderpool.testing.processes import Child, ChildGroup, clean_env
from leaderpool.util.timeouts import within

POOL = "bench-dashboard"
TTL = "2"
TARGET_P50_MS = 100.0
TARGET_P99_MS = 250.0
ACTION = {"X-Leaderpool-Action": "1"}
PATIENCE_S = 30.0


class Browser:
    """One reader of the event stream: every ``status`` event with its arrival time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def read(self, session: Any, base: str) -> None:
        async with session.get(base + "/api/events") as response:
            kind = ""
            while True:
                line = (await response.content.readline()).decode()
                if not line:
                    return
                line = line.rstrip("\r\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "status":
                    self.events.append((time.time(), json.loads(line[6:])))
                    self.changed.set()

    async def first_showing(self, term: int, since: int) -> float:
        """When the first event (from index ``since``) showing ``term`` as the pool's term arrived."""
        deadline = time.monotonic() + PATIENCE_S
        while True:
            for at, doc in self.events[since:]:
                leader = next((p["leader"] for p in doc["pools"] if p["pool"] == POOL), None)
                if leader is not None and leader["term"] >= term:
                    return at
            self.changed.clear()
            await within(self.changed.wait(), max(deadline - time.monotonic(), 0.001))


def _start(url: str, browsers: int) -> tuple[ChildGroup, Child, list[Child]]:
    group = ChildGroup()
    workers = []
    for name in ("a", "b", "c"):  # one after another: a leads, then b and c join as followers
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", url, "--pool", POOL, "--member-id", name,
                "--ttl", TTL, "--json-events"]  # fmt: skip
        worker = group.start(argv, name=name, env=clean_env())
        worker.wait_for(lambda e: e["event"] == "leader" and e["member"] is not None, PATIENCE_S)
        workers.append(worker)
    argv = [
        sys.executable,
        "-m",
        "leaderpool.cli",
        "--redis",
        url,
        "dashboard",
        "--port",
        "0",
        "--allow-actions",
        "--max-streams",
        str(browsers + 8),
    ]  # fmt: skip  (the readers, the one that never reads, and spares)
    dash = group.start(argv, name="dashboard", env=clean_env())
    return group, dash, workers


def _base(dash: Child) -> str:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        for line in dash.other_stdout:
            found = re.search(r"on (http://\S+)/ ", line)
            if found:
                return found.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"the dashboard did not start: {dash.stderr[-500:]}")


async def _measure(base: str, workers: list[Child], rounds: int, browsers: int) -> dict[str, Any]:
    import aiohttp

    host, port = base.rsplit("/", 1)[1].split(":")
    stalled = socket.create_connection((host, int(port)))  # a browser that never reads
    stalled.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    latencies: list[float] = []
    spreads: list[float] = []
    status_ms: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)  # one connection per browser (aiohttp's default caps at 100)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        readers = [Browser() for _ in range(browsers)]
        tasks = [asyncio.create_task(r.read(session, base)) for r in readers]
        try:
            for r in readers:
                await r.first_showing(1, 0)
            for _ in range(rounds):
                marks = [len(r.events) for r in readers]
                elected_marks = {w.name: len(w.of("elected")) for w in workers}
                async with session.post(f"{base}/api/pools/{POOL}/resign", headers=ACTION) as response:
                    body = await response.json()
                    if not body.get("ok"):
                        raise RuntimeError(f"resign failed: {body}")
                new = next(w for w in workers if len(w.of("elected")) > elected_marks[w.name])
                elected = new.of("elected")[-1]
                arrivals = [await r.first_showing(int(elected["term"]), m) for r, m in zip(readers, marks, strict=True)]
                latencies += [at - float(elected["t"]) for at in arrivals]
                spreads.append(max(arrivals) - min(arrivals))
            for _ in range(max(rounds, 10)):
                started = time.perf_counter()
                async with session.get(base + "/api/status") as response:
                    await response.read()
                status_ms.append((time.perf_counter() - started) * 1000)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stalled.close()
    event = summary(latencies, scale=1000, digits=1)
    return {
        "browsers": browsers,
        "rounds": rounds,
        "event_after_election_ms": event,
        "spread_first_to_last_browser_ms": summary(spreads, scale=1000, digits=1),
        "api_status_ms": summary(status_ms, digits=1),
        "targets": {"event_p50_ms": TARGET_P50_MS, "event_p99_ms": TARGET_P99_MS},
        "met": event["p50"] <= TARGET_P50_MS and event["p99"] <= TARGET_P99_MS,
    }


def measure(url: str, rounds: int, browsers: int) -> dict[str, Any]:
    group, dash, workers = _start(url, browsers)
    try:
        return asyncio.run(_measure(_base(dash), workers, rounds, browsers))
    finally:
        group.close(grace=5)


def table(result: dict[str, Any]) -> str:
    e, s, a = result["event_after_election_ms"], result["spread_first_to_last_browser_ms"], result["api_status_ms"]
    verdict = "met" if result["met"] else "NOT met"
    return "\n".join(
        [
            f"dashboard, {result['browsers']} browsers + 1 that never reads, {result['rounds']} resigns:",
            f"  election -> status event in every browser  p50 {e['p50']:.1f} ms  p99 {e['p99']:.1f} ms  "
            f"max {e['max']:.1f} ms",
            f"  first -> last browser                      p50 {s['p50']:.1f} ms  max {s['max']:.1f} ms",
            f"  GET /api/status                            p50 {a['p50']:.1f} ms  p90 {a['p90']:.1f} ms",
            f"target: p50 <= {TARGET_P50_MS:.0f} ms and p99 <= {TARGET_P99_MS:.0f} ms: {verdict}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="3 resigns, 5 browsers: a smoke run of a few seconds")
    p.add_argument("--rounds", type=int, help="resigns (20; quick 3)")
    p.add_argument("--browsers", type=int, help="browsers reading the stream (50; quick 5)")
    p.add_argument("--out", type=Path, help="directory for the JSON result (benchmarks/results)")
    p.add_argument("--name", help="result file name without .json (dashboard-TIMESTAMP)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 20)
    browsers = args.browsers or (5 if args.quick else 50)

    return run_alone(
        "dashboard", lambda url: measure(url, rounds, browsers), table, out=args.out, name=args.name, quick=args.quick
    )


if __name__ == "__main__":
    raise SystemExit(main())
