"""Unique names across every pool under a prefix, as Erlang's ``:global.register_name``.

A live member registers a name; it is unique among all pools under the prefix and belongs to
that member until it unregisters it, leaves the pool (the leave script frees it and announces
it), or its lease ends: a name's deadline is its holder's lease deadline, and the holder's own
heartbeat moves both on in one script (:data:`~leaderpool.scripts.HEARTBEAT_NAMES`), so a name
never outlives the lease and steady state stays one command per member per heartbeat. Nobody
else removes a name, except an operator (``leaderpool-cli unregister``) and a deliberate
``re_register_name`` takeover.

Lookups are local: :class:`NameCache` mirrors the registry, loaded once and then kept fresh by
the names events channel (``registered|NAME``, ``unregistered|NAME``: hints, each answered by a
re-read) and by re-reading each name shortly before its known deadline, which is also how a
dead holder's name leaves the cache (no ``expired`` events needed: fakeredis and managed Redis
have none).

Layout (see :mod:`leaderpool.keys`): ``PREFIX:global:{names}:owners`` (hash name -> JSON record),
``:deadlines`` (zset name -> deadline, Redis ms), ``:events`` (channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from leaderpool.errors import ConfigError
from leaderpool.keys import Keyspace, NameKeys
from leaderpool.log import Logger, get_logger
from leaderpool.protocol import Beat, LeaderValue, Left, parse_beat, parse_left, text
from leaderpool.scripts import ScriptHost, scripts_for

MAX_VALUE_BYTES = 4096
"""A name's value (an address, a URL) is at most this long, UTF-8: every lookup copies it."""

REREAD_BEFORE_S = 0.25
"""The cache re-reads a name at most this long before its known deadline (a quarter of what
was left, when less): a live holder has moved the deadline on by then, so lookups never blink."""

REREAD_AFTER_S = 0.001
"""A name with too little left to re-read early is re-read this long after its deadline, when
Redis has let it go if its holder did not renew."""

CACHE_RETRY_S = 0.5
"""How long the cache waits before retrying a read that failed (Redis unreachable)."""


def validate_value(value: object) -> str | None:
    """Return ``value`` if it is a usable name value (None or a short string), else raise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"a name's value must be a string or None, got {type(value).__name__}")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ConfigError(f"a name's value is {len(value.encode())} bytes, at most {MAX_VALUE_BYTES}")
    return value


def owner_prefix(pool: str, member: str) -> str:
    """The start of every record ``member`` of ``pool`` owns: scripts compare owners by it."""
    return '{"pool":' + json.dumps(pool) + ',"member":' + json.dumps(member) + ","


def name_record(pool: str, member: str, node: str, value: str | None) -> str:
    """The JSON stored for a name: owner first, in this fixed order (see :func:`owner_prefix`)."""
    return owner_prefix(pool, member) + '"node":' + json.dumps(node) + ',"value":' + json.dumps(value) + "}"


class NameOwner(NamedTuple):
    """Who holds a name: ``:global.whereis_name``'s answer, with the member's pool and node."""

    name: str
    pool: str
    member: str
    node: str
    value: str | None
    lease_ms: int
    """What was left of the holder's lease when this was read."""

    @classmethod
    def parse(cls, name: str, record: Any, lease_ms: int) -> NameOwner:
        data = json.loads(text(record))
        value = data.get("value")
        return cls(
            name,
            str(data.get("pool", "")),
            str(data.get("member", "")),
            str(data.get("node", "")),
            None if value is None else str(value),
            lease_ms,
        )

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "member": self.member, "pool": self.pool, "node": self.node, "value": self.value}


class RegisterStatus(IntEnum):
    REGISTERED = 1
    """The name is ours (newly, or it already was: its value is updated)."""
    HELD = 0
    """Another live member holds it."""
    NOT_MEMBER = -1
    """We are not a live member of our pool (not joined yet, or our lease lapsed)."""


class Registration(NamedTuple):
    status: RegisterStatus
    left_ms: int
    """Registered: ms until our deadline; held: until the holder's, unless it renews."""
    holder: NameOwner | None
    """Held: who holds it."""


class NameStore:
    """The asyncio Redis I/O of the name registry under one prefix."""

    def __init__(self, client: ScriptHost, prefix: str) -> None:
        self.keys = NameKeys(prefix)
        self._scripts = scripts_for(client)

    async def register(
        self, pool_keys: Keyspace, member: str, node: str, name: str, value: str | None, *, takeover: bool = False
    ) -> Registration:
        k = self.keys
        reply = await self._scripts.name_register(
            keys=[k.owners, k.deadlines, pool_keys.leases, pool_keys.members],
            args=[
                name,
                owner_prefix(pool_keys.pool, member),
                name_record(pool_keys.pool, member, node, value),
                member,
                k.events,
                "1" if takeover else "0",
            ],
        )
        status = RegisterStatus(int(reply[0]))
        if status is RegisterStatus.REGISTERED:
            return Registration(status, int(reply[1]), None)
        if status is RegisterStatus.HELD:
            left = int(reply[2])
            return Registration(status, left, NameOwner.parse(name, reply[1], left))
        return Registration(status, 0, None)

    async def unregister(self, name: str, owner: tuple[str, str] | None) -> NameOwner | None:
        """Free ``name`` if ``owner`` (pool, member) holds it, or whoever does with None (an
        operator); returns whom it was taken from, None when not held (by that owner)."""
        k = self.keys
        prefix = "" if owner is None else owner_prefix(*owner)
        reply = await self._scripts.name_unregister(keys=[k.owners, k.deadlines], args=[name, prefix, k.events])
        return NameOwner.parse(name, reply[1], 0) if int(reply[0]) == 1 else None

    async def read(self, names: Sequence[str] = ()) -> list[NameOwner]:
        """The holders of ``names`` (of every name when empty) that hold them now."""
        k = self.keys
        reply = await self._scripts.names_read(keys=[k.owners, k.deadlines], args=list(names))
        return [NameOwner.parse(text(reply[i]), reply[i + 1], int(reply[i + 2])) for i in range(1, len(reply) - 2, 3)]

    async def heartbeat(
        self,
        pool_keys: Keyspace,
        member: str,
        ttl_ms: int,
        held: LeaderValue | None,
        want_members: bool,
        seen_term: int,
        names: Sequence[str],
    ) -> tuple[Beat, list[str]]:
        """The pool heartbeat, moving ``names``' deadlines on with the lease; returns its reply
        and the names lost."""
        p, k = pool_keys, self.keys
        reply = await self._scripts.heartbeat_names(
            keys=[p.members, p.leases, p.leader, p.term, p.recovery, p.resigned, k.owners, k.deadlines],
            args=[
                member,
                ttl_ms,
                held.encode() if held else "",
                "1" if want_members else "0",
                seen_term,
                owner_prefix(p.pool, member),
                *names,
            ],
        )
        return parse_beat(reply[0]), [text(n) for n in reply[1]]

    async def leave(
        self, pool_keys: Keyspace, member: str, reason: str, *, successor: str, ttl_ms: int, names: Sequence[str]
    ) -> Left:
        """The pool's leave script, then ``names`` freed and announced."""
        p, k = pool_keys, self.keys
        reply = await self._scripts.leave_names(
            keys=[p.members, p.leases, p.leader, p.history, p.term, p.recovery, k.owners, k.deadlines],
            args=[member, reason, p.events, "left", successor, ttl_ms, owner_prefix(p.pool, member), k.events, *names],
        )
        return parse_left(reply)


class NameMessage(NamedTuple):
    """One message on the names events channel: ``registered|NAME`` or ``unregistered|NAME``."""

    event: str
    name: str

    @classmethod
    def parse(cls, payload: str) -> NameMessage | None:
        event, sep, name = payload.partition("|")
        return cls(event, name) if sep and event in ("registered", "unregistered") and name else None


class HeldNames:
    """The names one member holds, kept by its heartbeat (on the election loop).

    ``held`` maps each name to when its registration was sent: a heartbeat sent before then
    cannot have known it, so its report of the name as lost is ignored."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
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

    async def beat(
        self,
        store: NameStore,
        pool_keys: Keyspace,
        member: str,
        ttl_ms: int,
        held: LeaderValue | None,
        want_members: bool,
        seen_term: int,
        log: Logger,
    ) -> Beat:
        """A heartbeat that also keeps our names; the ones lost are dropped and reported."""
        sent = self._clock()
        beat, lost = await store.heartbeat(pool_keys, member, ttl_ms, held, want_members, seen_term, self.names())
        self.lost(lost, sent, log)
        return beat


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
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    # ---- local answers (plain reads, safe from any thread) ----

    def lookup(self, name: str) -> NameOwner | None:
        entry = self._entries.get(name)
        if entry is None or entry[1] <= self._clock():
            return None
        owner, deadline = entry
        return owner._replace(lease_ms=max(0, int((deadline - self._clock()) * 1000)))

    def names(self) -> list[str]:
        now = self._clock()
        return sorted(name for name, (_, deadline) in list(self._entries.items()) if deadline > now)

    # ---- keeping it fresh ----

    def note(self, owner: NameOwner, sent: float) -> None:
        """We learnt who holds a name (say, we just registered it): cache it at once."""
        self._store(owner, sent)

    def on_message(self, source: str, payload: str) -> None:
        """A watcher listener: a names event re-reads its name; a resync reloads all."""
        if source == "resync":
            self._reload = True
        else:
            msg = NameMessage.parse(payload)
            if msg is None:
                return
            self._dirty.add(msg.name)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderpool-names")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._refresh()
            except Exception as exc:  # Redis unreachable (or a bug): keep what we have, retry
                get_logger("leaderpool").warning("names_refresh_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(CACHE_RETRY_S)
                continue
            now = self._clock()
            next_at = min(self._reread_at.values(), default=None)
            timeout = None if next_at is None else max(0.0, next_at - now)
            self._wake.clear()
            if not self._dirty and not self._reload:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

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
        due = {name for name, at in self._reread_at.items() if at <= sent} | self._dirty
        if not due:
            return
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
        self._wake.set()
