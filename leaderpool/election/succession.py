"""Succession, as pure functions: who comes next, whom to hand to, and the deadline arithmetic.

Nothing here does I/O or reads a clock: the election passes in what it read and when, so each
rule is tested directly (``tests/election/test_succession.py``). Instants are monotonic seconds
on the election's clock (:class:`leaderpool.util.clock.Clock`); Redis times are unix
milliseconds on Redis's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from leaderpool.backend.protocol import LeaderRecord
from leaderpool.members import MemberInfo, Ranker, rank_members
from leaderpool.util.constants import (
    BACKOFF_DOUBLINGS,
    BACKOFF_FIRST_S,
    LEADER_RETRY_MIN_S,
    VACANCY_GRACE_S,
)

RedisClockSample = tuple[float, int]
"""(local instant a request was sent, Redis's clock in ms in its reply): Redis read that time
no earlier than we sent the request."""


# ---- who is next ----


def next_in_line(
    members: Sequence[MemberInfo], leader: str, ranker: Ranker | None, *, resigned: str | None, anti_affinity: bool
) -> str | None:
    """Who ranks first once ``leader`` is gone. That member claims as soon as the lead looks
    vacant (one round trip instead of re-reading first); the others wait for its claim to be
    announced. None with anti-affinity, whose ranking needs other pools' leaders: re-read."""
    if anti_affinity:
        return None
    others = [m for m in members if m.member != leader]
    ranked = rank_members(others, ranker, resigned=resigned)
    return ranked[0].member if ranked else None


def successor_for(
    view: Sequence[MemberInfo], me: str, ranker: Ranker | None, avoid_nodes: frozenset[str] = frozenset()
) -> str:
    """Whom a leaving leader hands its lead to: the best-ranked other live member of its last
    read ("" for none; Redis checks it is still live, else the lead is simply freed)."""
    others = [m for m in view if m.member != me and m.lease_ms > 0]
    if not others:
        return ""
    return rank_members(others, ranker, avoid_nodes=avoid_nodes)[0].member


def preferred_over(
    members: Sequence[MemberInfo],
    me: str,
    ranker: Ranker | None,
    *,
    avoid_nodes: frozenset[str],
    resigned: str | None,
) -> MemberInfo | None:
    """With takeover on: the live member a leader should hand over to, None to keep leading."""
    ranked = rank_members(members, ranker, avoid_nodes=avoid_nodes, resigned=resigned)
    if ranked and ranked[0].member != me and ranked[0].lease_ms > 0:
        return ranked[0]
    return None


def leader_nodes(records: Iterable[LeaderRecord | None]) -> frozenset[str]:
    """Anti-affinity input: the nodes running the leaders of the avoided pools."""
    return frozenset(r.info.node for r in records if r is not None and r.info is not None)


# ---- a vacant lead ----


def claim_position(
    members: Sequence[MemberInfo],
    me: str,
    ranker: Ranker | None,
    *,
    avoid_nodes: frozenset[str],
    resigned: str | None,
) -> tuple[int, list[MemberInfo]]:
    """Our place in the ranking for a vacant lead (0: we claim at once), and the ranking."""
    ranked = rank_members(members, ranker, avoid_nodes=avoid_nodes, resigned=resigned)
    return next(i for i, m in enumerate(ranked) if m.member == me), ranked


def forced_at(vacant_since: float, position: int, count: int, *, ttl_s: float, heartbeat_s: float) -> float:
    """When a member at ``position`` of ``count`` claims a vacant lead anyway. Nobody waits longer
    than ttl + heartbeat for a preferred member that does not claim; members further down wait
    a little longer, so the order is kept even then."""
    return vacant_since + ttl_s + heartbeat_s * (max(position - 1, 0) / max(count - 2, 1))


def vacancy_retry_at(sent: float, preferred: MemberInfo, forced: float) -> float:
    """When to look again while waiting for ``preferred`` to claim: once its lease would have
    lapsed, or when we claim anyway, whichever is first."""
    return min(sent + max(preferred.lease_ms, 0) / 1000 + 0.001, forced)


def vacancy_grace(heartbeat_s: float) -> float:
    """How long a follower that is not next in line waits before looking at a vacant lead."""
    return min(VACANCY_GRACE_S + heartbeat_s / 10, heartbeat_s)


def lease_end(sent: float, received: float, free_in_us: int) -> float | None:
    """The instant the leader's lease frees (-1: never, or no leader). Redis measured
    ``free_in_us`` somewhere between ``sent`` and ``received``: aim from the middle."""
    if free_in_us < 0:
        return None
    return (sent + received) / 2 + free_in_us / 1e6


# ---- a hand-over ----


def grant_instant(sample: RedisClockSample | None, granted_ms: int) -> float | None:
    """The instant on our clock at which a hand-over granted at Redis time ``granted_ms``
    happened, at the earliest. Our last reply from Redis said Redis's clock read ``now_ms`` no
    earlier than when we sent that request, so the grant happened no earlier than
    ``sent + (granted - now_ms)`` here (less a ms for truncation). None without a sample."""
    if sample is None:
        return None
    sent, now_ms = sample
    return sent + (granted_ms - now_ms - 1) / 1000


def safe_to_act_on_grant(granted_at: float | None, now: float, *, renew_deadline_s: float, heartbeat_s: float) -> bool:
    """Act on a hand-over at once only if more than half a heartbeat of the renew deadline,
    counted from the grant, is left (else we were frozen, say: confirm through Redis first)."""
    return granted_at is not None and granted_at + renew_deadline_s - now > heartbeat_s / 2


# ---- failures ----


def retry_delay(failures: int, *, heartbeat_s: float, renew_left_s: float | None) -> float:
    """How long to wait after ``failures`` failed calls in a row: doubling from
    :data:`BACKOFF_FIRST_S` up to a heartbeat. A leader (``renew_left_s`` set) retries within a
    quarter of what is left of its renew deadline."""
    delay = min(BACKOFF_FIRST_S * 2.0 ** min(failures - 1, BACKOFF_DOUBLINGS), heartbeat_s)
    if renew_left_s is not None:
        delay = min(delay, max(LEADER_RETRY_MIN_S, renew_left_s / 4))
    return delay
