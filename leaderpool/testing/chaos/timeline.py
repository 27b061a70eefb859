"""What a chaos run leaves behind, as plain records: the leads (from the workers' act logs), the
fenced writes, the elections (from the workers' JSON events), the faults (from the runner), and
the run's settings. All times are unix seconds on the one machine's clock. The checker
(:mod:`.checker`) reads only these, so it can be fed a synthetic timeline."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leaderpool.testing.history.ops import TYPES, Op

DATA_LOSS = "redis_restart"
"""The fault kind after which Redis has lost every key (restarted with no persistence)."""
FLUSHALL = "flushall"
"""Every key deleted by a FLUSHALL: a data loss too."""
FRESH_FIRST = "fresh_first"
"""Redis lost every key and a freshly started member reached it first (see :mod:`.faults`)."""


@dataclass(frozen=True)
class Lead:
    """One term as acted on by one process: its first and last unfenced act."""

    term: int
    member: str
    pid: int
    start: float
    end: float
    acts: int = 1


@dataclass(frozen=True)
class FencedWrite:
    """One fenced write: sent and answered at these times; ``outcome`` ok, stale or error.
    ``zombie`` writes were sent after their term's lead ended, on purpose."""

    term: int
    member: str
    pid: int
    sent: float
    replied: float
    outcome: str
    zombie: bool = False


@dataclass(frozen=True)
class Elected:
    """A worker's ``elected`` JSON event."""

    t: float
    member: str
    pid: int
    term: int


@dataclass(frozen=True)
class Fault:
    """One injected fault: applied at ``start``, undone at ``healed`` (equal for an instant one).
    ``leader``/``leader_term`` say who led (as the runner last saw it) when it was applied."""

    kind: str
    target: str | None
    start: float
    healed: float
    leader: str | None = None
    leader_term: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def on_leader(self) -> bool:
        return self.data_loss or self.target is None or self.target == self.leader  # None: every member

    @property
    def data_loss(self) -> bool:
        return self.kind in DATA_LOSSES


DATA_LOSSES = (DATA_LOSS, FRESH_FIRST, FLUSHALL)


@dataclass(frozen=True)
class Settings:
    ttl_s: float
    heartbeat_s: float
    renew_deadline_s: float
    seed: int
    members: int


@dataclass
class Timeline:
    settings: Settings
    started: float
    ended: float
    leads: list[Lead] = field(default_factory=list)
    writes: list[FencedWrite] = field(default_factory=list)
    elected: list[Elected] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    malformed_lines: int = 0
    ops: list[Op] = field(default_factory=list)
    """The leader's recorded work, as a history (see :mod:`.leader_ops`)."""
    finals: dict[str, int | None] = field(default_factory=dict)
    """What the register and the counter held at the end, read once every worker was stopped."""
    mono_offset: float = 0.0
    """``time.time() - time.monotonic()`` at the start: places a fault's unix times among the
    history's monotonic ones."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_act_logs(paths: Iterable[Path]) -> tuple[list[Lead], list[FencedWrite], int]:
    """Parse the task's lines (see :mod:`.task`) from every file; a line cut short by a SIGKILL
    is counted as malformed and skipped."""
    spans: dict[tuple[int, str, int], list[float]] = {}  # -> [start, end, acts]
    writes: list[FencedWrite] = []
    malformed = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                kind, rest = line.split(" ", 1)
                if kind == "act":
                    term, member, pid, start, now = rest.split()
                    key = (int(term), member, int(pid))
                    span = spans.setdefault(key, [float(start), float(now), 0])
                    span[0], span[1], span[2] = min(span[0], float(start)), max(span[1], float(now)), span[2] + 1
                elif kind == "op":
                    continue  # the history's events: read by read_ops
                elif kind in ("fence", "zombie"):
                    term, member, pid, sent, replied, outcome = rest.split()
                    write = FencedWrite(
                        int(term), member, int(pid), float(sent), float(replied), outcome, kind == "zombie"
                    )
                    writes.append(write)
                else:
                    malformed += 1
            except ValueError:
                malformed += 1
    leads = [Lead(t, m, p, s[0], s[1], int(s[2])) for (t, m, p), s in spans.items()]
    return sorted(leads, key=lambda lead: lead.start), sorted(writes, key=lambda w: w.sent), malformed


def read_ops(paths: Iterable[Path]) -> tuple[list[Op], int]:
    """The history's events (``op {json}`` lines) from every file, in time order, and how many
    lines were cut short (a SIGKILL mid-write)."""
    ops: list[Op] = []
    malformed = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("op "):
                continue
            try:
                ops.append(_op(json.loads(line[3:])))
            except (ValueError, TypeError, KeyError):
                malformed += 1
    return sorted(ops, key=lambda op: op.mono), malformed


def _op(raw: dict[str, Any]) -> Op:
    if raw["type"] not in TYPES:
        raise ValueError(f"no event type {raw['type']!r}")
    return Op(
        raw["type"], str(raw["f"]), raw.get("value"), str(raw["process"]), float(raw["wall"]), float(raw["mono"]),
        str(raw.get("key", "")), str(raw.get("incarnation", "")), raw.get("term"),
    )  # fmt: skip


op_from_json = _op
"""One ``op`` record (as logged, or as saved in a timeline's JSON) as an :class:`Op`."""


def load(path: Path) -> Timeline:
    """A timeline saved with ``json.dump(timeline.to_json())``."""
    raw = json.loads(path.read_text())
    return Timeline(
        settings=Settings(**raw["settings"]),
        started=raw["started"],
        ended=raw["ended"],
        leads=[Lead(**x) for x in raw["leads"]],
        writes=[FencedWrite(**x) for x in raw["writes"]],
        elected=[Elected(**x) for x in raw["elected"]],
        faults=[Fault(**x) for x in raw["faults"]],
        malformed_lines=raw.get("malformed_lines", 0),
        ops=[_op(x) for x in raw.get("ops", [])],
        finals=raw.get("finals", {}),
        mono_offset=raw.get("mono_offset", 0.0),
    )
