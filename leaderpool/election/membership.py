"""Membership: one member's record in its pool, and joining, rejoining and heartbeating.

A member is live while its lease (a deadline in the pool's leases zset) is in the future; the
heartbeat refreshes it (and, for a leader, renews the lead in the same script). A member whose
record is gone (Redis lost its data, or an operator evicted it) or whose lease lapsed (it was
paused) rejoins: as the youngest member when it was evicted, else with its original start time.
Each run of a member id is an incarnation, named in its record; a process whose id another live
incarnation holds is refused (:mod:`leaderpool.election.identity`).

A capability can ride on the heartbeat and the leave (:class:`BeatRider`): the unique names
(:class:`leaderpool.names.name_cache.HeldNames`) do, so a member holding names keeps them with
the same one script per beat. The election knows the seam, not the names.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from leaderpool import probe
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import Beat, BeatStatus, LeaderValue, Left
from leaderpool.config import MemberConfig
from leaderpool.election.identity import IdHolder, new_incarnation
from leaderpool.members import MemberInfo
from leaderpool.util import throttle
from leaderpool.util.constants import FIRST_BEAT_SPREAD
from leaderpool.util.jitter import pick, spread
from leaderpool.util.log import Logger

T = TypeVar("T")

CHECK_AFTER_BEATS = 1.5
"""A beat more than this many heartbeats after the last refresh reads our record and the
ranking's head (a late one: our lease may have lapsed and another run taken our id)."""
CHECK_EVERY = 8
"""...and so does every beat this many beats after the last that read them: a run whose record
another run replaced (proved dead while alive, behind a firewall) is refused within this many
heartbeats, and the ranking's head (who is first and next: a safety net, as members learn of
changes from the pool's messages and a glance) is read at least this often."""
Bounded = Callable[[Awaitable[T]], Awaitable[T]]


class BeatRider(Protocol):
    """What rides on a member's heartbeat and leave: while it has something to keep
    (:meth:`riding`), its beat and its leave replace the pool's (each wraps the pool's script,
    so a beat stays one script); it hears when the member joins, rejoins and stops."""

    def riding(self) -> bool:
        """Whether it has anything to keep now (else the pool's own beat and leave run)."""
        ...

    def beat(
        self,
        pool_keys: Keyspace,
        member: str,
        ttl_ms: int,
        held: LeaderValue | None,
        want_members: bool,
        seen_term: int,
        log: Logger,
        *,
        conn: str = "",
        watch: str = "",
        incarnation: str = "",
    ) -> Awaitable[Beat]:
        """The pool's heartbeat (:meth:`PoolStore.heartbeat`'s arguments), keeping what it holds too."""
        ...

    def leave(
        self, pool_keys: Keyspace, member: str, reason: str, *, successor: str, ttl_ms: int, incarnation: str = ""
    ) -> Awaitable[Left]:
        """The pool's leave (:meth:`PoolStore.leave`), freeing what it holds too."""
        ...

    def joined(self) -> None:
        """The member joined: it is live."""
        ...

    def rejoining(self) -> None:
        """The member is about to join again: not live until it has."""
        ...

    def stopped(self) -> None:
        """The member left (or gave up on leaving): it holds nothing any more."""
        ...


class Membership:
    """This member's record and lease in the pool. Redis calls go through the election's
    ``bounded`` (a leader's calls are bounded by its renew deadline)."""

    def __init__(self, config: MemberConfig, store: PoolStore, clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self._clock = clock
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at_ms: int | None = None
        """Join time on Redis's clock: the default ranking's "longest running" is the smallest."""
        self.incarnation = new_incarnation()
        """This run of the member id (:mod:`leaderpool.election.identity`)."""
        self.since_ms = 0
        """When this incarnation first joined (Redis's clock): it stays when we rejoin."""
        self.joined_at_ms = 0
        """When we last joined (Redis's clock): a hand-over granted before it was granted to us
        before we left, or to an earlier run under our id, and is never acted on unconfirmed."""
        self.lease_until = 0.0
        """Our lease's end as we last renewed it, on our clock (no later than Redis's): past it,
        another process may have taken our id over, so nothing heard is acted on unconfirmed."""
        self.lease_seen = 0.0
        """When the reply that set :attr:`lease_until` came in (our clock): Redis had renewed the
        lease by then (the singletons' owner counts a renewal seen before its deadline)."""
        self.joined = False
        self.next_beat = 0.0
        self._last_beat: float | None = None
        self._unchecked = 0  # beats since one read our record
        self._evicted = False
        self.liveness = ""
        """Our process's liveness endpoint, advertised in the record (set before joining)."""
        self.rider: BeatRider | None = None
        """What rides on our heartbeat and leave (the names we hold), if anything."""

    @property
    def clock(self) -> Callable[[], float]:
        """The election's clock (monotonic seconds)."""
        return self._clock

    def ride(self, rider: BeatRider) -> None:
        """Let ``rider`` ride on our heartbeat and leave (one rider: the last one given)."""
        self.rider = rider
        if self.joined:
            rider.joined()

    def record(self, lease_ms: int = 0) -> MemberInfo:
        assert self.started_at_ms is not None
        c = self.config
        return MemberInfo(
            c.member_id,
            c.node,
            self.host,
            self.pid,
            c.priority,
            self.started_at_ms,
            c.meta,
            lease_ms,
            self.liveness,
            self.incarnation,
            self.since_ms or self.started_at_ms,
        )

    # ---- eviction: set by the pool's "evicted" message, consumed by the rejoin ----

    def note_evicted(self) -> None:
        self._evicted = True

    @property
    def evicted(self) -> bool:
        """An operator removed us (``leaderpool-cli evict``) and we have not rejoined yet."""
        return self._evicted

    # ---- I/O ----

    async def join(
        self, bounded: Bounded[Any], seen_term: int, log: Logger, stopping: Callable[[], bool] = lambda: False
    ) -> None:
        """Register; while another incarnation holds our id, watch it (:class:`IdHolder`): raises
        :class:`~leaderpool.errors.MemberIdInUse` if it is live, joins once it is proved dead or
        lapses. Returns unjoined if ``stopping()`` turns true meanwhile."""
        if self.started_at_ms is None:
            self.started_at_ms = await bounded(self.store.redis_time_ms())
        holder = IdHolder(self.config, self._clock, log)
        while True:
            sent = self._clock()
            reply = await bounded(
                self.store.register(self.record(), self.config.ttl_ms, seen_term, replace=holder.replace)
            )
            if reply.joined:
                break
            if not self.since_ms:  # never joined yet: this run starts when it gets the id
                self.started_at_ms = reply.now_ms
            wait = await holder.refused(reply)
            if stopping():
                return
            await asyncio.sleep(wait)
        self.since_ms = self.since_ms or self.started_at_ms
        holder.took_over(log)
        self.lease_until, self.lease_seen = sent + self.config.ttl_s, self._clock()
        self.joined_at_ms = reply.now_ms
        self.joined = True
        self._unchecked = pick(CHECK_EVERY)  # members that join together check apart
        if self.rider is not None:
            self.rider.joined()
        self.next_beat = sent + self.config.heartbeat * spread(*FIRST_BEAT_SPREAD)
        log.info("joined", node=self.config.node, priority=self.config.priority, started_at_ms=self.started_at_ms)

    async def rejoin(
        self,
        bounded: Bounded[Any],
        seen_term: int,
        log: Logger,
        *,
        why: str,
        youngest: bool,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """Join again; as the youngest member when asked or when we were evicted (which this
        consumes: the one place the eviction flag is cleared)."""
        youngest = youngest or self._evicted
        self._evicted = False
        self.joined = False
        if self.rider is not None:
            self.rider.rejoining()
        if youngest:
            self.started_at_ms = None
        log.info("rejoining", why=why, as_youngest=youngest)
        await self.join(bounded, seen_term, log, stopping)

    async def beat(
        self,
        bounded: Bounded[Beat],
        held: LeaderValue | None,
        want_members: bool,
        seen_term: int,
        log: Logger,
        *,
        conn: str = "",
        watch: str = "",
    ) -> tuple[float, Beat]:
        """Refresh our lease (and renew ``held``, registering ``conn``; ``watch``: our watch
        report); returns when the request was sent, and the reply. A beat that starts more than
        half a heartbeat late is logged."""
        sent = self._clock()
        c = self.config
        rider = self.rider
        check = True  # a rider's beat reads our record every time
        if rider is not None and rider.riding():
            call = rider.beat(
                self.store.keys,
                c.member_id,
                c.ttl_ms,
                held,
                want_members,
                seen_term,
                log,
                conn=conn,
                watch=watch,
                incarnation=self.incarnation,
            )
        else:
            # our record (and the ranking's head) is read when our lease may have lapsed since we
            # last refreshed it (a late beat: another run may have taken our id meanwhile), and
            # every CHECK_EVERY beats; a lease that is gone is never started again
            gap = sent - self.lease_until + c.ttl_s > CHECK_AFTER_BEATS * c.heartbeat
            check = gap or self._unchecked >= CHECK_EVERY - 1
            call = self.store.heartbeat(
                c.member_id,
                c.ttl_ms,
                held,
                want_members,
                seen_term,
                conn=conn,
                watch=watch,
                batched=True,
                incarnation=self.incarnation,
                check=check,
            )
        beat = await bounded(call)
        self._unchecked = 0 if check else self._unchecked + 1
        if beat.status is not BeatStatus.UNKNOWN_MEMBER:
            self.lease_until, self.lease_seen = sent + c.ttl_s, self._clock()
        probe.heartbeat(c.pool, c.member_id, leading=held is not None, seconds=self._clock() - sent)
        previous, self._last_beat = self._last_beat, sent
        late = 0.0 if previous is None else sent - previous - c.heartbeat
        if late > c.heartbeat / 2 and (suppressed := throttle.allow("heartbeat_late")) is not None:
            log.warning("heartbeat_late", late_s=round(late, 3), suppressed=suppressed or None)
        return sent, beat

    def leave(self, reason: str, successor: str) -> Awaitable[Left]:
        """Our leave (ending our lead too, handing it to ``successor`` when live), freeing what
        rides on it in the same script."""
        c, rider, run = self.config, self.rider, self.incarnation
        if rider is not None and rider.riding():
            return rider.leave(
                self.store.keys, c.member_id, reason, successor=successor, ttl_ms=c.ttl_ms, incarnation=run
            )
        return self.store.leave(c.member_id, reason, successor=successor, ttl_ms=c.ttl_ms, incarnation=run)

    def stopped(self) -> None:
        """We left (or gave up on leaving): not joined, and nothing rides on us any more."""
        self.joined = False
        if self.rider is not None:
            self.rider.stopped()
