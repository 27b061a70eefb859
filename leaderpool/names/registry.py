"""Unique names across every pool under a prefix, as Erlang's ``:global.register_name``.

A live member registers a name; it is unique among all pools under the prefix and belongs to
that member until it unregisters it, leaves the pool (the leave script frees it and announces
it), or its lease ends: a name's deadline is its holder's lease deadline, and the holder's own
heartbeat moves both on in one script (:data:`~leaderpool.names.name_scripts.HEARTBEAT_NAMES`), so a name
never outlives the lease and steady state stays one command per member per heartbeat. Nobody
else removes a name, except an operator (``leaderpool-cli unregister``) and a deliberate
``re_register_name`` takeover.

Lookups are local: :class:`~leaderpool.names.name_cache.NameCache` mirrors the registry, loaded once
and then kept fresh by the names events channel (``registered|NAME``, ``unregistered|NAME``:
hints, each answered by a re-read) and by re-reading each name shortly before its known deadline, which is also how a
dead holder's name leaves the cache (no ``expired`` events needed: fakeredis and managed Redis
have none). This module is the wire format and the Redis calls (no asyncio import: the CLI's
one-shot commands use it); the member's side and the cache are :mod:`leaderpool.names.name_cache`.

Layout (see :mod:`leaderpool.backend.keys`): ``PREFIX:global:{names}:owners`` (hash name -> JSON record),
``:deadlines`` (zset name -> deadline, Redis ms), ``:events`` (channel).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from leaderpool.backend.connect import is_cluster_client
from leaderpool.backend.keys import Keyspace, NameKeys
from leaderpool.backend.pool_store import heartbeat_call, leave_call
from leaderpool.backend.protocol import Beat, LeaderValue, Left, parse_beat, parse_left, text
from leaderpool.backend.script_registry import ScriptHost
from leaderpool.backend.urls import CLUSTER_NO_NAMES
from leaderpool.errors import ConfigError
from leaderpool.names.name_scripts import NameScripts

MAX_VALUE_BYTES = 4096
"""A name's value (an address, a URL) is at most this long, UTF-8: every lookup copies it."""


def validate_value(value: object) -> str | None:
    """Return ``value`` if it is a usable name value (None or a short string), else raise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"a name's value must be a string or None, got {type(value).__name__}")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ConfigError(f"a name's value is {len(value.encode())} bytes, at most {MAX_VALUE_BYTES}")
    return value


def owner_prefix(pool: str, member: str, incarnation: str = "") -> str:
    """The start of every record ``member`` of ``pool`` owns: scripts compare owners by it. With
    ``incarnation``, of the records that run of the member owns: another process under the same
    id neither keeps nor frees them; without, of every run's (an operator's eviction)."""
    run = '"incarnation":' + json.dumps(incarnation) + "," if incarnation else ""
    return '{"pool":' + json.dumps(pool) + ',"member":' + json.dumps(member) + "," + run


def name_record(pool: str, member: str, node: str, value: str | None, incarnation: str = "") -> str:
    """The JSON stored for a name: owner first, in this fixed order (see :func:`owner_prefix`)."""
    owner = owner_prefix(pool, member, incarnation)
    return owner + '"node":' + json.dumps(node) + ',"value":' + json.dumps(value) + "}"


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
        self._scripts = NameScripts.on(client)
        self._cluster = is_cluster_client(client)  # registration crosses slots: refused there

    async def register(
        self,
        pool_keys: Keyspace,
        member: str,
        node: str,
        name: str,
        value: str | None,
        *,
        takeover: bool = False,
        incarnation: str = "",
    ) -> Registration:
        """Give ``name`` to ``member`` (its run ``incarnation``: refused, ``NOT_MEMBER``, when the
        record under the id is another run's)."""
        if self._cluster:
            raise ConfigError(CLUSTER_NO_NAMES)
        k = self.keys
        reply = await self._scripts.name_register(
            keys=[k.owners, k.deadlines, pool_keys.leases, pool_keys.members],
            args=[
                name,
                owner_prefix(pool_keys.pool, member, incarnation),
                name_record(pool_keys.pool, member, node, value, incarnation),
                member,
                k.events,
                "1" if takeover else "0",
                incarnation,
            ],
        )
        status = RegisterStatus(int(reply[0]))
        if status is RegisterStatus.REGISTERED:
            return Registration(status, int(reply[1]), None)
        if status is RegisterStatus.HELD:
            left = int(reply[2])
            return Registration(status, left, NameOwner.parse(name, reply[1], left))
        return Registration(status, 0, None)

    async def unregister(self, name: str, owner: tuple[str, str] | None, *, incarnation: str = "") -> NameOwner | None:
        """Free ``name`` if ``owner`` (pool, member; its run ``incarnation`` if given) holds it, or
        whoever does with None (an operator); returns whom it was taken from, None when not held
        (by that owner)."""
        k = self.keys
        prefix = "" if owner is None else owner_prefix(*owner, incarnation)
        reply = await self._scripts.name_unregister(keys=[k.owners, k.deadlines], args=[name, prefix, k.events])
        return NameOwner.parse(name, reply[1], 0) if int(reply[0]) == 1 else None

    async def drop_owner(self, pool: str, member: str) -> list[str]:
        """Free every name ``member`` of ``pool`` holds (it was evicted); the names freed."""
        k = self.keys
        reply = await self._scripts.names_drop_owner(
            keys=[k.owners, k.deadlines], args=[owner_prefix(pool, member), k.events]
        )
        return sorted(text(name) for name in reply)

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
        conn: str = "",
        watch: str = "",
        incarnation: str = "",
    ) -> tuple[Beat, list[str]]:
        """The pool heartbeat, moving ``names``' deadlines on with the lease; returns its reply
        and the names lost."""
        keys, args = heartbeat_call(pool_keys, member, ttl_ms, held, want_members, seen_term, conn, watch, incarnation)
        reply = await self._scripts.heartbeat_names(
            keys=[*keys, self.keys.owners, self.keys.deadlines],
            args=[*args, owner_prefix(pool_keys.pool, member, incarnation), *names],
        )
        return parse_beat(reply[0]), [text(n) for n in reply[1]]

    async def leave(
        self,
        pool_keys: Keyspace,
        member: str,
        reason: str,
        *,
        successor: str,
        ttl_ms: int,
        names: Sequence[str],
        incarnation: str = "",
    ) -> Left:
        """The pool's leave script, then ``names`` freed and announced."""
        k = self.keys
        keys, args = leave_call(pool_keys, member, reason, "left", successor, ttl_ms, incarnation)
        owner = owner_prefix(pool_keys.pool, member, incarnation)
        reply = await self._scripts.leave_names(
            keys=[*keys, k.owners, k.deadlines], args=[*args, owner, k.events, *names]
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
