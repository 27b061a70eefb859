"""Is a history linearizable? The search of Wing & Gong (1993), with Lowe's just-in-time
linearization (2017) and a cache of (linearized set, state) so a configuration reached twice is
explored once, as knossos and porcupine do.

The operations' calls and returns form one list in time order. The search walks it: at a call,
it tries to linearize that operation now (the model must allow it in the current state), lifts
its call and return out of the list, and starts again from the head; at a return, the operation
returning was not linearized in time: it backtracks to the last choice. It succeeds when every
``ok`` operation is linearized (``info`` ones return at infinity: each may be linearized at any
point after its call, or never). The search is bounded in steps and in seconds: past either, the
answer is ``unknown``, never a hang.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from leaderpool.testing.history.models import ILLEGAL, Model
from leaderpool.testing.history.ops import Operation

MAX_STEPS = 2_000_000
MAX_SECONDS = 10.0

Verdict = Literal["linearizable", "not linearizable", "unknown"]


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    model: str
    operations: int
    steps: int
    stuck_at: Operation | None = None
    """For "not linearizable": the operation whose return the search could never get past (no
    order of what came before let it take effect in time)."""
    linearized: tuple[int, ...] = field(default=())
    """The longest prefix the search linearized (operation ids, in order): the evidence."""
    reason: str = ""

    @property
    def valid(self) -> bool | None:
        return {"linearizable": True, "not linearizable": False}.get(self.verdict)


class _Entry:
    """A call (``is_call``) or a return in the doubly linked list; a call points at its return."""

    __slots__ = ("is_call", "match", "next", "op", "prev")

    def __init__(self, op: Operation | None, is_call: bool) -> None:
        self.op = op
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build(ops: Sequence[Operation]) -> _Entry:
    # At equal times calls come first: operations that touch at an instant count as concurrent,
    # the benefit of the doubt (timestamps come from different processes).
    events: list[tuple[float, int, int, _Entry]] = []
    for op in ops:
        call, ret = _Entry(op, True), _Entry(op, False)
        call.match = ret
        events += [(op.start, 0, op.id, call), (op.end, 1, op.id, ret)]
    events.sort(key=lambda e: e[:3])
    head = prev = _Entry(None, False)
    for *_, entry in events:
        prev.next, entry.prev = entry, prev
        prev = entry
    return head


def _lift(call: _Entry) -> None:
    ret = call.match
    assert call.prev is not None and ret is not None and ret.prev is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    ret = call.match
    assert call.prev is not None and ret is not None and ret.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def check(
    model: Model,
    ops: Sequence[Operation],
    *,
    max_steps: int = MAX_STEPS,
    max_seconds: float = MAX_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Search for a linearization of ``ops`` (ids 0..n-1, as :func:`~.ops.operations` numbers
    them) under ``model``, within ``max_steps`` list steps and ``max_seconds``."""
    if sorted(op.id for op in ops) != list(range(len(ops))):
        raise ValueError("operation ids must be 0..n-1")
    head = _build(ops)
    definite_left = sum(1 for op in ops if op.definite)
    state: Hashable = model.initial()
    linearized = 0  # a bit per operation id
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Entry, Hashable]] = []
    best: tuple[int, ...] = ()
    stuck: Operation | None = None
    deadline = clock() + max_seconds
    steps = 0
    entry = head.next
    while definite_left:
        steps += 1
        if steps > max_steps or (steps % 4096 == 0 and clock() > deadline):
            why = f"gave up after {steps - 1} steps" if steps > max_steps else f"gave up after {max_seconds:g}s"
            return Result("unknown", model.name, len(ops), steps, linearized=best, reason=why)
        assert entry is not None, "a return is always reached before the list ends"
        op = entry.op
        assert op is not None
        if entry.is_call:
            after = model.step(state, op)
            if after is not ILLEGAL:
                marked = linearized | (1 << op.id)
                if (marked, after) not in seen:
                    seen.add((marked, after))
                    stack.append((entry, state))
                    state, linearized = after, marked
                    definite_left -= op.definite
                    _lift(entry)
                    if len(stack) > len(best):
                        best = tuple(e.op.id for e, _ in stack if e.op is not None)
                    entry = head.next
                    continue
            entry = entry.next
        elif math.isinf(op.end):  # only info returns are left, so every definite one is linearized
            break
        else:
            if stuck is None or len(stack) >= len(best):  # blocked at the deepest point reached
                stuck = op
            if not stack:
                return Result("not linearizable", model.name, len(ops), steps, stuck, best)
            entry, state = stack.pop()
            assert entry.op is not None
            linearized &= ~(1 << entry.op.id)
            definite_left += entry.op.definite
            _unlift(entry)
            entry = entry.next
    return Result("linearizable", model.name, len(ops), steps, linearized=best)
