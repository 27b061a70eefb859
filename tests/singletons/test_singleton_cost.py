"""What many singletons cost, over real member processes and a real redis-server: a steady
turn costs a member a few Redis commands whatever it holds (its one lease; the names checked
only when something changed), and the placer does not read every name every beat. Counted
with INFO commandstats over turns driven one by one, never timed. And at a 1 s lease, a SIGKILL of one member leaves the
survivors' own singletons running (their deadline follows their lease, whatever the failover
costs them meanwhile)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
import redis.asyncio

from leaderpool.backend.protocol import LeaderValue
from leaderpool.singletons.placement import Balanced
from leaderpool.singletons.placer import Placer
from leaderpool.singletons.singleton_store import SingletonStore
from leaderpool.testing.processes import ChildGroup
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.log import get_logger
from tests.singletons.test_owner import owner_of
from tests.singletons.test_singleton_processes import Pool, until
from tests.singletons.test_singleton_scripts import POOL, live, run

SCRIPT_CALLS = ("evalsha", "eval")
RUNNER_COMMANDS = {"info"}
"""What this test itself sends between the two readings."""


def commandstats(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


@pytest.fixture
def group() -> Iterator[ChildGroup]:
    with ChildGroup() as g:
        yield g


def steady_commands(url: str, count: int) -> Counter[str]:
    """Three owners and a placer, driven turn by turn (no clock, no timing): once ``count``
    singletons are placed and claimed and each owner has checked what it holds, the commands
    Redis ran (INFO commandstats, Lua's own included) for three more turns of each owner and
    three more surveys of the placer."""

    async def go() -> Counter[str]:
        client = redis.asyncio.Redis.from_url(url)
        info = redis.Redis.from_url(url)
        try:
            await client.flushall()
            store = SingletonStore(client, POOL)
            await store.add([f"shard-{i}" for i in range(count)])
            await client.set(store.keys.leader, LeaderValue(1, "a").encode())
            clock = [1000.0]
            owners = []
            for m in ("a", "b", "c"):
                await live(cast(Any, client), m, f"run-{m}", ttl_ms=600_000)  # the fake's helpers, on a real one
                owners.append(owner_of(cast(Any, client), m, clock)[0])
            placer = Placer(
                store, LeaderValue(1, "a"), Balanced(), [], count, 1.0, lambda: clock[0], get_logger("test")
            )
            for _ in range(2):  # register; then claim what the placer gave each
                for owner in owners:
                    await owner.turn()
                await placer.place_once()
            for owner in owners:  # the check after the claims
                await owner.turn()
            await placer.place_once()
            assert count == sum(len(o.held) for o in owners)
            before = commandstats(info)
            for _ in range(3):
                for owner in owners:
                    await owner.turn()
                await placer.place_once()
            after = commandstats(info)
            return Counter({k: n - before.get(k, 0) for k, n in after.items() if k not in RUNNER_COMMANDS})
        finally:
            await client.aclose()
            info.close()

    counted: Counter[str] = run(go())
    return counted


def test_a_steady_turn_costs_the_same_whatever_the_number_of_singletons(redis_server: RedisServer) -> None:
    """Three turns of three owners and three surveys cost Redis exactly as many commands with
    300 singletons as with 30 (before: two reads per singleton held per sync, and the survey read
    every name), and a few dozen per script call."""
    small, big = steady_commands(redis_server.url, 30), steady_commands(redis_server.url, 300)
    assert small == big
    scripts = sum(big[k] for k in SCRIPT_CALLS)
    assert 12 == scripts  # one sync per owner turn, one survey per placing
    assert sum(big.values()) - scripts < 30 * scripts, big
    assert 0 == big["smembers"] + big["sismember"], big  # no name read


def test_survivors_keep_their_singletons_when_a_member_is_killed_at_a_1s_lease(
    redis_server: RedisServer, group: ChildGroup
) -> None:
    """3 members x 30 singletons at a 1 s lease; SIGKILL one: its singletons run on the two others,
    and neither stops any of its own (no "ownership deadline passed" while it takes over)."""
    pool = Pool(redis_server, group, count=30, ttl_s=1.0)
    members = {m: pool.start(m) for m in ("a", "b", "c")}
    until(pool.settled(set(members)))
    mark = len(pool.history())
    victim = next(m for m in members if m != pool.leader())
    pool.ended[victim] = members[victim].kill()
    until(pool.settled(set(members) - {victim}))
    time.sleep(3.0)  # three leases more: a late stop would show
    after = pool.history()[mark:]
    stopped = [(c, e["singleton"], e["reason"]) for c, e in after if e["event"] == "singleton_stopped"]
    assert [] == stopped
    pool.check_history()
