"""Holding a lead: its term and renew deadline, bounding a leader's Redis calls, and every way of
giving the lead up (stepping down, resigning, a takeover, shutting down).

A leader acts only until its renew deadline, counted on the local monotonic clock from the
*sending* time of its last successful renewal; every Redis call it makes is bounded by what is
left of it. A graceful hand-over first tells the application (and waits for it, bounded) and
only then ends the lead in Redis, handing it to the next member in the same script.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from leaderpool import probe
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE, translate_redis_errors
from leaderpool.config import MemberConfig
from leaderpool.election import succession as succ
from leaderpool.election.membership import Membership
from leaderpool.errors import LeaderpoolError, NotLeader
from leaderpool.events import Elected, Event, Revoked, RevokeReason, Role, Sink
from leaderpool.members import MemberInfo
from leaderpool.util.constants import MIN_CALL_TIMEOUT_S
from leaderpool.util.log import Logger
from leaderpool.util.ticker import coarse_within
from leaderpool.util.timeouts import WaitTimedOut, within

T = TypeVar("T")


class Leadership:
    """This member's role and, while leading, its term and renew deadline."""

    def __init__(
        self,
        config: MemberConfig,
        store: PoolStore,
        membership: Membership,
        sink: Sink,
        clock: Callable[[], float],
        log: Logger,
        *,
        on_end: Callable[[], None],
    ) -> None:
        self.config = config
        self.store = store
        self.membership = membership
        self._sink = sink
        self._clock = clock
        self._on_end = on_end  # runs before on_revoked is told: the election's cache forgets us
        self.log = log
        self.role = Role.FOLLOWER
        self.term: int | None = None
        self.renew_deadline: float | None = None
        self.last_led_term = 0
        self.epoch = 0  # bumped on every change of role: a reply to an older epoch is stale
        self._shutdown_ack: Awaitable[None] | None = None
        self.shutdown_began = False
        """A stop was asked for while leading: the lead was given up locally at once
        (:meth:`begin_shutdown`) and is still ours in Redis until :meth:`shutdown` hands it over."""

    def emit(self, event: Event) -> Awaitable[None] | None:
        """Hand ``event`` to the face; returns its acknowledgement (None if the face failed)."""
        probe.event(self.config.pool, self.config.member_id, event)
        try:
            return self._sink(event)
        except Exception:
            self.log.exception("event_sink_failed", event_type=type(event).__name__)
            return None

    @property
    def leading(self) -> bool:
        return self.role is Role.LEADER

    @property
    def is_leader(self) -> bool:
        """True only while leading *and* inside the renew deadline."""
        deadline = self.renew_deadline
        return self.leading and deadline is not None and self._clock() < deadline

    @property
    def current_term(self) -> int | None:
        """The term of this member's leadership, None while not leading."""
        return self.term if self.leading else None

    @property
    def current_deadline(self) -> float | None:
        """While leading, the instant on the election's clock (monotonic seconds) at which this lead ends
        unless renewed first; None while not leading. Work done for the lead must not start
        after it, whatever order callbacks run in after a freeze."""
        return self.renew_deadline if self.leading else None

    def held(self) -> LeaderValue | None:
        return LeaderValue(self.term, self.config.member_id) if self.leading and self.term is not None else None

    def begin(self, term: int, sent: float) -> None:
        """Lead ``term``; ``sent`` is when the lease we rely on was granted, at the latest."""
        self.epoch += 1
        self.role, self.term = Role.LEADER, term
        self.renew_deadline = sent + self.config.renew_deadline
        self.last_led_term = max(self.last_led_term, term)
        self.log = self.log.bind(term=term)

    def announce(self, *, forced: bool, handoff: bool, since: float) -> None:
        """Tell the application we lead; ``since``: when we saw the lead vacant (a contest), or
        when it was granted to us (a hand-over)."""
        self.emit(Elected(self.term or 0))
        self.log.soon("info", "elected", forced=forced, handoff=handoff)  # after the application's callback
        c = self.config
        probe.took_lead(c.pool, c.member_id, handoff=handoff, seconds=max(self._clock() - since, 0.0))

    def renewed(self, sent: float) -> None:
        self.renew_deadline = sent + self.config.renew_deadline

    def check_deadline(self, now: float) -> None:
        if self.leading and self.renew_deadline is not None and now >= self.renew_deadline:
            self.step_down(RevokeReason.LEASE_LOST, detail="renew deadline passed")

    def step_down(self, reason: RevokeReason, *, detail: str = "") -> Awaitable[None] | None:
        """Stop acting as leader now; tell the application. Returns its acknowledgement."""
        if not self.leading or self.term is None:
            return None
        term = self.term
        self.last_led_term = max(self.last_led_term, term)
        self.epoch += 1
        self.role, self.term, self.renew_deadline = Role.FOLLOWER, None, None
        # after the application's callback and the election's next step (a hand-over's script)
        self.log.soon("info", "revoked", turns=2, reason=reason.value, detail=detail or None)
        self.log = self.log.bind(term=None)
        self._on_end()
        return self.emit(Revoked(term, reason))

    async def bounded(self, call: Awaitable[T]) -> T:
        """Run one Redis call, bounded so a hung connection cannot keep a stale leader acting."""
        timeout = max(self.config.heartbeat, MIN_CALL_TIMEOUT_S)
        if not self.leading:  # a follower's bound need not be exact: to a tick, on the shared ticker
            return await coarse_within(call, timeout)
        if self.renew_deadline is not None:
            timeout = min(timeout, self.renew_deadline - self._clock())
            if timeout <= 0:
                # the call may carry our leader value: never send it once we stopped leading
                if asyncio.iscoroutine(call):
                    call.close()
                self.step_down(RevokeReason.LEASE_LOST, detail="renew deadline passed")
                raise asyncio.TimeoutError("renew deadline passed")
        return await within(call, timeout)

    # ---- giving the lead up ----

    async def avoided_nodes(self) -> frozenset[str]:
        """Anti-affinity: the nodes running the leaders of the pools this member avoids."""
        c = self.config
        stores = [PoolStore(self.store.client, Keyspace(p, c.prefix)) for p in c.avoid_pools if p != c.pool]
        return succ.leader_nodes([await self.bounded(s.leader_record()) for s in stores])

    async def successor(self, view: Sequence[MemberInfo], hint: str | None = None) -> str:
        """Whom to hand our lead to (reads Redis only for anti-affinity); ``hint``: Redis's
        ranking already said (the default ranking: see :attr:`PoolView.ranked_in_redis`)."""
        if hint is not None:
            return hint
        avoid = await self.avoided_nodes() if self.config.avoid_pools else frozenset()
        return succ.successor_for(view, self.config.member_id, self.config.ranker, avoid)

    async def acknowledged(self, ack: Awaitable[None] | None) -> None:
        """Wait (bounded by one lease) until the application has handled a revocation."""
        if ack is None:
            return
        try:
            await within(asyncio.ensure_future(ack), self.config.ttl_s)
        except asyncio.TimeoutError:
            self.log.warning("revoked_callback_slow", waited_s=self.config.ttl_s)
        except Exception:
            self.log.exception("revoked_callback_failed")

    async def resign(
        self, reason: RevokeReason, view: Sequence[MemberInfo], *, rejoin: bool, seen_term: int, hint: str | None = None
    ) -> bool:
        """Hand the lead (if held) to the next member; with ``rejoin``, leave and rejoin as the
        youngest member (one script ends the lead and the membership). True when a lead was
        handed over: the application was told (and waited for), and Redis released it."""
        held, successor, ttl_ms = self.held(), "", self.config.ttl_ms
        if held is not None:
            successor = await self.successor(view, hint)
            await self.acknowledged(self.step_down(reason))
            if not rejoin:  # rank ourselves last for one lease so the next member keeps the lead
                await self.bounded(self.store.release(held, reason.value, ttl_ms, successor=successor, ttl_ms=ttl_ms))
        if rejoin:
            await self.bounded(
                self.store.leave(
                    self.config.member_id,
                    reason.value,
                    successor=successor,
                    ttl_ms=ttl_ms,
                    incarnation=self.membership.incarnation,
                )
            )
            await self.membership.rejoin(self.bounded, seen_term, self.log, why=reason.value, youngest=True)
        return held is not None

    async def check_takeover(self, members: Sequence[MemberInfo], resigned: str | None) -> None:
        """With takeover on: hand the lead to a better-ranked live member."""
        c = self.config
        avoid = await self.avoided_nodes()
        preferred = succ.preferred_over(members, c.member_id, c.ranker, avoid_nodes=avoid, resigned=resigned)
        await self.take_over_by(preferred.member if preferred else None)

    async def take_over_by(self, preferred: str | None) -> None:
        """With takeover on: hand the lead to ``preferred`` (a live member ranked above us; None
        or ourselves: keep leading)."""
        c = self.config
        if not preferred or preferred == c.member_id:
            return
        held = self.held()
        self.log.info("takeover_by", preferred=preferred)
        await self.acknowledged(self.step_down(RevokeReason.TAKEOVER))
        if held is not None:
            reason = RevokeReason.TAKEOVER.value
            await self.bounded(self.store.release(held, reason, successor=preferred, ttl_ms=c.ttl_ms))

    def begin_shutdown(self) -> None:
        """The stop was asked for: stop acting as leader now, telling the application at once
        (its work stops while the election's loop wakes up). The lead stays ours in Redis until
        :meth:`shutdown` has waited for the application and hands it over."""
        if self.leading and not self.shutdown_began:
            self.shutdown_began = True
            self._shutdown_ack = self.step_down(RevokeReason.SHUTDOWN)

    async def shutdown(self, view: Sequence[MemberInfo], *, abandoned: bool, hint: str | None = None) -> None:
        """Stop leading (telling the application first), then leave: one script does both, so
        the next member takes over at once instead of waiting for us. ``abandoned``: neither,
        as a crash would."""
        if abandoned:
            self.role, self.term = Role.STOPPED, None
            return
        successor = ""
        if self.leading or self.shutdown_began:
            with contextlib.suppress(*RETRYABLE, LeaderpoolError, asyncio.CancelledError):
                pick = self.successor(view, hint)
                successor = await (within(pick, self.config.heartbeat) if self.config.avoid_pools else pick)
        with contextlib.suppress(asyncio.CancelledError):
            early, self._shutdown_ack = self._shutdown_ack, None
            await self.acknowledged(early)  # the application stopped the work of the lead given up at the stop
            await self.acknowledged(self.step_down(RevokeReason.SHUTDOWN))  # a lead taken up since
        if self.membership.joined:
            try:
                # what rides on it (our names) is freed in the same script, and announced
                await within(self.membership.leave(RevokeReason.SHUTDOWN.value, successor), self.config.heartbeat)
                self.log.info("left")
            except Exception as exc:  # stopping anyway: our lease ends on its own
                self.log.warning("leave_failed", error=str(exc) or type(exc).__name__)
        self.membership.stopped()
        self.role = Role.STOPPED


async def handed_over(done: asyncio.Future[bool], timeout_s: float, pool: str, member: str) -> None:
    """Wait for a resign the core was asked for (``done``: its outcome); raise what ``resign()``
    raises: ``TimeoutError`` past ``timeout_s``, ``NotLeader`` when no lead was left to hand over,
    the translated Redis error when the release failed."""
    try:
        await asyncio.wait([done], timeout=timeout_s)
    finally:
        if not done.done():  # timed out or cancelled: nobody waits for it any more
            done.cancel()
    if done.cancelled():
        raise WaitTimedOut(f"resign() timed out: the hand-over of pool {pool!r} was not done within {timeout_s:g}s")
    with translate_redis_errors(pool=pool, member=member):
        handed = done.result()
    if not handed:
        raise NotLeader("resign(): the lead ended before it could be handed over", pool=pool, member=member)
