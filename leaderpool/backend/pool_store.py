"""Typed asyncio calls to a pool's state in Redis: one method per script, replies parsed into
the named tuples of :mod:`leaderpool.backend.protocol` at once. Nothing here decides anything;
:mod:`leaderpool.election.core` does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol, cast

from leaderpool.backend.batching import batcher_for
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_scripts import PoolScripts
from leaderpool.backend.protocol import (
    Beat,
    ClaimResult,
    FenceResult,
    Glance,
    HistoryEntry,
    Joined,
    LeaderConn,
    LeaderRecord,
    LeaderValue,
    Left,
    Observation,
    PoolEvent,
    PoolMessage,
    Released,
    parse_beat,
    parse_claim,
    parse_glance,
    parse_history,
    parse_joined,
    parse_leader_record,
    parse_left,
    parse_observation,
    parse_released,
    text,
)
from leaderpool.backend.script_registry import NamedScript, ScriptHost
from leaderpool.members import MemberInfo, rank_score

__all__ = [  # the reply types live in leaderpool.backend.protocol; these names stay importable from here
    "Beat",
    "ClaimResult",
    "FenceResult",
    "Forgotten",
    "HistoryEntry",
    "Joined",
    "LeaderConn",
    "LeaderRecord",
    "LeaderValue",
    "Left",
    "Observation",
    "PoolStore",
    "Released",
    "text",
]


class PoolClient(ScriptHost, Protocol):
    """The Redis calls a pool's store makes, awaitable: redis-py's asyncio client is one, and so
    is the CLI's one-shot adapter around a blocking client (:mod:`leaderpool.console.oneshot`)."""

    def time(self) -> Any: ...

    def xrevrange(self, name: str, max: str = "+", min: str = "-", count: int | None = None) -> Any: ...

    def publish(self, channel: str, message: str) -> Any: ...

    def mget(self, keys: list[str]) -> Any: ...


class Forgotten(NamedTuple):
    """What :meth:`PoolStore.forget` found and did."""

    deleted: int
    """How many keys it deleted; -1 when it refused (a leader or live members, not forced)."""
    live: int
    """How many members were live."""
    leader: bool
    """Whether the pool had a leader."""


ScriptCall = tuple[Sequence[str], list[str | int]]
"""A script's keys and arguments."""


def heartbeat_keys(k: Keyspace) -> tuple[str, ...]:
    """The heartbeat script's keys, in its order (:data:`~leaderpool.backend.pool_scripts.HEARTBEAT_ARITY`)."""
    return (  # lead_until last: the keys before it are an earlier version's, in their order
        k.members, k.leases, k.leader, k.term, k.recovery, k.resigned, k.leader_conn, k.watching, k.ranking,
        k.lead_until,
    )  # fmt: skip


def heartbeat_args(
    member: str,
    ttl_ms: int,
    held: LeaderValue | None,
    want_members: bool,
    seen_term: int,
    conn: str = "",
    watch: str = "",
    incarnation: str = "",
    check: bool = True,
) -> list[str | int]:
    """The heartbeat script's arguments (``incarnation``: the beating run's, "" for no check;
    ``check``: read the member's record this beat, so another run's record is seen)."""
    held_value = held.encode() if held else ""
    want = "1" if want_members else "0"
    return [member, ttl_ms, held_value, want, seen_term, conn, watch, incarnation, "1" if check else "0"]


def heartbeat_call(
    k: Keyspace,
    member: str,
    ttl_ms: int,
    held: LeaderValue | None,
    want_members: bool,
    seen_term: int,
    conn: str = "",
    watch: str = "",
    incarnation: str = "",
    check: bool = True,
) -> ScriptCall:
    """The heartbeat script's keys and arguments (:data:`~leaderpool.backend.pool_scripts.HEARTBEAT_ARITY`);
    scripts that wrap it (the names heartbeat) append theirs after these."""
    args = heartbeat_args(member, ttl_ms, held, want_members, seen_term, conn, watch, incarnation, check)
    return heartbeat_keys(k), args


def leave_call(
    k: Keyspace, member: str, reason: str, event: str, successor: str, ttl_ms: int, incarnation: str = ""
) -> ScriptCall:
    """The leave script's keys and arguments (:data:`~leaderpool.backend.pool_scripts.LEAVE_ARITY`);
    ``incarnation``: the leaving run's ("" whichever: an operator's eviction)."""
    keys = [k.members, k.leases, k.leader, k.history, k.term, k.recovery, k.leader_conn, k.watching, k.ranking]
    return keys, [member, reason, k.events, event, successor, ttl_ms, incarnation]


class PoolStore:
    """The asyncio Redis I/O of one pool."""

    def __init__(self, client: PoolClient, keys: Keyspace) -> None:
        self.client = client
        self.keys = keys
        self._scripts = PoolScripts.on(client)
        self._heartbeat_keys = heartbeat_keys(keys)  # every beat sends them: built once

    async def redis_time_ms(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def register(self, info: MemberInfo, ttl_ms: int, seen_term: int = 0, *, replace: str = "") -> Joined:
        """Store ``info`` and start its lease, unless another incarnation holds its id (its lease
        runs, or a lead is held under the id): then who holds it. ``replace``: the incarnation of
        a holder proved dead, whose record may be replaced though its lease runs."""
        k = self.keys
        reply = await self._scripts.register(
            keys=[k.members, k.leases, k.term, k.recovery, k.ranking, k.leader],
            args=[
                info.member,
                info.record_json(),
                ttl_ms,
                k.events,
                seen_term,
                rank_score(info.priority, info.started_at_ms),
                info.incarnation,
                replace,
            ],
        )
        return parse_joined(reply, info.member)

    async def heartbeat(
        self,
        member: str,
        ttl_ms: int,
        held: LeaderValue | None,
        want_members: bool,
        seen_term: int = 0,
        *,
        conn: str = "",
        watch: str = "",
        batched: bool = False,
        incarnation: str = "",
        check: bool = True,
    ) -> Beat:
        """Refresh ``member``'s lease (and renew ``held``, registering the client id ``conn``);
        ``watch`` is the member's watch report ("" unchanged, "-" none, else a leader value).
        ``batched``: sent in one pipeline with the process's other beats (:mod:`leaderpool.backend.batching`).
        ``incarnation``: the beating run's; the record of another run of the id is not refreshed
        (``UNKNOWN_MEMBER``) when this beat reads it: with ``check``, or when it reads the ranking
        (the script's own choice). A member's lease that is gone is never started again."""
        keys = self._heartbeat_keys
        args = heartbeat_args(member, ttl_ms, held, want_members, seen_term, conn, watch, incarnation, check)
        if batched:
            return parse_beat(await self._batched(self._scripts.heartbeat, keys, args))
        return parse_beat(await self._scripts.heartbeat(keys=keys, args=args))

    async def _batched(self, script: NamedScript, keys: Sequence[str], args: list[str | int]) -> Any:
        """A call on the hot path (beats; after a change, glances and claims: a mass failover makes
        thousands at once): in the process's next batch, where the client batches."""
        batcher = batcher_for(self.client)
        if batcher is None:
            return await script(keys=keys, args=args)
        return await batcher.call(script, keys, args)

    async def heartbeat_replicated(
        self,
        member: str,
        ttl_ms: int,
        held: LeaderValue,
        seen_term: int,
        replicas: int,
        timeout_ms: int,
        conn: str = "",
        incarnation: str = "",
    ) -> tuple[Beat, int]:
        """Renew ``held`` and wait (``WAIT``) until ``replicas`` replicas have the renewal, or
        ``timeout_ms``: the beat, and how many replicas acknowledged. One pipeline, so ``WAIT``
        runs on the connection that wrote (it waits for that connection's last write)."""
        script = self._scripts.heartbeat
        pipe = cast(Any, self.client).pipeline(transaction=False)  # only the election's redis-py client gets here
        call = heartbeat_call(self.keys, member, ttl_ms, held, False, seen_term, conn, "", incarnation)
        await script.queue(pipe, *call)
        pipe.execute_command("WAIT", replicas, timeout_ms)
        reply, acked = await script.translated(pipe.execute())
        return parse_beat(reply), int(acked)

    async def observe(self, *, prune: bool = True, watch_reports: bool = False) -> Observation:
        """The pool at one instant; members drop lapsed members on the way (``prune``), tools
        such as ``leaderpool-cli status`` only read (and ask for the ``watch_reports``)."""
        k = self.keys
        reply = await self._scripts.observe(
            keys=[k.members, k.leases, k.leader, k.resigned, k.watching, k.leader_conn, k.ranking],
            args=["1" if prune else "0", "1" if watch_reports else "0"],
        )
        return parse_observation(reply)

    async def glance(self, member: str, incarnation: str = "") -> Glance:
        """The lead, who ranks first and next, the leader's record and ``member``'s lease, in
        O(log N): what a follower re-reads after a change (:meth:`observe` lists every member).
        ``incarnation``: ours (a record of another run of the id counts as no lease)."""
        k = self.keys
        reply = await self._batched(
            self._scripts.glance, [k.members, k.leases, k.leader, k.resigned, k.leader_conn, k.ranking], [member]
        )
        return parse_glance(reply, member, incarnation)

    async def claim(
        self, member: str, ttl_ms: int, seen_term: int, *, conn: str = "", incarnation: str = ""
    ) -> ClaimResult:
        """Claim the vacant lead; ``conn`` is the client id registered for it ("" none);
        ``incarnation``: the claiming run's (refused, ``NOT_MEMBER``, if the record is another's)."""
        k = self.keys
        reply = await self._batched(
            self._scripts.claim,
            [k.leader, k.term, k.members, k.leases, k.history, k.recovery, k.leader_conn],
            [member, ttl_ms, seen_term, k.events, conn, incarnation],
        )
        return parse_claim(reply, member, ttl_ms)

    async def release(
        self, held: LeaderValue, reason: str, exclude_ms: int = 0, *, successor: str = "", ttl_ms: int = 0
    ) -> Released:
        """End the lead ``held`` (compare-and-set), handing it to ``successor`` when it is live."""
        k = self.keys
        reply = await self._scripts.release(
            keys=[k.leader, k.resigned, k.history, k.term, k.leases, k.recovery, k.leader_conn, k.members],
            args=[held.encode(), reason, exclude_ms, k.events, successor, ttl_ms],
        )
        return parse_released(reply)

    async def leave(
        self,
        member: str,
        reason: str,
        *,
        event: str = "left",
        successor: str = "",
        ttl_ms: int = 0,
        incarnation: str = "",
    ) -> Left:
        """Remove ``member`` and end its lead, if any, handing it to ``successor`` when live;
        ``incarnation``: the leaving run's (nothing is done if the record is another's)."""
        call = leave_call(self.keys, member, reason, event, successor, ttl_ms, incarnation)
        reply = await self._scripts.leave(*call)
        return parse_left(reply)

    async def leader_record(self) -> LeaderRecord | None:
        """The leader, its lease left (ms) and its member record, or None when vacant."""
        k = self.keys
        return parse_leader_record(await self._scripts.leader_record(keys=[k.leader, k.members]))

    async def leader_conn(self) -> tuple[LeaderValue | None, LeaderConn | None, str]:
        """The leader, its registered connection, and the registration as stored ("" none): one MGET
        (fast failover's follower, before it asks Redis whether a leader died)."""
        k = self.keys
        value, conn = await self.client.mget([k.leader, k.leader_conn])
        return LeaderValue.parse(value), LeaderConn.parse(conn), text(conn) if conn else ""

    async def bury_and_claim(
        self,
        dead: LeaderValue,
        registration: str,
        reason: str,
        member: str,
        ttl_ms: int,
        seen_term: int,
        conn: str,
        proof_channel: str = "",
        incarnation: str = "",
    ) -> ClaimResult:
        """Remove a dead leader's lead and membership if the lead and its registration are still
        ``dead`` and ``registration`` (compare-and-delete; else ``NOT_BURIED``), then claim the lead
        for ``member`` as :meth:`claim` does. ``proof_channel``: the death is proved in the same
        script, by that channel (the registered connection's own) having no subscriber (else
        ``STILL_SUBSCRIBED``, nothing done); "" when it was proved already."""
        k = self.keys
        args: list[str | int] = [dead.encode(), registration, reason, member, ttl_ms, seen_term, k.events, conn]
        reply = await self._batched(
            self._scripts.bury,
            [k.leader, k.term, k.members, k.leases, k.history, k.recovery, k.leader_conn, k.watching, k.ranking],
            [*args, proof_channel, incarnation],
        )
        return parse_claim(reply, member, ttl_ms)

    async def history(self, count: int = 20) -> list[HistoryEntry]:
        """The last ``count`` leadership transitions, oldest first."""
        return parse_history(await self.client.xrevrange(self.keys.history, count=count))

    async def request_resign(self) -> int:
        """Ask the current leader to resign. Returns how many subscribers heard it."""
        return int(await self.client.publish(self.keys.events, PoolMessage(PoolEvent.RESIGN).encode()))

    async def forget(self, every_key: Iterable[str], *, force: bool) -> Forgotten:
        """Delete the pool's keys (``every_key``: all it stores, see ``leaderpool-cli forget``) in
        one script, unless it has a leader or live members and not ``force``: a member that joins
        meanwhile is either seen (and the pool kept) or registers again at its next heartbeat."""
        k = self.keys
        ordered = [k.leader, k.leases, *(key for key in every_key if key not in (k.leader, k.leases))]
        deleted, live, leader = await self._scripts.forget(keys=ordered, args=["1" if force else "0"])
        return Forgotten(int(deleted), int(live), bool(leader))
