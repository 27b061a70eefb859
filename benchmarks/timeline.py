"""The JSON lines contender processes print, collected into one timeline per pool, and what
the timeline tells: who is acting as leader, and every moment two members acted at once."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    """One protocol line. ``proc`` names the process that printed it (``member`` in a "leader"
    line is the leader's id, not the printer's)."""

    proc: str
    kind: str
    t: float
    member: str | None = None
    term: Any = None
    reason: str | None = None


def parse_line(proc: str, line: str) -> Event | None:
    """The event on ``line``, or None for anything that is not a protocol line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
        return Event(proc, str(data["event"]), float(data["t"]), data.get("member"), data.get("term"),
                     data.get("reason"))  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


class Timeline:
    """Events from every process of one pool, in arrival order; readers can wait on it."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self.ended: dict[str, float] = {}
        """proc -> when it stopped being able to act: the earliest of SIGKILL sent and its exit."""

    def add(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def mark_ended(self, proc: str, t: float) -> None:
        with self._cond:
            self.ended[proc] = min(t, self.ended.get(proc, t))
            self._cond.notify_all()

    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def wait_for(self, predicate: Callable[[list[Event]], T | None], timeout: float) -> T | None:
        """The first truthy ``predicate(events)`` within ``timeout`` seconds, else None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = predicate(self._events)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.05))

    def acting(self) -> set[str]:
        """Processes acting as leader now (elected and neither revoked nor ended)."""
        with self._cond:
            return {proc for proc, _start, end in acting_intervals(self._events, self.ended) if math.isinf(end)}


def acting_intervals(events: Iterable[Event], ended: dict[str, float]) -> list[tuple[str, float, float]]:
    """(proc, from, until) for every stretch a process acted as leader; an open stretch ends
    when the process ended, or is open (``inf``) if it still runs."""
    open_at: dict[str, float] = {}
    out: list[tuple[str, float, float]] = []
    for ev in sorted(events, key=lambda e: e.t):
        if ev.kind == "elected" and ev.proc not in open_at:
            open_at[ev.proc] = ev.t
        elif ev.kind == "revoked" and ev.proc in open_at:
            out.append((ev.proc, open_at.pop(ev.proc), ev.t))
    for proc, start in open_at.items():
        out.append((proc, start, ended.get(proc, math.inf)))
    return out


@dataclass
class Overlaps:
    """Moments with two acting leaders."""

    count: int = 0
    total_s: float = 0.0
    worst_s: float = 0.0
    cases: list[dict[str, Any]] = field(default_factory=list)


def overlaps(intervals: list[tuple[str, float, float]]) -> Overlaps:
    """Every pair of acting stretches of different processes that share an instant."""
    found = Overlaps()
    ordered = sorted(intervals, key=lambda i: i[1])
    for i, (proc_a, _start_a, end_a) in enumerate(ordered):
        for proc_b, start_b, end_b in ordered[i + 1 :]:
            if start_b >= end_a:
                break
            if proc_b == proc_a:
                continue
            length = min(end_a, end_b) - start_b
            if length > 0:
                found.count += 1
                found.total_s += length if math.isfinite(length) else 0.0
                found.worst_s = max(found.worst_s, length)
                found.cases.append({"a": proc_a, "b": proc_b, "at": start_b, "length_s": length})
    return found
