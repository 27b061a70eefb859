"""The history checks of a chaos run: the leader's recorded work (:mod:`.leader_ops`) and its
leads, judged by :mod:`leaderpool.testing.history`. Pure functions, no I/O.

- **The register** is linearizable (the WGL search), in each stretch between data losses (a loss
  empties it, as documented); the value read at the end is its last read.
- **The counter** lost no acknowledged increment (:mod:`leaderpool.testing.history.counter`), in
  each stretch; the value read at the end counts for the last one.
- **The leads, as a mutex**: each lead acquires at its first act and releases at its last; a data
  loss resets the mutex (the documented window: the old leader acts on until its renew deadline,
  which :func:`.checker.overlaps` bounds). The search must linearize it: one holder at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from leaderpool.testing.chaos.leader_ops import COUNTER, REGISTER
from leaderpool.testing.chaos.timeline import Lead, Timeline
from leaderpool.testing.history import counter, wgl
from leaderpool.testing.history.models import Mutex, Register, unread_info_writes_dropped
from leaderpool.testing.history.ops import NEMESIS, MalformedHistory, Op, Operation, epochs, operations

LOSS_SLACK_S = 0.05
"""Widens a data loss's interval: the fault's unix times are placed among monotonic ones."""
LEADER = "leader"
FINAL = "final"
"""The process of the read made once every worker was stopped."""


@dataclass
class HistoryFindings:
    register: list[wgl.Result] = field(default_factory=list)
    """One per stretch between data losses."""
    counter: list[counter.CounterResult] = field(default_factory=list)
    mutex: wgl.Result | None = None
    counts: dict[str, int] = field(default_factory=dict)
    malformed: str = ""
    """Why the history could not be read as one (a recorder's bug): nothing was judged."""

    @property
    def safe(self) -> bool:
        """No check found an anomaly ("unknown" is not one, but :meth:`problems` names it)."""
        results = [*self.register, *([self.mutex] if self.mutex else [])]
        valid = all(r.valid is not False for r in results) and all(c.valid for c in self.counter)
        return valid and not self.malformed

    def problems(self) -> list[str]:
        lines = [f"history malformed, not judged: {self.malformed}"] if self.malformed else []
        for i, r in enumerate(self.register):
            if r.valid is not True:
                lines.append(f"register, stretch {i}: {r.verdict} {_where(r)}")
        for i, c in enumerate(self.counter):
            lines += [f"counter, stretch {i}: lost update ({x.kind}): {x.detail}" for x in c.lost]
        if self.mutex is not None and self.mutex.valid is not True:
            lines.append(f"leads as a mutex: {self.mutex.verdict} {_where(self.mutex)}")
        return lines


def _where(r: wgl.Result) -> str:
    if r.verdict == "unknown":
        return f"({r.reason}, {r.operations} operations)"
    op = r.stuck_at
    if op is None:
        return ""
    return f"at {op.process} {op.f} {op.value!r} (term {op.term}, from {op.start:.3f} to {op.end:.3f})"


def losses(timeline: Timeline) -> list[tuple[float, float]]:
    """Each data loss as a monotonic interval (see :attr:`.timeline.Timeline.mono_offset`)."""
    off = timeline.mono_offset
    return [(f.start - off - LOSS_SLACK_S, f.healed - off + LOSS_SLACK_S) for f in timeline.faults if f.data_loss]


def final_read(timeline: Timeline) -> list[Op]:
    """The register's value at the end, as one more read (after every other operation)."""
    if REGISTER not in timeline.finals or not timeline.ops:
        return []
    t = max(op.mono for op in timeline.ops) + 1.0
    value = timeline.finals[REGISTER]
    return [Op("invoke", "read", None, FINAL, 0.0, t, REGISTER), Op("ok", "read", value, FINAL, 0.0, t, REGISTER)]


def mutex_operations(leads: Sequence[Lead], reset_at: Sequence[float]) -> list[Operation]:
    """Each lead as an acquire at its first act and a release at its last (instants, unix
    seconds), and a reset at each data loss."""
    rows: list[tuple[float, int, str, str, int | None]] = []
    for lead in leads:
        process = f"{lead.member}/{lead.pid}"
        rows += [(lead.start, 1, process, "acquire", lead.term), (lead.end, 2, process, "release", lead.term)]
    rows += [(t, 0, NEMESIS, "reset", None) for t in reset_at]
    rows.sort(key=lambda r: (r[0], r[1]))
    return [Operation(i, p, f, None, t, t, "ok", term) for i, (t, _, p, f, term) in enumerate(rows)]


def check_history(timeline: Timeline, *, max_seconds: float = wgl.MAX_SECONDS) -> HistoryFindings:
    cuts = losses(timeline)
    history = [*timeline.ops, *final_read(timeline)]
    found = HistoryFindings()
    try:
        register_ops, counter_ops = operations(history, key=REGISTER), operations(history, key=COUNTER)
    except MalformedHistory as exc:
        found.malformed = str(exc)
        return found
    found.register = [
        wgl.check(Register(), unread_info_writes_dropped(part), max_seconds=max_seconds)
        for part in epochs(register_ops, cuts)
    ]
    stretches = epochs(counter_ops, cuts)
    final = timeline.finals.get(COUNTER)
    found.counter = [
        counter.check(part, final=(final or 0) if i == len(stretches) - 1 and COUNTER in timeline.finals else None)
        for i, part in enumerate(stretches)
    ]
    resets = [f.start for f in timeline.faults if f.data_loss]
    found.mutex = wgl.check(Mutex(), mutex_operations(timeline.leads, resets), max_seconds=max_seconds)
    kinds = Counter(f"{op.f}_{op.type}" for op in timeline.ops if op.process != NEMESIS)
    found.counts = {
        **{k: kinds[k] for k in sorted(kinds)},
        "operations": sum(1 for op in timeline.ops if op.type == "invoke"),
        "processes": len({op.process for op in timeline.ops}),
        "stretches": len(cuts) + 1,
        "indeterminate_increments": sum(c.indeterminate for c in found.counter),
        "search_steps": sum(r.steps for r in found.register) + (found.mutex.steps if found.mutex else 0),
    }
    return found
