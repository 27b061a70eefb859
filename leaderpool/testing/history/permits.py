"""The check of a history of holds: a semaphore's permits never exceeded, and a read-write lock's
readers and a writer never acting together.

A hold is what a holder did while it believed it held: the interval from its first recorded
action to its last (:class:`Hold`), on one clock (the processes of one machine share it). Holds
that touch only at an end point do not overlap (the next holder acts after the last one's last
recorded action). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Hold:
    """One holder's actions under one grant: ``kind`` is ``"permit"``, ``"read"`` or ``"write"``."""

    process: str
    token: int
    kind: str
    start: float
    end: float


@dataclass(frozen=True)
class PermitResult:
    """``valid`` when at most ``permits`` holds (and never a writer with anyone) overlapped;
    ``most`` is the largest number acting at once; ``witness`` holds that overlapped too far."""

    valid: bool
    most: int
    witness: tuple[Hold, ...] = ()


def check(holds: Sequence[Hold], permits: int) -> PermitResult:
    """At every instant, at most ``permits`` holds act; a ``write`` hold acts alone."""
    edges = sorted([(h.start, 1, h) for h in holds] + [(h.end, 0, h) for h in holds], key=lambda e: (e[0], e[1]))
    acting: list[Hold] = []
    most = 0
    for _, opening, hold in edges:  # at equal times, ends come first: touching holds do not overlap
        if not opening:
            acting.remove(hold)
            continue
        acting.append(hold)
        most = max(most, len(acting))
        writer_with_others = len(acting) > 1 and any(h.kind == "write" for h in acting)
        if len(acting) > permits or writer_with_others:
            return PermitResult(False, most, tuple(acting))
    return PermitResult(True, most)


def holds_from_actions(actions: Sequence[tuple[str, int, str, float]]) -> list[Hold]:
    """Holds from recorded actions ``(process, token, kind, time)``: one per (process, token)."""
    spans: dict[tuple[str, int, str], list[float]] = {}
    for process, token, kind, at in actions:
        spans.setdefault((process, token, kind), []).append(at)
    return [Hold(p, t, k, min(times), max(times)) for (p, t, k), times in spans.items()]
