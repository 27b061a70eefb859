"""A history in Jepsen's EDN, one map per line, for knossos or elle to re-check elsewhere:

    {:type :invoke, :f :write, :value 3, :process 0, :time 123456789, :index 0}

``:time`` is nanoseconds since the history's first event (monotonic), ``:process`` a small
integer per process (a fault's events: ``:nemesis``). leaderpool's own fields ride along as
extra keys (``:key``, ``:term``, ``:incarnation``, ``:member``, ``:wall``), which Jepsen's
checkers ignore. An increment's ``(read, written)`` pair is a vector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from leaderpool.testing.history.ops import NEMESIS, Op


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def value(x: Any) -> str:
    """``x`` as EDN: nil, true/false, integers, floats, strings, vectors."""
    if x is None:
        return "nil"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else "nil"
    if isinstance(x, str):
        return _string(x)
    if isinstance(x, list | tuple):
        return "[" + " ".join(value(v) for v in x) + "]"
    raise TypeError(f"no EDN form for {type(x).__name__}")


def keyword(name: str) -> str:
    """``name`` as a keyword (``:write``); characters EDN does not allow become ``-``."""
    return ":" + "".join(c if c.isalnum() or c in "*+!-_?.<>=" else "-" for c in name)


def lines(history: Sequence[Op]) -> Iterable[str]:
    """One EDN map per event, in time order, numbered by ``:index``."""
    events = sorted(history, key=lambda op: op.mono)
    t0 = events[0].mono if events else 0.0
    numbers: dict[str, int] = {}
    for index, op in enumerate(events):
        process = ":nemesis" if op.process == NEMESIS else str(numbers.setdefault(op.process, len(numbers)))
        fields = [
            f":type {keyword(op.type)}",
            f":f {keyword(op.f)}",
            f":value {value(op.value)}",
            f":process {process}",
            f":time {round((op.mono - t0) * 1e9)}",
            f":index {index}",
        ]
        if op.key:
            fields.append(f":key {keyword(op.key)}")
        if op.term is not None:
            fields.append(f":term {op.term}")
        if op.incarnation:
            fields.append(f":incarnation {_string(op.incarnation)}")
        fields += [f":member {_string(op.process)}", f":wall {op.wall!r}"]
        yield "{" + ", ".join(fields) + "}"


def dumps(history: Sequence[Op]) -> str:
    return "".join(line + "\n" for line in lines(history))
