"""``leaderpool-cli schedules [--pool NAME ...] [--json]``: each periodic schedule's last run
(its slot, by which member and term, when, how it ended) and the next slot its leader waits for,
or, paused (``leaderpool-cli schedules pause POOL NAME``), since when and how many slots it skipped.

Pools with schedules are found by SCAN over their schedules hashes
(:func:`~leaderpool.backend.keys.schedules_pattern`); each pool's schedules are read with one script, which
also returns Redis's clock, so "in 3.2s" is measured on the clock the slots are on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leaderpool.backend.keys import Keyspace, pool_from_schedules_key, schedules_pattern
from leaderpool.cli.status import clock_text, scan_pools, seconds_text, table
from leaderpool.console.oneshot import Blocking, run
from leaderpool.schedules.schedule_store import ScheduleRecord, ScheduleStore
from leaderpool.schedules.slot_log import SlotOutcome
from leaderpool.util.printable import printable


@dataclass(frozen=True)
class PoolSchedules:
    pool: str
    now_ms: int
    schedules: list[ScheduleRecord]

    def to_json(self) -> dict[str, Any]:
        return {"pool": self.pool, "now": self.now_ms / 1000, "schedules": [s.to_json() for s in self.schedules]}


async def discover(client: Any, prefix: str) -> list[str]:
    """Every pool with a schedules hash under ``prefix``, sorted."""
    return await scan_pools(client, schedules_pattern(prefix), lambda key: pool_from_schedules_key(key, prefix))


async def read_schedules(client: Any, pools: list[str], prefix: str) -> list[PoolSchedules]:
    """The named pools' schedules (every pool with schedules when none is named)."""
    out = []
    for pool in sorted(set(pools)) or await discover(client, prefix):
        now_ms, records = await ScheduleStore(client, Keyspace(pool, prefix)).read()
        out.append(PoolSchedules(pool, now_ms, records))
    return out


def read(client: Blocking, pools: list[str], prefix: str) -> list[PoolSchedules]:
    return run(read_schedules(client, pools, prefix))


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return clock_text(ms) + f".{ms % 1000:03d}"


def render(found: list[PoolSchedules]) -> str:
    if not found:
        return "no schedules found"
    blocks = []
    for p in found:
        rows = [["SCHEDULE", "SPEC", "LAST SLOT", "BY", "TERM", "OUTCOME", "RUNS", "NEXT SLOT"]]
        for s in p.schedules:
            upcoming = "-"
            if s.paused:
                upcoming = f"paused since {_when(s.paused_ms)} ({s.skipped} skipped)"
            elif s.next_slot_ms is not None:
                left = s.next_slot_ms - p.now_ms
                upcoming = _when(s.next_slot_ms) + (f" (in {seconds_text(left)})" if left >= 0 else " (due)")
            rows.append(
                [s.name, s.spec, _when(s.last_slot_ms), s.member or "-", "-" if s.term is None else str(s.term),
                 s.outcome or "-", str(s.runs), upcoming]
            )  # fmt: skip
        lines = [printable(f"pool {p.pool}: {len(p.schedules)} schedule(s)")] + ["  " + line for line in table(rows)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def read_slot_log(client: Blocking, pool: str, name: str, count: int, prefix: str) -> list[SlotOutcome]:
    """The latest ``count`` slots of schedule ``name`` (every schedule for ``""``), newest first."""
    return run(ScheduleStore(client, Keyspace(pool, prefix)).slot_log(name, count))


def _ms_text(ms: int) -> str:
    return f"{ms}ms" if 0 <= ms < 1000 else seconds_text(ms)


def render_slot_log(pool: str, found: list[SlotOutcome]) -> str:
    rows = [["SLOT", "SCHEDULE", "OUTCOME", "BY", "TERM", "LATE", "TOOK"]]
    for s in found:
        outcome = s.outcome if s.count == 1 else f"{s.outcome} x{s.count} (to {_when(s.last_ms)})"
        late = "-" if s.started_ms is None else _ms_text(s.started_ms - s.slot_ms)
        took = "-" if s.started_ms is None or s.finished_ms is None else _ms_text(s.finished_ms - s.started_ms)
        term = "-" if s.term is None else str(s.term)
        rows.append([_when(s.slot_ms), s.schedule, outcome, s.member or "-", term, late, took])
    lines = [printable(f"pool {pool}: the latest {len(found)} slot(s), newest first")]
    return "\n".join(lines + ["  " + line for line in table(rows)])
