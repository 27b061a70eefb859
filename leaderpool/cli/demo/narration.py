"""The demo's narration: what it prints, the results it records, and how it waits on the
workers' JSON events (or on what Redis shows, for what no worker prints)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import redis

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import LeaderValue
from leaderpool.cli import status
from leaderpool.cli.demo.workers import Workers
from leaderpool.testing.processes import JsonEvent

NamedEvent = tuple[str, JsonEvent]
"""(worker name, one of its JSON events)."""


class DemoFailed(Exception):
    """An experiment could not go on (no leader, a worker that never joined): the demo stops."""


@dataclass
class Result:
    experiment: str
    expected: str
    measured: str
    ok: bool


class Narrator:
    """One demo run's narration and results, and its waits on the workers' events."""

    def __init__(self, cluster: Workers, client: redis.Redis, out: TextIO) -> None:
        self.c = cluster
        self.events = cluster.group.events
        self.r = client
        self.out = out
        self.results: list[Result] = []
        self.t0 = time.monotonic()
        self.keys = Keyspace(cluster.pool, cluster.prefix)
        ttl = cluster.ttl
        self.patience = 3 * ttl + 10  # generous: a busy laptop must not fail the demo

    # ---- narration ----

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.t0:6.2f}s] {text}\n")
        self.out.flush()

    def step(self, title: str) -> None:
        self.out.write(f"\n== {title}\n")
        self.out.flush()

    def record(self, experiment: str, expected: str, measured: str, ok: bool) -> None:
        self.results.append(Result(experiment, expected, measured, ok))
        self.say(f"{'ok' if ok else 'UNEXPECTED'}: {measured} (expected: {expected})")

    def leader(self) -> tuple[LeaderValue | None, int]:
        return LeaderValue.parse(self.r.get(self.keys.leader)), int(self.r.pttl(self.keys.leader))

    def wait(
        self, match: Callable[[str, JsonEvent], bool], since: int, timeout: float | None = None
    ) -> NamedEvent | None:
        """The first event since index ``since`` of any worker that matches, or None after
        ``timeout`` (the demo's patience unless given)."""
        return self.events.first(lambda item: match(*item), self.patience if timeout is None else timeout, since)

    def until(self, condition: Callable[[], bool]) -> float | None:
        """When (unix time) ``condition()`` first held, checking every 50 ms; None if it did
        not within the demo's patience. (For what Redis shows and no worker prints.)"""
        deadline = time.monotonic() + self.patience
        while not condition():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return time.time()

    def since(self, index: int, kind: str) -> list[NamedEvent]:
        return [(n, e) for n, e in self.events.snapshot(index) if e.get("event") == kind]

    def elected(self, since: int, *, exclude: str | None = None) -> NamedEvent | None:
        return self.wait(lambda n, e: e["event"] == "elected" and n != exclude, since)

    def sees(self, name: str, leader: str, since: int) -> NamedEvent | None:
        return self.wait(lambda n, e: n == name and e["event"] == "leader" and e["member"] == leader, since)

    def summary(self) -> bool:
        self.step("Summary")
        rows = [["EXPERIMENT", "EXPECTED", "MEASURED", "RESULT"]]
        rows += [[r.experiment, r.expected, r.measured, "ok" if r.ok else "UNEXPECTED"] for r in self.results]
        self.out.write("\n".join("  " + line for line in status.table(rows)) + "\n")
        return all(r.ok for r in self.results)
