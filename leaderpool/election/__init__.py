"""The election: one member of one pool, written once in asyncio and driven by both faces.

- :mod:`.core`: the state machine (:class:`ElectionCore`): its loop and its turn.
- Beside the loop: :mod:`.contest` (re-reading the pool and becoming leader: settle, claim, a
  hand-over accepted), :mod:`.notifications` (what the watcher's hints mean for this member),
  :mod:`.wakeups` (when the next turn runs).
- The member's state: :mod:`.membership` (its record and lease, joining, heartbeating, and what
  rides on the heartbeat: :class:`BeatRider`), :mod:`.leadership` (a held lead: term, renew
  deadline, stepping down), :mod:`.view` (what it last read of the pool).
- Pure rules: :mod:`.succession` (who comes next, the deadline arithmetic), :mod:`.retry` (how a
  failed call is retried and logged).
- Towards the application: :mod:`.dispatch` (callbacks in order, off the loop), :mod:`.lead_hooks`
  (what the capabilities run as a lead starts and ends).

Fast failover (:mod:`leaderpool.fast_failover`) and the backend are below it; names, locks,
schedules and jobs above it, and it imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.election.core import ElectionCore
    from leaderpool.election.lead_hooks import LeadHook, LeadHooks
    from leaderpool.election.membership import BeatRider

__all__ = ["BeatRider", "ElectionCore", "LeadHook", "LeadHooks"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"BeatRider": "membership", "ElectionCore": "core", "LeadHook": "lead_hooks", "LeadHooks": "lead_hooks"},
)
