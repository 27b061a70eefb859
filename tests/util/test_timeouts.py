"""Time limits that never lose a cancellation (:mod:`leaderpool.util.timeouts`): ``asyncio.wait_for``
before Python 3.12 swallows a cancellation that comes as the awaited thing finishes, and a loop
stopped by ``cancel()`` then runs on (a pool client's ``stop()`` hung for a minute this way)."""

from __future__ import annotations

import asyncio

import pytest

from leaderpool import AsyncPoolClient, Election, MemberConfig
from leaderpool.backend.listener import NotificationSource
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import cancel_and_wait, within


def test_a_cancellation_that_comes_as_the_wait_ends_is_kept() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        rounds = 0

        async def loop() -> None:
            nonlocal rounds
            while True:  # stopped only by cancel(): runs on forever if a cancellation is lost
                await within(event.wait(), 10)
                event.clear()
                rounds += 1

        task = asyncio.get_running_loop().create_task(loop())
        await asyncio.sleep(0.01)
        event.set()  # the wait ends ...
        task.cancel()  # ... as the cancellation comes
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, "the loop ran on after cancel()"
        assert task.cancelled() and rounds == 0

    asyncio.run(scenario())


def test_within_times_out_and_passes_results_through() -> None:
    async def scenario() -> None:
        assert 7 == await within(asyncio.sleep(0, 7), 1)
        with pytest.raises(TimeoutError):  # the builtin, on 3.10 too (asyncio's is another class there)
            await within(asyncio.Event().wait(), 0.05)
        assert "x" == await within(asyncio.sleep(0.01, "x"), None)

    asyncio.run(scenario())


def test_a_pool_client_stops_even_when_a_message_arrives_as_it_stops(redis_one: RedisServer) -> None:
    async def scenario() -> None:
        for _ in range(5):
            client = AsyncPoolClient("w", redis_one.url)
            await client.start()
            await asyncio.sleep(0.3)  # its refresh loop now waits for a hint
            client._on_message(NotificationSource.EVENTS, "joined")  # a pool message comes just as we stop
            stopping = asyncio.get_running_loop().create_task(client.stop())
            done, _ = await asyncio.wait({stopping}, timeout=5)
            assert done, "stop() hung: the refresh loop lost its cancellation"

    asyncio.run(scenario())


def test_cancel_and_wait_cancels_again_a_task_that_swallowed_the_first() -> None:
    async def scenario() -> None:
        swallowed = 0

        async def stubborn() -> None:
            nonlocal swallowed
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed += 1  # as a library can, once

        task = asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0.01)
        await within(cancel_and_wait(task), 5)
        assert task.cancelled() and swallowed == 1

    asyncio.run(scenario())


def test_a_member_holding_a_name_stops_after_its_cache_heard_its_own_leave(redis_one: RedisServer) -> None:
    """The leave frees the name and announces it; the name cache, re-reading on that message,
    lost the cancellation that stops it inside a Redis call, and stop() hung."""
    for _ in range(3):
        election = Election(MemberConfig(pool="p", member_id="holder", ttl_s=5), redis_one.url)
        election.start()
        assert election.register_name("svc", "10.0.0.1:8080")
        assert election.whereis_name("svc") is not None  # loads the cache
        election.stop(timeout=10)
