"""Sequential specifications for the linearizability search: a model's ``step(state, op)`` is the
state after ``op`` when ``op`` is legal in ``state``, else :data:`ILLEGAL` (None is a state: an
empty register). States are hashable (the search caches them)."""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Final, Literal, Protocol

from leaderpool.testing.history.ops import Operation


class _Illegal(enum.Enum):
    ILLEGAL = "illegal"


ILLEGAL: Final = _Illegal.ILLEGAL
"""What ``step`` returns for an operation its state does not allow."""
Step = Hashable | Literal[_Illegal.ILLEGAL]


class Model(Protocol):
    name: str

    def initial(self) -> Hashable: ...

    def step(self, state: Hashable, op: Operation) -> Step: ...


class Register:
    """A read/write register, empty (None) at first: ``write v`` sets it, ``read v`` is legal only
    when it holds ``v``."""

    name = "register"

    def __init__(self, initial: Hashable = None) -> None:
        self._initial = initial

    def initial(self) -> Hashable:
        return self._initial

    def step(self, state: Hashable, op: Operation) -> Step:
        if op.f == "write":
            return op.value  # type: ignore[no-any-return]
        if op.f == "read":
            return state if op.value == state else ILLEGAL
        raise ValueError(f"a register has no operation {op.f!r}")


def unread_info_writes_dropped(ops: Sequence[Operation]) -> list[Operation]:
    """A register's ``info`` writes whose value no read returned, dropped, the rest renumbered.

    Sound when every write writes a value of its own (the chaos task's do): such a write may be
    taken not to have happened. Were it linearized somewhere, no read saw its value, so none
    was linearized between it and the next write; without it every read returns what it did.
    Each one left in would double the configurations the search may visit (it may take effect
    at any point after its call), so a stretch with a dozen of them (a partition of everyone
    leaves some) took 300,000 steps instead of 200.
    """
    seen = {op.value for op in ops if op.f == "read"}
    kept = [op for op in ops if op.definite or op.f != "write" or op.value in seen]
    return [replace(op, id=i) for i, op in enumerate(kept)]


class Mutex:
    """A lock held by at most one process: ``acquire`` is legal only when it is free, ``release``
    only by its holder. ``reset`` (the lock's store lost its data) frees it: the holder then was
    not told, so its later ``release`` is legal too (the state keeps such orphans)."""

    name = "mutex"

    def initial(self) -> Hashable:
        return (None, frozenset())

    def step(self, state: Hashable, op: Operation) -> Step:
        assert isinstance(state, tuple)
        holder: str | None = state[0]
        orphans: frozenset[str] = state[1]
        if op.f == "acquire":
            return (op.process, orphans) if holder is None else ILLEGAL
        if op.f == "release":
            if holder == op.process:
                return (None, orphans)
            return (holder, orphans - {op.process}) if op.process in orphans else ILLEGAL
        if op.f == "reset":
            return (None, orphans | {holder}) if holder is not None else state
        raise ValueError(f"a mutex has no operation {op.f!r}")
