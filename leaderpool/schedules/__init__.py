"""Periodic singleton tasks: a schedule run by whoever leads, each slot once.

- :mod:`.schedule`: what a schedule is and which slot is due when (:class:`Schedule`,
  :class:`CatchUp`, :func:`next_due`); pure, no I/O.
- :mod:`.schedule_store`: the pool's schedules hash and its Lua (:class:`ScheduleStore`).
- :mod:`.periodic`: running a schedule while leading (:func:`run_schedule`,
  :class:`ScheduledRun`), on any election that offers :class:`LeadingElection`.

The worker runs one with ``--task ... --every`` / ``--cron``; the CLI lists them (``schedules``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.schedules.periodic import LeadingElection, ScheduledRun, run_schedule
    from leaderpool.schedules.schedule import CatchUp, Schedule, next_due
    from leaderpool.schedules.schedule_store import ScheduleStore

__all__ = ["CatchUp", "LeadingElection", "Schedule", "ScheduleStore", "ScheduledRun", "next_due", "run_schedule"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CatchUp": "schedule",
        "LeadingElection": "periodic",
        "Schedule": "schedule",
        "ScheduleStore": "schedule_store",
        "ScheduledRun": "periodic",
        "next_due": "schedule",
        "run_schedule": "periodic",
    },
)
