"""A tooz coordinator's candidacies: ``watch_elected_as_leader`` makes the coordinator a member
of the group's pool (an :class:`~leaderpool.Election`, one per group), and ``run_watchers``
reports the leads it won since it last ran (:meth:`GroupLeads.newly_won`).

leaderpool elects (priority, then the oldest candidate, which is tooz's first come when
priorities are equal), keeps the lead in the background and fails over fast; what is left here is
tooz's contract: its suite expects a lead handed over (a stand-down, a stop) to show at once,
even to another coordinator of the same process whose election has not heard of it yet.
"""

from __future__ import annotations

import asyncio
import threading
import time

import redis
import tooz

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.blocking import Election
from leaderpool.config import MemberConfig
from leaderpool.tooz.driver_options import DriverOptions
from leaderpool.tooz.translation import as_bytes, text, translated
from leaderpool.util.log import get_logger

__all__ = ["HAND_OVER_POLL_S", "GroupLeads"]

log = get_logger("leaderpool.tooz")

HAND_OVER_POLL_S = 0.002
"""How often stand_down_group_leader looks whether its hand-over has landed in Redis, and
run_watchers whether a vacant lead has been filled."""


class _LocalHandOvers:
    """Leads given up by this process's coordinators (stop, stand-down). The successor may be
    another coordinator of this process whose election has not heard of it yet (tooz's suite
    checks at once), so after one, run_watchers asks Redis instead of trusting the local view."""

    _lock = threading.Lock()
    count = 0

    @classmethod
    def bump(cls) -> None:
        with cls._lock:
            cls.count += 1


class GroupLeads:
    """One coordinator's elections, by group; they run while the coordinator is started."""

    def __init__(self, options: DriverOptions, member: str) -> None:
        self._options = options
        self._member = member
        self._client: redis.Redis | None = None
        self._elections: dict[bytes, Election] = {}
        self._announced: dict[bytes, int] = {}
        self._hand_overs_seen: dict[bytes, int] = {}

    def start(self, client: redis.Redis) -> None:
        """The coordinator started: elections may run, on ``client`` for the reads of Redis here."""
        self._client = client

    def stop(self) -> None:
        """The coordinator stops: every election stops (handing its lead over)."""
        for group in list(self._elections):
            self.stop_running(group)
        self._client = None

    def run_for(self, group_id: bytes) -> None:
        """Be a candidate of ``group_id`` (once started; again after a restart)."""
        if group_id in self._elections or self._client is None:
            return
        o = self._options
        config = MemberConfig(
            pool=text(group_id),
            member_id=self._member,
            priority=o.priority,
            ttl_s=o.ttl_s,
            prefix=o.prefix,
            fast_failover=o.fast_failover,
            meta={"tooz": True},
        )
        election = Election(config, o.url)
        election.start()
        self._elections[group_id] = election

    def stop_running(self, group_id: bytes) -> None:
        """No longer a candidate of ``group_id`` (its lead, if held, is handed over)."""
        election = self._elections.pop(group_id, None)
        self._announced.pop(group_id, None)
        self._hand_overs_seen.pop(group_id, None)
        if election is not None:
            try:
                election.stop()
            finally:
                _LocalHandOvers.bump()

    def newly_won(self, group_id: bytes, deadline: float) -> int | None:
        """The term of a lead of ``group_id`` this member won and has not reported yet (logged
        ``tooz_elected``), else None; see :meth:`_won` for when it reads Redis and how long it waits."""
        self.run_for(group_id)
        election = self._elections.get(group_id)
        if election is None:
            return None
        with translated():
            term = self._won(election, deadline)
        if term is None or self._announced.get(group_id) == term:
            return None
        self._announced[group_id] = term
        log.info("tooz_elected", pool=text(group_id), member=self._member, term=term)
        return term

    def _won(self, election: Election, deadline: float) -> int | None:
        """The term this member leads with, once the election has settled (waiting up to
        ``deadline`` for a vacancy to fill or a lead handed to us to arrive); None if another
        member leads. No Redis command while the local view has another member leading and no
        coordinator of this process has given up a lead since the last look."""
        if election.is_leader:
            return election.term
        group_id = as_bytes(election.pool)
        leader, hand_overs = election.leader, _LocalHandOvers.count
        if leader is not None and leader.member != self._member and self._hand_overs_seen.get(group_id) == hand_overs:
            return None
        self._hand_overs_seen[group_id] = hand_overs
        try:
            # a new candidate has joined once its own first read of the pool found a leader (local)
            election.wait_for_leader(timeout=max(0.0, deadline - time.monotonic()))
            found = self._leader_value(election.pool)  # one GET: the local view may be a hand-over late
            while found is None:  # a vacancy (first start, a release): Redis says who fills it
                if time.monotonic() >= deadline:
                    return None
                time.sleep(HAND_OVER_POLL_S)
                found = self._leader_value(election.pool)
            if found.member != self._member:
                return None
            return election.wait_until_leader(timeout=max(0.0, deadline - time.monotonic()))
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes on Python 3.10
            return None

    def _leader_value(self, pool: str) -> LeaderValue | None:
        if self._client is None:
            raise tooz.ToozError("the coordinator is not started")
        return LeaderValue.parse(self._client.get(Keyspace(pool, self._options.prefix).leader))

    def leader_of(self, group_id: bytes) -> bytes | None:
        """Who leads ``group_id``, read from Redis (whoever: this coordinator runs for it or not)."""
        value = self._leader_value(text(group_id))
        return None if value is None else as_bytes(value.member)

    def stand_down(self, group_id: bytes) -> bool:
        """Hand the lead to the next candidate (leaderpool's resign); this member stays a
        candidate, ranked last for one lease. False when it does not lead."""
        election = self._elections.get(group_id)
        term = None if election is None else election.term
        if election is None or term is None:
            return False
        try:
            with translated():
                election.resign()
                # tooz callers expect the lead gone on return: wait for the hand-over script
                deadline = time.monotonic() + 2 * self._options.ttl_s
                while time.monotonic() < deadline:
                    leader = self._leader_value(election.pool)
                    if leader is None or leader.member != self._member or leader.term != term:
                        break
                    time.sleep(HAND_OVER_POLL_S)
        finally:
            _LocalHandOvers.bump()  # once Redis shows it: a successor here may not have heard yet
        return True
