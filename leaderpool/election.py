"""The election state machine: one member of one pool, written once in asyncio.

The blocking face (:mod:`leaderpool.blocking`) and the asyncio face (:mod:`leaderpool.aio`) both
drive this core; they differ only in how they deliver events to the application.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions

from leaderpool.config import MemberConfig
from leaderpool.errors import REDIS_FAILURES, RETRYABLE
from leaderpool.events import (
    Elected,
    Event,
    LeaderChanged,
    LeaderInfo,
    Revoked,
    RevokeReason,
    Role,
    Sink,
    leader_identity,
)
from leaderpool.keys import Keyspace
from leaderpool.log import get_logger
from leaderpool.members import MemberInfo, rank_members
from leaderpool.store import LeaderValue, Observation, PoolStore
from leaderpool.watcher import Watcher

T = TypeVar("T")


SPIN_LEAD_S = 0.0015
"""The next in line wakes this long before the leader's lease ends and yields until the exact
instant: event-loop timers fire up to a millisecond late (epoll counts whole milliseconds)."""

REREAD_DELAY_S = 0.02
"""How long a follower waits before confirming an announced leader with a read of the pool."""


def _wake_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class _Pending:
    """Requests from the application or other processes, applied by the loop."""

    resign: tuple[RevokeReason, bool] | None = None  # (reason, rejoin as youngest)
    evicted: bool = False
    dirty: bool = True  # re-read the pool state
    vacated: bool = False  # the lead looks vacant (deleted, expired, released): the successor claims
    stop: bool = False


@dataclass
class _Timers:
    """Monotonic instants; None when not armed."""

    next_beat: float = 0.0
    renew_deadline: float | None = None  # leader only
    leader_expiry: float | None = None  # follower: when the leader's key would expire
    vacancy_retry: float | None = None  # follower: when to re-check a vacant lead
    reread_at: float | None = None  # follower: confirm an announced leader (off the critical path)
    backoff_until: float | None = None  # after a Redis failure
    vacant_since: float | None = None
    last_beat: float | None = None


class ElectionCore:
    """One member's membership and election, run by :meth:`run` on an event loop."""

    def __init__(
        self,
        config: MemberConfig,
        client: Any,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.keys = Keyspace(config.pool, config.prefix)
        self.store = PoolStore(client, self.keys)
        self._client = client
        self._sink = sink
        self._clock = clock
        self._role = Role.FOLLOWER
        self._term: int | None = None
        self._highest_term = 0
        self._leader: LeaderInfo | None = None
        self._started_at_ms: int | None = None
        self._joined = False
        self._pending = _Pending()
        self._timers = _Timers()
        self._failures = 0
        self._waiter: asyncio.Future[None] | None = None
        self._poked = False
        self._abandoned = False
        self._successor_id: str | None = None  # who ranks first after the leader, at the last read
        self._view: list[MemberInfo] = []  # live members at the last read of the pool
        self._view_resigned: str | None = None
        self._redis_clock: tuple[float, int] | None = None  # (local time sent, Redis ms) of a reply
        self._last_led_term = 0
        self._epoch = 0  # bumped on every change of role: a reply to an older epoch is stale
        self._log = get_logger("leaderpool", pool=config.pool, member=config.member_id, term=None)
        self.host = socket.gethostname()
        self.pid = os.getpid()

    @property
    def _successor(self) -> bool:
        """We are next in line: we claim the moment the lead looks vacant."""
        return self._successor_id == self.config.member_id

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
    def highest_term(self) -> int:
        """The highest term this member has seen in the pool."""
        return self._highest_term

    @property
    def leader(self) -> LeaderInfo | None:
        """The current leader from the local cache (kept fresh by the watcher)."""
        return self._leader

    @property
    def started_at_ms(self) -> int | None:
        return self._started_at_ms

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

    def _poke(self) -> None:
        self._poked = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _mark_dirty(self) -> None:
        self._pending.dirty = True
        self._poke()

    def _mark_vacated(self) -> None:
        self._pending.vacated = True
        self._poke()

    # ---- the loop ----

    async def run(self) -> None:
        """Join, elect, lead or follow until :meth:`request_stop`; then leave the pool."""
        watcher = Watcher.shared(self._client)
        await watcher.watch(self.keys, self._on_message, timeout=self.config.heartbeat)
        try:
            while not self._pending.stop:
                try:
                    await self._turn()
                    if self._failures:
                        self._log.info("redis_reachable_again", failures=self._failures)
                    self._failures = 0
                    self._timers.backoff_until = None
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
        if not self._joined:
            await self._join()
        if self._pending.resign is not None:
            reason, rejoin = self._pending.resign
            self._pending.resign = None
            await self._resign(reason, rejoin)
        if now >= self._timers.next_beat:
            await self._beat()
        expiry = self._timers.leader_expiry
        if self._successor and expiry is not None and 0 < expiry - now <= SPIN_LEAD_S and not self._pending.vacated:
            while self._clock() < expiry and not self._poked:
                await asyncio.sleep(0)  # bounded by SPIN_LEAD_S
            now = self._clock()
        if self._pending.vacated or (self._role is Role.FOLLOWER and expiry is not None and now >= expiry):
            self._pending.vacated = False
            if self._role is Role.FOLLOWER and self._successor:
                await self._claim_as_successor()
            elif self._role is Role.FOLLOWER and self._successor_id is not None:
                # The next in line claims now and its claim is announced; look shortly anyway
                # (no notifications on some Redis services, or the next in line died too).
                grace = min(0.05 + self.config.heartbeat / 10, self.config.heartbeat)
                retry = self._timers.vacancy_retry
                self._timers.vacancy_retry = now + grace if retry is None else min(retry, now + grace)
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
            candidates = [t.next_beat]
            candidates += [x for x in (t.vacancy_retry, t.reread_at) if x is not None]
            if self._role is Role.FOLLOWER and t.leader_expiry is not None:
                candidates.append(t.leader_expiry - (SPIN_LEAD_S if self._successor else 0.0))
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
        timer = loop.call_later(delay, _wake_up, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        self._poked = False

    def _on_failure(self, exc: BaseException) -> None:
        self._failures += 1
        delay = min(0.05 * 2 ** min(self._failures - 1, 10), self.config.heartbeat)
        if self._role is Role.LEADER and self._timers.renew_deadline is not None:
            # a leader retries fast: it has until its renew deadline
            delay = min(delay, max(0.01, (self._timers.renew_deadline - self._clock()) / 4))
        self._timers.backoff_until = self._clock() + delay
        level = self._log.warning if self._failures in (1, 10) or self._failures % 100 == 0 else self._log.debug
        if isinstance(exc, (asyncio.TimeoutError, redis.exceptions.TimeoutError)):
            event, hint = "redis_call_timed_out", "Redis, the network or this process's event loop is slow"
        elif isinstance(exc, REDIS_FAILURES):
            event, hint = "redis_unavailable", None
        else:
            event, hint = "redis_call_failed", None
        level(event, error=str(exc) or type(exc).__name__, failures=self._failures, retry_s=round(delay, 3), hint=hint)
        self._check_renew_deadline(self._clock())

    def _check_renew_deadline(self, now: float) -> None:
        deadline = self._timers.renew_deadline
        if self._role is Role.LEADER and deadline is not None and now >= deadline:
            self._step_down(RevokeReason.LEASE_LOST, detail="renew deadline passed")

    async def _bounded(self, call: Coroutine[Any, Any, T]) -> T:
        """Run one Redis call, bounded so a hung connection cannot keep a stale leader acting."""
        timeout = max(self.config.heartbeat, 0.05)
        deadline = self._timers.renew_deadline
        if self._role is Role.LEADER and deadline is not None:
            timeout = min(timeout, deadline - self._clock())
            if timeout <= 0:
                # the call may carry our leader value: never send it once we stopped leading
                call.close()
                self._step_down(RevokeReason.LEASE_LOST, detail="renew deadline passed")
                raise asyncio.TimeoutError("renew deadline passed")
        return await asyncio.wait_for(call, timeout)

    # ---- notifications ----

    def _on_message(self, source: str, payload: str) -> None:
        if source == "keyspace":
            if payload in ("del", "expired"):
                self._mark_vacated()
            elif payload == "set" and self._role is not Role.LEADER:
                self._schedule_reread()  # a new leader ("expire" is a renewal; a leader's "set" its own claim)
            return
        if source == "resync":
            self._mark_dirty()
            return
        event, _, rest = payload.partition("|")
        parts = rest.split("|", 2)
        member = parts[2] if len(parts) == 3 else ""
        if event == "resign":
            if self._role is Role.LEADER:
                self.request_resign(RevokeReason.RESIGNED)
        elif event == "evicted":
            if member == self.config.member_id:
                self._pending.evicted = True
                self._mark_dirty()
            elif self._timers.vacancy_retry is not None:
                self._mark_dirty()
        elif event == "joined":
            self._mark_dirty()  # succession (and a takeover) may change with the newcomer
        elif event == "left":
            if self._leader is not None and member == self._leader.member:
                self._mark_vacated()
            elif self._timers.vacancy_retry is not None or self._successor:
                self._mark_dirty()
        elif event == "released":
            self._mark_vacated()
        elif member != self.config.member_id:  # elected: someone else
            if self._role is Role.LEADER:
                self._mark_dirty()
            else:
                self._heard_elected(int(parts[0]), member)
        elif parts[1].startswith("handoff:") and int(parts[0]) > self._last_led_term:
            # handed to us: act in this very callback, every loop turn counts here
            self._accept_handoff(int(parts[0]), int(parts[1].partition(":")[2]))
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
        self._highest_term = max(self._highest_term, term)
        t.vacancy_retry = t.vacant_since = None
        t.leader_expiry = self._clock() + self.config.ttl_s  # refined by the re-read
        self._successor_id = self._next_in_line(self._view, self._view_resigned, member)
        self._set_leader(LeaderInfo(member, term, next((m for m in self._view if m.member == member), None)))

    # ---- membership ----

    def _record(self) -> MemberInfo:
        assert self._started_at_ms is not None
        c = self.config
        return MemberInfo(c.member_id, c.node, self.host, self.pid, c.priority, self._started_at_ms, c.meta)

    async def _join(self) -> None:
        if self._started_at_ms is None:
            self._started_at_ms = await self._bounded(self.store.redis_time_ms())
        sent = self._clock()
        await self._bounded(self.store.register(self._record(), self.config.ttl_ms, self._highest_term))
        self._joined = True
        # members started together would beat together forever: spread the first beat
        self._timers.next_beat = sent + self.config.heartbeat * random.uniform(0.5, 1.0)
        self._pending.dirty = True
        self._log.info(
            "joined", node=self.config.node, priority=self.config.priority, started_at_ms=self._started_at_ms
        )

    async def _rejoin(self, *, as_youngest: bool, why: str) -> None:
        self._joined = False
        if as_youngest:
            self._started_at_ms = None
        self._log.info("rejoining", why=why, as_youngest=as_youngest)
        await self._join()

    async def _beat(self) -> None:
        sent = self._clock()
        held = self._held()
        want_members = self._role is Role.LEADER and self.config.takeover
        epoch = self._epoch
        beat = await self._bounded(
            self.store.heartbeat(self.config.member_id, self.config.ttl_ms, held, want_members, self._highest_term)
        )
        if epoch != self._epoch:  # a hand-over made us leader meanwhile: this reply renewed nothing
            self._timers.next_beat = self._clock()
            return
        self._timers.next_beat = sent + self.config.heartbeat
        self._redis_clock = (sent, beat.now_ms)
        previous, self._timers.last_beat = self._timers.last_beat, sent
        late = 0.0 if previous is None else sent - previous - self.config.heartbeat
        if late > self.config.heartbeat / 2:
            self._log.warning("heartbeat_late", late_s=round(late, 3))
        if beat.status < 0:
            # Our record is gone: Redis lost its data, or an operator evicted us.
            if self._role is Role.LEADER:
                self._step_down(self._lost_reason(), detail="member record missing")
            await self._rejoin(as_youngest=self._pending.evicted, why="member record missing")
            self._pending.evicted = False
            return
        if self._role is Role.LEADER:
            if beat.status == 1:
                self._timers.renew_deadline = sent + self.config.renew_deadline
            else:
                self._step_down(self._lost_reason(), detail="leader key no longer ours")
        self._note_leader(beat.leader, beat.free_in_us, sent)
        if want_members and beat.members:
            self._view = beat.members
            if self._role is Role.LEADER:
                await self._check_takeover(beat.members, beat.resigned)

    def _lost_reason(self) -> RevokeReason:
        return RevokeReason.RELEASED if self._pending.evicted else RevokeReason.LEASE_LOST

    # ---- election ----

    def _held(self) -> LeaderValue | None:
        if self._role is Role.LEADER and self._term is not None:
            return LeaderValue(self._term, self.config.member_id)
        return None

    def _note_leader(self, value: LeaderValue | None, free_in_us: int, sent: float) -> None:
        """Track the lead seen in a reply; a change makes the next turn re-read the pool."""
        if value is not None:
            self._highest_term = max(self._highest_term, value.term)
            # Redis measured `free_in_us` somewhere between `sent` and now: aim from the middle
            mid = (sent + self._clock()) / 2
            self._timers.leader_expiry = mid + free_in_us / 1e6 if free_in_us >= 0 else None
        else:
            self._timers.leader_expiry = None
        if leader_identity(self._leader) != ((value.member, value.term) if value else None):
            self._pending.dirty = True

    def _set_leader(self, leader: LeaderInfo | None) -> None:
        old = self._leader
        if leader_identity(old) != leader_identity(leader):
            self._leader = leader
            self._log.info(
                "leader_changed", leader=leader.member if leader else None, leader_term=leader.term if leader else None
            )
            self._emit(LeaderChanged(leader))
        elif leader is not None and old is not None and old.info is None and leader.info is not None:
            self._leader = leader

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
        self._set_leader(LeaderInfo(leader.member, leader.term, obs.member(leader.member)) if leader else None)
        if obs.member(self.config.member_id) is None:
            # Our lease lapsed (we were paused) or the record is gone (evicted, data loss).
            if self._role is Role.LEADER:
                self._step_down(self._lost_reason(), detail="member lease lapsed")
            await self._rejoin(as_youngest=self._pending.evicted, why="not a live member")
            self._pending.evicted = False
            return
        if self._role is Role.LEADER:
            if leader != self._held():
                self._step_down(self._lost_reason(), detail="leader key no longer ours")
                self._pending.evicted = False
                self._pending.dirty = True
            elif self.config.takeover:
                await self._check_takeover(obs.members, obs.resigned)
            return
        if leader is not None:
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
            return
        await self._contend(obs, sent)

    def _next_in_line(self, members: list[MemberInfo], resigned: str | None, leader: str) -> str | None:
        """Who ranks first once the leader is gone. That member claims as soon as the lead looks
        vacant (one round trip instead of re-reading first); the others wait for its claim to be
        announced. None with anti-affinity, whose ranking needs other pools' leaders: re-read."""
        if self.config.avoid_pools:
            return None
        others = [m for m in members if m.member != leader]
        ranked = rank_members(others, self.config.ranker, resigned=resigned)
        return ranked[0].member if ranked else None

    async def _claim_as_successor(self) -> None:
        sent = self._clock()
        result = await self._bounded(self.store.claim(self.config.member_id, self.config.ttl_ms, self._highest_term))
        if result.status == 1:
            self._become_leader(result.term, sent, forced=False)
        elif result.status == 0:
            self._note_leader(result.leader, result.free_in_us, sent)  # a new leader: re-read
        else:
            self._pending.dirty = True  # not live, or terms being recovered: the full path decides

    def _accept_handoff(self, term: int, granted_ms: int) -> None:
        """A leaving leader handed us the lead at Redis time ``granted_ms``. Act at once if we can
        place that instant on our own clock safely: our last reply from Redis says Redis's clock
        read ``now_ms`` no earlier than when we sent that request, so the grant happened no earlier
        than ``sent + (granted - now_ms)`` here (less a ms for truncation). Otherwise (no sample,
        or too little of the lease left, say we were frozen) confirm through Redis first."""
        if self._role is not Role.FOLLOWER or term <= self._last_led_term:
            return
        self._highest_term = max(self._highest_term, term)
        sample = self._redis_clock
        if sample is not None:
            granted_at = sample[0] + (granted_ms - sample[1] - 1) / 1000
            if granted_at + self.config.renew_deadline - self._clock() > self.config.heartbeat / 2:
                self._become_leader(term, granted_at, handoff=True)
                self._timers.next_beat = self._clock()  # renew at once: anchor on our own request
                return
        self._pending.dirty = True  # settle finds the lead ours and adopts it by renewing

    async def _adopt(self, leader: LeaderValue) -> None:
        """Take up a lead handed to us by renewing it first: the renewal's sending time anchors
        the renew deadline."""
        self._highest_term = max(self._highest_term, leader.term)
        sent = self._clock()
        beat = await self._bounded(
            self.store.heartbeat(self.config.member_id, self.config.ttl_ms, leader, False, self._highest_term)
        )
        if beat.status == 1:
            self._become_leader(leader.term, sent, handoff=True)
        else:
            self._pending.dirty = True

    async def _pick_successor(self) -> str:
        """Whom to hand our lead to: the best-ranked other live member we know of (Redis checks
        it is still live, else the lead is simply released)."""
        others = [m for m in self._view if m.member != self.config.member_id and m.lease_ms > 0]
        if not others:
            return ""
        avoid = await self._avoided_nodes() if self.config.avoid_pools else frozenset()
        ranked = rank_members(others, self.config.ranker, avoid_nodes=avoid)
        return ranked[0].member

    async def _contend(self, obs: Observation, sent: float) -> None:
        t = self._timers
        if t.vacant_since is None:
            t.vacant_since = sent
        ranked = rank_members(
            obs.members, self.config.ranker, avoid_nodes=await self._avoided_nodes(), resigned=obs.resigned
        )
        position = next(i for i, m in enumerate(ranked) if m.member == self.config.member_id)
        # Nobody waits longer than ttl + heartbeat for a preferred member that does not claim;
        # members further down wait a little longer, so the order is kept even then.
        forced_at = (
            t.vacant_since
            + self.config.ttl_s
            + self.config.heartbeat * (max(position - 1, 0) / max(len(ranked) - 2, 1))
        )
        if position == 0 or sent >= forced_at:
            await self._claim(sent, forced=position != 0)
            return
        top = ranked[0]
        t.vacancy_retry = min(sent + max(top.lease_ms, 0) / 1000 + 0.001, forced_at)
        self._log.debug("waiting_for_preferred", preferred=top.member, retry_in_s=round(t.vacancy_retry - sent, 3))

    async def _claim(self, sent: float, *, forced: bool) -> None:
        result = await self._bounded(self.store.claim(self.config.member_id, self.config.ttl_ms, self._highest_term))
        if result.status == 1:
            self._become_leader(result.term, sent, forced=forced)
        elif result.status == 0:
            self._note_leader(result.leader, result.free_in_us, sent)
            self._pending.dirty = True
        elif result.status == -2:
            # Redis lost terms; wait until every live member has reported the highest it saw
            self._timers.vacancy_retry = sent + max(result.leader_pttl_ms, 1) / 1000
            self._log.info("claims_held_for_term_recovery", wait_ms=result.leader_pttl_ms)
        else:
            await self._rejoin(as_youngest=False, why="lease lapsed before claiming")

    def _become_leader(self, term: int, sent: float, *, forced: bool = False, handoff: bool = False) -> None:
        """Lead ``term``; ``sent`` is when the lease we rely on was granted, at the latest (the
        renew deadline counts from it)."""
        t = self._timers
        self._epoch += 1
        self._role = Role.LEADER
        self._term = term
        self._highest_term = max(self._highest_term, term)
        t.renew_deadline = sent + self.config.renew_deadline
        # leaders elected together (one process leading many pools) would renew, and so expire,
        # together forever: renewing early is always safe, so spread the first renewal too
        t.next_beat = sent + self.config.heartbeat * random.uniform(0.5, 1.0)
        t.vacancy_retry = t.vacant_since = t.leader_expiry = None
        self._successor_id = None
        self._log = self._log.bind(term=term)
        self._set_leader(LeaderInfo(self.config.member_id, term, self._record()))
        self._last_led_term = max(self._last_led_term, term)
        self._emit(Elected(term))
        self._log.info("elected", forced=forced, handoff=handoff)

    def _step_down(self, reason: RevokeReason, *, detail: str = "") -> Awaitable[None] | None:
        """Stop acting as leader now; tell the application. Returns its acknowledgement."""
        if self._role is not Role.LEADER or self._term is None:
            return None
        term = self._term
        self._last_led_term = max(self._last_led_term, term)
        self._epoch += 1
        self._role = Role.FOLLOWER
        self._term = None
        self._timers.renew_deadline = None
        self._log.info("revoked", reason=reason.value, detail=detail or None)
        self._log = self._log.bind(term=None)
        if self._leader is not None and self._leader.member == self.config.member_id:
            self._leader = None  # we no longer vouch for it; the next read says who leads
        return self._emit(Revoked(term, reason))

    async def _resign(self, reason: RevokeReason, rejoin: bool) -> None:
        held = self._held()
        successor = ""
        if held is not None:
            successor = await self._pick_successor()
            await self._acknowledged(self._step_down(reason))
            if not rejoin:
                # rank ourselves last for one lease so the next member keeps the lead
                await self._bounded(
                    self.store.release(
                        held, reason.value, self.config.ttl_ms, successor=successor, ttl_ms=self.config.ttl_ms
                    )
                )
        if rejoin:
            await self._bounded(
                self.store.leave(self.config.member_id, reason.value, successor=successor, ttl_ms=self.config.ttl_ms)
            )
            await self._rejoin(as_youngest=True, why=reason.value)
        self._pending.dirty = True

    async def _check_takeover(self, members: list[MemberInfo], resigned: str | None) -> None:
        ranked = rank_members(members, self.config.ranker, avoid_nodes=await self._avoided_nodes(), resigned=resigned)
        if ranked and ranked[0].member != self.config.member_id and ranked[0].lease_ms > 0:
            held = self._held()
            self._log.info("takeover_by", preferred=ranked[0].member)
            await self._acknowledged(self._step_down(RevokeReason.TAKEOVER))
            if held is not None:
                await self._bounded(
                    self.store.release(
                        held, RevokeReason.TAKEOVER.value, successor=ranked[0].member, ttl_ms=self.config.ttl_ms
                    )
                )

    async def _avoided_nodes(self) -> frozenset[str]:
        nodes = set()
        for pool in self.config.avoid_pools:
            if pool == self.config.pool:
                continue
            found = await self._bounded(PoolStore(self._client, Keyspace(pool, self.config.prefix)).leader_record())
            if found is not None and found[2] is not None:
                nodes.add(found[2].node)
        return frozenset(nodes)

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
            with contextlib.suppress(*RETRYABLE, asyncio.CancelledError):
                pick = self._pick_successor()  # reads Redis only for anti-affinity
                successor = await (asyncio.wait_for(pick, self.config.heartbeat) if self.config.avoid_pools else pick)
        ack = self._step_down(RevokeReason.SHUTDOWN)
        with contextlib.suppress(asyncio.CancelledError):
            await self._acknowledged(ack)
        if self._joined:
            try:
                await asyncio.wait_for(
                    self.store.leave(
                        self.config.member_id,
                        RevokeReason.SHUTDOWN.value,
                        successor=successor,
                        ttl_ms=self.config.ttl_ms,
                    ),
                    self.config.heartbeat,
                )
                self._log.info("left")
            except RETRYABLE as exc:
                self._log.warning("leave_failed", error=str(exc) or type(exc).__name__)
        self._joined = False
        self._role = Role.STOPPED
        self._leader = None
