"""When the election loop (:mod:`leaderpool.election.core`) runs its next turn, and what it finds
to do then.

The loop sleeps until the earliest of: the next heartbeat, the leader's lease end (a follower's
timer, so failover never waits for Redis's late ``expired`` notification), the renew deadline (a
leader's), a vacancy retry, a deferred re-read, or a poke: a notification, a request of the
application, fast failover's trigger. A poke may also leave a request (:class:`Pending`) that
the next turn applies. After a failed Redis call it sleeps out the backoff, pokes or not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from leaderpool.config import MemberConfig
from leaderpool.election import succession as succ
from leaderpool.election.leadership import Leadership
from leaderpool.election.membership import Membership
from leaderpool.election.view import PoolView
from leaderpool.events import RevokeReason, Role
from leaderpool.util.clock import Clock


@dataclass
class Pending:
    """Requests from the application or other processes, applied by the loop."""

    resign: tuple[RevokeReason, bool] | None = None  # (reason, rejoin as youngest)
    # who waits for that hand-over: True once a lead was handed over, False when none was held
    resign_waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    dirty: bool = True  # re-read the pool state
    vacated: bool = False  # the lead looks vacant (deleted, expired, released): the successor claims
    stop: bool = False


@dataclass
class Timers:
    """Monotonic instants; None when not armed."""

    leader_expiry: float | None = None  # follower: when the leader's key would expire
    vacancy_retry: float | None = None  # follower: when to re-check a vacant lead
    reread_at: float | None = None  # follower: confirm an announced leader (off the critical path)
    backoff_until: float | None = None  # after a Redis failure
    vacant_since: float | None = None


class Wakeups:
    """The loop's pending requests, its timers, and the alarm it sleeps on."""

    def __init__(
        self,
        config: MemberConfig,
        membership: Membership,
        lead: Leadership,
        view: PoolView,
        clock: Clock,
    ) -> None:
        self.config = config
        self.membership = membership
        self.lead = lead
        self.view = view
        self.pending = Pending()
        self.timers = Timers()
        self.alarm = clock.alarm()
        self._spin_lead_s = clock.spin_lead_s

    def poke(self, *, dirty: bool = False, vacated: bool = False) -> None:
        """Wake the loop now (a poke while it is busy makes it skip its next sleep)."""
        self.pending.dirty |= dirty
        self.pending.vacated |= vacated
        self.alarm.ring()

    async def sleep(self) -> None:
        """Sleep until the next turn is due, or until a poke (a backoff sleeps through pokes)."""
        backoff = self.timers.backoff_until is not None
        wake = self.next_wakeup()  # a heartbeat may wake a tick late, with others due
        await self.alarm.sleep_until(wake, through_rings=backoff, coarse=wake == self.membership.next_beat)

    def next_wakeup(self) -> float:
        """The earliest instant something is due; while backing off, the backoff's end or a leader's
        renew deadline."""
        t = self.timers
        if t.backoff_until is not None:
            candidates = [t.backoff_until]
        else:
            candidates = [self.membership.next_beat, *(x for x in (t.vacancy_retry, t.reread_at) if x is not None)]
            if self.lead.role is Role.FOLLOWER and t.leader_expiry is not None:
                if self.view.successor:
                    candidates.append(t.leader_expiry - self._spin_lead_s)
                elif self.view.successor_id is not None:
                    # the next in line claims at the expiry; the others look a grace later, so
                    # hundreds of members of a process do not wake in the very turn it claims in
                    candidates.append(t.leader_expiry + succ.vacancy_grace(self.config.heartbeat))
                else:
                    candidates.append(t.leader_expiry)
        if self.lead.leading and self.lead.renew_deadline is not None:
            candidates.append(self.lead.renew_deadline)
        return min(candidates)
