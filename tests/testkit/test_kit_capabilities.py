"""The kit with leaderpool's other capabilities: a leader's periodic schedule fired by moving the
clock, and cluster-wide locks whose expiry follows it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from leaderpool.schedules.periodic import ScheduledRun
from leaderpool.schedules.schedule import Schedule
from leaderpool.testkit.kit_pool import KitPool

PoolFactory = Callable[..., KitPool]


@pytest.mark.parametrize("leaderpool_redis", ["fake", "real"], indirect=True)
class TestSchedules:
    def test_each_slot_runs_once_on_the_leader_and_moves_with_the_lead(self, leaderpool_pool: PoolFactory) -> None:
        """Advancing to a slot fires it on the leader; after a crash the next leader runs the next slot."""
        runs: list[tuple[str, int]] = []
        pool = leaderpool_pool("reports", members=2)
        pool.run_schedule(Schedule("digest", every_s=1.0), lambda run: runs.append((run.member, run.term)))
        first = pool.wait_for_leader()
        pool.advance(1.0)
        assert [first] == sorted({member for member, _ in runs})
        assert len(runs) in (1, 2)  # the slot at the start (if the lead began on it) and the next
        pool.kill(first)
        pool.advance(2.0)
        second = pool.leader
        assert second not in (None, first)
        assert runs[-1] == (second, 2)
        pool.assert_single_leader()


class TestLocks:
    def test_a_paused_holder_loses_the_lock_and_the_next_gets_a_higher_token(
        self, leaderpool_pool: PoolFactory
    ) -> None:
        pool = leaderpool_pool("workers")
        a, b = pool.lock("orders", ttl_s=5), pool.lock("orders", ttl_s=5)
        assert a.acquire()
        assert not b.acquire()
        pool.advance(5.1)  # a pauses longer than its lock's ttl
        assert b.acquire()
        assert a.token is not None and b.token is not None and b.token > a.token
        b.release()


class TestKitOnAsyncioFaces:
    def test_schedules_on_asyncio_members(self, leaderpool_pool: PoolFactory) -> None:
        seen: list[float] = []

        async def digest(run: ScheduledRun) -> None:
            seen.append(run.slot)

        pool = leaderpool_pool("reports", members=1, face="asyncio")
        pool.run_schedule(Schedule("digest", every_s=1.0), digest)
        pool.wait_for_leader()
        pool.advance(3.0)
        assert 3 <= len(seen) <= 4
        assert sorted(seen) == seen and len(set(seen)) == len(seen)
