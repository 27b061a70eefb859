"""What many singletons cost, over real member processes and a real redis-server: a steady
beat costs a member a few Redis commands whatever it holds (its one lease; the names checked
only when something changed), and the placer does not read every name every beat. Counted
with INFO commandstats, never timed. And at a 1 s lease, a SIGKILL of one member leaves the
survivors' own singletons running (their deadline follows their lease, whatever the failover
costs them meanwhile)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from leaderpool.testing.processes import ChildGroup
from leaderpool.testing.redis_server import RedisServer
from tests.singletons.test_singleton_processes import Pool, until

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


def test_a_steady_beat_costs_a_few_commands_whatever_a_member_holds(
    redis_server: RedisServer, group: ChildGroup
) -> None:
    """3 members x 100 singletons each: once placed, a script call costs a few dozen commands
    on average (not two per singleton held), each member makes a handful of script calls per
    beat, and the placer reads every name at most once in the window (its net: every 20th
    survey), not at every beat. A lease of 6 s: a steady pool even on a loaded machine."""
    count, ttl, window = 300, 6.0, 8.0
    pool = Pool(redis_server, group, count=count, ttl_s=ttl)
    members = {m: pool.start(m) for m in ("a", "b", "c")}
    until(pool.settled(set(members)))
    stops = len(pool.history())
    time.sleep(2 * ttl / 3 * 2)  # two beats: the full checks after the last claims are done
    client = redis.Redis.from_url(redis_server.url)
    before = commandstats(client)
    time.sleep(window)
    after = commandstats(client)
    steady = {k: n - before.get(k, 0) for k, n in after.items() if k not in RUNNER_COMMANDS}
    scripts = sum(steady.get(k, 0) for k in SCRIPT_CALLS)
    inside = sum(steady.values()) - scripts
    beats = len(members) * window / (ttl / 3)  # heartbeats due in the window, all members
    assert all(e["event"] != "singleton_stopped" for _, e in pool.history()[stops:])
    assert scripts > 0
    assert inside / scripts < 40, steady  # before: 2 HGETs per singleton held per sync, ~200
    assert scripts / beats < 6, steady  # the heartbeat, the sync, the placer's survey (one member)
    assert steady.get("smembers", 0) <= 1, steady  # a full survey reads the names: 4 beats, at most 1
    pool.check_history()


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
