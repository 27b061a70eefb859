"""Lost updates on a counter that a leader read-modify-writes: it reads the counter, then writes
the read value plus one with a fenced write. Each increment is an :class:`~.ops.Operation` with
``f == "incr"`` whose value is ``(read, written)`` (for an ``info`` one, what it meant to write,
or None if it never read).

An acknowledged (``ok``) increment is lost when a later one did not build on it. Found here:

- **Twice to one value**: two ``ok`` increments wrote the same value (both read the same value).
- **Read behind**: an ``ok`` increment read a value below what another ``ok`` increment had
  written and been acknowledged for before it began (it overwrote that increment with its own).
  Only acknowledged ones are judged: an ``info`` one may span a data loss (its read from after
  it, its invocation from before).
- **Final value short**: the counter read at the end holds less than the highest value an ``ok``
  increment wrote, or less than the number of ``ok`` increments since the counter was last empty.

Check each epoch (:func:`~.ops.epochs`) alone: a data loss empties the counter, as documented.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from leaderpool.testing.history.ops import Operation


@dataclass(frozen=True)
class LostUpdate:
    kind: str
    """``twice``, ``read_behind`` or ``final_short``."""
    ops: tuple[Operation, ...]
    detail: str


@dataclass
class CounterResult:
    acknowledged: int = 0
    indeterminate: int = 0
    final: int | None = None
    lost: list[LostUpdate] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.lost


def _pair(op: Operation) -> tuple[int, int] | None:
    value = op.value
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(x, int) for x in value):
        return int(value[0]), int(value[1])
    return None


def check(ops: Sequence[Operation], final: int | None = None) -> CounterResult:
    """The lost updates among ``ops`` (one epoch's increments); ``final`` is the counter read
    after the last of them completed (None: not known, for an epoch a data loss ended)."""
    incrs = [op for op in ops if op.f == "incr"]
    acked = [(op, pair) for op in incrs if op.definite and (pair := _pair(op)) is not None]
    result = CounterResult(len(acked), sum(1 for op in incrs if not op.definite), final)
    by_value: dict[int, list[Operation]] = defaultdict(list)
    for op, (_, written) in acked:
        by_value[written].append(op)
    for written, same in sorted(by_value.items()):
        if len(same) > 1:
            who = ", ".join(f"{op.process} (term {op.term})" for op in same)
            result.lost.append(
                LostUpdate("twice", tuple(same), f"{len(same)} acknowledged increments to {written}: {who}")
            )
    # read behind: against the highest value acknowledged before each increment began
    done = sorted(((op.end, written, op) for op, (_, written) in acked), key=lambda x: (x[0], x[1]))
    highest: tuple[int, Operation] | None = None
    i = 0
    for op in sorted((op for op, _ in acked), key=lambda o: o.start):
        while i < len(done) and done[i][0] < op.start:
            if highest is None or done[i][1] > highest[0]:
                highest = (done[i][1], done[i][2])
            i += 1
        pair = _pair(op)
        if pair is None or highest is None or pair[0] >= highest[0]:
            continue
        top, by = highest
        result.lost.append(
            LostUpdate(
                "read_behind",
                (by, op),
                f"{op.process} (term {op.term}) read {pair[0]} after {by.process} (term {by.term}) "
                f"was acknowledged for writing {top}",
            )
        )
    if final is not None and acked:
        top = max(written for _, (_, written) in acked)
        if final < top or final < len(acked):
            result.lost.append(
                LostUpdate(
                    "final_short",
                    (),
                    f"the counter ends at {final}: below {max(top, len(acked))} "
                    f"({len(acked)} acknowledged increments, the highest wrote {top})",
                )
            )
    return result
