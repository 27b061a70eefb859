"""The chaos checker: reads a :class:`~.timeline.Timeline` and says whether the pool stayed safe
and how quickly it recovered from each fault. Pure functions, no I/O, so synthetic timelines
test it (tests/testing/test_chaos.py).

Safety (each must be empty):

- **Overlaps**: two leads (terms, as acted on by a process) whose unfenced acts interleave in
  time. One is allowed only inside the window the guarantees (docs/design/guarantees.md) name
  for Redis data loss: it starts after Redis lost its data, ends no later than one renew
  deadline after that, and its earlier lead began before the loss (the old leader acting on
  until its renew deadline).
- **Stale writes accepted**: a fenced write answered ``ok`` that was sent after a write with a
  newer term had been answered ``ok``, with no data loss in between.
- **Reused terms**: a term elected or acted on by more than one process.
- **Terms that went back**: a lead that began after another lead began, with a lower term.
- **The history** (:mod:`.history_checks`): the register linearizable, no acknowledged increment
  of the counter lost, the leads linearizable as a mutex.

Liveness, per fault: how long after it a new leader acted (``failover_s``), how long no leader
acted around it (``vacant_s``, against ``ttl + heartbeat``), and for a signal to the leader, the
time from the signal to the successor's ``elected`` event (``handover_ms``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from leaderpool.testing.chaos.history_checks import HistoryFindings, check_history
from leaderpool.testing.chaos.timeline import Elected, Fault, FencedWrite, Lead, Timeline

WINDOW_SLACK_S = 0.02
"""Added to the data-loss window: timestamps are floats written by different processes."""
SIGNALS = ("sigterm", "sigkill", "restart")
"""Fault kinds whose hand-over is timed from the signal to the successor's ``elected``."""


@dataclass(frozen=True)
class Overlap:
    first: Lead
    second: Lead
    start: float
    end: float
    in_data_loss_window: bool

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class StaleWrite:
    write: FencedWrite
    newer_term: int


@dataclass(frozen=True)
class FaultOutcome:
    fault: Fault
    leader_kept: bool
    """The lead acting when the fault came was still acting after it, and no other began."""
    new_term: int | None = None
    failover_s: float | None = None
    vacant_s: float | None = None
    handover_ms: float | None = None


@dataclass
class Findings:
    overlaps: list[Overlap] = field(default_factory=list)
    stale_accepted: list[StaleWrite] = field(default_factory=list)
    reused_terms: dict[int, list[str]] = field(default_factory=dict)
    terms_went_back: list[tuple[Lead, Lead]] = field(default_factory=list)
    outcomes: list[FaultOutcome] = field(default_factory=list)
    vacancy_bound_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    history: HistoryFindings = field(default_factory=HistoryFindings)

    @property
    def violations(self) -> list[Overlap]:
        """Overlaps outside the data-loss window: each one breaks a promise."""
        return [o for o in self.overlaps if not o.in_data_loss_window]

    @property
    def safe(self) -> bool:
        broken = self.violations or self.stale_accepted or self.reused_terms or self.terms_went_back
        return not broken and self.history.safe

    def problems(self) -> list[str]:
        """One line per broken promise (empty when safe)."""
        lines = [
            f"overlap {o.duration_s * 1000:.1f} ms: term {o.first.term} ({o.first.member}) and term "
            f"{o.second.term} ({o.second.member}) both acted from {o.start:.3f} to {o.end:.3f}"
            for o in self.violations
        ]
        lines += [
            f"stale write accepted: term {s.write.term} ({s.write.member}) sent at {s.write.sent:.3f} "
            f"after term {s.newer_term} had written"
            for s in self.stale_accepted
        ]
        lines += [f"term {term} reused by {', '.join(who)}" for term, who in self.reused_terms.items()]
        lines += [
            f"term went back: {b.term} ({b.member}) at {b.start:.3f} after {a.term} ({a.member}) at {a.start:.3f}"
            for a, b in self.terms_went_back
        ]
        return lines + self.history.problems()


def check(timeline: Timeline) -> Findings:
    s = timeline.settings
    losses = sorted(f.start for f in timeline.faults if f.data_loss)
    findings = Findings(vacancy_bound_s=s.ttl_s + s.heartbeat_s)
    findings.overlaps = overlaps(timeline.leads, losses, s.renew_deadline_s)
    findings.stale_accepted = stale_writes(timeline.writes, losses)
    findings.reused_terms = reused_terms(timeline.leads, timeline.elected)
    findings.terms_went_back = terms_went_back(timeline.leads)
    findings.outcomes = fault_outcomes(timeline.faults, timeline.leads, timeline.elected)
    findings.history = check_history(timeline)
    w = timeline.writes
    findings.counts = {
        "leads": len(timeline.leads),
        "terms": len({lead.term for lead in timeline.leads}),
        "acts": sum(lead.acts for lead in timeline.leads),
        "fenced_ok": sum(1 for x in w if x.outcome == "ok" and not x.zombie),
        "fenced_refused": sum(1 for x in w if x.outcome == "stale" and not x.zombie),
        "fenced_errors": sum(1 for x in w if x.outcome == "error"),
        "zombie_refused": sum(1 for x in w if x.outcome == "stale" and x.zombie),
        "zombie_accepted": sum(1 for x in w if x.outcome == "ok" and x.zombie),
        "faults": len(timeline.faults),
        "malformed_lines": timeline.malformed_lines,
    }
    return findings


def overlaps(leads: Sequence[Lead], losses: Sequence[float], renew_deadline_s: float) -> list[Overlap]:
    """Every pair of leads of different processes or terms whose acts interleave."""
    ordered = sorted(leads, key=lambda lead: lead.start)
    found: list[Overlap] = []
    for i, second in enumerate(ordered):
        for first in ordered[:i]:
            if first.end <= second.start or (first.term, first.pid) == (second.term, second.pid):
                continue
            start, end = second.start, min(first.end, second.end)
            window = any(
                loss <= start and end <= loss + renew_deadline_s + WINDOW_SLACK_S and first.start < loss
                for loss in losses
            )
            found.append(Overlap(first, second, start, end, window))
    return found


def stale_writes(writes: Sequence[FencedWrite], losses: Sequence[float]) -> list[StaleWrite]:
    """Accepted writes sent after a newer term's write was answered accepted, with no data loss
    in between (a loss drops the fence with everything else)."""
    accepted = [w for w in writes if w.outcome == "ok"]
    # (time, order, ...): at equal times a loss comes first, then replies, then sends (the benefit
    # of the doubt goes to the write)
    events: list[tuple[float, int, int, FencedWrite | None]] = [(t, 0, 0, None) for t in losses]
    events += [(w.replied, 1, i, w) for i, w in enumerate(accepted)]
    events += [(w.sent, 2, i, w) for i, w in enumerate(accepted)]
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    highest, found = 0, []
    for _, kind, _, write in events:
        if write is None:
            highest = 0
        elif kind == 1:
            highest = max(highest, write.term)
        elif write.term < highest:
            found.append(StaleWrite(write, highest))
    return found


def reused_terms(leads: Sequence[Lead], elected: Sequence[Elected]) -> dict[int, list[str]]:
    holders: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for lead in leads:
        holders[lead.term].add((lead.member, lead.pid))
    for e in elected:
        holders[e.term].add((e.member, e.pid))
    return {term: sorted(f"{m}/{p}" for m, p in who) for term, who in sorted(holders.items()) if len(who) > 1}


def terms_went_back(leads: Sequence[Lead]) -> list[tuple[Lead, Lead]]:
    ordered = sorted(leads, key=lambda lead: lead.start)
    found, highest = [], None
    for lead in ordered:
        if highest is not None and lead.term < highest.term:
            found.append((highest, lead))
        if highest is None or lead.term > highest.term:
            highest = lead
    return found


def fault_outcomes(faults: Sequence[Fault], leads: Sequence[Lead], elected: Sequence[Elected]) -> list[FaultOutcome]:
    ordered = sorted(leads, key=lambda lead: lead.start)
    faults = sorted(faults, key=lambda f: f.start)
    out = []
    for i, fault in enumerate(faults):
        until = faults[i + 1].start if i + 1 < len(faults) else float("inf")
        out.append(_outcome(fault, until, ordered, elected))
    return out


def _outcome(fault: Fault, until: float, leads: Sequence[Lead], elected: Sequence[Elected]) -> FaultOutcome:
    old_term = fault.leader_term or 0
    new = next((x for x in leads if x.start >= fault.start and x.term > old_term and x.start < until), None)
    if new is None:
        kept = any(x.term == old_term and x.end >= fault.healed for x in leads) and old_term > 0
        return FaultOutcome(fault, leader_kept=kept)
    acted_before = [x.end for x in leads if x.start < new.start and x is not new]
    last = max(acted_before, default=fault.start)
    handover = None
    if fault.kind in SIGNALS and fault.on_leader:
        succ = min(
            (e.t for e in elected if e.t >= fault.start and e.term > old_term and e.member != fault.target),
            default=None,
        )
        handover = None if succ is None else (succ - fault.start) * 1000
    return FaultOutcome(
        fault,
        leader_kept=False,
        new_term=new.term,
        failover_s=new.start - fault.start,
        vacant_s=max(0.0, new.start - last),
        handover_ms=handover,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated; NaN for none."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
