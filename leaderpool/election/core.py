"""The election state machine: one member of one pool, written once in asyncio.

The blocking face (:mod:`leaderpool.blocking`) and the asyncio face (:mod:`leaderpool.aio`) both
drive this core; they differ only in how they deliver events to the application. Membership
(join, rejoin, heartbeat) is :mod:`leaderpool.election.membership`; holding and giving up a lead,
:mod:`leaderpool.election.leadership`; who comes next and every deadline computed from a reply are pure
functions in :mod:`leaderpool.election.succession`; what goes over the wire is :mod:`leaderpool.backend.protocol`.

One coroutine, :meth:`ElectionCore.run`, does everything. Each turn it does what is due, then
sleeps until the earliest of: the next heartbeat, the leader's lease end (a follower's timer, so
failover never waits for Redis's late ``expired`` notification), the renew deadline (a
leader's), a vacancy retry, a deferred re-read, or a wake-up from the watcher.

Notifications are hints, never the truth: a member acts on one only through a script that
checks Redis (a claim is ``SET NX``), and otherwise re-reads the pool. From its last read each
follower knows who comes next after the leader; that member claims the moment the lead looks
vacant, the others confirm the new leader a little later. A leader that gives up its lead kindly
hands it straight to that member in the same script.

The safety rules (a leader acts only inside its renew deadline; its calls are bounded by it;
a graceful hand-over tells the application first) are in :mod:`leaderpool.election.leadership`; a member
handed a lead counts its deadline from no later than the grant (:func:`succession.grant_instant`).

A failing Redis call is retried with backoff; a failing *script* is a bug: it is logged with
the script's name, the member leaves, and :meth:`run` raises it (the faces re-raise it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from leaderpool import probe
from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import (
    BeatStatus,
    ClaimStatus,
    Glance,
    LeaderValue,
    Observation,
    PoolEvent,
    PoolMessage,
)
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.backend.watcher import Watcher
from leaderpool.config import MemberConfig
from leaderpool.election import succession as succ
from leaderpool.election.leadership import Leadership
from leaderpool.election.membership import Membership
from leaderpool.election.retry import Retries
from leaderpool.election.view import PoolView
from leaderpool.errors import ScriptError
from leaderpool.events import LeaderInfo, RevokeReason, Role, Sink
from leaderpool.fast_failover.failover import BURIED_REASON, Death, FastFailover
from leaderpool.util.alarm import Alarm
from leaderpool.util.constants import FIRST_BEAT_SPREAD, REREAD_DELAY_S, SPIN_LEAD_S
from leaderpool.util.log import Logger, get_logger


@dataclass
class _Pending:
    """Requests from the application or other processes, applied by the loop."""

    resign: tuple[RevokeReason, bool] | None = None  # (reason, rejoin as youngest)
    dirty: bool = True  # re-read the pool state
    vacated: bool = False  # the lead looks vacant (deleted, expired, released): the successor claims
    stop: bool = False


@dataclass
class _Timers:
    """Monotonic instants; None when not armed."""

    leader_expiry: float | None = None  # follower: when the leader's key would expire
    vacancy_retry: float | None = None  # follower: when to re-check a vacant lead
    reread_at: float | None = None  # follower: confirm an announced leader (off the critical path)
    backoff_until: float | None = None  # after a Redis failure
    vacant_since: float | None = None


class ElectionCore:
    """One member's election, run by :meth:`run` on an event loop."""

    def __init__(
        self, config: MemberConfig, client: AsyncClient, sink: Sink, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.keys = Keyspace(config.pool, config.prefix)
        self.store = PoolStore(client, self.keys)
        self.membership = Membership(config, self.store, clock)
        log = get_logger("leaderpool", pool=config.pool, member=config.member_id, term=None)
        self.lead = Leadership(config, self.store, self.membership, sink, clock, log, on_end=self._forget_own_lead)
        self.view = PoolView(config, self.lead.emit)
        self.fast = FastFailover(config, client, self.store, self._poke, self._on_trigger, clock)
        self._client = client
        self._clock = clock
        self._pending = _Pending()
        self._timers = _Timers()
        self._unreplicated_term = 0  # the term last logged as held but not yet on enough replicas
        self._alarm = Alarm(clock)
        self._retries = Retries(config.heartbeat)
        self._abandoned = False
        self._watcher: Watcher | None = None
        self._hears_keyspace = False  # subscribed to the leader key's keyspace events

    @property
    def _log(self) -> Logger:
        return self.lead.log  # pool and member bound, and the term while leading

    # ---- state the faces read (from any thread: plain attribute reads; also self.lead's) ----

    @property
    def leader(self) -> LeaderInfo | None:
        """The current leader from the local cache (kept fresh by the watcher)."""
        return self.view.leader

    # ---- requests (call on the loop's thread) ----

    def request_resign(self, reason: RevokeReason = RevokeReason.RESIGNED, *, rejoin: bool = False) -> None:
        """Hand the lead over (if held); with ``rejoin``, also rejoin as the youngest member."""
        self._pending.resign = (reason, rejoin)
        self._poke()

    def request_stop(self) -> None:
        self._pending.stop = True
        self._poke()

    def abandon(self) -> None:
        """Stop without releasing or leaving, as a crash would (for tests and chaos drills):
        the others take over when the lease expires."""
        self._abandoned = True
        self.request_stop()

    def _poke(self, *, dirty: bool = False, vacated: bool = False) -> None:
        """Wake the loop now (a poke while it is busy makes it skip its next sleep)."""
        self._pending.dirty |= dirty
        self._pending.vacated |= vacated
        self._alarm.ring()

    def _on_trigger(self, suspect: LeaderValue) -> None:
        """The leader's liveness endpoint closed: while we are next in line, prove its death through
        Redis at once (in the bury script, or beside the loop) and bury its lead and claim."""
        if self.lead.role is Role.FOLLOWER and self.view.successor:
            expiry = self._timers.leader_expiry
            until = expiry if expiry is not None else self._clock() + self.config.ttl_s
            self.fast.on_trigger(suspect, self.view.leader_conn, until, self.lead.bounded, self._log)

    # ---- the loop ----

    async def run(self) -> None:
        """Join, elect, lead or follow until :meth:`request_stop`; then leave the pool. Raises
        :class:`~leaderpool.errors.ScriptError` (after leaving) when a script fails."""
        watcher = self._watcher = shared_watcher(self._client)
        await watcher.watch(self.keys, self._on_message, timeout=self.config.heartbeat)
        self._hears_keyspace = True
        self.membership.liveness = await self.fast.start(watcher)
        try:
            while not self._pending.stop:
                try:
                    await self._turn()
                    self._retries.succeeded(self._log)
                    self._timers.backoff_until = None
                except ScriptError as exc:
                    self._log.error("script_failed", script=exc.script, error=str(exc))
                    raise
                except RETRYABLE as exc:
                    self._on_failure(exc)
                except Exception as exc:  # a bug must not leave a zombie member: log, back off, go on
                    self._log.exception("election_turn_failed")
                    self._on_failure(exc)
                if not self._pending.stop:
                    backoff = self._timers.backoff_until is not None
                    wake = self._next_wakeup()  # a heartbeat may wake a tick late, with others due
                    await self._alarm.sleep_until(wake, through_rings=backoff, coarse=wake == self.membership.next_beat)
        finally:
            await self.lead.shutdown(self.view.members, abandoned=self._abandoned, hint=self.view.ranked_successor())
            await self.fast.close()  # after the hand-over: a leader never closes its endpoint
            self.view.leader = None
            with contextlib.suppress(*RETRYABLE):
                await watcher.unwatch(self.keys, self._on_message)

    async def _turn(self) -> None:
        now = self._clock()
        self.lead.check_deadline(now)
        self._check_registration()
        if not self.membership.joined:
            await self.membership.join(self.lead.bounded, self.view.seen_term, self._log)
            self._pending.dirty = True
        if self._pending.resign is not None:
            reason, rejoin = self._pending.resign
            self._pending.resign = None
            await self.lead.resign(
                reason,
                self.view.members,
                rejoin=rejoin,
                seen_term=self.view.seen_term,
                hint=self.view.ranked_successor(),
            )
            self._pending.dirty = True
        if (dead := self.fast.confirmed) is not None:  # its process died (or the script proves it): bury and claim
            self.fast.confirmed = None
            if self.lead.role is Role.FOLLOWER and self.view.successor:
                await self._claim(self._clock(), successor=True, dead=dead)
        if now >= self.membership.next_beat:
            await self._beat()
        expiry, successor = self._timers.leader_expiry, self.view.successor
        if successor and expiry is not None and 0 < expiry - now <= SPIN_LEAD_S and not self._pending.vacated:
            while self._clock() < expiry and not self._alarm.rung:
                await asyncio.sleep(0)  # bounded by SPIN_LEAD_S
            now = self._clock()
        following = self.lead.role is Role.FOLLOWER
        if self._pending.vacated or (following and expiry is not None and now >= expiry):
            self._pending.vacated = False
            if following and successor:
                await self._claim(self._clock(), successor=True)
            elif following and self.view.successor_id is not None:
                # The next in line claims now and its claim is announced; look shortly anyway
                # (no notifications on some Redis services, or the next in line died too).
                base = now if expiry is None else min(now, expiry)  # woken late on purpose: see _next_wakeup
                soon = base + succ.vacancy_grace(self.config.heartbeat)
                retry = self._timers.vacancy_retry
                self._timers.vacancy_retry = soon if retry is None else min(retry, soon)
                self._timers.leader_expiry = None
            else:
                self._pending.dirty = True
        retry, reread = self._timers.vacancy_retry, self._timers.reread_at
        if self._pending.dirty or (retry is not None and now >= retry) or (reread is not None and now >= reread):
            self._pending.dirty = False
            try:
                await self._settle()
            except BaseException:
                self._pending.dirty = True
                raise
        self.fast.follow_from(self.view, following=self.lead.role is Role.FOLLOWER)  # the next in line watches
        await self._hear_keyspace(self._wants_keyspace())

    def _wants_keyspace(self) -> bool:
        """Whether to hear the leader key's keyspace events: the leader and the next in line do (the
        next in line claims the moment the lead is vacant), and every member of a pool ranked
        outside Redis. The other followers hear of a new or vanished lead on the pool's channel
        and look by their own timers: so a lease renewal's event ("expire") reaches two members
        of a pool, not all of them, which in a process holding a member of thousands of pools
        was much of its work (issue 13)."""
        return not self.view.ranked_in_redis or self.lead.role is not Role.FOLLOWER or self.view.successor

    async def _hear_keyspace(self, wanted: bool) -> None:
        watcher = self._watcher
        if watcher is None or wanted == self._hears_keyspace:
            return
        self._hears_keyspace = wanted
        channel = (watcher.channels_for(self.keys)[0],)
        if wanted:  # not waiting for Redis's confirmation: the timers cover the moment until then
            await watcher.watch_channels(channel, self._on_message, timeout=0)
        else:
            await watcher.unwatch_channels(channel, self._on_message)

    def _next_wakeup(self) -> float:
        t = self._timers
        if t.backoff_until is not None:
            candidates = [t.backoff_until]
        else:
            candidates = [self.membership.next_beat, *(x for x in (t.vacancy_retry, t.reread_at) if x is not None)]
            if self.lead.role is Role.FOLLOWER and t.leader_expiry is not None:
                if self.view.successor:
                    candidates.append(t.leader_expiry - SPIN_LEAD_S)
                elif self.view.successor_id is not None:
                    # the next in line claims at the expiry; the others look a grace later, so
                    # hundreds of members of a process do not wake in the very turn it claims in
                    candidates.append(t.leader_expiry + succ.vacancy_grace(self.config.heartbeat))
                else:
                    candidates.append(t.leader_expiry)
        if self.lead.leading and self.lead.renew_deadline is not None:
            candidates.append(self.lead.renew_deadline)
        return min(candidates)

    def _on_failure(self, exc: BaseException) -> None:
        deadline = self.lead.renew_deadline if self.lead.leading else None
        renew_left = None if deadline is None else deadline - self._clock()
        self._timers.backoff_until = self._clock() + self._retries.failed(exc, self._log, renew_left_s=renew_left)
        self.lead.check_deadline(self._clock())

    # ---- notifications ----

    def _on_message(self, source: NotificationSource, payload: str) -> None:
        if source is NotificationSource.DISCONNECTED:  # our registered connection, if we lead: may be proved gone
            self._check_registration()
            return
        if source is NotificationSource.KEYSPACE:
            if payload in ("del", "expired"):
                self._poke(vacated=True)
            elif payload == "set" and not self.lead.leading:
                self._schedule_reread()  # a new leader ("expire" is a renewal; a leader's "set" its own claim)
            return
        msg = PoolMessage.parse(payload) if source is NotificationSource.EVENTS else None
        if msg is None:  # a resync after a lost connection, or a message of a newer version
            self._poke(dirty=True)
            return
        me, looking = self.config.member_id, self._timers.vacancy_retry is not None
        if msg.event is PoolEvent.RESIGN:
            if self.lead.leading:
                self.request_resign(RevokeReason.RESIGNED)
        elif msg.event is PoolEvent.EVICTED:
            if msg.member == me:
                self.membership.note_evicted()
            if msg.member == me or looking or self._next_changes(msg.member):
                self._poke(dirty=True)
        elif msg.event is PoolEvent.JOINED:
            # succession (and a takeover) may change with the newcomer: with the ranking in Redis
            # only those it can concern look (the leader, the next in line), so a join costs O(N)
            if not self.view.ranked_in_redis or looking or self.lead.leading or self.view.successor:
                self._poke(dirty=True)
        elif msg.event is PoolEvent.LEFT:
            leader = self.view.leader
            if leader is not None and msg.member == leader.member:
                self._poke(vacated=True)
            elif looking or self.view.successor_id == me or self._next_changes(msg.member):
                self._poke(dirty=True)
        elif msg.event is PoolEvent.RELEASED:
            self._poke(vacated=True)
        elif msg.member != me:  # elected: someone else
            if self.lead.leading:
                self._poke(dirty=True)
            else:
                self._heard_elected(msg.term, msg.member)
        elif (granted_ms := msg.handoff_ms) is not None and msg.term > self.lead.last_led_term:
            # handed to us: act in this very callback, every loop turn counts here
            self._accept_handoff(msg.term, granted_ms)
            self._poke()

    def _next_changes(self, gone: str) -> bool:
        """With the ranking in Redis: ``gone`` was next in line, so someone else is now (every
        member glances, O(log N) each, to learn whether it is that one)."""
        return self.view.ranked_in_redis and gone == self.view.successor_id

    def _schedule_reread(self) -> None:
        """Re-read the pool shortly: right after a transition the new leader's first steps
        matter more than our confirmation, so we stay off Redis and the CPU for a moment."""
        soon = self._clock() + REREAD_DELAY_S
        if self._timers.reread_at is None or soon < self._timers.reread_at:
            self._timers.reread_at = soon
        self._poke()

    def _heard_elected(self, term: int, member: str) -> None:
        """Another member announced its lead: cache it at once (its record from our last read
        of the pool) so lookups answer in milliseconds; the scheduled re-read confirms it."""
        self._schedule_reread()
        if self.view.heard_elected(member, term, self._log):
            t = self._timers
            t.vacancy_retry = t.vacant_since = None
            t.leader_expiry = self._clock() + self.config.ttl_s  # refined by the re-read

    # ---- reading the pool ----

    async def _beat(self) -> None:
        held, epoch = self.lead.held(), self.lead.epoch
        ranked = self.view.ranked_in_redis  # else a leader with takeover ranks the listing itself
        want_members = self.lead.leading and self.config.takeover and not ranked
        conn, watch = self.fast.registration() if held else "", self.fast.watch_report()
        sent, beat = await self.membership.beat(
            self.lead.bounded, held, want_members, self.view.seen_term, self._log, conn=conn, watch=watch
        )
        if epoch != self.lead.epoch:  # a hand-over made us leader meanwhile: this reply renewed nothing
            self.membership.next_beat = self._clock()
            return
        self.membership.next_beat = sent + self.config.heartbeat
        self.view.redis_clock, self.view.leader_conn = (sent, beat.now_ms), beat.leader_conn
        if beat.status is BeatStatus.UNKNOWN_MEMBER:
            self.fast.rejoined()
            await self._lost_membership("member record missing")
            return
        self.fast.reported(watch)
        if beat.live_count >= 0:  # the beat counts the live members: no full read needed for the gauge
            probe.members_seen(self.config.pool, self.config.member_id, beat.live_count)
        if ranked:
            if beat.ranked:
                self.view.successor_id = beat.next  # who follows the leader, by Redis's ranking
        elif self.config.fast_failover and beat.live_count != len(self.view.members):
            self._pending.dirty = True  # a member lapsed: the next in line (who watches) may be another
        if self.lead.leading and held is not None:
            if beat.status is BeatStatus.OK:
                self.lead.renewed(sent)
                self._check_registration(held.term, conn)
            else:
                self.lead.step_down(self._lost_reason(), detail="leader key no longer ours")
        self._note_leader(beat.leader, beat.free_in_us, sent)
        if want_members and beat.members:
            self.view.members = beat.members
            if self.lead.leading:
                await self.lead.check_takeover(beat.members, beat.resigned)
        elif ranked and beat.ranked and self.lead.leading and self.config.takeover:
            await self.lead.take_over_by(beat.first)

    async def _lost_membership(self, detail: str) -> None:
        """Our record is gone (Redis lost its data, or an operator evicted us) or our lease
        lapsed (we were paused): stop leading, then rejoin."""
        if self.lead.leading:
            self.lead.step_down(self._lost_reason(), detail=detail)
        await self.membership.rejoin(self.lead.bounded, self.view.seen_term, self._log, why=detail, youngest=False)
        self._pending.dirty = True

    def _lost_reason(self) -> RevokeReason:
        return RevokeReason.RELEASED if self.membership.evicted else RevokeReason.LEASE_LOST

    def _note_leader(self, value: LeaderValue | None, free_in_us: int, sent: float) -> None:
        """Track the lead seen in a reply; a change makes the next turn re-read the pool."""
        if value is not None:
            self.view.saw(value.term)
        self._timers.leader_expiry = succ.lease_end(sent, self._clock(), free_in_us) if value is not None else None
        if not self.view.is_current(value):
            self._pending.dirty = True

    async def _settle(self) -> None:
        """Re-read the pool and act: claim a vacant lead we rank first for, check our own lead,
        or arm the timer for when the member we wait for would lapse. With the ranking in Redis
        a glance (O(log N)) does, a vacant lead included: Redis says who ranks first."""
        sent, epoch = self._clock(), self.lead.epoch
        glance = None
        if self.view.ranked_in_redis:
            glance = await self.lead.bounded(self.store.glance(self.config.member_id))
        obs = await self.lead.bounded(self.store.observe()) if glance is None else self._glanced(glance)
        if epoch != self.lead.epoch:  # our role changed meanwhile: read again
            self._pending.dirty = True
            return
        if glance is None:
            self.view.read(obs, sent)
        else:
            self.view.glanced(glance, sent)
        self._timers.reread_at = None
        self._note_leader(obs.leader, obs.free_in_us, sent)
        self._pending.dirty = False
        leader = obs.leader
        member = leader.member if leader else None
        record = obs.member(member) if member else None
        self.view.set_leader(member, leader.term if leader else 0, record, obs.leader_pttl_ms, self._log)
        if obs.member(self.config.member_id) is None:
            await self._lost_membership("member lease lapsed")
            return
        if self.lead.leading:
            if leader != self.lead.held():
                self.lead.step_down(self._lost_reason(), detail="leader key no longer ours")
                self._pending.dirty = True
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
        self._timers.vacancy_retry = self._timers.vacant_since = None
        if glance is None:
            self.view.find_next(leader.member)
        else:
            self.view.successor_id = glance.next
        if leader.member == self.config.member_id:
            if leader.term > self.lead.last_led_term:
                await self._adopt(leader)  # handed to us, and we missed the announcement
                return
            # A lead we already gave up locally (say, Redis was unreachable past our renew
            # deadline but came back before the key expired): free it for a new term.
            await self.lead.bounded(self.store.release(leader, RevokeReason.LEASE_LOST.value))
            self._pending.dirty = True

    def _glanced(self, glance: Glance) -> Observation:
        """A glance as an observation whose listing holds only the leader and this member."""
        lease = glance.lease_ms or 0
        mine = self.membership.record(lease) if lease > 0 else None  # lapsed: rejoin, as a listing would say
        members = [m for m in (glance.leader_info, mine) if m is not None]
        g = glance
        return Observation(g.now_ms, g.leader, g.leader_pttl_ms, g.resigned, g.free_in_us, members, g.leader_conn)

    # ---- becoming leader ----

    def _accept_handoff(self, term: int, granted_ms: int) -> None:
        """A leaving leader handed us the lead at Redis time ``granted_ms``: act at once if we can
        place that instant on our clock safely, else (no sample, or too little of the lease left,
        say we were frozen) confirm through Redis first."""
        if self.lead.role is not Role.FOLLOWER or term <= self.lead.last_led_term:
            return
        self.view.saw(term)
        granted_at = succ.grant_instant(self.view.redis_clock, granted_ms)
        c = self.config
        if granted_at is not None:
            probe.notified(c.pool, max(self._clock() - granted_at, 0.0))
        if not c.wait_replicas and succ.safe_to_act_on_grant(
            granted_at, self._clock(), renew_deadline_s=c.renew_deadline, heartbeat_s=c.heartbeat
        ):
            assert granted_at is not None
            self._become_leader(term, granted_at, handoff=True)
            self.membership.next_beat = self._clock()  # renew at once: anchor on our own request
            return
        self._pending.dirty = True  # settle finds the lead ours and adopts it by renewing

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
                    c.member_id, c.ttl_ms, leader, self.view.seen_term, c.wait_replicas, round(c.heartbeat * 500), conn
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
                self._pending.dirty = True
                return
        else:
            beat = await self.lead.bounded(
                self.store.heartbeat(c.member_id, c.ttl_ms, leader, False, self.view.seen_term, conn=conn)
            )
        if beat.status is BeatStatus.OK:
            self._become_leader(leader.term, sent, handoff=handoff, forced=forced)
            if conn:
                self._check_registration(leader.term, conn)
        else:
            self._pending.dirty = True

    async def _contend(self, obs: Observation, sent: float) -> None:
        t, c = self._timers, self.config
        if t.vacant_since is None:
            t.vacant_since = sent
        position, ranked = succ.claim_position(
            obs.members, c.member_id, c.ranker, avoid_nodes=await self.lead.avoided_nodes(), resigned=obs.resigned
        )
        forced = succ.forced_at(t.vacant_since, position, len(ranked), ttl_s=c.ttl_s, heartbeat_s=c.heartbeat)
        if position == 0 or sent >= forced:
            await self._claim(sent, forced=position != 0)
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
        t, c = self._timers, self.config
        if t.vacant_since is None:
            t.vacant_since = sent
        forced = t.vacant_since + c.ttl_s + c.heartbeat
        if glance.first in (None, c.member_id) or sent >= forced:
            await self._claim(sent, forced=glance.first not in (None, c.member_id))
            return
        t.vacancy_retry = min(sent + c.heartbeat / 2, forced)
        self._log.debug("waiting_for_preferred", preferred=glance.first, retry_in_s=round(t.vacancy_retry - sent, 3))

    async def _claim(
        self, sent: float, *, forced: bool = False, successor: bool = False, dead: Death | None = None
    ) -> None:
        """Claim the vacant lead. The next in line claims the moment the lead looks vacant: if it
        is held already, the new leader's announcement (or the re-read it makes due) tells the
        rest; if the claim is refused for another reason, the full path (a re-read) decides.
        ``dead``: a leader whose death was confirmed (or is, by the same script), and its
        registration: the same script removes its lead first (compare-and-delete), then claims."""
        c, conn = self.config, self.fast.registration()
        call = (
            self.store.claim(c.member_id, c.ttl_ms, self.view.seen_term, conn=conn)
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
            self._note_leader(result.leader, result.free_in_us, sent)
            self._pending.dirty |= not successor
        elif successor:
            self._pending.dirty = True
        elif result.status is ClaimStatus.RECOVERING:
            # Redis lost terms; wait until every live member has reported the highest it saw
            self._timers.vacancy_retry = sent + max(result.leader_pttl_ms, 1) / 1000
            self._log.info("claims_held_for_term_recovery", wait_ms=result.leader_pttl_ms)
        else:
            await self.membership.rejoin(
                self.lead.bounded, self.view.seen_term, self._log, why="lease lapsed before claiming", youngest=False
            )
            self._pending.dirty = True
        if dead is not None:  # logged after acting on it: the fast path's log line costs it nothing
            self.fast.log_takeover(self._log, dead, result.status)

    def _become_leader(self, term: int, sent: float, *, forced: bool = False, handoff: bool = False) -> None:
        """Lead ``term``; ``sent`` is when the lease we rely on was granted, at the latest (the
        renew deadline counts from it)."""
        self.lead.begin(term, sent)
        self.view.saw(term)
        # spread the first renewal, as members spread their first beat (see FIRST_BEAT_SPREAD)
        self.membership.next_beat = sent + self.config.heartbeat * random.uniform(*FIRST_BEAT_SPREAD)
        t = self._timers
        since = sent if handoff or t.vacant_since is None else t.vacant_since
        t.vacancy_retry = t.vacant_since = t.leader_expiry = None
        self.view.successor_id = None
        self.view.set_leader(self.config.member_id, term, self.membership.record(), self.config.ttl_ms, self._log)
        self.lead.announce(forced=forced, handoff=handoff, since=since)

    def _check_registration(self, term: int = 0, conn: str = "") -> None:
        """A leader whose registered connection dropped (a follower could prove it gone) or whose
        liveness endpoint stopped listening steps down at once. ``term``/``conn``: a claim or
        renewal just registered ``conn``."""
        if term:
            self.fast.registered(term, conn)
        if self.lead.leading and (unsafe := self.fast.lead_unsafe()):
            self.lead.step_down(RevokeReason.LEASE_LOST, detail=unsafe)
            self._poke(dirty=True)

    def _forget_own_lead(self) -> None:
        self.fast.ended()
        self.view.forget_own_lead()
