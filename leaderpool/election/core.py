"""The election state machine: one member of one pool, written once in asyncio.

The blocking face (:mod:`leaderpool.blocking`) and the asyncio face (:mod:`leaderpool.aio`) both
drive this core; they differ only in how they deliver events to the application. Membership
(join, rejoin, heartbeat) is :mod:`leaderpool.election.membership`; holding and giving up a lead,
:mod:`leaderpool.election.leadership`; reading the pool, claiming and taking up a lead,
:mod:`leaderpool.election.contest`; what a notification means, :mod:`leaderpool.election.notifications`;
when the loop wakes, :mod:`leaderpool.election.wakeups`; who comes next and every deadline computed
from a reply are pure functions in :mod:`leaderpool.election.succession`; what goes over the wire is
:mod:`leaderpool.backend.protocol`.

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
from collections.abc import Callable

from leaderpool import probe
from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import BeatStatus, LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.config import MemberConfig
from leaderpool.election import succession as succ
from leaderpool.election.contest import Contest, lost_reason
from leaderpool.election.leadership import Leadership
from leaderpool.election.membership import Membership
from leaderpool.election.notifications import Notifications
from leaderpool.election.retry import Retries
from leaderpool.election.view import PoolView
from leaderpool.election.wakeups import Wakeups
from leaderpool.errors import MemberIdInUse, ScriptError
from leaderpool.events import LeaderInfo, RevokeReason, Role, Sink
from leaderpool.fast_failover.failover import FastFailover
from leaderpool.util.clock import SYSTEM_CLOCK, Clock, as_clock
from leaderpool.util.log import Logger, get_logger


class ElectionCore:
    """One member's election, run by :meth:`run` on an event loop."""

    def __init__(
        self,
        config: MemberConfig,
        client: AsyncClient,
        sink: Sink,
        *,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
    ) -> None:
        seam = as_clock(clock)  # time is read through this one seam (the test kit moves it by hand)
        clock = seam.now
        self.config = config
        self.keys = Keyspace(config.pool, config.prefix)
        self.store = PoolStore(client, self.keys)
        self.membership = Membership(config, self.store, clock)
        log = get_logger("leaderpool", pool=config.pool, member=config.member_id, term=None)
        self.lead = Leadership(config, self.store, self.membership, sink, clock, log, on_end=self._forget_own_lead)
        self.view = PoolView(config, self.lead.emit)
        self.wakeups = Wakeups(config, self.membership, self.lead, self.view, seam)
        self.fast = FastFailover(config, client, self.store, self.wakeups.poke, self._on_trigger, clock)
        self.contest = Contest(
            config,
            self.store,
            self.membership,
            self.lead,
            self.view,
            self.fast,
            self.wakeups,
            clock,
            lost_membership=self._lost_membership,
            check_registration=self._check_registration,
        )
        self.notifications = Notifications(
            config,
            self.keys,
            self.membership,
            self.lead,
            self.view,
            self.wakeups,
            clock,
            resign=self.request_resign,
            accept_handoff=self.contest.accept_handoff,
            check_registration=self._check_registration,
        )
        self._client = client
        self._clock = clock
        self._spin_lead_s = seam.spin_lead_s
        self._retries = Retries(config.heartbeat)
        self._abandoned = False

    @property
    def _log(self) -> Logger:
        return self.lead.log  # pool and member bound, and the term while leading

    # ---- state the faces read (from any thread: plain attribute reads; also self.lead's) ----

    @property
    def leader(self) -> LeaderInfo | None:
        """The current leader from the local cache (kept fresh by the watcher)."""
        return self.view.leader

    @property
    def last_error(self) -> str | None:
        """What the last failed Redis call said (a refused password, a refused connection), None
        since a call succeeded: the reason a wait for a leader times out."""
        return self._retries.last_error

    # ---- requests (call on the loop's thread) ----

    def request_resign(
        self, reason: RevokeReason = RevokeReason.RESIGNED, *, rejoin: bool = False
    ) -> asyncio.Future[bool]:
        """Hand the lead over (if held); with ``rejoin``, also rejoin as the youngest member.
        Returns a future, done once the loop has applied the request: True when a lead was
        handed over (``on_revoked`` returned, Redis released it), False when none was held; it
        holds the error when the hand-over's Redis call failed. A request made before the last
        one was applied joins it (the later reason wins)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        pending = self.wakeups.pending
        pending.resign = (reason, rejoin)
        pending.resign_waiters.append(done)
        self.wakeups.poke()
        return done

    def request_stop(self) -> None:
        """Stop: a lead held is given up now (``on_revoked`` is dispatched at once, so the
        application's work stops while the loop wakes, not a turn later); the loop's last turn
        waits for it, then hands the lead over and leaves in one script."""
        self.wakeups.pending.stop = True
        if not self._abandoned:
            self.lead.begin_shutdown()
        self.wakeups.poke()

    def abandon(self) -> None:
        """Stop without releasing or leaving, as a crash would (for tests and chaos drills):
        the others take over when the lease expires."""
        self._abandoned = True
        self.request_stop()

    def _on_trigger(self, suspect: LeaderValue) -> None:
        """The leader's liveness endpoint closed: while we are next in line, prove its death through
        Redis at once (in the bury script, or beside the loop) and bury its lead and claim."""
        if self.lead.role is Role.FOLLOWER and self.view.successor:
            expiry = self.wakeups.timers.leader_expiry
            until = expiry if expiry is not None else self._clock() + self.config.ttl_s
            self.fast.on_trigger(suspect, self.view.leader_conn, until, self.lead.bounded, self._log)

    # ---- the loop ----

    async def run(self) -> None:
        """Join, elect, lead or follow until :meth:`request_stop`; then leave the pool. Raises
        :class:`~leaderpool.errors.ScriptError` (after leaving) when a script fails, and
        :class:`~leaderpool.errors.MemberIdInUse` when another live process holds our member id."""
        pending, timers = self.wakeups.pending, self.wakeups.timers
        watcher = shared_watcher(self._client)
        await self.notifications.start(watcher)
        self.membership.liveness = await self.fast.start(watcher)
        try:
            while not pending.stop:
                try:
                    await self._turn()
                    self._retries.succeeded(self._log)
                    timers.backoff_until = None
                except ScriptError as exc:
                    self._log.error("script_failed", script=exc.script, error=str(exc))
                    raise
                except MemberIdInUse as exc:  # another live process runs our id: it goes on, we end
                    self._log.error("member_id_in_use", error=str(exc), holder_pid=exc.holder_pid)
                    raise
                except RETRYABLE as exc:
                    self._on_failure(exc)
                except Exception as exc:  # a bug must not leave a zombie member: log, back off, go on
                    self._log.exception("election_turn_failed")
                    self._on_failure(exc)
                if not pending.stop:
                    await self.wakeups.sleep()
        finally:
            held = self.lead.leading or self.lead.shutdown_began
            await self.lead.shutdown(self.view.members, abandoned=self._abandoned, hint=self.view.ranked_successor())
            # a resign not applied before the stop: the stop handed the lead over instead
            _settle(self.wakeups.pending.resign_waiters, held and not self._abandoned)
            await self.fast.close()  # after the hand-over: a leader never closes its endpoint
            self.view.leader = None
            await self.notifications.stop()

    async def _turn(self) -> None:
        pending, timers, alarm = self.wakeups.pending, self.wakeups.timers, self.wakeups.alarm
        now = self._clock()
        self.lead.check_deadline(now)
        self._check_registration()
        if not self.membership.joined:
            await self.membership.join(self.lead.bounded, self.view.seen_term, self._log, self._stopping)
            if not self.membership.joined:  # asked to stop while our id was held
                return
            pending.dirty = True
        if pending.resign is not None:
            (reason, rejoin), waiters = pending.resign, pending.resign_waiters
            pending.resign, pending.resign_waiters = None, []
            try:
                handed = await self.lead.resign(
                    reason,
                    self.view.members,
                    rejoin=rejoin,
                    seen_term=self.view.seen_term,
                    hint=self.view.ranked_successor(),
                )
            except BaseException as exc:
                _settle(waiters, error=exc)
                raise
            finally:
                pending.dirty = True
            _settle(waiters, handed)
        if (dead := self.fast.confirmed) is not None:  # its process died (or the script proves it): bury and claim
            self.fast.confirmed = None
            if self.lead.role is Role.FOLLOWER and self.view.successor:
                await self.contest.claim(self._clock(), successor=True, dead=dead)
        if now >= self.membership.next_beat:
            await self._beat()
        expiry, successor = timers.leader_expiry, self.view.successor
        if successor and expiry is not None and 0 < expiry - now <= self._spin_lead_s and not pending.vacated:
            while self._clock() < expiry and not alarm.rung:
                await asyncio.sleep(0)  # bounded by the clock's spin_lead_s
            now = self._clock()
        following = self.lead.role is Role.FOLLOWER
        if pending.vacated or (following and expiry is not None and now >= expiry):
            pending.vacated = False
            if following and successor:
                await self.contest.claim(self._clock(), successor=True)
            elif following and self.view.successor_id is not None:
                # The next in line claims now and its claim is announced; look shortly anyway
                # (no notifications on some Redis services, or the next in line died too).
                base = now if expiry is None else min(now, expiry)  # woken late on purpose: see Wakeups.next_wakeup
                soon = base + succ.vacancy_grace(self.config.heartbeat)
                retry = timers.vacancy_retry
                timers.vacancy_retry = soon if retry is None else min(retry, soon)
                timers.leader_expiry = None
            else:
                pending.dirty = True
        retry, reread = timers.vacancy_retry, timers.reread_at
        if pending.dirty or (retry is not None and now >= retry) or (reread is not None and now >= reread):
            pending.dirty = False
            try:
                await self.contest.settle()
            except BaseException:
                pending.dirty = True
                raise
        self.fast.follow_from(self.view, following=self.lead.role is Role.FOLLOWER)  # the next in line watches
        await self.notifications.hear_keyspace(self.notifications.wants_keyspace())

    def _on_failure(self, exc: BaseException) -> None:
        deadline = self.lead.renew_deadline if self.lead.leading else None
        renew_left = None if deadline is None else deadline - self._clock()
        self.wakeups.timers.backoff_until = self._clock() + self._retries.failed(
            exc, self._log, renew_left_s=renew_left
        )
        self.lead.check_deadline(self._clock())

    # ---- heartbeats and membership ----

    async def _beat(self) -> None:
        held, epoch = self.lead.held(), self.lead.epoch
        ranked = self.view.ranked_in_redis  # else a leader with takeover ranks the listing itself
        want_members = self.lead.leading and self.config.takeover and not ranked
        conn, watch = self.fast.registration() if held else "", self.fast.watch_report()
        sent, beat = await self.membership.beat(
            self.lead.bounded, held, want_members, self.view.seen_term, self._log, conn=conn, watch=watch
        )
        if epoch != self.lead.epoch:  # a hand-over made us leader meanwhile: this reply renewed nothing
            if self.wakeups.pending.stop and ranked and beat.ranked and held is not None:
                # or a stop gave our lead up while the beat was out: whom the leave hands it to
                # is still whom Redis ranked after us (a member that joined meanwhile, say)
                self.view.successor_id = beat.next
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
        elif self.config.fast_failover and 0 <= beat.live_count != len(self.view.members):
            self.wakeups.pending.dirty = True  # a member lapsed: the next in line (who watches) may be another
        if self.lead.leading and held is not None:
            if beat.status is BeatStatus.OK:
                self.lead.renewed(sent)
                self._check_registration(held.term, conn)
            else:
                self.lead.step_down(lost_reason(self.membership), detail="leader key no longer ours")
        self.contest.note_leader(beat.leader, beat.free_in_us, sent)
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
            self.lead.step_down(lost_reason(self.membership), detail=detail)
        await self.membership.rejoin(
            self.lead.bounded, self.view.seen_term, self._log, why=detail, youngest=False, stopping=self._stopping
        )
        self.wakeups.pending.dirty = True

    def _stopping(self) -> bool:
        return self.wakeups.pending.stop

    def _check_registration(self, term: int = 0, conn: str = "") -> None:
        """A leader whose registered connection dropped (a follower could prove it gone) or whose
        liveness endpoint stopped listening steps down at once. ``term``/``conn``: a claim or
        renewal just registered ``conn``."""
        if term:
            self.fast.registered(term, conn)
        if self.lead.leading and (unsafe := self.fast.lead_unsafe()):
            self.lead.step_down(RevokeReason.LEASE_LOST, detail=unsafe)
            self.wakeups.poke(dirty=True)

    def _forget_own_lead(self) -> None:
        self.fast.ended()
        self.view.forget_own_lead()


def _settle(waiters: list[asyncio.Future[bool]], handed: bool = False, *, error: BaseException | None = None) -> None:
    """Tell whoever waits for a resign how it went (a waiter that gave up was cancelled)."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(handed)
        elif isinstance(error, asyncio.CancelledError):
            waiter.cancel()
        else:
            waiter.set_exception(error)
            waiter.add_done_callback(_retrieved)
    waiters.clear()


def _retrieved(waiter: asyncio.Future[bool]) -> None:
    """No "exception was never retrieved" when nobody awaited the resign's outcome."""
    if not waiter.cancelled():
        waiter.exception()
