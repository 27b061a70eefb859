"""The slot log: one entry per schedule slot that came due, in a capped stream per pool
(``leaderpool:{POOL}:slot_log``), written by the schedule scripts in the same step as the record
(:mod:`leaderpool.schedules.schedule_store`): how each run ended (``ok``, ``failed``, ``stopped``,
``cancelled``), each slot ``skipped`` while the schedule was paused, and each stretch of
``missed`` slots (no member ran them in time) with how many. ``leaderpool-cli schedules history``
reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leaderpool.backend.protocol import text

SLOT_LOG_CAP = 10_000
"""Entries kept per pool (all its schedules together; ``XADD MAXLEN ~``: about that many)."""

LOG_SLOT = f"""
-- log_slot(key, fields): one entry in the slot log, capped
local function log_slot(key, fields)
  redis.call('XADD', key, 'MAXLEN', '~', {SLOT_LOG_CAP}, '*', unpack(fields))
end
"""


@dataclass(frozen=True)
class SlotOutcome:
    """One slot log entry (times unix ms on Redis's clock). ``count``: how many slots a ``missed``
    entry stands for (from ``slot_ms`` to ``last_ms``); 1 otherwise."""

    schedule: str
    slot_ms: int
    outcome: str
    term: int | None = None
    member: str | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    last_ms: int | None = None
    count: int = 1

    @classmethod
    def parse(cls, fields: dict[Any, Any]) -> SlotOutcome:
        f = {text(k): text(v) for k, v in fields.items()}

        def number(key: str) -> int | None:
            return int(f[key]) if f.get(key, "") != "" else None

        return cls(
            schedule=f["schedule"],
            slot_ms=int(f["slot"]),
            outcome=f["outcome"],
            term=number("term"),
            member=f.get("member") or None,
            started_ms=number("started"),
            finished_ms=number("finished"),
            last_ms=number("last"),
            count=number("count") or 1,
        )

    def to_json(self) -> dict[str, Any]:
        """Times as unix seconds (null when unknown)."""

        def seconds(ms: int | None) -> float | None:
            return None if ms is None else ms / 1000

        return {
            "schedule": self.schedule,
            "slot": seconds(self.slot_ms),
            "outcome": self.outcome,
            "term": self.term,
            "member": self.member,
            "started": seconds(self.started_ms),
            "finished": seconds(self.finished_ms),
            "last_slot": seconds(self.last_ms),
            "count": self.count,
        }
