"""Fast failover: a leader whose process died is replaced in milliseconds, not after its lease,
through the liveness endpoints of :mod:`leaderpool.fast_failover.endpoints` and a confirmation through Redis.

A closed connection proves a death only when the dead side's own kernel closed it; silence, a
timeout or a reset a middlebox injected prove nothing. So a takeover before the lease ends needs
both:

- **a trigger**: the connection the next in line keeps to the leader's endpoint closes (EOF or
  reset), or a reconnect is refused, or another process answers there (a different nonce).
  Timeouts (keep-alive, a blackhole) are silence and never trigger.
- **a confirmation through Redis**: the leader registered the client id of its pub/sub
  connection (``leader_conn``, written by the claim and every renewal) and steps down the moment
  that connection drops. A dying process's kernel closes it as well, and Redis forgets the id at
  once. That connection subscribed to a channel of its own before it was registered (the
  registration says so: ``|s``), so the follower's ``bury`` script proves it gone by that
  channel's having no subscriber, and in the same script removes the lead with a
  compare-and-delete on member, term and registration and claims as usual, with a higher term:
  one round trip from the trigger to the new lead. Where the script cannot prove it (Redis has
  not read the close yet, an older registration, an ACL without ``PUBSUB NUMSUB``), the follower
  asks ``CLIENT LIST ID`` beside its loop until the id is gone, then buries. Where an ACL
  refuses CLIENT, the confirmation is a refused reconnect to the endpoint instead (see
  docs/design/guarantees.md for what it cannot tell apart).

The sockets (the process's listener, the links to other processes' listeners, the fallback
check) are :mod:`leaderpool.fast_failover.endpoints`; this module is one member's part: what it advertises,
registers while leading, watches while next in line, and how it confirms a death.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import NamedTuple, Protocol, TypeVar

from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.keys import connection_channel
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import SEPARATOR, ClaimStatus, LeaderConn, LeaderValue
from leaderpool.backend.redis_errors import COMMAND_REFUSED, RETRYABLE
from leaderpool.backend.watcher import Watcher
from leaderpool.config import MemberConfig
from leaderpool.events import LeaderInfo
from leaderpool.fast_failover import descriptor_slots
from leaderpool.fast_failover.endpoints import Endpoint, Link, endpoint_gone
from leaderpool.util.log import Logger, get_logger
from leaderpool.util.timeouts import cancel_and_wait

CONFIRM_PAUSES_S = (0.0,) * 8 + (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
"""When a trigger comes, the leader's registered connection is usually gone from Redis already
(the leader's endpoint keeps its connections in low descriptors, which a dying process releases
last: :mod:`leaderpool.fast_failover.descriptor_slots`), but it may still be listed for a moment (another process's
leader, a reconnected connection, a host where the order does not hold): ask again at once, one
round trip after the other (shorter than the event loop's smallest sleep) a few times, then
after these pauses, then every :data:`CONFIRM_PAUSE_MAX_S` until the lease would end anyway. A
loaded host can take a hundred milliseconds or more to tear a killed process down; asking beside
the election loop (a task) keeps the follower's heartbeats on time meanwhile."""
CONFIRM_PAUSE_MAX_S = 0.1
BURIED_REASON = "process_died"

log = get_logger("leaderpool.liveness")

T = TypeVar("T")


class Death(NamedTuple):
    """A leader whose death is proved (or is proved in the bury script itself, by
    ``proof_channel``), and the registration its lead is removed with (compare-and-delete)."""

    leader: LeaderValue
    registration: str
    proof_channel: str = ""
    """The dead leader's connection channel, whose having no subscriber the bury script checks;
    "" when the death was proved before (CLIENT LIST, or the endpoint)."""
    tries: int = 0
    """How many bury scripts found the connection still subscribed."""


class Succession(Protocol):
    """What fast failover reads of a member's view of its pool (the election's ``PoolView``):
    who leads, and whether this member is next in line."""

    @property
    def leader(self) -> LeaderInfo | None: ...

    @property
    def successor(self) -> bool: ...


class Bounded(Protocol):
    """How a Redis call is bounded in time (the election's ``Leadership.bounded``)."""

    def __call__(self, call: Awaitable[T], /) -> Awaitable[T]: ...


async def client_gone(client: AsyncClient, client_id: int) -> bool | None:
    """Whether the connection ``client_id`` is gone: Redis no longer lists it (CLIENT LIST ID), or
    lists it flagged ``A``, to be closed as soon as possible (Redis reads a peer's close and frees
    the client after the current batch of events: a dying leader's connection is often still
    listed, so flagged, when we ask). None when CLIENT is refused (an ACL, or Redis < 6.2)."""
    try:
        listed = await client.client_list(client_id=[client_id])
    except COMMAND_REFUSED:
        return None
    return not any(int(c.get("id", -1)) == client_id and "A" not in str(c.get("flags", "")) for c in listed)


# ---- one member's part ----


class FastFailover:
    """One member's fast failover: the endpoint it advertises, the registration of its
    connection while it leads, and, while it is next in line, the watch on its leader."""

    def __init__(
        self,
        config: MemberConfig,
        client: AsyncClient,
        store: PoolStore,
        poke: Callable[[], None],
        on_trigger: Callable[[LeaderValue], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._client = client
        self._store = store
        self._poke = poke
        self._on_trigger = on_trigger
        """Called the moment the watched leader's endpoint closes (the election decides whether to
        confirm: it does while it is the next in line), not at the loop's next turn."""
        self.enabled = config.fast_failover
        if self.enabled:  # before the watcher connects: see leaderpool.fast_failover.descriptor_slots
            descriptor_slots.reserve()
        self.endpoint: Endpoint | None = None
        self.watcher: Watcher | None = None
        self._registered: tuple[int, int] | None = None  # (term, client id) we registered
        self._link: Link | None = None
        self._watched: tuple[LeaderValue, str] | None = None  # (leader, its endpoint)
        self.confirmed_by = ""
        """How the last death was confirmed: ``subscription`` (in the bury script), ``client_list``
        (Redis, asked beside the loop) or ``endpoint`` (the fallback)."""
        self.asks = 0
        """How many times the last confirmation asked CLIENT LIST (0: the script proved it)."""
        self.confirmed: Death | None = None
        """A death to bury, for the loop: proved, or to be proved by the bury script."""
        self._until = 0.0  # when the suspect's lease would end anyway: the slow proof asks until then
        self._confirming: tuple[LeaderValue, asyncio.Task[None]] | None = None
        self._reported = ""

    async def start(self, watcher: Watcher) -> str:
        """Open (or share) the process's endpoint; returns what to advertise ("" when off)."""
        self.watcher = watcher
        if not self.enabled:
            return ""
        try:
            self.endpoint = await Endpoint.acquire(self.config, self._client)
        except OSError as exc:  # the address is taken or not ours: lead and follow, just not fast
            self.enabled = False
            log.error(
                "liveness_endpoint_failed",
                pool=self.config.pool,
                member=self.config.member_id,
                address=self.config.liveness_address or "(default)",
                error=str(exc),
                hint="fast failover is off for this member: crashes of its leaders wait for the lease",
            )
            return ""
        return self.endpoint.advertised

    async def close(self) -> None:
        """After the hand-over: stop watching and release the endpoint."""
        self.follow(None, "")
        await self._stop_confirming()
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            await endpoint.release()

    # ---- leading ----

    def registration(self) -> str:
        """What to register with a claim or a renewal: our pub/sub connection's client id, and
        whether it is subscribed to its own channel; "" when off or disconnected (then nobody
        can take the fast path for this lead)."""
        if not self.enabled or self.watcher is None:
            return ""
        return self.watcher.registration(self.config.prefix)

    def registered(self, term: int, conn: str) -> None:
        """A claim or renewal of ``term`` with ``conn`` succeeded: from now on, losing that
        connection ends the lead."""
        if conn and (self._registered is None or self._registered[0] != term):
            self._registered = (term, int(conn.partition(SEPARATOR)[0]))

    def ended(self) -> None:
        self._registered = None

    def lead_unsafe(self) -> str | None:
        """Why a leader must step down now: its registered connection dropped (a follower may
        prove it gone), or its endpoint stopped listening (a reconnect would be refused)."""
        if not self.enabled:
            return None
        if self._registered is not None and (self.watcher is None or self.watcher.client_id != self._registered[1]):
            return "registered redis connection dropped"
        if self.endpoint is not None and not self.endpoint.serving:
            return "liveness endpoint stopped listening"
        return None

    # ---- following ----

    def follow_from(self, view: Succession, *, following: bool) -> None:
        """Watch the leader of ``view`` while we follow and are next in line, else nothing."""
        leader = view.leader
        if following and view.successor and leader is not None and leader.member != self.config.member_id:
            self.follow(LeaderValue(leader.term, leader.member), leader.info.liveness if leader.info else "")
        else:
            self.follow(None, "")

    def follow(self, leader: LeaderValue | None, endpoint: str) -> None:
        """Watch ``leader``'s endpoint while we are next in line (None: watch nothing)."""
        want = (leader, endpoint) if self.enabled and leader is not None and endpoint else None
        if want == self._watched:
            return
        if self._link is not None and (want is None or want[1] != self._link.advertised):
            self._link.unwatch(id(self))
            self._link = None
        self._watched = want
        self.confirmed = None
        if self._confirming is not None:  # about a leader we no longer watch
            self._confirming[1].cancel()
            self._confirming = None
        if want is not None and self._link is None:
            self._link = Link.watch(want[1], id(self), self._on_closed)

    def _on_closed(self) -> None:
        if self._watched is not None:
            self._on_trigger(self._watched[0])

    def watch_report(self) -> str:
        """For the next heartbeat: "" when unchanged, "-" for none, else the leader value whose
        endpoint we are connected to (``status`` shows it)."""
        current = self._watched[0].encode() if self._watched and self._link and self._link.up else "-"
        return "" if current == self._reported else current

    def reported(self, report: str) -> None:
        if report:
            self._reported = report

    def rejoined(self) -> None:
        self._reported = ""  # our record (and the report) may have gone with Redis's data

    def on_trigger(self, suspect: LeaderValue, cached: str, until: float, bounded: Bounded, log: Logger) -> None:
        """The trigger came while we are next in line: where ``suspect``'s registration (``cached``,
        from our last reply) says its connection has a channel of its own, the loop's next turn
        proves the death and buries the lead in one script (the loop is woken); else confirm
        beside the loop (:meth:`confirm_in_background`)."""
        conn = LeaderConn.parse(cached)
        self._until = until
        if conn is not None and conn.term == suspect.term and conn.subscribed and conn.client_id > 0:
            self.confirmed_by, self.asks = "subscription", 0
            self.confirmed = Death(suspect, cached, connection_channel(self.config.prefix, conn.client_id))
            self._poke()
        else:
            self.confirm_in_background(suspect, cached, until, bounded, log)

    def still_subscribed(self, dead: Death, bounded: Bounded, log: Logger) -> None:
        """The bury script found the connection still subscribed, or could not ask. Redis frees a
        connection whose close it read (and its subscriptions) only after the batch of events it
        read the close in, which may be the batch that ran the script: the loop's next turn runs
        it once more, which Redis reads after that. Then (Redis had not read the close at all: a
        slow teardown) confirm beside the loop, with CLIENT LIST."""
        if dead.tries == 0:
            self.confirmed = dead._replace(tries=1)
            self._poke()
        else:
            self.confirm_in_background(dead.leader, dead.registration, self._until, bounded, log)

    def confirm_in_background(
        self, suspect: LeaderValue, cached: str, until: float, bounded: Bounded, log: Logger
    ) -> None:
        """The trigger came: confirm ``suspect``'s death beside the election loop, asking Redis
        until ``until`` (when its lease would end anyway, on the loop's clock). On proof it sets
        :attr:`confirmed` and wakes the loop, which buries the lead and claims. ``cached`` is the
        registration from our last reply."""
        if self._confirming is not None and self._confirming[0] == suspect and not self._confirming[1].done():
            return  # already asking (the endpoint closed again, or a reconnect was refused)
        if self._confirming is not None:
            self._confirming[1].cancel()
        task = asyncio.get_running_loop().create_task(self._confirm_death(suspect, cached, until, bounded, log))
        self._confirming = (suspect, task)

    async def _confirm_death(
        self, suspect: LeaderValue, cached: str, until: float, bounded: Bounded, log: Logger
    ) -> None:
        try:
            registration = await self._proof(suspect, cached, until, bounded, log)
        except RETRYABLE as exc:  # Redis is away: the lease decides, as for everything unproven
            log.info("liveness_trigger_unconfirmed", suspect=suspect.member, suspect_term=suspect.term, error=str(exc))
            return
        if registration is not None and self._watched is not None and self._watched[0] == suspect:
            self.confirmed = Death(suspect, registration)
            self._poke()

    async def _proof(
        self, suspect: LeaderValue, cached: str, until: float, bounded: Bounded, log: Logger
    ) -> str | None:
        """The registration to remove ``suspect``'s lead with (the bury script compares it), or None:
        no proof, the lease decides."""
        registration = cached
        conn = LeaderConn.parse(cached)
        if conn is None or conn.term != suspect.term:
            leader, conn, registration = await bounded(self._store.leader_conn())
            if leader != suspect or conn is None or conn.term != suspect.term:
                log.info("liveness_trigger_ignored", suspect=suspect.member, why="lead changed or not registered")
                return None
        if not await self._confirm(conn, until, bounded):
            log.info("liveness_trigger_unconfirmed", suspect=suspect.member, suspect_term=suspect.term)
            return None
        return registration

    async def _stop_confirming(self) -> None:
        confirming, self._confirming = self._confirming, None
        if confirming is not None:
            await cancel_and_wait(confirming[1])

    def log_takeover(self, log: Logger, dead: Death, claim: ClaimStatus) -> None:
        log.info(
            "leader_process_died",
            dead=dead.leader.member,
            dead_term=dead.leader.term,
            confirmed_by=self.confirmed_by,
            asks=self.asks,
            scripts=dead.tries + 1,
            claim=claim.name.lower(),
        )

    async def _confirm(self, conn: LeaderConn, until: float, bounded: Bounded) -> bool:
        self.asks = 0
        if conn.client_id > 0:
            for pause in _pauses(until, self._clock):
                if pause:
                    await asyncio.sleep(pause)
                self.asks += 1
                try:
                    gone = await bounded(client_gone(self._client, conn.client_id))
                except RETRYABLE:
                    continue  # a slow or lost round trip is no answer: ask again while time is left
                if gone is None:
                    break  # CLIENT refused to us: fall back to the endpoint
                if gone:
                    self.confirmed_by = "client_list"
                    return True
            else:
                return False
        # The fallback trusts a refusal only from an endpoint that answered us before: one we never
        # reached may be behind a firewall that rejects, which proves nothing about the process.
        watched, link = self._watched, self._link
        self.confirmed_by = "endpoint"
        return watched is not None and link is not None and link.ever_up and bool(await endpoint_gone(watched[1]))


def _pauses(until: float, clock: Callable[[], float]) -> Iterator[float]:
    """The pauses before each question: :data:`CONFIRM_PAUSES_S`, then the longest pause, until
    ``until`` (one last question after it is pointless: the lease ends then)."""
    yield from CONFIRM_PAUSES_S
    while clock() + CONFIRM_PAUSE_MAX_S < until:
        yield CONFIRM_PAUSE_MAX_S
