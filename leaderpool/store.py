"""Typed asyncio calls to a pool's state in Redis: one method per script, replies parsed into
small named tuples at once. Nothing here decides anything; :mod:`leaderpool.election` does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from leaderpool.keys import Keyspace, fence_key
from leaderpool.members import MemberInfo
from leaderpool.scripts import scripts_for


def text(value: Any) -> str:
    """A Redis reply as str, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


class LeaderValue(NamedTuple):
    """What the leader key holds: ``"<term>|<member>"``."""

    term: int
    member: str

    def encode(self) -> str:
        return f"{self.term}|{self.member}"

    @classmethod
    def parse(cls, raw: Any) -> LeaderValue | None:
        if raw is None or raw is False:
            return None
        term, _, member = text(raw).partition("|")
        return cls(int(term), member)


class Beat(NamedTuple):
    status: int
    """1 ok (renewed when leading), 0 leading but the key is no longer ours, -1 unknown member."""
    now_ms: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    resigned: str | None
    """With ``want_members``: the member that just resigned (ranked last), if any."""
    free_in_us: int
    """Microseconds from the reply until the lead can be claimed if not renewed (-1: none)."""
    members: list[MemberInfo]


class Observation(NamedTuple):
    now_ms: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    resigned: str | None
    free_in_us: int
    """Microseconds from the reply until the lead can be claimed if not renewed (-1: none)."""
    members: list[MemberInfo]

    def member(self, member_id: str) -> MemberInfo | None:
        return next((m for m in self.members if m.member == member_id), None)


class ClaimResult(NamedTuple):
    status: int
    """1 elected, 0 the lead is held by someone, -1 this member is not live in the pool,
    -2 claims wait while Redis recovers lost terms (``leader_pttl_ms`` says how long)."""
    term: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    free_in_us: int


class FenceResult(NamedTuple):
    written: bool
    term: int
    """The writer's term when written, else the highest term already accepted."""


class HistoryEntry(NamedTuple):
    entry_id: str
    event: str
    term: int
    member: str
    reason: str
    t_ms: int


def _members(flat: Sequence[Any], now_ms: int) -> list[MemberInfo]:
    out = []
    for i in range(0, len(flat) - 2, 3):
        deadline = int(float(text(flat[i + 2])))
        out.append(MemberInfo.from_record(text(flat[i]), text(flat[i + 1]), deadline - now_ms))
    return out


class PoolStore:
    """The asyncio Redis I/O of one pool."""

    def __init__(self, client: Any, keys: Keyspace) -> None:
        self.client = client
        self.keys = keys
        self._scripts = scripts_for(client)

    async def redis_time_ms(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def register(self, info: MemberInfo, ttl_ms: int, seen_term: int = 0) -> int:
        k = self.keys
        now = await self._scripts.register(
            keys=[k.members, k.leases, k.term, k.recovery],
            args=[info.member, info.record_json(), ttl_ms, k.events, seen_term],
        )
        return int(now)

    async def heartbeat(
        self, member: str, ttl_ms: int, held: LeaderValue | None, want_members: bool, seen_term: int = 0
    ) -> Beat:
        k = self.keys
        reply = await self._scripts.heartbeat(
            keys=[k.members, k.leases, k.leader, k.term, k.recovery, k.resigned],
            args=[member, ttl_ms, held.encode() if held else "", "1" if want_members else "0", seen_term],
        )
        status, now = int(reply[0]), int(reply[1])
        if status < 0:
            return Beat(status, now, None, -2, None, -1, [])
        resigned = text(reply[4]) if reply[4] else None
        leader = LeaderValue.parse(reply[2])
        return Beat(status, now, leader, int(reply[3]), resigned, int(reply[5]), _members(reply[6:], now))

    async def observe(self, *, prune: bool = True) -> Observation:
        """The pool at one instant; members drop lapsed members on the way (``prune``), tools
        such as ``leaderpool-cli status`` only read."""
        k = self.keys
        reply = await self._scripts.observe(
            keys=[k.members, k.leases, k.leader, k.resigned], args=["1" if prune else "0"]
        )
        now = int(reply[0])
        resigned = text(reply[3]) if reply[3] else None
        leader = LeaderValue.parse(reply[1])
        return Observation(now, leader, int(reply[2]), resigned, int(reply[4]), _members(reply[5:], now))

    async def claim(self, member: str, ttl_ms: int, seen_term: int) -> ClaimResult:
        k = self.keys
        reply = await self._scripts.claim(
            keys=[k.leader, k.term, k.members, k.leases, k.history, k.recovery],
            args=[member, ttl_ms, seen_term, k.events],
        )
        status = int(reply[0])
        if status == 1:
            term = int(text(reply[1]))
            return ClaimResult(1, term, LeaderValue(term, member), ttl_ms, ttl_ms * 1000)
        if status == 0:
            leader = LeaderValue.parse(reply[1])
            return ClaimResult(0, 0, leader, int(reply[2]), int(reply[3]))
        if status == -2:
            return ClaimResult(-2, 0, None, int(reply[1]), -1)
        return ClaimResult(-1, 0, None, -2, -1)

    async def release(
        self, held: LeaderValue, reason: str, exclude_ms: int = 0, *, successor: str = "", ttl_ms: int = 0
    ) -> tuple[bool, int]:
        """End the lead ``held`` (compare-and-set), handing it to ``successor`` when it is live.
        Returns (released, the successor's new term or 0)."""
        k = self.keys
        released, handed = await self._scripts.release(
            keys=[k.leader, k.resigned, k.history, k.term, k.leases, k.recovery],
            args=[held.encode(), reason, exclude_ms, k.events, successor, ttl_ms],
        )
        return bool(int(released)), int(handed)

    async def leave(
        self, member: str, reason: str, *, event: str = "left", successor: str = "", ttl_ms: int = 0
    ) -> tuple[bool, int, int]:
        """Remove ``member`` and end its lead, if any, handing it to ``successor`` when live.
        Returns (was a member, released term or 0, the successor's new term or 0)."""
        k = self.keys
        was_member, released, handed = await self._scripts.leave(
            keys=[k.members, k.leases, k.leader, k.history, k.term, k.recovery],
            args=[member, reason, k.events, event, successor, ttl_ms],
        )
        return bool(int(was_member)), int(text(released)), int(handed)

    async def leader_record(self) -> tuple[LeaderValue, int, MemberInfo | None] | None:
        """The leader, its lease left (ms) and its member record, or None when vacant."""
        k = self.keys
        reply = await self._scripts.leader_record(keys=[k.leader, k.members])
        if not reply:
            return None
        value = LeaderValue.parse(reply[0])
        assert value is not None
        pttl = int(reply[1])
        info = MemberInfo.from_record(value.member, text(reply[2]), pttl) if reply[2] else None
        return value, pttl, info

    async def history(self, count: int = 20) -> list[HistoryEntry]:
        """The last ``count`` leadership transitions, oldest first."""
        entries = await self.client.xrevrange(self.keys.history, count=count)
        out = []
        for entry_id, fields in reversed(entries):
            f = {text(a): text(b) for a, b in fields.items()}
            out.append(
                HistoryEntry(
                    text(entry_id),
                    f.get("event", ""),
                    int(f.get("term", 0) or 0),
                    f.get("member", ""),
                    f.get("reason", ""),
                    int(f.get("t_ms", 0) or 0),
                )
            )
        return out

    async def request_resign(self) -> int:
        """Ask the current leader to resign. Returns how many subscribers heard it."""
        return int(await self.client.publish(self.keys.events, "resign|0||"))


async def fenced_set(client: Any, key: str, value: str | bytes, term: int, px: int = 0) -> FenceResult:
    """SET ``key`` only if ``term`` is >= the highest term that ever wrote it (see README)."""
    reply = await scripts_for(client).fenced_set(keys=[key, fence_key(key)], args=[term, value, px])
    return FenceResult(bool(int(reply[0])), int(text(reply[1])))
