"""The kit with leaderpool's other capabilities: a leader's periodic schedule fired by moving the
clock, and cluster-wide locks whose expiry follows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from leaderpool.blocking import Election
from leaderpool.jobs.wire import JobContext
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


class TestOtherCapabilitiesUnderTheKit:
    def test_unique_names_follow_a_crash(self, leaderpool_pool: PoolFactory) -> None:
        """A name held by a member that crashes is free once its lease ends (on the kit's clock)."""
        pool = leaderpool_pool("api", members=2)
        m0, m1 = pool.member("m0"), pool.member("m1")
        assert isinstance(m0, Election) and isinstance(m1, Election)  # the default face
        assert m0.register_name("billing", "10.0.0.5")
        assert not m1.register_name("billing", "10.0.0.6")
        pool.kill("m0")
        pool.advance(2.0)
        assert m1.register_name("billing", "10.0.0.6")
        owner = m1.whereis_name("billing", fresh=True)
        assert owner is not None and "m1" == owner.member

    def test_leader_state_passes_to_the_next_leader(self, leaderpool_pool: PoolFactory) -> None:
        pool = leaderpool_pool("scheduler", members=2, with_state=True)
        first = pool.wait_for_leader()
        leader = pool.member(first)
        assert isinstance(leader, Election)
        leader.save_state({"cursor": 41})
        pool.kill(first)
        second = pool.wait_for_leader()
        state = pool.member(second).state
        assert state is not None and {"cursor": 41} == state.data

    def test_calls_reach_the_leader_and_move_with_it(self, leaderpool_pool: PoolFactory) -> None:
        def handler(payload: Any, ctx: JobContext) -> Any:
            return {"echo": payload, "by": ctx.member}

        pool = leaderpool_pool("jobs", members=2, handler=handler)
        first = pool.wait_for_leader()
        caller = pool.member("m1")
        assert isinstance(caller, Election)
        assert {"echo": 1, "by": first} == caller.call(1, timeout=5)
        pool.kill(first)
        second = pool.wait_for_leader()
        assert {"echo": 2, "by": second} == caller.call(2, timeout=5)
