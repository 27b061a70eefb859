"""What one member last read of its pool: the leader (the cache the faces answer from without a
round trip), the live members, who comes next after the leader, the highest term seen, and a
sample of Redis's clock. Updated from every reply; read by the election loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from leaderpool import probe
from leaderpool.backend.protocol import Glance, LeaderValue, Observation
from leaderpool.config import MemberConfig
from leaderpool.election import succession as succ
from leaderpool.events import Event, LeaderChanged, LeaderInfo, leader_identity
from leaderpool.members import MemberInfo
from leaderpool.util.log import Logger


class PoolView:
    """One member's knowledge of its pool, as of its last reads."""

    def __init__(self, config: MemberConfig, emit: Callable[[Event], Awaitable[None] | None]) -> None:
        self.config = config
        self._emit = emit
        self.leader: LeaderInfo | None = None
        self.members: list[MemberInfo] = []  # live members at the last read of the pool
        self.resigned: str | None = None  # who just resigned (ranked last for a lease)
        self.successor_id: str | None = None  # who ranks first after the leader, at the last read
        self.seen_term = 0  # the highest term seen in the pool: reported so terms survive data loss
        self.redis_clock: succ.RedisClockSample | None = None
        self.leader_conn = ""  # the leader's registered connection, "<term>|<client id>" (fast failover)

    @property
    def successor(self) -> bool:
        """We are next in line: we claim the moment the lead looks vacant."""
        return self.successor_id == self.config.member_id

    @property
    def ranked_in_redis(self) -> bool:
        """The default ranking, without anti-affinity: Redis's ranking zset says who is first and
        next, so a change costs this member a glance (O(log N)) instead of a full listing. A custom
        ranker or anti-affinity needs every record: those pools read the whole pool."""
        return self.config.ranker is None and not self.config.avoid_pools

    def ranked_successor(self) -> str | None:
        """Whom a leaving leader hands to, as Redis's ranking said at the last beat (None: rank
        the members read instead)."""
        return (self.successor_id or "") if self.ranked_in_redis else None

    def saw(self, term: int) -> None:
        self.seen_term = max(self.seen_term, term)

    def read(self, obs: Observation, sent: float) -> None:
        """Take in a full read of the pool (sent at ``sent``)."""
        self.redis_clock = (sent, obs.now_ms)
        self.members, self.resigned, self.leader_conn = obs.members, obs.resigned, obs.leader_conn
        probe.members_seen(self.config.pool, self.config.member_id, len(obs.members))

    def glanced(self, glance: Glance, sent: float) -> None:
        """Take in a glance (sent at ``sent``): the members listing stays as it was."""
        self.redis_clock = (sent, glance.now_ms)
        self.resigned, self.leader_conn = glance.resigned, glance.leader_conn
        if glance.live_count >= 0:
            probe.members_seen(self.config.pool, self.config.member_id, glance.live_count)

    def find_next(self, leader: str, members: list[MemberInfo] | None = None, resigned: str | None = None) -> None:
        """Who comes next after ``leader`` (None with anti-affinity: its ranking needs a read)."""
        c = self.config
        members, resigned = (self.members, self.resigned) if members is None else (members, resigned)
        anti_affinity = bool(c.avoid_pools)
        self.successor_id = succ.next_in_line(members, leader, c.ranker, resigned=resigned, anti_affinity=anti_affinity)

    def is_current(self, value: LeaderValue | None) -> bool:
        return leader_identity(self.leader) == ((value.member, value.term) if value else None)

    def set_leader(self, member: str | None, term: int, record: MemberInfo | None, lease_ms: int, log: Logger) -> None:
        """Cache the leader; ``record`` (its member record) carries the lead's lease left,
        ``lease_ms``, as of the read. A change of leader is an event."""
        info = dataclasses.replace(record, lease_ms=lease_ms) if record is not None else None
        leader = LeaderInfo(member, term, info) if member is not None else None
        old, self.leader = self.leader, leader
        if leader_identity(old) != leader_identity(leader):
            if member != self.config.member_id:  # our own lead is logged as "elected", after acting on it
                log.info("leader_changed", leader=member, leader_term=term if member else None)
            self._emit(LeaderChanged(leader))
        elif old is not None and info is None:
            self.leader = old  # same lead, and this read brought no record: keep the one we had

    def heard_elected(self, member: str, term: int, log: Logger) -> bool:
        """Another member announced its lead: cache it at once, with its record from our last
        read (so lookups answer in milliseconds) and a full lease. False if not news."""
        if self.leader is not None and term <= self.leader.term:
            return False
        self.saw(term)
        if not self.ranked_in_redis:
            self.find_next(member)
        elif self.successor_id == member:
            self.successor_id = None  # who follows it: the re-read this announcement makes due says
        record = next((m for m in self.members if m.member == member), None)
        self.set_leader(member, term, record, self.config.ttl_ms, log)
        return True

    def forget_own_lead(self) -> None:
        """We stopped leading: we no longer vouch for our lead; the next read says who leads."""
        if self.leader is not None and self.leader.member == self.config.member_id:
            self.leader = None
