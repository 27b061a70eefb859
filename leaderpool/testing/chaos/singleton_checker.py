"""The singletons' chaos checker: reads a :class:`~.singleton_timeline.SingletonTimeline` and says,
per singleton, whether it ever had two owners at once and whether its fenced writes and its
counter kept their promises. Pure functions, no I/O (tests/testing/test_chaos_singletons.py feeds
it bad histories).

**An ownership's interval** runs from its task's start to the end it can be held to:

- its ``sstop`` time when it was stopped (a hand-off, a leave, a move): the task stopped acting
  before it wrote that line, and the singleton is released only after;
- its last act when it lapsed (frozen, cut off: it wrote ``sstop`` late, on waking): an act's
  time is read before the check that allowed it, as the election's checker reads a leader's;
- the SIGKILL's time when it could write no ``sstop`` (it acted no more after), or, for a
  process no one killed that said nothing (an exit the run did not cause), its last act,
  counted in ``unterminated``.

Safety, per singleton (each must be empty):

- **Overlaps**: two ownerships (terms or processes) whose intervals intersect.
- **Stale writes accepted**: a fenced write answered ``ok`` that was sent after a write of a
  newer term had been answered ``ok`` (accepted writes in term order).
- **Reused terms**: a term owned by more than one process; **terms that went back**: an
  ownership that began after another began, with a lower term.
- **Lost updates** of its counter (:mod:`leaderpool.testing.history.counter`), against the value
  read at the end.

No data loss is injected in this run (a Redis that lost its data forgets the singletons' terms
with the rest, the documented window of docs/design/guarantees.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from leaderpool.testing.chaos import checker
from leaderpool.testing.chaos.singleton_task import history_key
from leaderpool.testing.chaos.singleton_timeline import Ownership, SingletonTimeline, SingletonWrite
from leaderpool.testing.chaos.timeline import FencedWrite, Lead
from leaderpool.testing.history import counter
from leaderpool.testing.history.ops import MalformedHistory, operations


@dataclass(frozen=True)
class Interval:
    ownership: Ownership
    start: float
    end: float
    how: str
    """``stopped``, ``lapsed``, ``killed`` or ``unterminated``."""


@dataclass(frozen=True)
class SingletonOverlap:
    name: str
    first: Interval
    second: Interval

    @property
    def duration_s(self) -> float:
        return min(self.first.end, self.second.end) - self.second.start


@dataclass
class SingletonFindings:
    overlaps: list[SingletonOverlap] = field(default_factory=list)
    stale_accepted: list[tuple[str, checker.StaleWrite]] = field(default_factory=list)
    reused_terms: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    terms_went_back: list[tuple[str, Ownership, Ownership]] = field(default_factory=list)
    lost_updates: dict[str, list[counter.LostUpdate]] = field(default_factory=dict)
    malformed: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        broken = self.overlaps or self.stale_accepted or self.reused_terms or self.terms_went_back
        return not broken and not self.lost_updates and not self.malformed

    def problems(self) -> list[str]:
        """One line per broken promise (empty when safe)."""
        lines = [f"history malformed, not judged: {self.malformed}"] if self.malformed else []
        lines += [
            f"{o.name}: two owners for {o.duration_s * 1000:.1f} ms: term {o.first.ownership.term} "
            f"({o.first.ownership.member}/{o.first.ownership.pid}, {o.first.how} at {o.first.end:.3f}) and term "
            f"{o.second.ownership.term} ({o.second.ownership.member}/{o.second.ownership.pid}, from "
            f"{o.second.start:.3f})"
            for o in self.overlaps
        ]
        lines += [
            f"{name}: stale write accepted: term {s.write.term} ({s.write.member}) sent at {s.write.sent:.3f} "
            f"after term {s.newer_term} had written"
            for name, s in self.stale_accepted
        ]
        lines += [
            f"{name}: term {term} owned by {', '.join(who)}"
            for name, terms in self.reused_terms.items()
            for term, who in terms.items()
        ]
        lines += [
            f"{name}: term went back: {b.term} ({b.member}) at {b.start:.3f} after {a.term} ({a.member}) "
            f"at {a.start:.3f}"
            for name, a, b in self.terms_went_back
        ]
        lines += [f"{name}: lost update ({x.kind}): {x.detail}" for name, xs in self.lost_updates.items() for x in xs]
        return lines


def interval(o: Ownership, kills: Mapping[int, float]) -> Interval:
    """The interval ``o`` may have acted in (see the module's docstring)."""
    if o.stop is not None and not o.lapsed:
        return Interval(o, o.start, max(o.stop, o.last_act), "stopped")
    if o.stop is not None:
        return Interval(o, o.start, o.last_act, "lapsed")
    killed = kills.get(o.pid)
    if killed is not None:
        return Interval(o, o.start, max(killed, o.last_act), "killed")
    return Interval(o, o.start, o.last_act, "unterminated")


def overlaps(name: str, intervals: Sequence[Interval]) -> list[SingletonOverlap]:
    ordered = sorted(intervals, key=lambda i: i.start)
    found = []
    for k, second in enumerate(ordered):
        for first in ordered[:k]:
            a, b = first.ownership, second.ownership
            if (a.term, a.pid) != (b.term, b.pid) and first.end > second.start:
                found.append(SingletonOverlap(name, first, second))
    return found


def _as_fenced(w: SingletonWrite) -> FencedWrite:
    return FencedWrite(w.term, w.member, w.pid, w.sent, w.replied, w.outcome, w.zombie)


def check(timeline: SingletonTimeline) -> SingletonFindings:
    found = SingletonFindings()
    owned: dict[str, list[Ownership]] = defaultdict(list)
    for o in timeline.ownerships:
        owned[o.name].append(o)
    written: dict[str, list[SingletonWrite]] = defaultdict(list)
    for w in timeline.writes:
        written[w.name].append(w)
    hows: dict[str, int] = defaultdict(int)
    for name in sorted(owned.keys() | written.keys()):
        intervals = [interval(o, timeline.kills) for o in owned[name]]
        for i in intervals:
            hows[i.how] += 1
        found.overlaps += overlaps(name, intervals)
        found.stale_accepted += [(name, s) for s in checker.stale_writes([_as_fenced(w) for w in written[name]], [])]
        leads = [Lead(o.term, o.member, o.pid, o.start, o.last_act) for o in owned[name]]
        reused = checker.reused_terms(leads, [])
        if reused:
            found.reused_terms[name] = reused
        found.terms_went_back += [
            (name, _back(owned[name], a), _back(owned[name], b)) for a, b in checker.terms_went_back(leads)
        ]
    increments = 0
    for name in sorted(owned):
        try:
            ops = operations(timeline.ops, key=history_key(name))
        except MalformedHistory as exc:
            found.malformed = f"{name}: {exc}"
            continue
        result = counter.check(ops, final=timeline.finals.get(name))
        increments += result.acknowledged
        if result.lost:
            found.lost_updates[name] = result.lost
    writes = timeline.writes
    found.counts = {
        "singletons": len(owned),
        "ownerships": len(timeline.ownerships),
        "acts": sum(o.acts for o in timeline.ownerships),
        **{f"ended_{how}": n for how, n in sorted(hows.items())},
        "fenced_ok": sum(1 for x in writes if x.outcome == "ok" and not x.zombie),
        "fenced_refused": sum(1 for x in writes if x.outcome == "stale" and not x.zombie),
        "fenced_not_sent": sum(1 for x in writes if x.outcome == "not"),
        "fenced_errors": sum(1 for x in writes if x.outcome == "error"),
        "zombie_refused": sum(1 for x in writes if x.outcome == "stale" and x.zombie),
        "zombie_accepted": sum(1 for x in writes if x.outcome == "ok" and x.zombie),
        "increments_acknowledged": increments,
        "operations": sum(1 for op in timeline.ops if op.type == "invoke"),
        "faults": len(timeline.faults),
        "malformed_lines": timeline.malformed_lines,
    }
    return found


def _back(owned: Sequence[Ownership], lead: Lead) -> Ownership:
    return next(o for o in owned if (o.term, o.pid, o.start) == (lead.term, lead.pid, lead.start))
