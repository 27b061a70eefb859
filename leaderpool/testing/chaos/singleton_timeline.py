"""What a singletons' chaos run leaves behind, as plain records: each ownership (one singleton, one
term, one process: from :mod:`.singleton_task`'s lines), the fenced writes, the counters' history,
when each process was killed, and the faults. The checker (:mod:`.singleton_checker`) reads only
these, so a synthetic timeline tests it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leaderpool.testing.chaos.timeline import Fault, op_from_json, read_ops
from leaderpool.testing.history.ops import Op


@dataclass(frozen=True)
class Ownership:
    """One singleton run by one process with one term: ``start`` when its task began, ``last_act``
    its last act, ``stop`` when its task ended (None: it could not say, killed), ``lapsed`` when
    it ended because its ownership ran out on the clock (then its last act ends it)."""

    name: str
    term: int
    member: str
    pid: int
    start: float
    last_act: float
    stop: float | None = None
    lapsed: bool = False
    acts: int = 0


@dataclass(frozen=True)
class SingletonWrite:
    """One fenced write of a singleton's counter; ``zombie``: sent after its ownership lapsed."""

    name: str
    term: int
    member: str
    pid: int
    sent: float
    replied: float
    outcome: str
    zombie: bool = False


@dataclass(frozen=True)
class SingletonSettings:
    ttl_s: float
    seed: int
    members: int
    singletons: int


@dataclass
class SingletonTimeline:
    settings: SingletonSettings
    started: float
    ended: float
    ownerships: list[Ownership] = field(default_factory=list)
    writes: list[SingletonWrite] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    """The counters' increments, as a history (key ``counter:NAME``)."""
    kills: dict[int, float] = field(default_factory=dict)
    """pid -> when it was SIGKILLed (unix time): it acted no more after."""
    faults: list[Fault] = field(default_factory=list)
    finals: dict[str, int | None] = field(default_factory=dict)
    """Each singleton's counter, read once every worker was stopped."""
    malformed_lines: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_logs(paths: Iterable[Path]) -> tuple[list[Ownership], list[SingletonWrite], list[Op], int]:
    """Parse :mod:`.singleton_task`'s lines from every file; a line cut short by a SIGKILL is
    counted as malformed and skipped."""
    runs: dict[tuple[str, int, str, int], dict[str, Any]] = {}
    writes: list[SingletonWrite] = []
    malformed = 0
    paths = list(paths)
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            kind, _, rest = line.partition(" ")
            if kind not in ("sstart", "sact", "sstop", "sfence", "szombie"):
                continue
            try:
                name, term, member, pid, *fields = rest.split()
                key = (name, int(term), member, int(pid))
                if kind in ("sfence", "szombie"):
                    sent, replied, outcome = fields
                    writes.append(SingletonWrite(*key, float(sent), float(replied), outcome, kind == "szombie"))
                    continue
                t = float(fields[0])
                run = runs.setdefault(key, {"start": t, "last": t, "acts": 0})
                run["start"] = min(run["start"], t)
                if kind == "sstart" and run.get("stop", t) < t:  # its task started again (a crash)
                    del run["stop"]
                if kind == "sact":
                    run["last"], run["acts"] = max(run["last"], t), run["acts"] + 1
                elif kind == "sstop":
                    run["stop"], run["lapsed"] = t, fields[1] == "1"
            except (ValueError, IndexError):
                malformed += 1
    owned = [
        Ownership(*key, r["start"], r["last"], r.get("stop"), r.get("lapsed", False), r["acts"])
        for key, r in runs.items()
    ]
    ops, cut = read_ops(paths)
    return sorted(owned, key=lambda o: o.start), sorted(writes, key=lambda w: w.sent), ops, malformed + cut


def load(path: Path) -> SingletonTimeline:
    """A timeline saved with ``json.dump(timeline.to_json())``."""
    raw = json.loads(path.read_text())
    return SingletonTimeline(
        settings=SingletonSettings(**raw["settings"]),
        started=raw["started"],
        ended=raw["ended"],
        ownerships=[Ownership(**x) for x in raw["ownerships"]],
        writes=[SingletonWrite(**x) for x in raw["writes"]],
        ops=[op_from_json(x) for x in raw["ops"]],
        kills={int(k): v for k, v in raw["kills"].items()},
        faults=[Fault(**x) for x in raw["faults"]],
        finals=raw["finals"],
        malformed_lines=raw.get("malformed_lines", 0),
    )
