"""One member's side of the singletons: claim what the placer assigns it, confirm what it holds
once per beat (one script for all of them), hand over kindly what is assigned elsewhere, and
stop everything the moment its ownership may have lapsed.

Ownership lasts while the member's pool lease does (no lease per singleton). The member's
**own deadline** is the end of its lease as its last confirmation knew it (the election's
heartbeat, or this module's sync), less the leader's safety margin (``ttl - renew_deadline``).
A confirmation counts only if its reply came in before the deadline then in force: Redis had
renewed (or read) the lease before it could lapse, so nobody else could have claimed meanwhile.
A member frozen past its lease, then thawed, finds its deadline gone and stops all it ran, as a
frozen leader does, even though its heartbeat may refresh the lapsed lease. The heartbeat's
renewal is taken in whenever the owner looks at its deadline (at each turn, and when it wakes at
the deadline itself), not only when it last synced: the owner's beat and the election's are not
in step, and a deadline judged on a stale lease stopped everything that was safely renewed.
Its registered connection dropping (a claimer may prove it gone) stops everything as well.

Runs on the election's loop; the application's callbacks run off it (:class:`Callbacks`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from leaderpool.backend.keys import connection_channel
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.config import MemberConfig
from leaderpool.singletons.singleton_store import Claim, ClaimStatus, SavedState, SingletonStore, SyncReply
from leaderpool.util.alarm import Alarm
from leaderpool.util.log import Logger
from leaderpool.util.timeouts import within

FAILURES: tuple[type[BaseException], ...] = (TimeoutError, *RETRYABLE)
"""A call that failed or ran past our deadline: retried at the next turn."""

ANY_TERM = 0
"""An owed release of whatever term of ours Redis holds (a claim whose reply was lost)."""

STOPPING, MOVED, LOST = "stopping", "moved", "lost"
"""Why a singleton stops here: this member stops (its state is saved and handed over), the placer
moved it or it was removed from the pool (saved, handed over), its ownership lapsed (nothing
saved: another member may run it already)."""


class Callbacks(Protocol):
    """What the face runs when a singleton starts or stops here (off the election loop)."""

    async def started(self, name: str, term: int, state: Any) -> None: ...

    async def stopped(self, name: str, term: int, reason: str) -> Any:
        """Returns the state to hand over (None: keep the last one saved)."""
        ...


class MemberView(Protocol):
    """What the owner reads of its member (the election core's membership and fast failover)."""

    @property
    def joined(self) -> bool: ...

    @property
    def lease_until(self) -> float: ...

    @property
    def lease_seen(self) -> float:
        """When the reply that renewed :attr:`lease_until` came in (the owner's clock)."""
        ...

    @property
    def incarnation(self) -> str: ...

    def registration(self) -> str:
        """The member's pub/sub connection registration (``"<client id>|s"``, "" none)."""
        ...

    def client_id(self) -> int | None:
        """The client id of that connection now (None: disconnected)."""
        ...


class Owner:
    """The singletons one member runs (:attr:`held`: name -> term)."""

    def __init__(
        self,
        config: MemberConfig,
        store: SingletonStore,
        member: MemberView,
        callbacks: Callbacks,
        clock: Callable[[], float],
        log: Logger,
        *,
        weight: float = 1.0,
    ) -> None:
        self.config = config
        self.store = store
        self.member = member
        self.callbacks = callbacks
        self.clock = clock
        self.log = log
        self.weight = weight
        self.held: dict[str, int] = {}
        self.assigned: set[str] = set()
        self.alarm = Alarm(clock)
        self._epoch = ""
        self._margin = config.ttl_s - config.renew_deadline
        self._deadline = 0.0
        self._registered_cid: int | None = None
        self._waiting: set[str] = set()  # assigned, held by another live owner: its release rings us
        self._owed: dict[str, tuple[int, SavedState | None]] = {}  # stopped, not yet released
        self._checked: str | None = None  # the version at which Redis last confirmed all we hold

    @property
    def deadline(self) -> float:
        """When this member stops all it runs unless its lease is confirmed again (its clock)."""
        return self._deadline

    def on_message(self, source: NotificationSource, payload: str) -> None:
        """A hint on the singletons' channel (or a resync): a turn re-reads what matters. A lost
        connection rings at once: it may be the one we registered (then we stop everything)."""
        if source is NotificationSource.DISCONNECTED:
            self.alarm.ring()
        elif source is NotificationSource.RESYNC or payload == "assigned" or payload == "names":
            self._epoch = ""  # re-read the assignment
            self.alarm.ring()
        elif payload.startswith("released|") and payload.partition("|")[2] in self._waiting:
            self.alarm.ring()

    # ---- the loop ----

    async def run(self, stop: asyncio.Event) -> None:
        """Turns until ``stop`` is set (the caller then :meth:`leave`\\ s)."""
        heartbeat = self.config.heartbeat
        while not stop.is_set():
            try:
                await self.turn()
                wait = heartbeat
            except FAILURES as exc:  # Redis away or slow: the deadline decides what we may keep
                self.log.warning("singletons_sync_failed", error=str(exc) or type(exc).__name__)
                wait = min(heartbeat, 0.25)
            except Exception as exc:  # a bug (a script error): said loudly; the deadline still rules
                self.log.exception("singletons_turn_failed", error=repr(exc))
                wait = heartbeat
            wake = self.clock() + wait
            if self.held:
                wake = min(wake, self._deadline)
            await self.alarm.sleep_until(wake)

    def _extend(self, seen: float, lease_end: float) -> None:
        """A confirmation whose reply came in at ``seen`` said our lease ends at ``lease_end``
        (our clock): it counts if it came in before our deadline (the lease cannot have lapsed
        in between: the deadline is a margin short of it), or when we hold nothing."""
        if not self.held or seen < self._deadline:
            self._deadline = max(self._deadline, lease_end - self._margin)

    def _take_lease(self) -> None:
        """The election's heartbeat renewed our lease: its end, if the renewal came in time."""
        self._extend(self.member.lease_seen, self.member.lease_until)

    async def turn(self) -> None:
        """One step: keep safe, confirm, hand over, claim."""
        m = self.member
        unsafe = self._unsafe()  # first: past the deadline, no later confirmation undoes it
        if unsafe:
            await self.stop_all(LOST, why=unsafe)
            if not m.joined:
                return
        self._take_lease()
        sent, reply = await self._sync(self._registration())
        if not reply.live:
            await self.stop_all(LOST, why="not a live member")
            return
        self._take_lease()  # a heartbeat that came in while we waited
        self._extend(self.clock(), sent + reply.left_ms / 1000)
        if self.clock() >= self._deadline:
            await self.stop_all(LOST, why="ownership deadline passed")
            return
        await asyncio.gather(*(self._stop(name, LOST, why="owned by another") for name in reply.lost))
        await self.release_owed()  # what we stopped earlier and could not release then
        if reply.assigned is not None:
            self.assigned, self._epoch = set(reply.assigned), reply.epoch
        away = sorted(set(self.held) - self.assigned)
        if away:
            await self.hand_over(away, MOVED)
        wanted = sorted(self.assigned - set(self.held))
        if wanted:
            await self.claim(wanted)

    async def _sync(self, registration: str) -> tuple[float, SyncReply]:
        """Confirm our lease (and read our assignment if it moved): a few commands, whatever we
        hold. What we hold is sent to be checked name by name only when the version moved since
        we last checked it (an owner record changes only with it: our own claims, a member that
        took one over while we seemed gone, a Redis that lost its data): then a second call."""
        m = self.member
        reply = None
        for check in (self._checked is None, True):
            sent = self.clock()
            held = self.held if check else {}
            reply = await self._bounded(
                self.store.sync(self.config.member_id, m.incarnation, registration, self._epoch, held)
            )
            if check or not self.held:
                self._checked = reply.version if reply.live else None
            if not reply.live or self._checked == reply.version:
                break
        assert reply is not None
        return sent, reply

    def _unsafe(self) -> str:
        if not self.held:
            return ""
        if not self.member.joined:
            return "the member left the pool"
        self._take_lease()  # the heartbeat may have renewed our lease since we last looked
        if self.clock() >= self._deadline:
            return "ownership deadline passed"
        if self._registered_cid is not None and self.member.client_id() != self._registered_cid:
            return "registered redis connection dropped"
        return ""

    def _registration(self) -> str:
        # Called right after _unsafe() (no await between): a connection other than the one
        # registered has already stopped everything, so what is held stays bound to this one.
        reg = self.member.registration()
        cid, _, flag = reg.partition("|")
        channel = ""
        self._registered_cid = None
        if flag == "s" and cid.isdigit():
            channel = connection_channel(self.config.prefix, int(cid))
            self._registered_cid = int(cid)  # from now on, losing it stops everything
        return f"{self.weight:g}|{channel}"

    async def _bounded(self, call: Any) -> Any:
        """A Redis call bounded by our deadline while we hold anything (else by a heartbeat)."""
        left = self._deadline - self.clock() if self.held else self.config.heartbeat
        return await within(call, max(0.001, left))

    async def claim(self, names: list[str]) -> None:
        try:
            claims = await self._bounded(self.store.claim(self.config.member_id, self.member.incarnation, names))
        except FAILURES:
            # the claim may have run without its reply reaching us: a record naming us for a name we
            # do not run would hold it from its next owner forever (we are live, and our sync checks
            # only what we hold); owed a release of any term of ours, sent before the next claim
            for name in names:
                if name not in self.held:
                    self._owed.setdefault(name, (ANY_TERM, None))
            raise
        if claims is None:
            return
        self._waiting = set()
        await asyncio.gather(*(self._claimed(c) for c in claims))  # each its own callback, side by side

    async def _claimed(self, c: Claim) -> None:
        if c.status is ClaimStatus.CLAIMED and c.name not in self.held:
            self.held[c.name] = c.term
            data = c.state.data if c.state is not None else None
            self.log.info("singleton_started", singleton=c.name, term=c.term, resumed=c.state is not None)
            await self.callbacks.started(c.name, c.term, data)
        elif c.status is ClaimStatus.HELD:
            self._waiting.add(c.name)

    async def _stop(self, name: str, reason: str, *, why: str = "") -> None:
        """Stop ``name`` here; its release (with the state ``on_stop`` returned, unless lost) is
        owed until a release script confirms it: until then no other member may take it."""
        term = self.held.pop(name, None)
        if term is None:
            return
        log = self.log.warning if reason == LOST else self.log.info
        log("singleton_stopped", singleton=name, term=term, reason=reason, why=why or None)
        data = await self.callbacks.stopped(name, term, reason)
        state = None if reason == LOST or data is None else SavedState(term, self.config.member_id, data)
        if state is not None:
            try:
                state.encode()
            except (TypeError, ValueError) as exc:  # not JSON: the last saved state stays
                self.log.error("singleton_state_refused", singleton=name, term=term, error=str(exc))
                state = None
        self._owed[name] = (term, state)  # lost: another may run it already, nothing saved

    async def release_owed(self, *, leaving: bool = False) -> None:
        """Release what we stopped, in one script (fenced by term: what another member took
        meanwhile is left alone). Raises when Redis does not answer: owed until the next turn."""
        if not self._owed and not leaving:
            return
        owed = dict(self._owed)
        handed = [(name, term, state) for name, (term, state) in sorted(owed.items())]
        await self.store.release(self.config.member_id, self.member.incarnation, handed, leaving=leaving)
        for name in owed:
            if self._owed.get(name) == owed[name]:
                del self._owed[name]

    async def give_up(self, name: str, term: int, why: str) -> bool:
        """Stop ``name`` held with ``term`` here, unsaved (``LOST``), and release it so that it is
        claimed again with a new term (its work ended on its own: its deadline passed, then a
        confirmation sent in time extended it, and the singleton would stay held with nothing
        running). False when it is not held here with ``term``. A release Redis does not answer
        is owed until the next turn."""
        if self.held.get(name) != term:
            return False
        await self._stop(name, LOST, why=why)
        try:
            await self.release_owed()
        except FAILURES as exc:
            error = str(exc) or type(exc).__name__
            self.log.warning("singletons_release_failed", singleton=name, term=term, error=error)
        self.alarm.ring()  # claim it again (if it is still assigned here) at once
        return True

    async def hand_over(self, names: list[str], reason: str) -> None:
        """Stop ``names`` (their state saved), then release them in one script."""
        await asyncio.gather(*(self._stop(name, reason) for name in names))
        await self.release_owed()

    async def stop_all(self, reason: str, *, why: str = "") -> None:
        """Stop everything held now (``LOST``: saving nothing, another may run it already)."""
        await asyncio.gather(*(self._stop(name, reason, why=why) for name in sorted(self.held)))
        self._registered_cid = None

    async def leave(self, timeout: float) -> None:
        """This member stops running singletons: each is stopped, saved and released (a kind
        hand-off), and its registration goes, in one script (at most ``timeout``)."""
        unsafe = self._unsafe()
        await self.stop_all(LOST if unsafe else STOPPING, why=unsafe)
        try:
            await within(self.release_owed(leaving=True), timeout)
        except FAILURES as exc:  # our lease (or a restarted member's claims) frees them
            self.log.warning("singletons_leave_failed", error=str(exc) or type(exc).__name__)

    async def save(self, name: str, data: Any) -> bool:
        """Save ``name``'s state now (fenced by our term); False if we do not own it."""
        term = self.held.get(name)
        if term is None:
            return False
        state = SavedState(term, self.config.member_id, data)
        return await self.store.save(self.config.member_id, self.member.incarnation, name, state)

    def terms(self) -> Mapping[str, int]:
        return dict(self.held)
