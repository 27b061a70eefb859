"""A dead holder's permit reclaimed at once, its death proved by its process's liveness
connection to Redis being gone (:mod:`leaderpool.locks.holder_liveness`), well before its lease
ends; and a live holder whose liveness connection drops is lost at once (it never acts beside
the waiter that takes its permit)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio

from leaderpool.locks.async_semaphore import AsyncSemaphore
from leaderpool.locks.semaphore import Semaphore
from leaderpool.testing.history.permits import check, holds_from_actions
from leaderpool.testing.processes import ChildGroup
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.locks.test_recipes_procs import acquired, actions, start
from tests.support.worker_procs import PATIENCE, eventually

LEASE_S = 30.0
KEYS = {"permit": "semaphore", "fair": "fair-lock", "write": "rwlock"}


@pytest.mark.parametrize("kind", ["permit", "fair", "write"])
def test_a_killed_holders_permit_goes_to_the_waiter_well_before_its_lease_ends(
    kind: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """One permit (a semaphore's, a fair lock, a write lock) held with a 30 s lease; a waiter in
    another process; SIGKILL the holder: the waiter holds within half the lease (its next try
    proves the holder's connection gone), and the two never acted together."""
    log = tmp_path / "log"
    client = redis.Redis.from_url(redis_server.url)
    queue = f"leaderpool:{KEYS[kind]}-queue:{{res}}"
    try:
        with ChildGroup() as group:
            a = start(group, redis_server.url, kind, "a", log, 1, 120, 1, LEASE_S)
            acquired(a)
            assert 1 == client.hlen(f"leaderpool:{KEYS[kind]}-conns:{{res}}")  # its liveness channel recorded
            c = start(group, redis_server.url, kind, "c", log, 1, 0.2, 1, LEASE_S)
            eventually(lambda: client.zcard(queue) == 1, PATIENCE)  # c waits in the queue
            killed = a.kill()
            acquired(c)
            assert time.time() - killed < LEASE_S / 2
            assert 0 == c.wait(PATIENCE)
    finally:
        client.close()
    assert check(holds_from_actions(actions(log)), 1).valid


def test_a_live_holder_whose_liveness_connection_drops_is_lost_at_once(redis_server: RedisServer) -> None:
    """CLIENT KILL of the holder's liveness connection: the holder is lost (holding false) without
    waiting for a renewal, and a waiter takes the permit long before the 30 s lease ends; the
    holder's next permit registers on a new connection."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        holder = Semaphore(client, "gpu", permits=1, ttl_s=LEASE_S)
        assert holder.acquire()
        liveness = holder.state.liveness
        assert liveness is not None and holder.holding
        client_id = int(liveness.channel.rsplit(":", 1)[1])
        assert 1 == client.client_kill_filter(_id=str(client_id))
        eventually(lambda: holder.lost, PATIENCE)
        assert not holder.holding and "liveness connection" in holder.lost_why
        waiter = Semaphore(redis.Redis.from_url(redis_server.url), "gpu", permits=1, ttl_s=LEASE_S)
        began = time.monotonic()
        assert waiter.acquire(timeout=LEASE_S / 2)
        assert time.monotonic() - began < LEASE_S / 2
        holder.release()  # found no longer ours: stays lost, no error
        waiter.release()
        again = Semaphore(client, "gpu", permits=1, ttl_s=LEASE_S)
        assert again.acquire(timeout=5)
        assert again.state.liveness is not None and again.state.liveness.channel != liveness.channel
        again.release()
    finally:
        client.close()


def test_an_asyncio_holder_registers_its_liveness_and_its_release_clears_it(redis_server: RedisServer) -> None:
    """The asyncio face records the same liveness channel with its permit (opened off the loop)
    and the release removes it."""

    async def hold() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            sem = AsyncSemaphore(client, "tpu", permits=1, ttl_s=LEASE_S)
            async with sem:
                channel = await client.hget("leaderpool:semaphore-conns:{tpu}", sem.state.member)
                assert sem.state.liveness is not None and channel == sem.state.liveness.channel.encode()
                assert {channel: 1} == dict(await client.pubsub_numsub(channel))
            assert 0 == await client.hlen("leaderpool:semaphore-conns:{tpu}")
        finally:
            await client.aclose()

    asyncio.run(within(hold(), 60))
