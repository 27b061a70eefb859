"""Singletons over real worker processes (``leaderpool-worker --singletons-count N --task
leaderpool.worker.tasks:idle --json-events``) on one redis-server:

- **kind hand-off** (``move``): a singleton pinned to the other member; from just before the pin
  to its ``singleton_started`` there (the old owner stopped it and released it first), ms;
- **rebalance on a join**: M members run N singletons, one more joins; the singletons moved
  (``singleton_stopped`` with reason ``moved``) until it holds its share, beside the issue's
  bound ``ceil(N/M) + 1`` (M: the members after the join);
- **SIGKILL**: a member (the pool's leader, the worst case: the placer dies with it) holds
  ``held`` singletons (pinned to it), and two others run; from just before the SIGKILL to the
  last of its singletons started elsewhere, ms, p50/p99 over rounds.

Times are the workers' event stamps (``t``, this host's wall clock) less the one taken just
before the action. ``python -m benchmarks.singletons [--quick] [--rounds N] [--held N] [--out DIR]``
writes ``singletons-TIMESTAMP.json``; ``python -m benchmarks`` runs it as its ``singletons`` section.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from benchmarks.results_file import fill_defaults, run_alone
from benchmarks.stats import summary
from leaderpool.console.oneshot import Blocking, run
from leaderpool.singletons.singleton_store import SingletonStore
from leaderpool.testing.processes import Child, ChildGroup, JsonEvent, clean_env

ROOT = Path(__file__).resolve().parents[1]
TTL_S = 2.0
PATIENCE_S = 60.0
TASK = "leaderpool.worker.tasks:idle"


class Pool:
    """Worker processes of one pool, and where each singleton runs as their events tell."""

    def __init__(
        self, url: str, pool: str, count: int, *, ttl: float = TTL_S, stderr: Path | None = None, log_format: str = ""
    ) -> None:
        self.url, self.pool, self.count = url, pool, count
        self.ttl, self.stderr, self.log_format = ttl, stderr, log_format
        self.group = ChildGroup()
        self.stops: Counter[str] = Counter()
        """singleton_stopped events of live members so far, by reason."""
        self.running: dict[str, tuple[str, int]] = {}
        self.per: Counter[str] = Counter()
        """How many each member runs (kept with :attr:`running`: a check per event stays O(members))."""
        self.dead: set[str] = set()
        """Members SIGKILLed: what they printed before dying is ignored."""
        self.seen = 0
        self.store = SingletonStore(Blocking(redis.Redis.from_url(url)), pool)

    def start(self, member: str) -> Child:
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", self.url, "--pool", self.pool,
                "--member-id", member, "--ttl", repr(self.ttl), "--json-events", "--log-level", "warning",
                "--singletons-count", str(self.count), "--task", TASK]  # fmt: skip
        if self.log_format:
            argv += ["--log-format", self.log_format]
        env = clean_env(PYTHONPATH=str(ROOT))
        return self.group.start(argv, name=member, env=env, cwd=ROOT, stderr=self.stderr)

    def until(
        self,
        done: Callable[[], bool],
        what: str,
        watch: Callable[[JsonEvent], None] = lambda e: None,
        *,
        patience: float = PATIENCE_S,
    ) -> None:
        """Fold events into :attr:`running` until ``done()``."""

        def fold(item: tuple[str, JsonEvent]) -> bool:
            self._fold(item, watch)
            return done()

        if not done() and self.group.events.first(fold, patience, since=self.seen) is None:
            raise RuntimeError(f"singletons: {what} did not happen within {patience:g}s")

    def drain(self) -> None:
        """Fold the events that arrived so far (waiting for none)."""
        for item in self.group.events.snapshot(self.seen):
            self._fold(item, lambda e: None)

    def _fold(self, item: tuple[str, JsonEvent], watch: Callable[[JsonEvent], None]) -> None:
        self.seen += 1
        e = item[1]
        if item[0] in self.dead:
            return
        watch(e)
        if e["event"] == "singleton_started":
            self._run(e["singleton"], (e["member"], e["term"]))
        elif e["event"] == "singleton_stopped":
            self.stops[e.get("reason", "?")] += 1
            if self.running.get(e["singleton"], ("",))[0] == e["member"]:
                self._run(e["singleton"], None)

    def _run(self, name: str, where: tuple[str, int] | None) -> None:
        before = self.running.pop(name, None)
        if before is not None:
            self.per[before[0]] -= 1
        if where is not None:
            self.running[name] = where
            self.per[where[0]] += 1

    def on(self, member: str) -> list[str]:
        return sorted(n for n, (m, _) in self.running.items() if m == member)

    def balanced(self, members: set[str]) -> Callable[[], bool]:
        bound = math.ceil(self.count / len(members))

        def check() -> bool:
            per = [self.per[m] for m in members]
            return len(self.running) == self.count and sum(per) == self.count and max(per) <= bound

        return check

    def holds(self, member: str, count: int) -> bool:
        return self.per[member] == count

    def all_running(self, count: int) -> bool:
        return len(self.running) == count

    def forget(self, member: str) -> None:
        self.dead.add(member)
        self.running = {n: mt for n, mt in self.running.items() if mt[0] != member}
        self.per[member] = 0

    def close(self) -> None:
        self.group.close(grace=5.0)


def handoffs(url: str, rounds: int, count: int) -> dict[str, Any]:
    pool = Pool(url, "bench-handoff", count)
    try:
        for m in ("a", "b"):
            pool.start(m)
        pool.until(pool.balanced({"a", "b"}), "the spread over a and b")
        took = []
        for i in range(rounds):
            source, target = ("a", "b") if i % 2 == 0 else ("b", "a")
            name = pool.on(source)[0]
            t0 = time.time()
            started: list[float] = []

            def watch(e: JsonEvent, name: str = name, target: str = target, started: list[float] = started) -> None:
                if e["event"] == "singleton_started" and (e["singleton"], e["member"]) == (name, target):
                    started.append(e["t"])

            run(pool.store.pin(name, target))
            pool.until(functools.partial(bool, started), f"the move of {name}", watch)
            took.append(started[0] - t0)
            pool.until(pool.balanced({"a", "b"}), "the spread after the move")  # the pin moved another back
            run(pool.store.pin(name, ""))  # each round starts from a balanced pool without pins
        return {"singletons": count, "members": 2, "ms": summary(took, scale=1000)}
    finally:
        pool.close()


def rebalance(url: str, count: int, members: int) -> dict[str, Any]:
    pool = Pool(url, "bench-join", count)
    try:
        names = {chr(ord("a") + i) for i in range(members)}
        for m in sorted(names):
            pool.start(m)
        pool.until(pool.balanced(names), "the first spread")
        moved: list[str] = []

        def watch(e: JsonEvent) -> None:
            if e["event"] == "singleton_stopped" and e.get("reason") == "moved":
                moved.append(e["singleton"])

        t0 = time.time()
        pool.start("new")
        pool.until(pool.balanced(names | {"new"}), "the rebalance", watch)
        took = time.time() - t0
        return {
            "singletons": count, "members_before": members, "moved": len(moved),
            "share_of_new": len(pool.on("new")), "bound": math.ceil(count / (members + 1)) + 1,
            "settled_s": round(took, 3),
        }  # fmt: skip
    finally:
        pool.close()


def crashes(url: str, rounds: int, held: int) -> dict[str, Any]:
    took, per_round = [], []
    for r in range(rounds):
        pool = Pool(url, f"bench-kill-{r}", held)
        try:
            victim = pool.start("victim")
            pool.until(functools.partial(pool.holds, "victim", held), "the victim's start")
            for name in pool.on("victim"):  # it keeps them all while it lives
                run(pool.store.pin(name, "victim"))
            for m in ("b", "c"):
                pool.start(m)
            deadline = time.monotonic() + PATIENCE_S
            while {"b", "c"} - {m.member for m in run(pool.store.survey()).members}:
                if time.monotonic() > deadline:
                    raise RuntimeError("singletons: b and c did not register")
                time.sleep(0.01)
            last: list[float] = []

            def watch(e: JsonEvent, last: list[float] = last) -> None:
                if e["event"] == "singleton_started":
                    last.append(e["t"])

            t0 = time.time()
            victim.kill()
            pool.forget("victim")
            pool.until(functools.partial(pool.all_running, held), "the restarts elsewhere", watch)
            took.append(max(last) - t0)
            per_round.append({"b": len(pool.on("b")), "c": len(pool.on("c"))})
        finally:
            pool.close()
    return {"held": held, "survivors": 2, "leader_killed": True, "ms": summary(took, scale=1000), "spread": per_round}


def quick_run(url: str, rounds: int, count: int) -> dict[str, Any]:
    """All three on one pool, to stay within seconds: a and b run ``count``; ``rounds`` moves; c
    joins; the leader (a), holding its share, is SIGKILLed."""
    pool = Pool(url, "bench-quick", count)
    try:
        a = pool.start("a")
        pool.start("b")
        pool.until(pool.balanced({"a", "b"}), "the spread over a and b")
        took = []
        for i in range(rounds):
            source, target = ("a", "b") if i % 2 == 0 else ("b", "a")
            name = pool.on(source)[0]
            started: list[float] = []

            def on_start(e: JsonEvent, name: str = name, target: str = target, started: list[float] = started) -> None:
                if e["event"] == "singleton_started" and (e["singleton"], e["member"]) == (name, target):
                    started.append(e["t"])

            t0 = time.time()
            run(pool.store.pin(name, target))
            pool.until(functools.partial(bool, started), f"the move of {name}", on_start)
            took.append(started[0] - t0)
        for name in pool.on("a") + pool.on("b"):
            run(pool.store.pin(name, ""))  # unpinned: the join may move any
        pool.until(pool.balanced({"a", "b"}), "the spread over a and b, unpinned")
        moved: list[str] = []

        def on_move(e: JsonEvent) -> None:
            if e["event"] == "singleton_stopped" and e.get("reason") == "moved":
                moved.append(e["singleton"])

        t0 = time.time()
        pool.start("c")
        pool.until(pool.balanced({"a", "b", "c"}), "the rebalance", on_move)
        settled = time.time() - t0
        held, share = len(pool.on("a")), len(pool.on("c"))
        last: list[float] = []
        t0 = time.time()
        a.kill()
        pool.forget("a")
        pool.until(lambda: len(pool.running) == count, "the restarts elsewhere",
                   lambda e: last.append(e["t"]) if e["event"] == "singleton_started" else None)  # fmt: skip
        return {
            "handoff": {"singletons": count, "members": 2, "ms": summary(took, scale=1000)},
            "rebalance": {"singletons": count, "members_before": 2, "moved": len(moved),
                          "share_of_new": share, "bound": math.ceil(count / 3) + 1,
                          "settled_s": round(settled, 3)},
            "sigkill": {"held": held, "survivors": 2, "leader_killed": True,
                        "ms": summary([max(last) - t0], scale=1000)},
        }  # fmt: skip
    finally:
        pool.close()


def measure(url: str, quick: bool = False, rounds: int | None = None, held: int | None = None) -> dict[str, Any]:
    n = rounds or (3 if quick else 30)
    if quick:
        return quick_run(url, n, 12)
    return {
        "handoff": handoffs(url, n, 100),
        "rebalance": rebalance(url, 100, 3),
        "sigkill": crashes(url, 10, held or 1000),
    }


def markdown_lines(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return []
    if "error" in results:
        return ["## Singletons", "", f"Failed: {results['error']}", ""]
    h, j, k = results["handoff"], results["rebalance"], results["sigkill"]
    return [
        "## Singletons",
        "",
        "| measure | p50 | p90 | p99 | n |",
        "|---|---|---|---|---|",
        f"| kind hand-off (`move`), {h['singletons']} singletons on 2 workers | {h['ms']['p50']} ms | "
        f"{h['ms']['p90']} ms | {h['ms']['p99']} ms | {h['ms']['n']} |",
        f"| SIGKILL of the leader holding {k['held']}: all running on the 2 others | {k['ms']['p50']} ms | "
        f"{k['ms']['p90']} ms | {k['ms']['p99']} ms | {k['ms']['n']} |",
        "",
        f"A join to {j['members_before']} workers running {j['singletons']} singletons moved {j['moved']} "
        f"(bound ceil(N/M) + 1 = {j['bound']}, M counting the new one; the new member's share "
        f"{j['share_of_new']}), settled in {j['settled_s']} s.",
        "",
    ]


def table(results: dict[str, Any]) -> str:
    return "\n".join(markdown_lines(results))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.singletons", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: few rounds, few singletons")
    p.add_argument("--rounds", type=int, help="hand-off rounds (30; quick 3)")
    p.add_argument("--held", type=int, help="singletons the SIGKILLed member holds (1000; quick 40)")
    p.add_argument("--out", type=Path, help="results directory (benchmarks/results)")
    p.add_argument("--name", help="the result file's name, without .json")
    args = p.parse_args(argv)
    fill_defaults(args, [("rounds", 30, 3), ("held", 1000, 40)])
    return run_alone(
        "singletons", lambda url: measure(url, args.quick, args.rounds, args.held), table,
        out=args.out, name=args.name, quick=args.quick,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
