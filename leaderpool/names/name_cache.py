"""A member's held names and the local mirror of everyone's (see :mod:`leaderpool.names.registry`).

:class:`HeldNames` rides on the member's heartbeat and leave
(:class:`~leaderpool.election.membership.BeatRider`): while it holds names, the beat and the leave
are the names' scripts, so the names follow the lease in the same step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.protocol import Beat, LeaderValue, Left
from leaderpool.names.registry import NameMessage, NameOwner, NameStore
from leaderpool.util.alarm import Alarm
from leaderpool.util.log import Logger, get_logger
from leaderpool.util.timeouts import cancel_and_wait

REREAD_BEFORE_S = 0.25
"""The cache re-reads a name at most this long before its known deadline (a quarter of what
was left, when less): a live holder has moved the deadline on by then, so lookups never blink."""

REREAD_AFTER_S = 0.001
"""A name with too little left to re-read early is re-read this long after its deadline, when
Redis has let it go if its holder did not renew."""

REREAD_BATCH_S = 1.0
"""A due re-read takes along every name due within this long: re-reading early only freshens
the cache, and many names then cost one call a second or so, not one each."""

IDLE_S = 3600.0
"""With no name cached, the cache sleeps until a names event rings it (or this long)."""

CACHE_RETRY_S = 0.5
"""How long the cache waits before retrying a read that failed (Redis unreachable)."""


class HeldNames:
    """The names one member holds, kept by its heartbeat (on the election loop): the member's
    :class:`~leaderpool.election.membership.BeatRider`.

    ``held`` maps each name to when its registration was sent: a heartbeat sent before then
    cannot have known it, so its report of the name as lost is ignored."""

    def __init__(self, store: NameStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.held: dict[str, float] = {}
        self.live = asyncio.Event()
        """Set while the member is joined: registering needs a live member."""
        self._clock = clock
        self._on_lost: list[Callable[[str], None]] = []

    def on_lost(self, listener: Callable[[str], None]) -> None:
        self._on_lost.append(listener)

    def names(self) -> list[str]:
        return sorted(self.held)

    def lost(self, names: Iterable[str], sent: float, log: Logger) -> None:
        for name in names:
            since = self.held.get(name)
            if since is None or since > sent:
                continue  # unregistered, or registered again, after this beat was sent
            del self.held[name]
            log.warning("name_lost", name=name)
            for listener in list(self._on_lost):
                listener(name)

    # ---- riding on the member's heartbeat and leave ----

    def riding(self) -> bool:
        """While we hold names, the member beats and leaves with the names' scripts."""
        return bool(self.held)

    async def beat(
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
    ) -> Beat:
        """A heartbeat that also keeps our names; the ones lost are dropped and reported."""
        sent = self._clock()
        beat, lost = await self.store.heartbeat(
            pool_keys, member, ttl_ms, held, want_members, seen_term, self.names(), conn, watch, incarnation
        )
        self.lost(lost, sent, log)
        return beat

    def leave(
        self, pool_keys: Keyspace, member: str, reason: str, *, successor: str, ttl_ms: int, incarnation: str = ""
    ) -> Awaitable[Left]:
        """The member's leave, freeing the names it holds now in the same script (announced:
        standbys take them at once)."""
        names = self.names()
        return self.store.leave(
            pool_keys, member, reason, successor=successor, ttl_ms=ttl_ms, names=names, incarnation=incarnation
        )

    def joined(self) -> None:
        self.live.set()

    def rejoining(self) -> None:
        self.live.clear()

    def stopped(self) -> None:
        self.live.clear()
        self.held.clear()


class NameCache:
    """A local mirror of the registry: :meth:`lookup` answers without a round trip.

    Loaded on :meth:`start`; a names event (a hint) re-reads that name, a lost pub/sub
    connection (``resync``) reloads everything, and each name is re-read shortly before its
    known deadline (:data:`REREAD_BEFORE_S`), so a dead holder's name leaves within a round trip
    of the instant Redis lets it go."""

    def __init__(self, store: NameStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._entries: dict[str, tuple[NameOwner, float]] = {}  # name -> (owner, monotonic deadline)
        self._reread_at: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._reload = True
        self._alarm = Alarm(clock)
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    # ---- local answers (plain reads, safe from any thread) ----

    def lookup(self, name: str) -> NameOwner | None:
        """The holder, as of the read that cached it (its ``lease_ms`` too); None when nobody
        holds the name, or its deadline passed before a re-read confirmed it."""
        entry = self._entries.get(name)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def names(self) -> list[str]:
        now = self._clock()
        return sorted(name for name, (_, deadline) in list(self._entries.items()) if deadline > now)

    # ---- keeping it fresh ----

    def note(self, owner: NameOwner, sent: float) -> None:
        """We learnt who holds a name (say, we just registered it): cache it at once."""
        self._store(owner, sent)
        self._alarm.ring()  # its re-read may be the next one due

    def on_message(self, source: NotificationSource, payload: str) -> None:
        """A watcher listener: a names event re-reads its name; a resync reloads all."""
        if source is NotificationSource.RESYNC:
            self._reload = True
        else:
            msg = NameMessage.parse(payload)
            if msg is None:
                return
            self._dirty.add(msg.name)
        self._alarm.ring()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderpool-names")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self._refresh()
            except Exception as exc:  # Redis unreachable (or a bug): keep what we have, retry
                get_logger("leaderpool").warning("names_refresh_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(CACHE_RETRY_S)
                continue
            idle_until = self._clock() + IDLE_S
            if not self._dirty and not self._reload:
                await self._alarm.sleep_until(min(self._reread_at.values(), default=idle_until))

    async def _refresh(self) -> None:
        sent = self._clock()
        if self._reload:
            self._reload, self._dirty = False, set()
            owners = await self.store.read()
            self._entries.clear()
            self._reread_at.clear()
            for owner in owners:
                self._store(owner, sent)
            self.loaded.set()
            return
        if not self._dirty and min(self._reread_at.values(), default=sent + 1) > sent:
            return
        # one read for every name due soon too: with many names, a call per batch, not per name
        due = {name for name, at in self._reread_at.items() if at <= sent + REREAD_BATCH_S} | self._dirty
        self._dirty = set()
        found = {owner.name: owner for owner in await self.store.read(sorted(due))}
        for name in due:
            holder = found.get(name)
            if holder is None:
                self._entries.pop(name, None)
                self._reread_at.pop(name, None)
            else:
                self._store(holder, sent)

    def _store(self, owner: NameOwner, sent: float) -> None:
        left = owner.lease_ms / 1000
        deadline = sent + left
        self._entries[owner.name] = (owner, deadline)
        early = min(REREAD_BEFORE_S, left / 4)
        self._reread_at[owner.name] = deadline - early if early >= 0.02 else deadline + REREAD_AFTER_S
