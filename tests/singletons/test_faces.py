"""Both faces on a real redis-server, in one process: AsyncSingletons on AsyncElections, and
the blocking Singletons on an Election (the same object on the background loop); adding,
removing, moving, saving and listing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis.asyncio

from leaderpool import AsyncElection, ConfigError, Election, MemberConfig
from leaderpool.errors import NotLeader, StaleTerm
from leaderpool.fencing import afenced_set
from leaderpool.singletons import AsyncSingletons, Singletons
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.helpers import eventually


def config(member: str) -> MemberConfig:
    return MemberConfig(pool="faces", member_id=member, ttl_s=1.0)


def test_async_face_places_moves_saves_and_lists(redis_one: RedisServer) -> None:
    """Two members share four names; move pins one; a saved state reaches the next owner; removed names stop."""

    async def go() -> None:
        started: list[tuple[str, str, int, Any]] = []
        stopped: list[tuple[str, str, int, str]] = []

        def callbacks(member: str) -> dict[str, Any]:
            async def on_start(name: str, term: int, state: Any) -> None:
                started.append((member, name, term, state))

            async def on_stop(name: str, term: int, reason: str) -> Any:
                stopped.append((member, name, term, reason))
                return None

            return {"on_start": on_start, "on_stop": on_stop}

        async with (
            AsyncElection(config("a"), redis_one.url) as ea,
            AsyncElection(config("b"), redis_one.url) as eb,
            AsyncSingletons(ea, ["w", "x", "y", "z"], **callbacks("a")) as sa,
            AsyncSingletons(eb, ["w", "x", "y", "z"], **callbacks("b")) as sb,
        ):
            await eventually(lambda: len(sa.held) == 2 == len(sb.held), timeout=20)
            listed = await sa.list()
            assert ["w", "x", "y", "z"] == [s.name for s in listed]
            assert all(s.member in ("a", "b") and s.term >= 1 for s in listed)
            name = next(iter(sa.held))
            assert await sa.save(name, {"offset": 7})
            assert await sa.move(name, "b")
            await eventually(lambda: name in sb.held, timeout=20)
            assert [{"offset": 7}] == [st for m, n, _, st in started if (m, n) == ("b", name)]
            assert not await sa.move("nope", "b")
            assert 1 == await sb.add("v")
            await eventually(lambda: len(sa.held) + len(sb.held) == 5, timeout=20)
            assert 1 == await sb.remove("v")
            await eventually(lambda: "v" not in sa.held and "v" not in sb.held, timeout=20)
            assert "v" in {n for _, n, _, _ in stopped}

    asyncio.run(within(go(), 60))


def test_blocking_face_on_an_election(redis_one: RedisServer) -> None:
    """Plain callbacks run on threads; the twin's methods block."""
    started = threading.Event()
    with Election(config("solo"), redis_one.url) as election:
        singletons = Singletons(election, count=3, on_start=lambda name, term, state: started.set())
        with singletons:
            assert started.wait(20)
            assert ["shard-0", "shard-1", "shard-2"] == [s.name for s in singletons.list()]
            until = 200
            while len(singletons.held) < 3 and until:
                until -= 1
                threading.Event().wait(0.05)
            assert {"shard-0": 1, "shard-1": 1, "shard-2": 1} == singletons.held
        assert {} == singletons.held


def test_bad_arguments_are_one_clear_error() -> None:
    election: Any = object()
    with pytest.raises(ConfigError, match="count"):
        AsyncSingletons(election, count=-1)
    with pytest.raises(ConfigError, match="unique"):
        AsyncSingletons(election, ["a", "a"])
    with pytest.raises(ConfigError, match="weight"):
        AsyncSingletons(election, ["a"], weight=0)
    with pytest.raises(ConfigError, match="max_moves"):
        AsyncSingletons(election, ["a"], max_moves=0)


def test_singletons_run_as_the_restricted_acl_user(redis_binary: str) -> None:
    """The documented ACL rules are enough for singletons: nothing is refused."""
    import redis

    from tests.support.security_helpers import acl_denials, acl_server, add_user, user_url

    server = acl_server(redis_binary)
    admin = redis.Redis(port=server.port)
    try:
        add_user(admin, "lp")
        admin.execute_command("ACL", "LOG", "RESET")

        async def go() -> None:
            url = user_url(server, "lp")
            async with (
                AsyncElection(config("a"), url) as ea,
                AsyncSingletons(ea, ["x", "y"]) as sa,
            ):
                await eventually(lambda: 2 == len(sa.held), timeout=20)
                assert await sa.save("x", 1)
                assert await sa.move("x", "a")
                assert 1 == await sa.add("z")
                assert 1 == await sa.remove("z")
                assert ["x", "y"] == [s.name for s in await sa.list()]

        asyncio.run(within(go(), 60))
        assert [] == acl_denials(admin)
    finally:
        admin.close()
        server.cleanup()


def test_fenced_writes_are_fenced_by_each_singletons_own_term(redis_one: RedisServer) -> None:
    """A singleton's owner writes under its own term, on any member (not only the leader); once
    it moved, the new owner's write wins and the old owner's term is refused (StaleTerm), and
    the old face refuses locally (NotLeader); another singleton's fence is its own."""

    async def go() -> None:
        terms: dict[str, int] = {}

        async def on_start(name: str, term: int, state: Any) -> None:
            terms[name] = term

        async with (
            AsyncElection(config("a"), redis_one.url) as ea,
            AsyncElection(config("b"), redis_one.url) as eb,
            AsyncSingletons(ea, ["x", "y"], on_start=on_start) as sa,
            AsyncSingletons(eb, ["x", "y"], on_start=on_start) as sb,
        ):
            await eventually(lambda: len(sa.held) == 1 == len(sb.held), timeout=20)
            by = {**{n: sa for n in sa.held}, **{n: sb for n in sb.held}}
            old, new = by["x"], (sb if by["x"] is sa else sa)
            first = old.held["x"]
            assert first == (await old.fenced_set("x", "doc", "one", term=first)).term
            assert await new.fenced_set("y", "doc", "y-one")  # y's fence is its own: not refused by x's
            assert await old.move("x", "b" if old is sa else "a")
            await eventually(lambda: "x" in new.held, timeout=20)
            second = new.held["x"]
            assert second > first
            assert second == (await new.fenced_set("x", "doc", "two")).term
            with pytest.raises(NotLeader):
                await old.fenced_set("x", "doc", "late", term=first)
            with pytest.raises(NotLeader):
                await new.fenced_set("x", "doc", "wrong term", term=first)
            client = redis.asyncio.Redis.from_url(redis_one.url)
            try:  # the old owner's write in flight, sent straight to Redis
                with pytest.raises(StaleTerm) as refused:
                    await afenced_set(client, "doc", "late", first, pool="faces", singleton="x")
                assert second == refused.value.highest
                assert b"two" == await client.get("doc")
                assert await afenced_set(client, "doc", "leader", 1, pool="faces")  # the pool's fence: apart
            finally:
                await client.aclose()

    asyncio.run(within(go(), 60))


def test_the_blocking_face_writes_fenced_too(redis_one: RedisServer) -> None:
    """Singletons.fenced_set blocks, with the term the callback was given."""
    terms: dict[str, int] = {}
    with Election(config("solo"), redis_one.url) as election:
        singletons = Singletons(election, ["only"], on_start=lambda name, term, state: terms.update({name: term}))
        with singletons:
            until = 400
            while "only" not in singletons.held and until:
                until -= 1
                threading.Event().wait(0.05)
            result = singletons.fenced_set("only", "blocking-doc", "v", term=singletons.held["only"])
            assert singletons.held["only"] == result.term
            with pytest.raises(NotLeader):
                singletons.fenced_set("nope", "blocking-doc", "v")
