"""Becoming leader: re-reading the pool and acting on what it says (:meth:`Contest.settle`),
contending for a vacant lead in rank order, claiming it (with fast failover, burying a dead
leader's lead in the same script), and taking up a lead, claimed or handed to us.

The next in line claims the moment the lead looks vacant; the others wait for the member ranked
first, and claim anyway once it failed to for a lease and a heartbeat. A claim is ``SET NX``:
whoever wins, the announcement (or the re-read it makes due) tells the rest.

A lead handed to us by a leaving leader counts its renew deadline from no later than the grant
(:func:`succession.grant_instant`), and is acted on in the very callback that announces it
when that instant can be placed on our clock safely; otherwise (and with ``wait_replicas``) it
is adopted by renewing it first, the renewal's sending time anchoring the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from leaderpool import probe
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import BeatStatus, ClaimStatus, Glance, LeaderValue, Observation
from leaderpool.config import MemberConfig
from leaderpool.election import succession as succ
from leaderpool.election.leadership import Leadership
from leaderpool.election.membership import Membership
from leaderpool.election.view import PoolView
from leaderpool.election.wakeups import Wakeups
from leaderpool.events import RevokeReason, Role
from leaderpool.fast_failover.failover import BURIED_REASON, Death, FastFailover
from leaderpool.util.constants import FIRST_BEAT_SPREAD, REREAD_DELAY_S
from leaderpool.util.jitter import spread
from leaderpool.util.log import Logger


def lost_reason(membership: Membership) -> RevokeReason:
    """Why a lead Redis no longer holds for us ended: an operator evicted us, or it lapsed."""
    return RevokeReason.RELEASED if membership.evicted else RevokeReason.LEASE_LOST


class Contest:
    """One member's way to the lead: reading the pool, claiming, adopting, and beginning a lead."""

    def __init__(
        self,
        config: MemberConfig,
        store: PoolStore,
        membership: Membership,
        lead: Leadership,
        view: PoolView,
        fast: FastFailover,
        wakeups: Wakeups,
        clock: Callable[[], float],
        *,
        lost_membership: Callable[[str], Awaitable[None]],
        check_registration: Callable[[int, str], None],
    ) -> None:
        self.config = config
        self.store = store
        self.membership = membership
        self.lead = lead
        self.view = view
        self.fast = fast
        self.wakeups = wakeups
        self._clock = clock
        self._lost_membership = lost_membership  # stop leading, rejoin (the election's)
        self._check_registration = check_registration  # note a registration a claim just made
        self._unreplicated_term = 0  # the term last logged as held but not yet on enough replicas

    @property
    def _log(self) -> Logger:
        return self.lead.log  # pool and member bound, and the term while leading

    # ---- reading the pool ----

    def note_leader(self, value: LeaderValue | None, free_in_us: int, sent: float) -> None:
        """Track the lead seen in a reply; a change makes the next turn re-read the pool."""
        if value is not None:
            self.view.saw(value.term)
        self.wakeups.timers.leader_expiry = (
            succ.lease_end(sent, self._clock(), free_in_us) if value is not None else None
        )
        if not self.view.is_current(value):
            self.wakeups.pending.dirty = True

    async def settle(self) -> None:
        """Re-read the pool and act: claim a vacant lead we rank first for, check our own lead,
        or arm the timer for when the member we wait for would lapse. With the ranking in Redis
        a glance (O(log N)) does, a vacant lead included: Redis says who ranks first."""
        pending, timers = self.wakeups.pending, self.wakeups.timers
        sent, epoch = self._clock(), self.lead.epoch
        glance = None
        if self.view.ranked_in_redis:
            glance = await self.lead.bounded(self.store.glance(self.config.member_id, self.membership.incarnation))
        obs = await self.lead.bounded(self.store.observe()) if glance is None else self._glanced(glance)
        if epoch != self.lead.epoch:  # our role changed meanwhile: read again
            pending.dirty = True
            if pending.stop and glance is not None and glance.leader and glance.leader.member == self.config.member_id:
                # a stop gave our lead up while the glance was out: whom the leave hands it to is
                # still whom Redis ranks after us (the member whose join this glance was for, say)
                self.view.successor_id = glance.next
            return
        if glance is None:
            self.view.read(obs, sent)
        else:
            self.view.glanced(glance, sent)
        timers.reread_at = None
        self.note_leader(obs.leader, obs.free_in_us, sent)
        pending.dirty = False
        leader = obs.leader
        member = leader.member if leader else None
        record = obs.member(member) if member else None
        self.view.set_leader(member, leader.term if leader else 0, record, obs.leader_pttl_ms, self._log)
        mine = obs.member(self.config.member_id)
        if mine is None:
            await self._lost_membership("member lease lapsed")
            return
        if mine.incarnation != self.membership.incarnation:  # our lease lapsed and another run took our id
            await self._lost_membership("member id taken by another process")
            return
        if self.lead.leading:
            if leader != self.lead.held():
                self.lead.step_down(lost_reason(self.membership), detail="leader key no longer ours")
                pending.dirty = True
            elif self.config.takeover and glance is not None:
                await self.lead.take_over_by(glance.first)
            elif self.config.takeover:
                await self.lead.check_takeover(obs.members, obs.resigned)
            if glance is not None:
                self.view.successor_id = glance.next
            return
        if leader is None and glance is not None:
            await self._contend_ranked(glance, sent)
            return
        if leader is None:
            await self._contend(obs, sent)
            return
        timers.vacancy_retry = timers.vacant_since = None
        if glance is None:
            self.view.find_next(leader.member)
        else:
            self.view.successor_id = glance.next
        if leader.member == self.config.member_id:
            if leader.term > self.lead.last_led_term:
                await self._adopt(leader)  # handed to us, and we missed the announcement
                return
            if self.wakeups.pending.stop:
                return  # given up at the stop: the leave hands it over once the application stopped
            # A lead we already gave up locally (say, Redis was unreachable past our renew
            # deadline but came back before the key expired): free it for a new term.
            await self.lead.bounded(self.store.release(leader, RevokeReason.LEASE_LOST.value))
            pending.dirty = True

    def _glanced(self, glance: Glance) -> Observation:
        """A glance as an observation whose listing holds only the leader and this member."""
        lease = glance.lease_ms or 0
        mine = self.membership.record(lease) if lease > 0 else None  # lapsed: rejoin, as a listing would say
        members = [m for m in (glance.leader_info, mine) if m is not None]
        g = glance
        return Observation(g.now_ms, g.leader, g.leader_pttl_ms, g.resigned, g.free_in_us, members, g.leader_conn)

    # ---- a vacant lead ----

    async def _contend(self, obs: Observation, sent: float) -> None:
        t, c = self.wakeups.timers, self.config
        if t.vacant_since is None:
            t.vacant_since = sent
        position, ranked = succ.claim_position(
            obs.members, c.member_id, c.ranker, avoid_nodes=await self.lead.avoided_nodes(), resigned=obs.resigned
        )
        forced = succ.forced_at(t.vacant_since, position, len(ranked), ttl_s=c.ttl_s, heartbeat_s=c.heartbeat)
        if position == 0 or sent >= forced:
            await self.claim(sent, forced=position != 0)
            return
        t.vacancy_retry = succ.vacancy_retry_at(sent, ranked[0], forced)
        self._log.debug(
            "waiting_for_preferred", preferred=ranked[0].member, retry_in_s=round(t.vacancy_retry - sent, 3)
        )

    async def _contend_ranked(self, glance: Glance, sent: float) -> None:
        """A vacant lead, ranked in Redis: the member ranked first claims; the others look again
        half a heartbeat later (a glance each, not a listing: a vacancy nobody was next in line
        for must not make every member of a big pool read every record), and claim anyway once
        the first failed to for a lease and a heartbeat."""
        t, c = self.wakeups.timers, self.config
        if t.vacant_since is None:
            t.vacant_since = sent
        forced = t.vacant_since + c.ttl_s + c.heartbeat
        if glance.first in (None, c.member_id) or sent >= forced:
            await self.claim(sent, forced=glance.first not in (None, c.member_id))
            return
        t.vacancy_retry = min(sent + c.heartbeat / 2, forced)
        self._log.debug("waiting_for_preferred", preferred=glance.first, retry_in_s=round(t.vacancy_retry - sent, 3))

    async def claim(
        self, sent: float, *, forced: bool = False, successor: bool = False, dead: Death | None = None
    ) -> None:
        """Claim the vacant lead. The next in line claims the moment the lead looks vacant: if it
        is held already, the new leader's announcement (or the re-read it makes due) tells the
        rest; if the claim is refused for another reason, the full path (a re-read) decides.
        ``dead``: a leader whose death was confirmed (or is, by the same script), and its
        registration: the same script removes its lead first (compare-and-delete), then claims."""
        c, conn, pending = self.config, self.fast.registration(), self.wakeups.pending
        run = self.membership.incarnation
        call = (
            self.store.claim(c.member_id, c.ttl_ms, self.view.seen_term, conn=conn, incarnation=run)
            if dead is None
            else self.store.bury_and_claim(
                dead.leader,
                dead.registration,
                BURIED_REASON,
                c.member_id,
                c.ttl_ms,
                self.view.seen_term,
                conn,
                proof_channel=dead.proof_channel,
                incarnation=run,
            )
        )
        result = await self.lead.bounded(call)
        if dead is not None and result.status is ClaimStatus.STILL_SUBSCRIBED:
            self.fast.still_subscribed(dead, self.lead.bounded, self._log)  # not yet proved: ask beside the loop
            return
        if result.status is ClaimStatus.ELECTED:
            if self.config.wait_replicas:
                await self._adopt(LeaderValue(result.term, c.member_id), handoff=False, forced=forced, conn=conn)
            else:
                self._become_leader(result.term, sent, forced=forced)
                self._check_registration(result.term, conn)
                await asyncio.sleep(0)  # the application hears it leads before anything else runs here
        elif result.status is ClaimStatus.HELD:
            self.note_leader(result.leader, result.free_in_us, sent)
            pending.dirty |= not successor
        elif successor:
            pending.dirty = True
        elif result.status is ClaimStatus.RECOVERING:
            # Redis lost terms; wait until every live member has reported the highest it saw
            self.wakeups.timers.vacancy_retry = sent + max(result.leader_pttl_ms, 1) / 1000
            self._log.info("claims_held_for_term_recovery", wait_ms=result.leader_pttl_ms)
        else:
            await self._lost_membership("lease lapsed before claiming")
        if dead is not None:  # logged after acting on it: the fast path's log line costs it nothing
            self.fast.log_takeover(self._log, dead, result.status)

    # ---- taking up a lead ----

    def accept_handoff(self, term: int, granted_ms: int, run: str) -> None:
        """A leaving leader handed us the lead at Redis time ``granted_ms``, naming ``run`` as the
        incarnation it granted it to: act at once if the grant is this run's, came after we last
        joined, and we can place that instant on our clock safely; else (a stale message: another
        run under our id, or granted before we left and joined again; no clock sample, or too
        little of the lease left, say we were frozen) confirm through Redis first."""
        if self.lead.role is not Role.FOLLOWER or term <= self.lead.last_led_term:
            return
        m = self.membership
        if run != m.incarnation or not m.joined or granted_ms <= m.joined_at_ms:
            self._log.info("handoff_confirming", granted_term=term, ours=run == m.incarnation)
            self.wakeups.pending.dirty = True  # settle reads whose the lead is, and adopts it by renewing if ours
            return
        self.view.saw(term)
        granted_at = succ.grant_instant(self.view.redis_clock, granted_ms)
        c = self.config
        if granted_at is not None:
            probe.notified(c.pool, max(self._clock() - granted_at, 0.0))
        # Our lease still runs by our own clock: no other process can have taken our id over, so
        # the grant is ours (else, say we were frozen past it, confirm through Redis first).
        ours = self._clock() < self.membership.lease_until
        if (
            ours
            and not c.wait_replicas
            and succ.safe_to_act_on_grant(
                granted_at, self._clock(), renew_deadline_s=c.renew_deadline, heartbeat_s=c.heartbeat
            )
        ):
            assert granted_at is not None
            self._become_leader(term, granted_at, handoff=True)
            now = self._clock()
            self.membership.next_beat = now  # renew at once: anchor on our own request
            # and look shortly, off the critical path: who is next after us, for our own hand-over
            self.wakeups.timers.reread_at = now + REREAD_DELAY_S
            return
        self.wakeups.pending.dirty = True  # settle finds the lead ours and adopts it by renewing

    async def _adopt(self, leader: LeaderValue, *, handoff: bool = True, forced: bool = False, conn: str = "") -> None:
        """Take up a lead granted to us by renewing it first: the renewal's sending time anchors
        the renew deadline. With ``wait_replicas``, act only once that many replicas hold the
        renewal (and so the grant before it); until then we hold the lead without acting, and
        the next settle tries again. ``conn``: the registration a claim just made (fast failover)."""
        c = self.config
        self.view.saw(leader.term)
        sent = self._clock()
        if c.wait_replicas:
            beat, acked = await self.lead.bounded(
                self.store.heartbeat_replicated(
                    c.member_id,
                    c.ttl_ms,
                    leader,
                    self.view.seen_term,
                    c.wait_replicas,
                    round(c.heartbeat * 500),
                    conn,
                    incarnation=self.membership.incarnation,
                )
            )
            if beat.status is BeatStatus.OK and acked < c.wait_replicas:
                first = self._unreplicated_term != leader.term  # said once per term, then quietly
                self._unreplicated_term = leader.term
                self._log.log(
                    "warning" if first else "debug",
                    "lead_not_replicated",
                    leader_term=leader.term,
                    replicas=acked,
                    wanted=c.wait_replicas,
                )
                self.wakeups.pending.dirty = True
                return
        else:
            beat = await self.lead.bounded(
                self.store.heartbeat(
                    c.member_id,
                    c.ttl_ms,
                    leader,
                    False,
                    self.view.seen_term,
                    conn=conn,
                    incarnation=self.membership.incarnation,
                )
            )
        if beat.status is BeatStatus.OK:
            self._become_leader(leader.term, sent, handoff=handoff, forced=forced)
            if conn:
                self._check_registration(leader.term, conn)
        else:
            self.wakeups.pending.dirty = True

    def _become_leader(self, term: int, sent: float, *, forced: bool = False, handoff: bool = False) -> None:
        """Lead ``term``; ``sent`` is when the lease we rely on was granted, at the latest (the
        renew deadline counts from it)."""
        self.lead.begin(term, sent)
        self.view.saw(term)
        # spread the first renewal, as members spread their first beat (see FIRST_BEAT_SPREAD)
        self.membership.next_beat = sent + self.config.heartbeat * spread(*FIRST_BEAT_SPREAD)
        t = self.wakeups.timers
        since = sent if handoff or t.vacant_since is None else t.vacant_since
        t.vacancy_retry = t.vacant_since = t.leader_expiry = None
        self.view.successor_id = None
        self.view.set_leader(self.config.member_id, term, self.membership.record(), self.config.ttl_ms, self._log)
        self.lead.announce(forced=forced, handoff=handoff, since=since)
