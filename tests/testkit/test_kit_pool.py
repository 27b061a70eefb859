"""The test kit's pool: in-process members, a clock moved by hand, and faults; each test runs on
fakeredis and on a real redis-server (there ``advance`` waits the real time)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable

import pytest

from leaderpool.election.dispatch import ThreadDispatcher
from leaderpool.events import Event
from leaderpool.testkit.kit_pool import KitPool

pytestmark = pytest.mark.parametrize("leaderpool_redis", ["fake", "real"], indirect=True)

PoolFactory = Callable[..., KitPool]


class TestFailover:
    def test_a_killed_leader_is_followed_by_the_next_in_line(self, leaderpool_pool: PoolFactory) -> None:
        """A crash hands nothing over: the next member leads with a higher term once the lease ends."""
        elected: list[int] = []
        pool = leaderpool_pool("scheduler", members=3, on_elected=elected.append)
        first = pool.wait_for_leader()
        assert "m0" == first
        pool.kill(first)
        second = pool.wait_for_leader()
        assert second == "m1"
        assert [1, 2] == elected
        kinds = [(member, kind, term, reason) for _, member, kind, term, reason in pool.history()]
        assert [("m0", "elected", 1, None), ("m0", "revoked", 1, "killed"), ("m1", "elected", 2, None)] == kinds
        pool.assert_single_leader()

    def test_a_frozen_leader_finds_its_lead_lapsed_when_thawed(self, leaderpool_pool: PoolFactory) -> None:
        """Frozen past its lease, the leader is replaced; thawed, it learns its lead ended (lease lost)."""
        revoked: list[str] = []
        pool = leaderpool_pool("scheduler", members=3, on_revoked=lambda reason: revoked.append(reason.value))
        first = pool.wait_for_leader()
        pool.freeze(first)
        pool.advance(3.0)
        assert pool.leader not in (None, first)
        assert [] == revoked  # frozen: it has not heard yet
        pool.thaw(first)
        assert ["lease_lost"] == revoked
        assert pool.leader not in (None, first)
        pool.assert_single_leader()

    def test_a_kind_stop_hands_over_at_once(self, leaderpool_pool: PoolFactory) -> None:
        """stop() releases to the next in line: a new leader without waiting for a lease."""
        pool = leaderpool_pool("scheduler", members=2)
        first = pool.wait_for_leader()
        pool.stop(first)
        assert "m1" == pool.leader
        assert ("m0", "revoked", 1, "shutdown") == pool.history()[1][1:]
        pool.assert_single_leader()

    def test_resign_hands_the_lead_over_and_stays(self, leaderpool_pool: PoolFactory) -> None:
        pool = leaderpool_pool("scheduler", members=2)
        pool.wait_for_leader()
        pool.resign()
        assert "m1" == pool.wait_for_leader()
        assert ("m0", "revoked", 1, "resigned") == pool.history()[1][1:]
        assert "follower" == pool.member("m0").role.value
        pool.assert_single_leader()

    def test_a_member_joined_later_follows(self, leaderpool_pool: PoolFactory) -> None:
        pool = leaderpool_pool("scheduler", members=1)
        pool.wait_for_leader()
        assert "late" == pool.join("late")
        pool.advance(2.0)
        assert "m0" == pool.leader
        assert ["m0", "late"] == pool.members


class TestPartitionsAndRestarts:
    def test_a_leader_cut_from_redis_steps_down_and_another_leads(self, leaderpool_pool: PoolFactory) -> None:
        pool = leaderpool_pool("scheduler", members=3)
        first = pool.wait_for_leader()
        pool.partition(first)
        pool.advance(3.0)
        assert pool.leader not in (None, first)
        assert not pool.member(first).is_leader
        pool.heal(first)
        pool.advance(2.0)
        assert pool.leader not in (None, first)
        pool.assert_single_leader()

    def test_redis_losing_its_data_is_survived_with_terms_going_up(self, leaderpool_pool: PoolFactory) -> None:
        pool = leaderpool_pool("scheduler", members=2)
        pool.wait_for_leader()
        pool.restart_redis(lose_data=True)
        pool.advance(3.0)
        assert pool.wait_for_leader() is not None
        pool.assert_single_leader()  # terms only go up, though Redis forgot its counter


class TestSettling:
    def test_the_pool_settles_when_a_callback_runs_before_its_lead_hook(
        self, leaderpool_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The blocking face's callback thread may run ``on_elected`` before the election's loop
        has run the lead hook that counts it as handed over; the pool must count it run either
        way. Here the dispatcher always wins that race (it runs the callback as it is handed
        over); the kit's count once stuck at 1, and every later step waited out its 5 s bound."""

        def run_at_once(self: ThreadDispatcher, event: Event) -> Awaitable[None]:
            self._callbacks.call(event)
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return asyncio.wrap_future(done)

        monkeypatch.setattr(ThreadDispatcher, "submit", run_at_once)
        elected: list[int] = []
        pool = leaderpool_pool("scheduler", members=2, on_elected=elected.append)
        assert "m0" == pool.wait_for_leader()
        assert [1] == elected
        assert pool.clock.settled
        pool.resign()
        assert "m1" == pool.wait_for_leader()
        assert pool.clock.settled


class TestFailingTests:
    def test_waiting_for_a_leader_that_cannot_be_elected_fails_the_test(self, leaderpool_pool: PoolFactory) -> None:
        """A pool whose only member is cut from Redis has no leader: wait_for_leader says so."""
        pool = leaderpool_pool("scheduler", members=1)
        pool.wait_for_leader()
        pool.partition("m0")
        pool.advance(1.0)  # past its renew deadline: it may no longer act
        assert pool.leader is None
        with pytest.raises(AssertionError, match=r"pool 'scheduler': no leader after 3s"):
            pool.wait_for_leader(timeout_s=3.0)

    def test_fault_calls_refuse_a_member_that_is_gone(self, leaderpool_pool: PoolFactory) -> None:
        pool = leaderpool_pool("scheduler", members=2)
        pool.kill("m0")
        with pytest.raises(ValueError, match="member 'm0' was killed"):
            pool.freeze("m0")
        with pytest.raises(ValueError, match=r"no member 'm9' \(members: \['m0', 'm1'\]\)"):
            pool.kill("m9")


class TestAsyncioMembers:
    def test_asyncio_members_with_async_callbacks(self, leaderpool_pool: PoolFactory) -> None:
        elected: list[int] = []

        async def on_elected(term: int) -> None:
            elected.append(term)

        pool = leaderpool_pool("scheduler", members=2, face="asyncio", on_elected=on_elected)
        first = pool.wait_for_leader()
        pool.kill(first)
        pool.wait_for_leader()
        assert [1, 2] == elected
        pool.assert_single_leader()
