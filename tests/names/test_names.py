"""Unique names (``:global.register_name``): one holder per name across every pool, gone with
its holder's lease or when it leaves, looked up from a local cache; the worker's ``--name``
standby; the CLI's ``whereis``, ``names`` and ``unregister``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from leaderpool import AsyncElection, ConfigError, Election, MemberConfig
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.cli.evict import evict
from leaderpool.names.name_cache import NameCache
from leaderpool.names.registry import NameMessage, NameOwner, NameStore, name_record, owner_prefix
from leaderpool.testing.processes import Child, ChildGroup, JsonEvent
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.helpers import eventually
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, cli, workers_for


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


def member(pool: str, member_id: str, redis_target: Any, ttl_s: float = 1.0) -> AsyncElection:
    return AsyncElection(MemberConfig(pool=pool, member_id=member_id, ttl_s=ttl_s), redis_target)


# ---- the record format ----


def test_a_record_starts_with_its_owner_so_scripts_compare_owners_by_prefix() -> None:
    """Scripts decide ownership by the record's prefix: it must be exactly the owner's."""
    record = name_record("jobs", "a|b", "vm", 'x"y')
    assert record.startswith(owner_prefix("jobs", "a|b"))
    assert not record.startswith(owner_prefix("jobs", "a"))
    assert {"pool": "jobs", "member": "a|b", "node": "vm", "value": 'x"y'} == json.loads(record)


def test_a_names_message_is_parsed_and_anything_else_is_ignored() -> None:
    """Only the two events this version knows are acted on."""
    assert NameMessage("unregistered", "a|b") == NameMessage.parse("unregistered|a|b")
    assert NameMessage.parse("renamed|x") is None
    assert NameMessage.parse("registered|") is None


# ---- the library, on fakeredis ----


def test_a_name_has_one_holder_across_pools_and_is_freed_by_its_holder_only(
    fake_server: fakeredis.FakeServer,
) -> None:
    """register_name answers False while another pool's member holds the name; unregister by
    someone else does nothing; the holder's unregister frees it."""

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server))
        b = member("p2", "b", fakeredis.FakeAsyncRedis(server=fake_server))
        await a.start()
        await b.start()
        try:
            assert await a.register_name("svc", "10.0.0.1:80")
            assert await a.register_name("svc", "10.0.0.2:80")  # ours already: the value is updated
            assert not await b.register_name("svc")
            assert not await b.unregister_name("svc")
            owner = await b.whereis_name("svc", fresh=True)
            assert owner is not None
            assert ("p1", "a", "10.0.0.2:80") == (owner.pool, owner.member, owner.value)
            assert ["svc"] == a.held_names
            assert await a.unregister_name("svc")
            assert await b.whereis_name("svc", fresh=True) is None
            assert await b.register_name("svc")
            assert ["svc"] == await a.registered_names(fresh=True)
        finally:
            await a.stop()
            await b.stop()

    run(scenario())


def test_re_register_name_takes_a_name_over_and_the_old_holder_learns_at_its_heartbeat(
    fake_server: fakeredis.FakeServer,
) -> None:
    """A deliberate takeover: the name moves at once; the old holder's next heartbeat drops it."""

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=0.6)
        b = member("p1", "b", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=0.6)
        await a.start()
        await b.start()
        try:
            assert await a.register_name("svc")
            assert True is await b.re_register_name("svc", "mine")  # as register_name says: the name is ours
            owner = await a.whereis_name("svc", fresh=True)
            assert owner is not None and "b" == owner.member
            await eventually(lambda: a.held_names == [], timeout=5)
            assert ["svc"] == b.held_names
        finally:
            await a.stop()
            await b.stop()

    run(scenario())


def test_a_name_lives_as_long_as_its_holders_lease_and_no_longer(fake_server: fakeredis.FakeServer) -> None:
    """The heartbeat keeps a name past its first lease; when the holder stops heartbeating
    (a crash, without leaving) the name is gone once the lease ends, without any notification."""

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=1.0)
        b = member("p2", "b", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=1.0)
        await a.start()
        await b.start()
        try:
            assert await a.register_name("svc")
            assert await b.whereis_name("svc") is not None  # loads b's cache
            await asyncio.sleep(2.2)  # over two leases
            assert ["svc"] == a.held_names
            assert await b.whereis_name("svc", fresh=True) is not None
            a.core.abandon()  # a crash: no leave, no more heartbeats
            await eventually(lambda: b.names.cache is not None and b.names.cache.lookup("svc") is None, timeout=5)
            assert await b.whereis_name("svc", fresh=True) is None
            assert await b.register_name("svc")
        finally:
            await a.stop()
            await b.stop()

    run(scenario())


def test_leaving_frees_the_names_and_tells_everyone(fake_server: fakeredis.FakeServer) -> None:
    """stop() frees the member's names in its leave script and announces each: another
    member's cache forgets it at once (long before the lease would end)."""

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=30)
        b = member("p2", "b", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=30)
        await a.start()
        await b.start()
        try:
            assert await a.register_name("svc")
            assert await a.register_name("db")
            assert ["db", "svc"] == await b.registered_names()  # loads b's cache
            await a.stop()
            await eventually(lambda: b.names.cache is not None and b.names.cache.names() == [], timeout=5)
            assert [] == await b.registered_names(fresh=True)
        finally:
            await b.stop()

    run(scenario())


def test_evict_names_the_freed_names_even_when_the_member_dropped_them_first(fake_server: fakeredis.FakeServer) -> None:
    """A live member that learns of its eviction drops its names at its next beat, which can
    come before the CLI's own drop (seen on a loaded machine): the names were freed by the
    eviction all the same, and ``evict`` says so."""

    class RacedStore(PoolStore):
        async def leave(self, *args: Any, **kwargs: Any) -> Any:
            left = await super().leave(*args, **kwargs)
            await NameStore(self.client, self.keys.prefix).drop_owner("p1", "a")  # a's own beat, first
            return left

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=30)
        await a.start()
        try:
            assert await a.register_name("svc")
            said = await evict(RacedStore(fakeredis.FakeAsyncRedis(server=fake_server), Keyspace("p1")), "a")
            assert "; its names are free: svc\n" in said
            assert [] == await NameStore(fakeredis.FakeAsyncRedis(server=fake_server), "leaderpool").read()
        finally:
            await a.stop()

    run(scenario())


def test_the_cache_follows_registrations_and_removals_made_elsewhere(fake_server: fakeredis.FakeServer) -> None:
    """A name registered, or removed by an operator, elsewhere shows in the cache from the
    names events alone."""

    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis(server=fake_server)
        a = member("p1", "a", client, ttl_s=1.5)
        b = member("p2", "b", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=30)
        await a.start()
        await b.start()
        try:
            assert [] == await b.registered_names()
            assert await a.register_name("svc", "v1")
            await eventually(lambda: b.names.cache is not None and b.names.cache.lookup("svc") is not None, timeout=5)
            removed = await NameStore(client, "leaderpool").unregister("svc", None)  # the operator's removal
            assert removed is not None and "a" == removed.member
            await eventually(lambda: b.names.cache is not None and b.names.cache.lookup("svc") is None, timeout=5)
            await eventually(lambda: a.held_names == [], timeout=5)  # a's heartbeat learns it lost it
        finally:
            await a.stop()
            await b.stop()

    run(scenario())


def test_bad_names_and_values_are_refused_with_the_reason(fake_server: fakeredis.FakeServer) -> None:
    """Names follow the pool-name rules; values are short strings."""

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server))
        await a.start()
        try:
            with pytest.raises(ConfigError, match="name"):
                await a.register_name("has space")
            with pytest.raises(ConfigError, match="braces"):
                await a.register_name("{x}")
            with pytest.raises(ConfigError, match="4096"):
                await a.register_name("svc", "x" * 5000)
            with pytest.raises(ConfigError, match="string"):
                await a.register_name("svc", 5)  # type: ignore[arg-type]
        finally:
            await a.stop()

    run(scenario())


def test_the_cache_answers_only_within_the_deadline_it_read() -> None:
    """An entry the cache could not re-read is not shown past its holder's deadline."""
    now = [100.0]
    cache = NameCache(NameStore(fakeredis.FakeAsyncRedis(), "leaderpool"), clock=lambda: now[0])
    cache.note(NameOwner("svc", "p", "a", "n", None, 500), sent=100.0)
    owner = cache.lookup("svc")
    assert owner is not None and 500 == owner.lease_ms  # as of the read that cached it
    now[0] = 100.49
    assert cache.lookup("svc") is not None
    now[0] = 100.5
    assert cache.lookup("svc") is None
    assert [] == cache.names()


def test_the_blocking_face_answers_lookups_from_its_cache(fake_server: fakeredis.FakeServer) -> None:
    """Election.whereis_name reads the cache directly once it is loaded."""
    with Election(MemberConfig(pool="p1", member_id="a", ttl_s=2), fakeredis.FakeRedis(server=fake_server)) as a:
        assert a.register_name("svc", "v")
        assert a.register_name("svc", "v")  # ours already: still ours
        owner = a.whereis_name("svc")
        assert owner is not None and ("a", "v") == (owner.member, owner.value)
        assert a._inner.names.ready_cache() is not None
        assert ["svc"] == a.registered_names()
        assert a.unregister_name("svc")
        assert a.whereis_name("svc", fresh=True) is None


# ---- real processes, real redis-server ----


def _register_procs(server: RedisServer, group: ChildGroup, count: int, names: list[str]) -> list[Child]:
    children = []
    for i in range(count):
        argv = [
            sys.executable,
            "-m",
            "tests.support.names_locks_procs",
            "register",
            server.url,
            f"pool{i % 2}",
            f"m{i}",
        ]
        children.append(group.start([*argv, "go", *names], name=f"m{i}", env=clean_env(), cwd=ROOT))
    return children


@pytest.mark.slow
def test_names_stay_unique_under_concurrent_registration_from_several_processes(redis_server: RedisServer) -> None:
    """Five processes in two pools register the same names at the same moment: each name goes
    to exactly one of them, and Redis names that one as its holder."""
    names = ["alpha", "beta", "gamma"]
    with ChildGroup() as group:
        children = _register_procs(redis_server, group, 5, names)
        for child in children:
            child.wait_for(lambda e: e["event"] == "joined", PATIENCE)
        client = redis.Redis.from_url(redis_server.url)
        client.rpush("go", *["1"] * len(children))
        results = [child.wait_for(lambda e: e["event"] == "registered", PATIENCE)["results"] for child in children]
        for name in names:
            winners = [f"m{i}" for i, result in enumerate(results) if result[name]]
            assert 1 == len(winners), f"{name}: {winners}"
            out = cli("--redis", redis_server.url, "whereis", name, "--json")
            assert 0 == out.returncode, out.stderr
            assert winners[0] == json.loads(out.stdout)["member"]
        client.close()


def _event(kind: str, name: str) -> Callable[[JsonEvent], bool]:
    return lambda e: e["event"] == kind and e["name"] == name


@pytest.mark.slow
def test_a_standby_worker_takes_a_killed_holders_name_within_its_lease_and_a_heartbeat(
    redis_server: RedisServer,
) -> None:
    """SIGKILL of the holder: no leave, no message; the standby takes the name once the holder's
    lease has run out (bounded generously here: lease 1 s + heartbeat + a loaded machine)."""
    with workers_for(redis_server.url) as ws:
        a = ws.start("a", "--name", "svc", "--name", "db", ttl="1")
        a.wait_for(lambda e: e["event"] == "name_held" and e["name"] == "db")
        a.wait_for(lambda e: e["event"] == "name_held" and e["name"] == "svc")
        b = ws.start("b", "--name", "svc", "--name", "db", ttl="1")
        b.wait_for(lambda e: e["event"] == "name_standby" and e["name"] == "svc")
        b.wait_for(lambda e: e["event"] == "name_standby" and e["name"] == "db")
        killed = a.kill()
        held = [b.wait_for(_event("name_held", name)) for name in ("svc", "db")]
        for event in held:
            assert event["t"] - killed < 1.0 + 1 / 3 + 2.0  # lease + heartbeat + slack for a loaded box
        out = cli("--redis", redis_server.url, "names", "--json")
        assert {"svc": "b", "db": "b"} == {n["name"]: n["member"] for n in json.loads(out.stdout)["names"]}


@pytest.mark.slow
def test_a_name_moves_to_the_standby_at_once_when_its_holder_shuts_down_kindly(redis_server: RedisServer) -> None:
    """SIGTERM of the holder: its leave frees and announces the name, so the standby takes it
    long before the holder's 5 s lease would have ended."""
    with workers_for(redis_server.url) as ws:
        a = ws.start("a", "--name", "svc", ttl="5")
        a.wait_for(lambda e: e["event"] == "name_held")
        b = ws.start("b", "--name", "svc", ttl="5")
        b.wait_for(lambda e: e["event"] == "name_standby")
        stopped = a.terminate()
        assert 0 == a.wait(PATIENCE)
        held = b.wait_for(lambda e: e["event"] == "name_held")
        assert held["t"] - stopped < 2.5  # a lease-bound move would take over 3.3 s


@pytest.mark.slow
def test_the_cli_shows_and_an_operator_removes_names(redis_server: RedisServer) -> None:
    """whereis (text and JSON), names, unregister; exit 1 when nobody holds the name. After
    an operator's removal the standby holds it."""
    url = redis_server.url
    with workers_for(url) as ws:
        missing = cli("--redis", url, "whereis", "svc", "--json")
        assert 1 == missing.returncode and "" == missing.stdout
        assert "nobody holds name svc" in missing.stderr and 1 == len(missing.stderr.splitlines())
        a = ws.start("a", "--name", "svc", ttl="5")
        a.wait_for(lambda e: e["event"] == "name_held")
        out = cli("--redis", url, "whereis", "svc", "--json")
        assert 0 == out.returncode, out.stderr
        found = json.loads(out.stdout)
        assert {"name": "svc", "member": "a", "pool": "p", "value": None} == {
            k: found[k] for k in ("name", "member", "pool", "value")
        }
        assert found["node"]
        text = cli("--redis", url, "whereis", "svc")
        assert text.stdout.startswith("svc: member a of pool p on node ")
        listing = cli("--redis", url, "names")
        assert "svc" in listing.stdout and "NAME" in listing.stdout
        b = ws.start("b", "--name", "svc", ttl="5")
        b.wait_for(lambda e: e["event"] == "name_standby")
        removed = cli("--redis", url, "unregister", "svc")
        assert 0 == removed.returncode and removed.stdout.startswith("removed name svc from member a of pool p")
        b.wait_for(lambda e: e["event"] == "name_held")
        a.wait_for(lambda e: e["event"] == "name_lost")
        assert "b" == json.loads(cli("--redis", url, "whereis", "svc", "--json").stdout)["member"]


def test_bad_name_arguments_are_one_line_and_exit_2() -> None:
    """A name with a brace is a usage error, before Redis is contacted."""
    out = cli("--redis", "redis://127.0.0.1:1/0", "whereis", "{x}")
    assert 2 == out.returncode and 1 == len(out.stderr.splitlines()) and "braces" in out.stderr


def test_a_leader_holding_names_keeps_both_and_its_stop_hands_both_over(fake_server: fakeredis.FakeServer) -> None:
    """The names heartbeat renews the lead too; stop() hands the lead over and frees the names
    in one script, so the successor leads and the name is free long before the lease ends."""

    async def scenario() -> None:
        a = member("p1", "a", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=1.0)
        b = member("p1", "b", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=1.0)
        await a.start()
        term = await a.wait_until_leader(5)
        await b.start()
        try:
            assert await a.register_name("svc")
            await asyncio.sleep(2.2)  # over two leases of heartbeats with a name held
            assert a.is_leader and term == a.term and ["svc"] == a.held_names
            await a.stop()
            assert await b.wait_until_leader(5) > term
            assert await b.whereis_name("svc", fresh=True) is None
        finally:
            await b.stop()

    run(scenario())


@pytest.mark.slow
def test_holding_names_costs_no_command_besides_the_heartbeat(redis_server: RedisServer) -> None:
    """Steady state with three names held: the member sends one EVALSHA per heartbeat (the
    names heartbeat, which renews the lead too) and nothing else, as without names."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        sent: list[str] = []
        execute: Callable[..., Awaitable[Any]] = client.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]).upper())
            return await execute(*args, **options)

        client.execute_command = counted  # type: ignore[method-assign]
        a = AsyncElection(MemberConfig(pool="p1", member_id="a", ttl_s=1.5), client)
        await a.start()
        try:
            await a.wait_until_leader(10)
            for name in ("x", "y", "z"):
                assert await a.register_name(name)
            await asyncio.sleep(a.config.heartbeat * 1.5)  # the names heartbeat's script is loaded
            sent.clear()
            window = 2.0
            await asyncio.sleep(window)
            assert {"EVALSHA"} == set(sent), sent
            assert 1 <= len(sent) <= window / a.config.heartbeat + 1
            assert ["x", "y", "z"] == a.held_names
        finally:
            await a.stop()
            await client.aclose()

    run(scenario())


def test_the_workers_names_come_from_flags_or_the_environment_and_bad_ones_are_usage_errors() -> None:
    """--name is repeatable (duplicates once), LEADERPOOL_NAMES is a comma list; a bad name
    names the flag."""
    from leaderpool.console.args import UsageError
    from leaderpool.worker.settings import parse_settings

    assert ("a", "b") == parse_settings(["--pool", "p", "--name", "a", "--name", "b", "--name", "a"], {}).names
    assert ("x", "y") == parse_settings(["--pool", "p"], {"LEADERPOOL_NAMES": "x, y"}).names
    with pytest.raises(UsageError, match="--name"):
        parse_settings(["--pool", "p", "--name", "{x}"], {})


def test_only_the_lock_subcommand_takes_a_command_after_the_double_dash() -> None:
    """``lock RES -- CMD`` splits off CMD; a pool named lock in another command does not."""
    from leaderpool.cli.parser import split_command

    assert (["--redis", "u", "lock", "r", "--ttl", "2"], ["sh", "-c", "x --y"]) == split_command(
        ["--redis", "u", "lock", "r", "--ttl", "2", "--", "sh", "-c", "x --y"]
    )
    assert (["evict", "lock", "--", "-m"], None) == split_command(["evict", "lock", "--", "-m"])


@pytest.mark.slow
def test_a_frozen_holder_loses_its_name_to_the_standby_and_stands_by_when_it_wakes(
    redis_server: RedisServer,
) -> None:
    """SIGSTOP the holder past its lease: the standby takes the name; on SIGCONT the old holder's
    heartbeat finds it lost, and it becomes the standby: never two holders."""
    with workers_for(redis_server.url) as ws:
        a = ws.start("a", "--name", "svc", ttl="1")
        a.wait_for(_event("name_held", "svc"))
        b = ws.start("b", "--name", "svc", ttl="1")
        b.wait_for(_event("name_standby", "svc"))
        a.signal(signal.SIGSTOP)
        b.wait_for(_event("name_held", "svc"))
        mark = len(a.events)
        a.signal(signal.SIGCONT)
        a.wait_for(_event("name_lost", "svc"), since=mark)
        a.wait_for(lambda e: e["event"] == "name_standby" and e["holder"] == "b", since=mark)
        out = cli("--redis", redis_server.url, "whereis", "svc", "--json")
        assert "b" == json.loads(out.stdout)["member"]


@pytest.mark.slow
def test_evicting_a_member_frees_its_names_at_once(redis_server: RedisServer) -> None:
    """No member, no names: ``evict`` frees the member's names too and says so; the standby
    takes them at once, and the evicted (live) worker stands by once it has rejoined."""
    url = redis_server.url
    with workers_for(url) as ws:
        a = ws.start("a", "--name", "svc", ttl="5")
        a.wait_for(_event("name_held", "svc"))
        b = ws.start("b", "--name", "svc", ttl="5")
        b.wait_for(_event("name_standby", "svc"))
        out = cli("--redis", url, "evict", "p", "a")
        assert 0 == out.returncode, out.stderr
        assert "its names are free: svc" in out.stdout
        now = cli("--redis", url, "whereis", "svc", "--json")  # freed by evict itself, not by a's next beat
        assert 1 == now.returncode or "b" == json.loads(now.stdout)["member"]
        b.wait_for(_event("name_held", "svc"))
        a.wait_for(_event("name_lost", "svc"))
        a.wait_for(lambda e: e["event"] == "name_standby" and e["holder"] == "b")
