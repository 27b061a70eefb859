"""What a member is: its record in the pool hash, and how the pool ranks members for leadership."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MemberInfo:
    """One live member of a pool as Redis knows it."""

    member: str
    node: str
    host: str
    pid: int
    priority: int
    started_at_ms: int
    """Join time on Redis's clock (unix ms): the seed's "longest running" is the smallest."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    lease_ms: int = 0
    """Lease time left when this was read."""
    liveness: str = ""
    """The member process's liveness endpoint, ``HOST:PORT/NONCE`` ("" when fast failover is off):
    see :mod:`leaderpool.fast_failover.failover`."""
    incarnation: str = ""
    """This run of the member's process: a random token made when its election is created, so two
    processes under one member id are told apart ("" in records of versions before 0.x: no check).
    See :mod:`leaderpool.election.identity`."""
    since_ms: int = 0
    """When this incarnation first joined (Redis's clock, unix ms; 0: not recorded). Unlike
    ``started_at_ms`` it stays put when the member rejoins as the youngest."""

    def record_json(self) -> str:
        """The JSON stored in the members hash (everything but the lease)."""
        record: dict[str, Any] = {
            "node": self.node,
            "host": self.host,
            "pid": self.pid,
            "priority": self.priority,
            "started_at_ms": self.started_at_ms,
            "meta": dict(self.meta),
        }
        if self.liveness:
            record["liveness"] = self.liveness
        if self.incarnation:
            record["incarnation"] = self.incarnation
            record["since_ms"] = self.since_ms
        return json.dumps(record, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_record(cls, member: str, record: str | bytes, lease_ms: int) -> MemberInfo:
        """Parse a members-hash value; tolerate missing fields from other versions. ValueError
        (or TypeError) for a record that is no JSON object or whose fields have the wrong kind,
        and for nothing else (JSON nested too deep, a number too large for an int)."""
        try:
            return cls._from_record(member, record, lease_ms)
        except (RecursionError, OverflowError, AttributeError) as exc:
            raise ValueError(f"not a member record: {type(exc).__name__}") from None

    @classmethod
    def _from_record(cls, member: str, record: str | bytes, lease_ms: int) -> MemberInfo:
        data = json.loads(record)
        if not isinstance(data, dict) or not isinstance(data.get("meta") or {}, dict):
            raise ValueError("not a JSON object with an object for meta")
        return cls(
            member=member,
            node=str(data.get("node", "")),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            priority=int(data.get("priority", 0)),
            started_at_ms=int(data.get("started_at_ms", 0)),
            meta=dict(data.get("meta") or {}),
            lease_ms=lease_ms,
            liveness=str(data.get("liveness", "")),
            incarnation=str(data.get("incarnation", "")),
            since_ms=int(data.get("since_ms", 0)),
        )

    def describe_incarnation(self) -> str:
        """``pid 4242 on host vm since 2026-12-07T06:30:01Z``: which process this record is."""
        since = self.since_ms or self.started_at_ms
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since / 1000)) if since else "an unknown time"
        return f"pid {self.pid} on host {self.host or '?'} since {when}"


Ranker = Callable[[Sequence[MemberInfo]], Sequence[MemberInfo]]
"""Orders live members best first; the first one should lead (the seed's "function that
selects the leader"). It must be deterministic: every member ranks the same list."""


def by_priority_then_age(members: Sequence[MemberInfo]) -> list[MemberInfo]:
    """The default: highest priority first, then the longest running, then by id."""
    return sorted(members, key=lambda m: (-m.priority, m.started_at_ms, m.member))


RANK_PRIORITY_LIMIT = 2**11 - 1
"""Priorities are exact in Redis's ranking zset within +-this; beyond, they rank as the limit."""
_RANK_TIME_BITS = 41  # unix ms fit in 41 bits until 2039; with the priority, 53 bits: a double is exact


def rank_score(priority: int, started_at_ms: int) -> int:
    """The member's score in the pool's ranking zset: ascending order is the default ranking
    (:func:`by_priority_then_age`; Redis orders equal scores by member id, as it does). Redis
    answers "who is first, who is next" from its head, without listing the pool."""
    clamped = max(-RANK_PRIORITY_LIMIT, min(RANK_PRIORITY_LIMIT, priority))
    return -clamped * (1 << _RANK_TIME_BITS) + max(0, min(started_at_ms, (1 << _RANK_TIME_BITS) - 1))


def rank_members(
    members: Iterable[MemberInfo],
    ranker: Ranker | None = None,
    *,
    avoid_nodes: frozenset[str] = frozenset(),
    resigned: str | None = None,
) -> list[MemberInfo]:
    """Rank ``members`` with ``ranker``, then move down members on ``avoid_nodes`` (anti-affinity)
    and, last of all, the member that just resigned. Moving down never removes anyone, so a
    single-node pool still elects a leader.

    A ranker that raises or drops/invents members is ignored in favour of the default, with an
    error logged: a broken callable must not leave the pool without a leader.
    """
    given = list(members)
    ordered: list[MemberInfo]
    if ranker is None:
        ordered = by_priority_then_age(given)
    else:
        try:
            ordered = list(ranker(list(given)))
        except Exception:
            _log().exception("ranker_failed", ranker=repr(ranker))
            ordered = by_priority_then_age(given)
        if sorted(m.member for m in ordered) != sorted(m.member for m in given):
            _log().error("ranker_changed_members", ranker=repr(ranker))
            ordered = by_priority_then_age(given)

    def demotion(m: MemberInfo) -> int:
        return (2 if m.member == resigned else 0) + (1 if m.node in avoid_nodes else 0)

    return sorted(ordered, key=demotion)  # stable: keeps the ranker's order within a level


def _log() -> Any:
    """leaderpool's logger, made when a ranker misbehaves: reading a pool (the CLI's ``status``)
    loads no logging."""
    from leaderpool.util.log import get_logger

    return get_logger("leaderpool")
