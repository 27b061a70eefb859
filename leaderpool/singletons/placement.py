"""Where each singleton runs: pure functions, no I/O (the placer, :mod:`.placer`, calls them).

A strategy is a :class:`Strategy`: given the live members (with weight and priority), the
names, where each runs now, the operators' pins and the anti-affinity groups, it returns the
member of every name (Horde's ``distribution_strategy``). Two are built in:

- :class:`Balanced` (the default): each member's quota is its weighted share of the names,
  rounded so the quotas add up (the remainders go to the higher priority first, then the
  member id), so with equal weights none holds more than ``ceil(N / M)``. A name stays where it
  runs while its member is within quota: a change moves as few names as the quotas allow.
- :class:`HashRing`: consistent hashing (weighted virtual nodes): a join or a leave moves only
  the names whose ring position changed owner, whatever ran where before; not exactly balanced.

Both keep a pinned name (``move``) on its member while that member is live, and place the names
of one anti-affinity group on different members where there are enough of them.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple, Protocol

__all__ = ["Balanced", "HashRing", "Member", "Strategy", "moves", "quotas"]


class Member(NamedTuple):
    """A live member that runs singletons: heavier members get more; higher priority first."""

    id: str
    weight: float = 1.0
    priority: int = 0


class Strategy(Protocol):
    """Where each of ``names`` runs, on ``members`` (never empty when called)."""

    def place(
        self,
        names: Sequence[str],
        members: Sequence[Member],
        current: Mapping[str, str],
        *,
        pins: Mapping[str, str] = ...,
        apart: Sequence[Collection[str]] = ...,
    ) -> dict[str, str]: ...


def moves(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    """The names that run somewhere and would run elsewhere: each is one hand-off."""
    return {name for name, member in before.items() if name in after and after[name] != member}


def _order(members: Sequence[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (-m.priority, m.id))


def quotas(count: int, members: Sequence[Member]) -> dict[str, int]:
    """Each member's share of ``count`` names by weight, rounded down, the rest one each by the
    largest remainder, then the higher priority, then the member id: they add up to ``count``."""
    total = sum(m.weight for m in members)
    exact = {m.id: count * m.weight / total for m in members}
    out = {m.id: math.floor(exact[m.id]) for m in members}
    rest = count - sum(out.values())
    by_remainder = sorted(members, key=lambda m: (-(exact[m.id] - out[m.id]), -m.priority, m.id))
    for m in by_remainder[:rest]:
        out[m.id] += 1
    return out


def _groups(apart: Sequence[Collection[str]]) -> dict[str, list[int]]:
    """name -> the anti-affinity groups it is in."""
    groups: dict[str, list[int]] = {}
    for i, group in enumerate(apart):
        for name in group:
            groups.setdefault(name, []).append(i)
    return groups


class _Fill:
    """An assignment being built: who holds what, and which groups each member has already."""

    def __init__(self, members: Sequence[Member], apart: Sequence[Collection[str]]) -> None:
        self.out: dict[str, str] = {}
        self.held = {m.id: 0 for m in members}
        self.groups = _groups(apart)
        self.has: dict[str, set[int]] = {m.id: set() for m in members}

    def clashes(self, name: str, member: str) -> bool:
        return any(g in self.has[member] for g in self.groups.get(name, ()))

    def put(self, name: str, member: str) -> None:
        self.out[name] = member
        self.held[member] += 1
        self.has[member].update(self.groups.get(name, ()))


def _pinned(fill: _Fill, names: Sequence[str], pins: Mapping[str, str]) -> list[str]:
    """Place the pinned names whose member is live; the others left, in order."""
    rest = []
    for name in names:
        member = pins.get(name)
        if member is not None and member in fill.held:
            fill.put(name, member)
        else:
            rest.append(name)
    return rest


class Balanced:
    """Balanced by weight (see the module's docstring): the default strategy."""

    def place(
        self,
        names: Sequence[str],
        members: Sequence[Member],
        current: Mapping[str, str],
        *,
        pins: Mapping[str, str] = {},
        apart: Sequence[Collection[str]] = (),
    ) -> dict[str, str]:
        ordered = _order(members)
        quota = quotas(len(names), ordered)
        fill = _Fill(ordered, apart)
        rest = _pinned(fill, sorted(names), pins)
        # keep what runs where it is, within quota and apart from its group-mates
        unplaced = []
        for name in rest:
            member = current.get(name)
            if member in fill.held and fill.held[member] < quota[member] and not fill.clashes(name, member):
                fill.put(name, member)
            else:
                unplaced.append(name)
        # the rest to the member with the most room left (no clash first), higher priority first
        rank = {m.id: i for i, m in enumerate(ordered)}
        for name in unplaced:
            best = min(
                ordered,
                key=lambda m: (
                    fill.held[m.id] >= quota[m.id],
                    fill.clashes(name, m.id),
                    fill.held[m.id] - quota[m.id],
                    rank[m.id],
                ),
            )
            fill.put(name, best.id)
        return fill.out


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing: ``replicas`` virtual nodes per unit of weight (see the module's docstring)."""

    def __init__(self, replicas: int = 64) -> None:
        if replicas < 1:
            raise ValueError("a hash ring needs at least one virtual node per member")
        self.replicas = replicas

    def place(
        self,
        names: Sequence[str],
        members: Sequence[Member],
        current: Mapping[str, str],
        *,
        pins: Mapping[str, str] = {},
        apart: Sequence[Collection[str]] = (),
    ) -> dict[str, str]:
        ring = sorted(
            (_point(f"{m.id}#{i}"), m.id) for m in members for i in range(max(1, round(self.replicas * m.weight)))
        )
        points = [p for p, _ in ring]
        fill = _Fill(members, apart)
        for name in _pinned(fill, sorted(names), pins):
            start = bisect_right(points, _point(name))
            first = ring[start % len(ring)][1]
            chosen = first
            if fill.clashes(name, first):  # walk on clockwise to a member without a group-mate
                for step in range(1, len(ring)):
                    candidate = ring[(start + step) % len(ring)][1]
                    if not fill.clashes(name, candidate):
                        chosen = candidate
                        break
            fill.put(name, chosen)
        return fill.out
