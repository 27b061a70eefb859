"""A history's events and operations.

An :class:`Op` is one event as a process saw it: ``invoke`` when it began an operation, then one
of ``ok`` (it took effect, with this result), ``fail`` (it certainly did not take effect) or
``info`` (indeterminate: a timeout, a reset; it may or may not have taken effect, at any time
from its invocation on). :func:`operations` pairs the events of each process into
:class:`Operation` intervals, the checkers' input. A process is one incarnation of a member (a
process start): it runs one operation at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

OpType = Literal["invoke", "ok", "fail", "info"]
TYPES: tuple[OpType, ...] = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"
"""The process of a fault's events (``info`` events, Jepsen's convention)."""


@dataclass(frozen=True)
class Op:
    """One event. ``wall`` is unix seconds, ``mono`` the machine's ``CLOCK_MONOTONIC`` (comparable
    between the processes of one machine); the checkers order by ``mono``."""

    type: OpType
    f: str
    value: Any
    process: str
    wall: float
    mono: float
    key: str = ""
    """The object operated on (``register``, ``counter``, ``leader``): each is checked alone."""
    incarnation: str = ""
    """The process start that ran it (pid and start time until members carry an incarnation)."""
    term: int | None = None


@dataclass(frozen=True)
class Operation:
    """An invocation and its completion. ``status`` is ``ok`` or ``info`` (``fail`` operations
    took no effect and are dropped); an ``info`` one ends at infinity: it may take effect at any
    time after ``start``, or never."""

    id: int
    process: str
    f: str
    value: Any
    """The result for an ``ok`` operation (what was read, what was written); the invocation's
    value for an ``info`` one."""
    start: float
    end: float
    status: Literal["ok", "info"]
    term: int | None = None

    @property
    def definite(self) -> bool:
        return self.status == "ok"


class MalformedHistory(ValueError):
    """A completion without an invocation, or an invocation while the process had one open."""


def operations(history: Iterable[Op], *, key: str | None = None) -> list[Operation]:
    """Pair each process's ``invoke`` with its completion, in ``mono`` order. A process whose last
    invocation never completed (it was killed) leaves an ``info`` operation; ``fail`` ones are
    dropped; an ``info`` read (a read with no result) is dropped too, it constrains nothing."""
    open_: dict[str, Op] = {}
    out: list[Operation] = []
    events = sorted((op for op in history if key is None or op.key == key), key=lambda op: op.mono)

    def close(invoke: Op, status: Literal["ok", "info"], value: Any, end: float) -> None:
        if status == "info" and invoke.f == "read":
            return
        out.append(Operation(len(out), invoke.process, invoke.f, value, invoke.mono, end, status, invoke.term))

    for op in events:
        if op.process == NEMESIS:  # a fault that acts on the object (a mutex's reset): an instant
            out.append(Operation(len(out), op.process, op.f, op.value, op.mono, op.mono, "ok"))
            continue
        if op.type == "invoke":
            if op.process in open_:
                raise MalformedHistory(f"process {op.process} invoked {op.f} at {op.mono} with one open")
            open_[op.process] = op
            continue
        invoke = open_.pop(op.process, None)
        if invoke is None or invoke.f != op.f:
            raise MalformedHistory(f"process {op.process}: {op.type} {op.f} at {op.mono} without its invocation")
        if op.type == "ok":
            close(invoke, "ok", op.value, op.mono)
        elif op.type == "info":
            close(invoke, "info", invoke.value, math.inf)
    for invoke in open_.values():
        close(invoke, "info", invoke.value, math.inf)
    return sorted((replace(o, id=i) for i, o in enumerate(sorted(out, key=lambda o: o.start))), key=lambda o: o.id)


def epochs(ops: Sequence[Operation], losses: Sequence[tuple[float, float]]) -> list[list[Operation]]:
    """Cut at each data loss: one list per stretch between losses, each starting from the empty
    state. A loss happened at some instant of its ``(earliest, latest)`` interval. An operation
    certainly inside one stretch stays as it is; one that may have taken effect in more than one
    (it overlaps a loss's interval) is ``info`` in each it may belong to, from the stretch's
    earliest start on: it may have landed on either side, or been lost. A read that overlaps a
    loss is dropped (it is not known which side it read)."""
    cuts = sorted(losses)
    lows = [-math.inf, *(a for a, _ in cuts)]  # the earliest instant stretch k may start
    starts = [-math.inf, *(b for _, b in cuts)]  # from here on, certainly in stretch k (or later)
    ends = [*(a for a, _ in cuts), math.inf]  # up to here, certainly in stretch k (or earlier)
    highs = [*(b for _, b in cuts), math.inf]  # the latest instant stretch k may end
    out: list[list[Operation]] = [[] for _ in ends]
    for op in ops:
        for k in range(len(ends)):
            if op.end < lows[k] or op.start > highs[k]:
                continue
            if starts[k] <= op.start and op.end <= ends[k]:
                out[k].append(op)
            elif op.f != "read":
                out[k].append(replace(op, status="info", end=math.inf, start=max(op.start, lows[k])))
    return [[replace(op, id=j) for j, op in enumerate(part)] for part in out]
