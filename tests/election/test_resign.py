"""``resign()`` returns once the hand-over happened: both faces, against a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from leaderpool import AsyncElection, Election, MemberConfig, NotLeader, RevokeReason
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.helpers import eventually, start_all, stop_all

TTL = 1.0


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 90))


class TestBlockingResign:
    def test_returns_once_handed_over(self, redis_server: RedisServer) -> None:
        """On return: a no longer leads, its (slow) on_revoked has returned, and Redis names b."""
        revoked: list[RevokeReason] = []

        def slow_revoked(reason: RevokeReason) -> None:
            time.sleep(0.3)  # the work stops slowly: resign must wait for it
            revoked.append(reason)

        a = Election(MemberConfig(pool="rs", member_id="a", ttl_s=TTL), redis_server.url, on_revoked=slow_revoked)
        b = Election(MemberConfig(pool="rs", member_id="b", ttl_s=TTL), redis_server.url)
        with a:
            term = a.wait_until_leader(10)
            with b:
                deadline = time.monotonic() + 10
                while "b" not in {m.member for m in a.members()} and time.monotonic() < deadline:
                    time.sleep(0.01)
                a.resign()
                assert (False, [RevokeReason.RESIGNED]) == (a.is_leader, revoked)
                fresh = a.current_leader(fresh=True)
                assert fresh is not None and ("b", term + 1) == (fresh.member, fresh.term)
                assert b.wait_until_leader(10) == term + 1
                with pytest.raises(NotLeader):
                    a.resign()  # no longer leading

    def test_times_out_with_a_clear_message(self, redis_one: RedisServer) -> None:
        """An on_revoked slower than the timeout: resign raises TimeoutError naming the wait."""
        release = threading.Event()
        a = Election(
            MemberConfig(pool="rt", member_id="a", ttl_s=TTL),
            redis_one.url,
            on_revoked=lambda reason: release.wait(5),
        )
        with a:
            a.wait_until_leader(10)
            with pytest.raises(TimeoutError, match=r"resign\(\) timed out.*within 0.2s"):
                a.resign(timeout=0.2)
            release.set()

    def test_from_a_callback_only_asks(self, redis_one: RedisServer) -> None:
        """resign() in on_elected (the callbacks' thread) asks and returns: no deadlock."""
        done = threading.Event()
        revoked: list[RevokeReason] = []
        election: list[Election] = []

        def elected(term: int) -> None:
            election[0].resign()
            done.set()

        a = Election(
            MemberConfig(pool="rc", member_id="a", ttl_s=TTL), redis_one.url, on_elected=elected,
            on_revoked=revoked.append,
        )  # fmt: skip
        election.append(a)
        with a:
            assert done.wait(10)
            deadline = time.monotonic() + 10
            while not revoked and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [RevokeReason.RESIGNED] == revoked[:1]


class TestAsyncResign:
    def test_returns_once_handed_over(self, redis_server: RedisServer) -> None:
        """The asyncio face: on return a no longer leads, on_revoked ran, Redis names b."""

        async def main() -> None:
            revoked: list[str] = []

            async def slow_revoked(reason: RevokeReason) -> None:
                await asyncio.sleep(0.3)
                revoked.append(reason.value)

            a = AsyncElection(
                MemberConfig(pool="ra", member_id="a", ttl_s=TTL), redis_server.url, on_revoked=slow_revoked
            )
            b = AsyncElection(MemberConfig(pool="ra", member_id="b", ttl_s=TTL), redis_server.url)
            await start_all([a, b])
            term = await a.wait_until_leader(10)
            await a.resign()
            assert (False, ["resigned"]) == (a.is_leader, revoked)
            fresh = await a.current_leader(fresh=True)
            assert fresh is not None and ("b", term + 1) == (fresh.member, fresh.term)
            assert await b.wait_until_leader(10) == term + 1
            await stop_all([a, b])

        run(main())

    def test_rejoin_returns_as_the_youngest_member(self, redis_one: RedisServer) -> None:
        """resign(rejoin=True): on return the lead is b's and a is a member again."""

        async def main() -> None:
            a = AsyncElection(MemberConfig(pool="rj", member_id="a", ttl_s=TTL), redis_one.url)
            b = AsyncElection(MemberConfig(pool="rj", member_id="b", ttl_s=TTL), redis_one.url)
            await start_all([a, b])
            await a.wait_until_leader(10)
            await a.resign(rejoin=True)
            fresh = await a.current_leader(fresh=True)
            assert fresh is not None and "b" == fresh.member
            assert {"a", "b"} == {m.member for m in await a.members()}
            await eventually(lambda: b.is_leader)
            await stop_all([a, b])

        run(main())
