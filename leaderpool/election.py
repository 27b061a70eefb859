"""The election state machine: one member of one pool, written once in asyncio.

The blocking face (:mod:`leaderpool.blocking`) and the asyncio face (:mod:`leaderpool.aio`) both
drive this core; they differ only in how they deliver events to the application. Membership
(join, rejoin, heartbeat) is :mod:`leaderpool.membership`; who comes next and every deadline
computed from a reply are pure functions in :mod:`leaderpool.succession`; what goes over the wire
is :mod:`leaderpool.protocol`.

One coroutine, :meth:`ElectionCore.run`, does everything. Each turn it does what is due, then
sleeps until the earliest of: the next heartbeat, the leader's lease end (a follower's timer, so
failover never waits for Redis's late ``expired`` notification), the renew deadline (a
leader's), a vacancy retry, a deferred re-read, or a wake-up from the watcher.

Notifications are hints, never the truth: a member acts on one only through a script that
checks Redis (a claim is ``SET NX``), and otherwise re-reads the pool. From its last read each
follower knows who comes next after the leader; that member claims the moment the lead looks
vacant, the others confirm the new leader a little later. A leader that gives up its lead kindly
hands it straight to that member in the same script.

Safety rules, in the order they are applied:
- a leader acts only until ``renew deadline`` after the *sending* time of its last successful
  renewal, on the local monotonic clock; this is shorter than the lease, so it has stopped
  before Redis can let anyone else in, even if Redis is unreachable;
- every Redis call a leader makes is bounded by what is left of that deadline;
- a graceful hand-over first tells the application (and waits for it, bounded) and only then
  ends the lead; a member handed a lead counts its deadline from no later than the grant.

A failing Redis call is retried with backoff; a failing *script* is a bug: it is logged with
the script's name, the member leaves, and :meth:`run` raises it (the faces re-raise it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from leaderpool import succession as succ
from leaderpool.clients import AsyncClient
from leaderpool.config import MemberConfig
from leaderpool.constants import LOG_FAILURE_AT, LOG_FAILURE_EVERY, MIN_CALL_TIMEOUT_S, REREAD_DELAY_S, SPIN_LEAD_S
from leaderpool.errors import RETRYABLE, Failure, LeaderpoolError, ScriptError, classify
from leaderpool.events import Elected, Event, LeaderChanged, LeaderInfo, Revoked, RevokeReason, Role, Sink
from leaderpool.events import leader_identity as identity
from leaderpool.keys import Keyspace
from leaderpool.log import get_logger
from leaderpool.members import MemberInfo
from leaderpool.membership import Membership
from leaderpool.protocol import BeatStatus, ClaimStatus, LeaderValue, Observation, PoolEvent, PoolMessage
from leaderpool.store import PoolStore
from leaderpool.watcher import Watcher

T = TypeVar("T")


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

    renew_deadline: float | None = None  # leader only
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
        self._client = client
        self._sink = sink
        self._clock = clock
        self._role = Role.FOLLOWER
        self._term: int | None = None
        self._seen_term = 0  # the highest term seen in the pool: reported so terms survive data loss
        self._last_led_term = 0
        self._leader: LeaderInfo | None = None
        self._pending = _Pending()
        self._timers = _Timers()
        self._failures = 0
        self._auth_errors: set[str] = set()
        self._waiter: asyncio.Future[None] | None = None
        self._poked = False
        self._abandoned = False
        self._successor_id: str | None = None  # who ranks first after the leader, at the last read
        self._view: list[MemberInfo] = []  # live members at the last read of the pool
        self._view_resigned: str | None = None
        self._redis_clock: succ.RedisClockSample | None = None
        self._epoch = 0  # bumped on every change of role: a reply to an older epoch is stale
        self._log = get_logger("leaderpool", pool=config.pool, member=config.member_id, term=None)

    # ---- state the faces read (from any thread: plain attribute reads) ----

    @property
    def role(self) -> Role:
        return self._role

    @property
    def is_leader(self) -> bool:
        """True only while leading *and* inside the renew deadline."""
        deadline = self._timers.renew_deadline
        return self._role is Role.LEADER and deadline is not None and self._clock() < deadline

    @property
    def term(self) -> int | None:
        """The term of this member's leadership, None while not leading."""
        return self._term if self._role is Role.LEADER else None

    @property
    def renew_deadline(self) -> float | None:
        """While leading, the monotonic instant (``time.monotonic()``) at which this lead ends
        unless renewed first; None while not leading. Work done for the lead must not start
        after it, whatever order callbacks run in after a freeze."""
        return self._timers.renew_deadline if self._role is Role.LEADER else None

    @property
    def leader(self) -> LeaderInfo | None:
        """The current leader from the local cache (kept fresh by the watcher)."""
        return self._leader

    @property
    def started_at_ms(self) -> int | None:
        return self.membership.started_at_ms

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
        self._poked = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- the loop ----

    async def run(self) -> None:
        """Join, elect, lead or follow until :meth:`request_stop`; then leave the pool. Raises
        :class:`~leaderpool.errors.ScriptError` (after leaving) when a script fails."""
        watcher = Watcher.shared(self._client)
        await watcher.watch(self.keys, self._on_message, timeout=self.config.heartbeat)
        try:
            while not self._pending.stop:
                try:
                    await self._turn()
                    if self._failures:
                        self._log.info("redis_reachable_again", failures=self._failures)
                    self._failures, self._timers.backoff_until = 0, None
                    self._auth_errors.clear()
                except ScriptError as exc:
                    self._log.error("script_failed", script=exc.script, error=str(exc))
                    raise
                except RETRYABLE as exc:
                    self._on_failure(exc)
                except Exception as exc:  # a bug must not leave a zombie member: log, back off, go on
                    self._log.exception("election_turn_failed")
                    self._on_failure(exc)
                await self._sleep_until(self._next_wakeup())
        finally:
            await self._shutdown()
            with contextlib.suppress(*RETRYABLE):
                await watcher.unwatch(self.keys, self._on_message)

    async def _turn(self) -> None:
        now = self._clock()
        self._check_renew_deadline(now)
        if not self.membership.joined:
            await self.membership.join(self._bounded, self._seen_term, self._log)
            self._pending.dirty = True
        if self._pending.resign is not None:
            reason, rejoin = self._pending.resign
            self._pending.resign = None
            await self._resign(reason, rejoin)
        if now >= self.membership.next_beat:
            await self._beat()
        expiry, successor = self._timers.leader_expiry, self._successor_id == self.config.member_id
        if successor and expiry is not None and 0 < expiry - now <= SPIN_LEAD_S and not self._pending.vacated:
            while self._clock() < expiry and not self._poked:
                await asyncio.sleep(0)  # bounded by SPIN_LEAD_S
            now = self._clock()
        if self._pending.vacated or (self._role is Role.FOLLOWER and expiry is not None and now >= expiry):
            self._pending.vacated = False
            if self._role is Role.FOLLOWER and successor:
                await self._claim_as_successor()
            elif self._role is Role.FOLLOWER and self._successor_id is not None:
                # The next in line claims now and its claim is announced; look shortly anyway
                # (no notifications on some Redis services, or the next in line died too).
                soon = now + succ.vacancy_grace(self.config.heartbeat)
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

    def _next_wakeup(self) -> float:
        t = self._timers
        if t.backoff_until is not None:
            candidates = [t.backoff_until]
        else:
            candidates = [self.membership.next_beat, *(x for x in (t.vacancy_retry, t.reread_at) if x is not None)]
            if self._role is Role.FOLLOWER and t.leader_expiry is not None:
                spin = SPIN_LEAD_S if self._successor_id == self.config.member_id else 0.0
                candidates.append(t.leader_expiry - spin)
        if self._role is Role.LEADER and t.renew_deadline is not None:
            candidates.append(t.renew_deadline)
        return min(candidates)

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` or a poke (a notification or a request), whichever is first.
        A poke that came while we were busy wakes us at once. (A bare future and timer handle:
        thousands of members sleep and wake in one process.)"""
        poked, self._poked = self._poked, False
        if self._pending.stop or (poked and self._timers.backoff_until is None):
            return
        delay = deadline - self._clock()
        if delay <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, self._poke)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        self._poked = False

    def _on_failure(self, exc: BaseException) -> None:
        self._failures += 1
        kind = classify(exc)
        deadline = self._timers.renew_deadline if self._role is Role.LEADER else None
        if kind is Failure.AUTH:  # a configuration error: retrying fast fixes nothing
            delay = self.config.heartbeat
            if str(exc) not in self._auth_errors:
                self._auth_errors.add(str(exc))
                self._log.error("redis_auth_failed", error=str(exc), retry_s=delay, hint="check the password and ACL")
        else:
            renew_left = None if deadline is None else deadline - self._clock()
            delay = succ.retry_delay(self._failures, heartbeat_s=self.config.heartbeat, renew_left_s=renew_left)
            often = self._failures in LOG_FAILURE_AT or self._failures % LOG_FAILURE_EVERY == 0
            event, hint = {
                Failure.TIMEOUT: ("redis_call_timed_out", "Redis, the network or this process's event loop is slow"),
                Failure.UNAVAILABLE: ("redis_unavailable", None),
            }.get(kind, ("redis_call_failed", None))
            self._log.log("warning" if often else "debug", event, error=str(exc) or type(exc).__name__,
                          failures=self._failures, retry_s=round(delay, 3), hint=hint)  # fmt: skip
        self._timers.backoff_until = self._clock() + delay
        self._check_renew_deadline(self._clock())

    def _check_renew_deadline(self, now: float) -> None:
        deadline = self._timers.renew_deadline
        if self._role is Role.LEADER and deadline is not None and now >= deadline:
            self._step_down(RevokeReason.LEASE_LOST, detail="renew deadline passed")

    async def _bounded(self, call: Awaitable[T]) -> T:
        """Run one Redis call, bounded so a hung connection cannot keep a stale leader acting."""
        timeout = max(self.config.heartbeat, MIN_CALL_TIMEOUT_S)
        deadline = self._timers.renew_deadline
        if self._role is Role.LEADER and deadline is not None:
            timeout = min(timeout, deadline - self._clock())
            if timeout <= 0:
                # the call may carry our leader value: never send it once we stopped leading
                if asyncio.iscoroutine(call):
                    call.close()
                self._step_down(RevokeReason.LEASE_LOST, detail="renew deadline passed")
                raise asyncio.TimeoutError("renew deadline passed")
        return await asyncio.wait_for(call, timeout)

    # ---- notifications ----

    def _on_message(self, source: str, payload: str) -> None:
        if source == "keyspace":
            if payload in ("del", "expired"):
                self._poke(vacated=True)
            elif payload == "set" and self._role is not Role.LEADER:
                self._schedule_reread()  # a new leader ("expire" is a renewal; a leader's "set" its own claim)
            return
        msg = PoolMessage.parse(payload) if source == "events" else None
        if msg is None:  # "resync" after a lost connection, or a message of a newer version
            self._poke(dirty=True)
            return
        me, looking = self.config.member_id, self._timers.vacancy_retry is not None
        if msg.event is PoolEvent.RESIGN:
            if self._role is Role.LEADER:
                self.request_resign(RevokeReason.RESIGNED)
        elif msg.event is PoolEvent.EVICTED:
            if msg.member == me:
                self.membership.note_evicted()
            if msg.member == me or looking:
                self._poke(dirty=True)
        elif msg.event is PoolEvent.JOINED:
            self._poke(dirty=True)  # succession (and a takeover) may change with the newcomer
        elif msg.event is PoolEvent.LEFT:
            if self._leader is not None and msg.member == self._leader.member:
                self._poke(vacated=True)
            elif looking or self._successor_id == me:
                self._poke(dirty=True)
        elif msg.event is PoolEvent.RELEASED:
            self._poke(vacated=True)
        elif msg.member != me:  # elected: someone else
            if self._role is Role.LEADER:
                self._poke(dirty=True)
            else:
                self._heard_elected(msg.term, msg.member)
        elif (granted_ms := msg.handoff_ms) is not None and msg.term > self._last_led_term:
            # handed to us: act in this very callback, every loop turn counts here
            self._accept_handoff(msg.term, granted_ms)
            self._poke()

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
        if self._leader is not None and term <= self._leader.term:
            return
        t = self._timers
        self._seen_term = max(self._seen_term, term)
        t.vacancy_retry = t.vacant_since = None
        t.leader_expiry = self._clock() + self.config.ttl_s  # refined by the re-read
        self._successor_id = self._next_in_line(self._view, self._view_resigned, member)
        record = next((m for m in self._view if m.member == member), None)
        self._set_leader(member, term, record, self.config.ttl_ms)  # a lead just granted: a full lease

    # ---- reading the pool ----

    async def _beat(self) -> None:
        held, epoch = self._held(), self._epoch
        want_members = self._role is Role.LEADER and self.config.takeover
        sent, beat = await self.membership.beat(self._bounded, held, want_members, self._seen_term, self._log)
        if epoch != self._epoch:  # a hand-over made us leader meanwhile: this reply renewed nothing
            self.membership.next_beat = self._clock()
            return
        self.membership.next_beat = sent + self.config.heartbeat
        self._redis_clock = (sent, beat.now_ms)
        if beat.status is BeatStatus.UNKNOWN_MEMBER:
            await self._lost_membership("member record missing")
            return
        if self._role is Role.LEADER:
            if beat.status is BeatStatus.OK:
                self._timers.renew_deadline = sent + self.config.renew_deadline
            else:
                self._step_down(self._lost_reason(), detail="leader key no longer ours")
        self._note_leader(beat.leader, beat.free_in_us, sent)
        if want_members and beat.members:
            self._view = beat.members
            if self._role is Role.LEADER:
                await self._check_takeover(beat.members, beat.resigned)

    async def _lost_membership(self, detail: str) -> None:
        """Our record is gone (Redis lost its data, or an operator evicted us) or our lease
        lapsed (we were paused): stop leading, then rejoin."""
        if self._role is Role.LEADER:
            self._step_down(self._lost_reason(), detail=detail)
        await self.membership.rejoin(self._bounded, self._seen_term, self._log, why=detail, youngest=False)
        self._pending.dirty = True

    def _lost_reason(self) -> RevokeReason:
        return RevokeReason.RELEASED if self.membership.evicted else RevokeReason.LEASE_LOST

    def _held(self) -> LeaderValue | None:
        if self._role is Role.LEADER and self._term is not None:
            return LeaderValue(self._term, self.config.member_id)
        return None

    def _note_leader(self, value: LeaderValue | None, free_in_us: int, sent: float) -> None:
        """Track the lead seen in a reply; a change makes the next turn re-read the pool."""
        if value is not None:
            self._seen_term = max(self._seen_term, value.term)
        self._timers.leader_expiry = succ.lease_end(sent, self._clock(), free_in_us) if value is not None else None
        if identity(self._leader) != ((value.member, value.term) if value else None):
            self._pending.dirty = True

    def _set_leader(
        self, member: str | None, term: int = 0, record: MemberInfo | None = None, lease_ms: int = 0
    ) -> None:
        """Cache the leader; ``record`` (its member record) carries the lead's lease left,
        ``lease_ms``, as of the read. A change of leader is an event."""
        info = dataclasses.replace(record, lease_ms=lease_ms) if record is not None else None
        leader = LeaderInfo(member, term, info) if member is not None else None
        old, self._leader = self._leader, leader
        if identity(old) != identity(leader):
            self._log.info("leader_changed", leader=member, leader_term=term if member else None)
            self._emit(LeaderChanged(leader))
        elif old is not None and info is None:
            self._leader = old  # same lead, and this read brought no record: keep the one we had

    async def _settle(self) -> None:
        """Re-read the pool and act: claim a vacant lead we rank first for, check our own lead,
        or arm the timer for when the member we wait for would lapse."""
        sent, epoch = self._clock(), self._epoch
        obs = await self._bounded(self.store.observe())
        if epoch != self._epoch:  # our role changed meanwhile: read again
            self._pending.dirty = True
            return
        self._redis_clock = (sent, obs.now_ms)
        self._view, self._view_resigned = obs.members, obs.resigned
        self._timers.reread_at = None
        self._note_leader(obs.leader, obs.free_in_us, sent)
        self._pending.dirty = False
        leader = obs.leader
        if leader is None:
            self._set_leader(None)
        else:
            self._set_leader(leader.member, leader.term, obs.member(leader.member), obs.leader_pttl_ms)
        if obs.member(self.config.member_id) is None:
            await self._lost_membership("member lease lapsed")
            return
        if self._role is Role.LEADER:
            if leader != self._held():
                self._step_down(self._lost_reason(), detail="leader key no longer ours")
                self._pending.dirty = True
            elif self.config.takeover:
                await self._check_takeover(obs.members, obs.resigned)
            return
        if leader is None:
            await self._contend(obs, sent)
            return
        self._timers.vacancy_retry = self._timers.vacant_since = None
        self._successor_id = self._next_in_line(obs.members, obs.resigned, leader.member)
        if leader.member == self.config.member_id:
            if leader.term > self._last_led_term:
                await self._adopt(leader)  # handed to us, and we missed the announcement
                return
            # A lead we already gave up locally (say, Redis was unreachable past our renew
            # deadline but came back before the key expired): free it for a new term.
            await self._bounded(self.store.release(leader, RevokeReason.LEASE_LOST.value))
            self._pending.dirty = True

    def _next_in_line(self, members: list[MemberInfo], resigned: str | None, leader: str) -> str | None:
        c = self.config
        return succ.next_in_line(members, leader, c.ranker, resigned=resigned, anti_affinity=bool(c.avoid_pools))

    # ---- becoming leader ----

    async def _claim_as_successor(self) -> None:
        sent = self._clock()
        result = await self._bounded(self.store.claim(self.config.member_id, self.config.ttl_ms, self._seen_term))
        if result.status is ClaimStatus.ELECTED:
            self._become_leader(result.term, sent, forced=False)
        elif result.status is ClaimStatus.HELD:
            self._note_leader(result.leader, result.free_in_us, sent)  # a new leader: re-read
        else:
            self._pending.dirty = True  # not live, or terms being recovered: the full path decides

    def _accept_handoff(self, term: int, granted_ms: int) -> None:
        """A leaving leader handed us the lead at Redis time ``granted_ms``: act at once if we can
        place that instant on our clock safely, else (no sample, or too little of the lease left,
        say we were frozen) confirm through Redis first."""
        if self._role is not Role.FOLLOWER or term <= self._last_led_term:
            return
        self._seen_term = max(self._seen_term, term)
        granted_at = succ.grant_instant(self._redis_clock, granted_ms)
        c = self.config
        if succ.safe_to_act_on_grant(
            granted_at, self._clock(), renew_deadline_s=c.renew_deadline, heartbeat_s=c.heartbeat
        ):
            assert granted_at is not None
            self._become_leader(term, granted_at, handoff=True)
            self.membership.next_beat = self._clock()  # renew at once: anchor on our own request
            return
        self._pending.dirty = True  # settle finds the lead ours and adopts it by renewing

    async def _adopt(self, leader: LeaderValue) -> None:
        """Take up a lead handed to us by renewing it first: the renewal's sending time anchors
        the renew deadline."""
        self._seen_term = max(self._seen_term, leader.term)
        sent = self._clock()
        beat = await self._bounded(
            self.store.heartbeat(self.config.member_id, self.config.ttl_ms, leader, False, self._seen_term)
        )
        if beat.status is BeatStatus.OK:
            self._become_leader(leader.term, sent, handoff=True)
        else:
            self._pending.dirty = True

    async def _contend(self, obs: Observation, sent: float) -> None:
        t, c = self._timers, self.config
        if t.vacant_since is None:
            t.vacant_since = sent
        position, ranked = succ.claim_position(
            obs.members, c.member_id, c.ranker, avoid_nodes=await self._avoided_nodes(), resigned=obs.resigned
        )
        forced = succ.forced_at(t.vacant_since, position, len(ranked), ttl_s=c.ttl_s, heartbeat_s=c.heartbeat)
        if position == 0 or sent >= forced:
            await self._claim(sent, forced=position != 0)
            return
        t.vacancy_retry = succ.vacancy_retry_at(sent, ranked[0], forced)
        self._log.debug(
            "waiting_for_preferred", preferred=ranked[0].member, retry_in_s=round(t.vacancy_retry - sent, 3)
        )

    async def _claim(self, sent: float, *, forced: bool) -> None:
        result = await self._bounded(self.store.claim(self.config.member_id, self.config.ttl_ms, self._seen_term))
        if result.status is ClaimStatus.ELECTED:
            self._become_leader(result.term, sent, forced=forced)
        elif result.status is ClaimStatus.HELD:
            self._note_leader(result.leader, result.free_in_us, sent)
            self._pending.dirty = True
        elif result.status is ClaimStatus.RECOVERING:
            # Redis lost terms; wait until every live member has reported the highest it saw
            self._timers.vacancy_retry = sent + max(result.leader_pttl_ms, 1) / 1000
            self._log.info("claims_held_for_term_recovery", wait_ms=result.leader_pttl_ms)
        else:
            await self.membership.rejoin(
                self._bounded, self._seen_term, self._log, why="lease lapsed before claiming", youngest=False
            )
            self._pending.dirty = True

    def _become_leader(self, term: int, sent: float, *, forced: bool = False, handoff: bool = False) -> None:
        """Lead ``term``; ``sent`` is when the lease we rely on was granted, at the latest (the
        renew deadline counts from it)."""
        t = self._timers
        self._epoch += 1
        self._role, self._term = Role.LEADER, term
        self._seen_term = max(self._seen_term, term)
        t.renew_deadline = sent + self.config.renew_deadline
        # leaders elected together (one process leading many pools) would renew, and so expire,
        # together forever: renewing early is always safe, so spread the first renewal too
        self.membership.next_beat = sent + self.config.heartbeat * random.uniform(0.5, 1.0)
        t.vacancy_retry = t.vacant_since = t.leader_expiry = None
        self._successor_id = None
        self._log = self._log.bind(term=term)
        self._set_leader(self.config.member_id, term, self.membership.record(), self.config.ttl_ms)
        self._last_led_term = max(self._last_led_term, term)
        self._emit(Elected(term))
        self._log.info("elected", forced=forced, handoff=handoff)

    # ---- giving up the lead ----

    def _step_down(self, reason: RevokeReason, *, detail: str = "") -> Awaitable[None] | None:
        """Stop acting as leader now; tell the application. Returns its acknowledgement."""
        if self._role is not Role.LEADER or self._term is None:
            return None
        term = self._term
        self._last_led_term = max(self._last_led_term, term)
        self._epoch += 1
        self._role, self._term = Role.FOLLOWER, None
        self._timers.renew_deadline = None
        self._log.info("revoked", reason=reason.value, detail=detail or None)
        self._log = self._log.bind(term=None)
        if self._leader is not None and self._leader.member == self.config.member_id:
            self._leader = None  # we no longer vouch for it; the next read says who leads
        return self._emit(Revoked(term, reason))

    async def _successor(self) -> str:
        """Whom to hand our lead to (reads Redis only for anti-affinity)."""
        avoid = await self._avoided_nodes() if self.config.avoid_pools else frozenset()
        return succ.successor_for(self._view, self.config.member_id, self.config.ranker, avoid)

    async def _resign(self, reason: RevokeReason, rejoin: bool) -> None:
        held, successor, ttl_ms = self._held(), "", self.config.ttl_ms
        if held is not None:
            successor = await self._successor()
            await self._acknowledged(self._step_down(reason))
            if not rejoin:  # rank ourselves last for one lease so the next member keeps the lead
                await self._bounded(self.store.release(held, reason.value, ttl_ms, successor=successor, ttl_ms=ttl_ms))
        if rejoin:
            await self._bounded(
                self.store.leave(self.config.member_id, reason.value, successor=successor, ttl_ms=ttl_ms)
            )
            await self.membership.rejoin(self._bounded, self._seen_term, self._log, why=reason.value, youngest=True)
        self._pending.dirty = True

    async def _check_takeover(self, members: list[MemberInfo], resigned: str | None) -> None:
        avoid = await self._avoided_nodes()
        preferred = succ.preferred_over(
            members, self.config.member_id, self.config.ranker, avoid_nodes=avoid, resigned=resigned
        )
        if preferred is None:
            return
        held = self._held()
        self._log.info("takeover_by", preferred=preferred.member)
        await self._acknowledged(self._step_down(RevokeReason.TAKEOVER))
        if held is not None:
            reason = RevokeReason.TAKEOVER.value
            await self._bounded(self.store.release(held, reason, successor=preferred.member, ttl_ms=self.config.ttl_ms))

    async def _avoided_nodes(self) -> frozenset[str]:
        pools = [p for p in self.config.avoid_pools if p != self.config.pool]
        stores = [PoolStore(self._client, Keyspace(p, self.config.prefix)) for p in pools]
        return succ.leader_nodes([await self._bounded(s.leader_record()) for s in stores])

    # ---- events and shutdown ----

    def _emit(self, event: Event) -> Awaitable[None] | None:
        try:
            return self._sink(event)
        except Exception:
            self._log.exception("event_sink_failed", event_type=type(event).__name__)
            return None

    async def _acknowledged(self, ack: Awaitable[None] | None) -> None:
        """Wait (bounded by one lease) until the application has handled a revocation."""
        if ack is None:
            return
        try:
            await asyncio.wait_for(asyncio.ensure_future(ack), self.config.ttl_s)
        except asyncio.TimeoutError:
            self._log.warning("revoked_callback_slow", waited_s=self.config.ttl_s)
        except Exception:
            self._log.exception("revoked_callback_failed")

    async def _shutdown(self) -> None:
        """Stop leading (telling the application first), then leave: one script does both, so
        the next member takes over at once instead of waiting for us."""
        if self._abandoned:
            self._role, self._term, self._leader = Role.STOPPED, None, None
            return
        successor = ""
        if self._role is Role.LEADER:
            with contextlib.suppress(*RETRYABLE, LeaderpoolError, asyncio.CancelledError):
                pick = self._successor()
                successor = await (asyncio.wait_for(pick, self.config.heartbeat) if self.config.avoid_pools else pick)
        with contextlib.suppress(asyncio.CancelledError):
            await self._acknowledged(self._step_down(RevokeReason.SHUTDOWN))
        if self.membership.joined:
            try:
                leave = self.store.leave(
                    self.config.member_id, RevokeReason.SHUTDOWN.value, successor=successor, ttl_ms=self.config.ttl_ms
                )
                await asyncio.wait_for(leave, self.config.heartbeat)
                self._log.info("left")
            except Exception as exc:  # stopping anyway: our lease ends on its own
                self._log.warning("leave_failed", error=str(exc) or type(exc).__name__)
        self.membership.joined = False
        self._role, self._leader = Role.STOPPED, None
