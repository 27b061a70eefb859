"""A wait for a leader that times out because Redis fails says why: the last Redis error is in
the ``TimeoutError``'s message (before: a bare ``wait timed out``)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from leaderpool import AsyncElection, Election, MemberConfig
from leaderpool.testing.redis_server import RedisServer, free_port
from leaderpool.util.timeouts import within


def config() -> MemberConfig:
    return MemberConfig(pool="why", member_id="a", ttl_s=1.0)


def test_a_wrong_password_is_named(redis_one: RedisServer) -> None:
    """Blocking face, a refused password: the message names the authentication failure."""
    admin = redis.Redis(port=redis_one.port)
    admin.config_set("requirepass", "right")
    admin.close()
    election = Election(config(), f"redis://:not-the-password@127.0.0.1:{redis_one.port}/0")
    with election, pytest.raises(TimeoutError) as caught:
        election.wait_until_leader(timeout=2)
    message = str(caught.value)
    assert "wait timed out (pool 'why', member 'a')" in message
    assert "the last error: AuthenticationError" in message, message
    assert "not-the-password" not in message


def test_an_unreachable_redis_is_named() -> None:
    """asyncio face, nothing listening: the message names the refused connection and its port."""
    port = free_port()

    async def main() -> str:
        async with AsyncElection(config(), f"redis://127.0.0.1:{port}/0") as election:
            with pytest.raises(TimeoutError) as caught:
                await election.wait_for_leader(timeout=2)
        return str(caught.value)

    message = asyncio.run(within(main(), 60))
    assert "Redis is failing, the last error: ConnectionError" in message
    assert f"127.0.0.1:{port}" in message
