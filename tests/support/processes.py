"""Bare member processes (``tests.support.member_process``) for the core's multi-process tests, on the
shared harness (:mod:`leaderpool.testing.processes`): started, their JSON lines read, signalled,
and always closed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from leaderpool.testing.processes import Child, ChildGroup, JsonEvent

ROOT = Path(__file__).resolve().parents[2]


class Proc(Child):
    """A member process; ``events`` holds its JSON lines (a test may append a "killed" line)."""

    def __init__(self, args: list[str], name: str) -> None:
        super().__init__(args, name=name, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def popen(self) -> subprocess.Popen[str]:
        return self.proc

    def wait_event(self, kind: str, count: int = 1, timeout: float = 15.0) -> JsonEvent:
        """The ``count``-th event of ``kind``, waiting up to ``timeout`` seconds in all."""
        seen: list[JsonEvent] = []

        def nth(event: JsonEvent) -> bool:
            if event.get("event") == kind:
                seen.append(event)
            return len(seen) == count

        return self.wait_for(nth, timeout)


@contextmanager
def member_processes() -> Iterator[Callable[..., Proc]]:
    """Yield a starter; every process it started is killed (by pid) at the end."""
    group = ChildGroup()

    def start(url: str, pool: str, member: str, **options: Any) -> Proc:
        args = [sys.executable, "-m", "tests.support.member_process", url, pool, member]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not False:
                args += [flag, str(value)]
        return group.add(Proc(args, member))

    try:
        yield start
    finally:
        group.close(grace=0)


def settled_pool(start: Callable[..., Proc], url: str, pool: str, names: str = "abc", **options: Any) -> list[Proc]:
    """Start one member per name, in order (so the first is the oldest and leads), and return
    once it leads and the last one has seen it."""
    procs = []
    for name in names:
        procs.append(start(url, pool, name, **options))
        procs[-1].wait_event("started")
    procs[0].wait_event("elected")
    procs[-1].wait_event("leader")
    return procs


def overlaps(procs: list[Proc]) -> int:
    """How many times two processes were acting leaders at once (from their elected/revoked
    lines; a killed process's interval ends at its kill, which the caller records as 'killed')."""
    intervals = []
    for proc in procs:
        start = None
        for e in proc.events:
            if e["event"] == "elected":
                start = e["t"]
            elif e["event"] in ("revoked", "killed") and start is not None:
                intervals.append((start, e["t"]))
                start = None
        if start is not None:
            intervals.append((start, float("inf")))
    intervals.sort()
    count, acting_until = 0, float("-inf")
    for start, end in intervals:
        if start < acting_until:
            count += 1
        acting_until = max(acting_until, end)
    return count
