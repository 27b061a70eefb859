"""Singletons over real member processes and a real redis-server: balanced, a crash (SIGKILL)
moves only the dead member's singletons, quickly and with higher terms; a SIGTERM hands them
over with their state; a join moves few; a freeze (SIGSTOP) moves nothing before the lease, and
the thawed member stops. Every start and stop is recorded: never two owners of one singleton."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from leaderpool.backend.keys import Keyspace
from leaderpool.testing.processes import Child, ChildGroup
from leaderpool.testing.redis_server import RedisServer
from tests.support.worker_procs import PATIENCE, ROOT, clean_env

POOL = "shards"
COUNT = 12
TTL_S = 2.0


def until(predicate: Callable[[], bool], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


class Pool:
    """Member processes of one pool and the pool's owners as Redis has them."""

    def __init__(self, server: RedisServer, group: ChildGroup, *, count: int = COUNT, ttl_s: float = TTL_S) -> None:
        self.url = server.url
        self.count, self.ttl_s = count, ttl_s
        self.group = group
        self.redis = redis.Redis.from_url(server.url, decode_responses=True)
        self.keys = Keyspace(POOL)
        self.ended: dict[str, float] = {}  # member -> when it was killed (it can stop nothing after)

    def start(self, member: str) -> Child:
        argv = [sys.executable, "-m", "tests.support.singleton_member", self.url, POOL, member,
                "--count", str(self.count), "--ttl", str(self.ttl_s)]  # fmt: skip
        child = self.group.start(argv, name=member, env=clean_env(), cwd=ROOT)
        child.wait_for(lambda e: e["event"] == "started", PATIENCE)
        return child

    def owners(self) -> dict[str, tuple[int, str]]:
        """name -> (term, member) of each owner record."""
        out = {}
        for name, value in self.redis.hgetall(self.keys.singleton_owners).items():
            term, _, rest = str(value).partition("|")
            out[str(name)] = (int(term), rest.partition("|")[2])
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, member in self.owners().values():
            out[member] = out.get(member, 0) + 1
        return out

    def settled(self, members: set[str]) -> Callable[[], bool]:
        """Every singleton owned by one of ``members``, balanced, and each running where it is owned."""

        def check() -> bool:
            owners = self.owners()
            counts = self.counts()
            running = self.running()
            return (
                len(owners) == self.count
                and set(counts) == members
                and max(counts.values()) <= math.ceil(self.count / len(members))
                and all(running.get(name) == member for name, (_, member) in owners.items())
            )

        return check

    def leader(self) -> str:
        return str(self.redis.get(self.keys.leader)).partition("|")[2]

    def history(self) -> list[tuple[str, dict[str, Any]]]:
        return [(c, e) for c, e in self.group.events.items if e["event"].startswith("singleton_")]

    def running(self) -> dict[str, str]:
        """name -> the member running it now, from the start and stop events (killed members run nothing)."""
        now: dict[str, str] = {}
        for child, event in self.history():
            if event["event"] == "singleton_started":
                now[event["singleton"]] = child
            elif now.get(event["singleton"]) == child:
                del now[event["singleton"]]
        return {name: member for name, member in now.items() if member not in self.ended}

    def check_history(self) -> None:
        """Per singleton: no two owners at once (each start after the previous owner's stop, or
        its death), and terms strictly increasing."""
        per: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for child, event in self.history():
            per.setdefault(event["singleton"], []).append((child, event))
        for name, events in per.items():
            events.sort(key=lambda ce: ce[1]["t"])
            owner: tuple[str, int] | None = None
            last_term = 0
            for child, event in events:
                if event["event"] == "singleton_started":
                    if owner is not None:
                        dead_at = self.ended.get(owner[0])
                        assert dead_at is not None and dead_at <= event["t"], (name, owner, child, event)
                    assert event["term"] > last_term, (name, last_term, event)
                    owner, last_term = (child, event["term"]), event["term"]
                else:
                    assert owner == (child, event["term"]), (name, owner, child, event)
                    owner = None


@pytest.fixture
def pool(redis_server: RedisServer) -> Iterator[Pool]:
    group = ChildGroup()
    try:
        yield Pool(redis_server, group)
    finally:
        group.close()


@pytest.fixture
def pool_one(redis_one: RedisServer) -> Iterator[Pool]:
    group = ChildGroup()
    try:
        yield Pool(redis_one, group)
    finally:
        group.close()


def three(pool: Pool) -> dict[str, Child]:
    members = {m: pool.start(m) for m in ("a", "b", "c")}
    until(pool.settled(set(members)))
    return members


def test_balanced_and_a_crash_moves_only_the_dead_members_singletons(pool: Pool) -> None:
    """3 members x 12 singletons run 4 each; after a SIGKILL the dead member's run elsewhere,
    quickly (the crash is proved by its closed connection), with higher terms; no others move."""
    members = three(pool)
    victim = next(m for m in members if m != pool.leader())
    before = pool.owners()
    theirs = {name for name, (_, member) in before.items() if member == victim}
    pool.ended[victim] = members[victim].kill()
    until(pool.settled(set(members) - {victim}))
    took = time.time() - pool.ended[victim]
    after = pool.owners()
    assert all(after[name][0] > before[name][0] for name in theirs)
    assert all(after[name] == before[name] for name in set(before) - theirs)
    assert took < PATIENCE
    print(f"singletons of a killed member running elsewhere after {took * 1000:.0f} ms (lease {TTL_S:g} s)")
    pool.check_history()


def test_the_leader_crashing_moves_its_singletons_too(pool_one: Pool) -> None:
    """The placer itself dies: the next leader places its singletons elsewhere."""
    pool = pool_one
    members = three(pool)
    victim = pool.leader()
    pool.ended[victim] = members[victim].kill()
    until(pool.settled(set(members) - {victim}))
    pool.check_history()


@pytest.mark.parametrize("who", ["follower", "leader"])
def test_sigterm_hands_over_kindly_with_the_state(pool_one: Pool, who: str) -> None:
    """A member stopping (the placer itself too) saves each singleton's state; the next owner resumes from it."""
    pool = pool_one
    members = three(pool)
    victim = pool.leader() if who == "leader" else next(m for m in members if m != pool.leader())
    mark = len(pool.history())
    members[victim].terminate()
    members[victim].wait(PATIENCE)
    until(pool.settled(set(members) - {victim}))
    events = pool.history()[mark:]
    handed = {e["singleton"]: e["state"] for c, e in events if c == victim and e["event"] == "singleton_stopped"}
    assert 4 == len(handed)
    assert {"stopping"} == {e["reason"] for c, e in events if c == victim and e["event"] == "singleton_stopped"}
    resumed = {e["singleton"]: e["state"] for c, e in events if c != victim and e["event"] == "singleton_started"}
    assert handed == resumed
    assert all(1 <= state["owners"] for state in resumed.values())
    pool.check_history()


def test_a_join_moves_at_most_ceil_n_over_m_plus_one(pool_one: Pool) -> None:
    """A fourth member takes its share; each move is a kind hand-off, and few singletons move."""
    pool = pool_one
    members = three(pool)
    mark = len(pool.history())
    members["d"] = pool.start("d")
    until(pool.settled(set(members)))
    moved = [e for c, e in pool.history()[mark:] if e["event"] == "singleton_stopped"]
    assert {"moved"} == {e["reason"] for e in moved}
    assert len(moved) <= math.ceil(COUNT / 3) + 1
    pool.check_history()


def test_a_frozen_member_loses_nothing_before_its_lease_and_stops_on_thaw(pool_one: Pool) -> None:
    """SIGSTOP: its singletons stay put until its lease has run out, then run elsewhere; on
    SIGCONT it finds its ownership lapsed and stops them all (reason lost)."""
    pool = pool_one
    members = three(pool)
    victim = next(m for m in members if m != pool.leader())
    theirs = {name for name, (_, member) in pool.owners().items() if member == victim}
    frozen_at = members[victim].signal(signal.SIGSTOP)
    lease_end = float(pool.redis.zscore(pool.keys.leases, victim) or 0) / 1000  # Redis's clock, unix ms
    try:
        until(lambda: all(pool.running().get(name, victim) != victim for name in theirs))
        starts = [
            e["t"]
            for c, e in pool.history()
            if c != victim and e["event"] == "singleton_started" and e["t"] > frozen_at
        ]
        assert min(starts) >= lease_end - 0.002  # not before its lease ran out (one host: one clock)
    finally:
        members[victim].signal(signal.SIGCONT)

    def stopped_since() -> list[dict[str, Any]]:
        return [
            e for c, e in pool.history() if c == victim and e["event"] == "singleton_stopped" and e["t"] > frozen_at
        ]

    until(lambda: theirs <= {e["singleton"] for e in stopped_since()})
    lost = stopped_since()
    assert {"lost"} == {e["reason"] for e in lost}
    # the thawed member stopped what it ran while frozen: its stops come after the others' starts
    until(pool.settled(set(members)))
