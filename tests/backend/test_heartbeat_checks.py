"""The heartbeat checks its own keys' types (hostile data, :data:`leaderpool.backend.baddata.CHECKED_READS`):
each key a beat writes or reads one by one (and the leader key, always), replaced by a value of
another type, makes the beat refuse (``BADDATA`` naming the key) with nothing written; the keys a
beat only reads in its MGET and never writes (the registration and the term on a follower's beat,
who just resigned) read as absent instead, and the scripts that write them refuse. A clean pool
beats as usual. On fakeredis's Lua and on
every redis-server version found (``redis.pcall`` must turn WRONGTYPE into the refusal on each)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import fakeredis
import pytest
import redis.asyncio

from leaderpool.backend.keys import Keyspace, NameKeys
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import BeatStatus, LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.errors import BadPoolData
from leaderpool.members import MemberInfo
from leaderpool.names.registry import NameStore
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within

KEYS = Keyspace("p")
NAMES = NameKeys("leaderpool")
POOL_KEYS = (
    "members", "leases", "leader", "term", "recovery", "resigned", "leader_conn", "watching", "ranking", "lead_until"
)  # fmt: skip
HELD = LeaderValue(1, "a")
LONG_TTL = 600_000  # a beat that wrote would leave a PTTL or a lease this long: easy to see

# which keys each kind of beat touches (writes, or reads on their own), so must check
ALWAYS = {"leases", "leader"}
TOUCHED = {
    "leader": ALWAYS | {"leader_conn", "lead_until"},  # the renewal writes both (MGET read them as absent)
    "listing": ALWAYS | {"leader_conn", "lead_until", "members", "watching", "ranking"},  # reads the ranking, lists
    "checking": ALWAYS | {"members", "ranking"},  # a follower's every eighth beat: its record and the ranking
    "follower": ALWAYS,
    "watch report": ALWAYS | {"watching"},
    # a reported term above the lead's: the counter is read and raised, the stale lead ended
    "term recovery": ALWAYS | {"term", "recovery", "leader_conn", "lead_until"},
}
CASES = [(kind, key) for kind, keys in TOUCHED.items() for key in sorted(keys)]

Client = Any  # fakeredis.FakeAsyncRedis or redis.asyncio.Redis


async def snapshot(client: Client, keys: list[str]) -> dict[str, Any]:
    """Every key's type and content, and whether a write renewed it (PTTL or scores near LONG_TTL)."""
    out: dict[str, Any] = {}
    for key in keys:
        kind = (await client.type(key)).decode()
        if kind == "string":
            content: Any = await client.get(key)
        elif kind == "hash":
            content = await client.hgetall(key)
        elif kind == "zset":
            content = await client.zrange(key, 0, -1, withscores=True)
        else:
            content = None
        out[key] = (kind, content, await client.pttl(key) > LONG_TTL // 2)
    return out


async def pool_with_leader(client: Client) -> PoolStore:
    store = PoolStore(client, KEYS)
    for member in ("a", "b"):
        await store.register(MemberInfo(member, "n", "h", 1, 0, 1000), 5000)
    claimed = await store.claim("a", 5000, 0)
    assert 1 == claimed.term
    await client.set(KEYS.resigned, "b", px=5000)
    await client.hset(KEYS.watching, "b", HELD.encode())
    return store


def beat(store: PoolStore, kind: str) -> Awaitable[Any]:
    """An ordinary beat of its kind (no record read), but for "checking" and "listing"."""
    if kind in ("leader", "listing"):
        return store.heartbeat("a", LONG_TTL, HELD, kind == "listing", 1, conn="7", check=False)
    if kind == "watch report":
        return store.heartbeat("b", LONG_TTL, None, False, 1, watch="-", check=False)
    seen = 99 if kind == "term recovery" else 1
    return store.heartbeat("b", LONG_TTL, None, False, seen, check=kind == "checking")


STRINGS = {KEYS.leader, KEYS.term, KEYS.resigned, KEYS.recovery, KEYS.leader_conn, KEYS.lead_until}


async def replace_with_wrong_type(client: Client, key: str) -> None:
    """A hash where a string belongs, a string where a hash or a zset does (one step)."""
    async with client.pipeline(transaction=True) as swap:
        swap.delete(key)
        if key in STRINGS:
            swap.hset(key, "x", "y")
        else:
            swap.set(key, "x")
        await swap.execute()


async def refused_before_writing(client: Client, kind: str, name: str) -> None:
    store = await pool_with_leader(client)
    key = getattr(KEYS, name)
    await replace_with_wrong_type(client, key)
    every = [getattr(KEYS, k) for k in POOL_KEYS]
    before = await snapshot(client, every)
    with pytest.raises(BadPoolData) as caught:
        await beat(store, kind)
    assert f"BADDATA key {key} holds a " in str(caught.value) and isinstance(caught.value, RETRYABLE)
    assert before == await snapshot(client, every)


async def clean_beats(client: Client) -> None:
    store = await pool_with_leader(client)
    for kind in ("leader", "listing", "follower", "watch report", "checking"):
        got = await beat(store, kind)
        counted = {2} if kind in ("listing", "checking") else {-1}  # counted on the beats that read the ranking
        assert BeatStatus.OK is got.status and HELD == got.leader and got.live_count in counted, kind
    lead = await store.heartbeat("a", 5000, HELD, True, 1, conn="7")
    assert ("a", "b", "1|7", ["a", "b"]) == (lead.first, lead.next, lead.leader_conn, [m.member for m in lead.members])
    assert not await client.hexists(KEYS.watching, "b")
    recovering = await beat(store, "term recovery")  # a lead below a term seen ends
    assert (BeatStatus.OK, None, "") == (recovering.status, recovering.leader, recovering.leader_conn)
    assert b"99" == await client.get(KEYS.term) and await client.exists(KEYS.recovery)
    assert not await client.exists(KEYS.leader, KEYS.leader_conn)
    assert BeatStatus.UNKNOWN_MEMBER is (await store.heartbeat("nobody", 5000, None, False, 1)).status


async def names_beat_refused(client: Client, name: str) -> None:
    """heartbeat_names: its own keys (TYPE first) and the pool's (the wrapped beat's refusal)."""
    store = await pool_with_leader(client)
    names = NameStore(client, "leaderpool")
    assert 1 == (await names.register(KEYS, "b", "n", "svc", None)).status
    key = getattr(NAMES, name) if name in ("owners", "deadlines") else getattr(KEYS, name)
    await replace_with_wrong_type(client, key)
    every = [getattr(KEYS, k) for k in POOL_KEYS] + [NAMES.owners, NAMES.deadlines]
    before = await snapshot(client, every)
    with pytest.raises(BadPoolData) as caught:
        await names.heartbeat(KEYS, "b", LONG_TTL, None, False, 1, ["svc"])
    assert f"BADDATA key {key} holds a " in str(caught.value)
    assert before == await snapshot(client, every)
    assert store is not None


def run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(within(make(), 60))


class TestOnFakeRedis:
    @pytest.mark.parametrize(("kind", "name"), CASES)
    def test_a_key_the_beat_touches_refuses_it_before_any_write(self, kind: str, name: str) -> None:
        run(lambda: refused_before_writing(fakeredis.FakeAsyncRedis(), kind, name))

    def test_a_clean_pool_beats_as_usual(self) -> None:
        run(lambda: clean_beats(fakeredis.FakeAsyncRedis()))

    @pytest.mark.parametrize("name", ["owners", "deadlines", "members", "leases", "leader"])
    def test_the_names_heartbeat_refuses_before_any_write(self, name: str) -> None:
        run(lambda: names_beat_refused(fakeredis.FakeAsyncRedis(), name))


def test_every_key_each_beat_touches_on_real_redis(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis(port=redis_server.port)
        try:
            for kind, name in CASES:
                await client.flushall()
                await refused_before_writing(client, kind, name)
            await client.flushall()
            await clean_beats(client)
            for name in ("owners", "members"):
                await client.flushall()
                await names_beat_refused(client, name)
        finally:
            await client.aclose()

    run(scenario)
