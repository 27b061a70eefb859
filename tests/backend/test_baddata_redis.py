"""Hostile or broken data injected into a running pool of worker processes on a real redis-server:
each kind is logged once and skipped, no worker crashes, the pool never has two leaders, and
``leaderpool-cli doctor`` names the key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from leaderpool.backend.baddata import MAX_RECORD_BYTES
from leaderpool.backend.keys import Keyspace
from leaderpool.testing.redis_server import RedisServer
from tests.conftest import REDIS_BINARIES
from tests.support.worker_procs import WorkerProc, Workers, cli, eventually, workers_for

KEYS = Keyspace("p")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    s = RedisServer(REDIS_BINARIES[0][0]).start()
    try:
        yield s
    finally:
        s.cleanup()


def doctor_pool_data(url: str) -> dict[str, str]:
    done = cli("--redis", url, "doctor", "--json")
    [check] = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "pool data"]
    return {"level": check["level"], "message": check["message"]}


def leaders(url: str) -> list[str]:
    done = cli("--redis", url, "status", "--json")
    assert 0 == done.returncode, done.stderr
    return [p["leader"]["member"] for p in json.loads(done.stdout)["pools"] if p["leader"]]


def assert_sound(workers: list[WorkerProc]) -> None:
    """Every worker runs, and none failed a script or a listener."""
    for w in workers:
        assert w.alive(), w.stderr
        for bad in ("script_failed", "election_turn_failed", "watcher_listener_failed", "Traceback"):
            assert bad not in w.stderr, w.stderr


def elected_since(workers: list[WorkerProc], marks: list[int]) -> list[tuple[str, int]]:
    return [
        (w.name, e["term"])
        for w, m in zip(workers, marks, strict=True)
        for e in w.events[m:]
        if e["event"] == "elected"
    ]


@pytest.fixture
def pool(server: RedisServer) -> Iterator[tuple[Workers, redis.Redis]]:
    admin = redis.Redis(port=server.port)
    with workers_for(server.url) as ws:
        yield ws, admin
    admin.close()


def test_malformed_member_records_are_skipped(pool: tuple[Workers, redis.Redis], server: RedisServer) -> None:
    """Bad JSON, a JSON list, wrong fields and a huge record, each with a live lease: members skip
    them (logged once each), status lists only real members, fail-over still works."""
    ws, admin = pool
    a = ws.start("a")
    a.elected()
    b = ws.start("b")
    b.sees("a")
    ghosts = {
        "ghost-json": "not json",
        "ghost-list": "[1, 2]",
        "ghost-fields": '{"pid": "x", "meta": "text"}',
        "ghost-huge": json.dumps({"meta": {"x": "y" * (MAX_RECORD_BYTES + 1)}}),
    }
    for ghost, record in ghosts.items():
        admin.hset(KEYS.members, ghost, record)
    admin.zadd(KEYS.leases, {g: 2**42 for g in ghosts})
    c = ws.start("c")  # the ghosts are not in the ranking: followers never list the pool for them
    c.sees("a")
    done = cli("--redis", server.url, "status", "--json")
    assert ["a", "b", "c"] == sorted(m["member"] for m in json.loads(done.stdout)["pools"][0]["members"])
    assert "fail" == doctor_pool_data(server.url)["level"]
    marks = [b.mark(), c.mark()]
    a.kill()
    b.elected()
    assert [("b", 2)] == elected_since([b, c], marks)
    for w in (b, c):  # a member that read the whole pool (it need not, as next in line) says it once
        for ghost in ghosts:
            said = w.stderr.count(f"subject={ghost}") + w.stderr.count(f"subject='{ghost}'")
            assert said <= 1, w.stderr
    assert_sound([b, c])


def test_a_members_own_corrupted_record_is_written_again(
    pool: tuple[Workers, redis.Redis], server: RedisServer
) -> None:
    """The leader's own record overwritten with garbage: it finds itself missing from the read,
    steps down, registers again (its record is valid once more), and the pool has one leader."""
    ws, admin = pool
    a = ws.start("a")
    a.elected()
    b = ws.start("b")
    b.sees("a")
    admin.hset(KEYS.members, "a", "garbage")
    ws.start("c").sees("a")  # the join makes the leader look again (a glance reads its own record)

    def healed() -> bool:
        record = admin.hget(KEYS.members, "a")
        return record is not None and record != b"garbage"

    eventually(healed)
    eventually(lambda: len(leaders(server.url)) == 1)
    done = cli("--redis", server.url, "status", "--json")
    assert ["a", "b", "c"] == sorted(m["member"] for m in json.loads(done.stdout)["pools"][0]["members"])
    assert_sound([a, b])


def test_a_foreign_leader_value_blocks_claims_until_it_goes(
    pool: tuple[Workers, redis.Redis], server: RedisServer
) -> None:
    """A value that is not TERM|MEMBER replaces the leader's: the leader steps down, nobody claims
    over it (two leases and more), doctor names the key; once deleted, one member is elected."""
    ws, admin = pool
    a = ws.start("a")
    a.elected()
    b = ws.start("b")
    b.sees("a")
    marks = [a.mark(), b.mark()]
    admin.set(KEYS.leader, "not-a-leader-value")
    a.wait_for(lambda e: e["event"] == "revoked", since=marks[0])
    time.sleep(2.5)  # two leases (1 s) and more: a claim would have happened by now
    assert b"not-a-leader-value" == admin.get(KEYS.leader)
    assert [] == elected_since([a, b], marks)
    found = doctor_pool_data(server.url)
    assert "fail" == found["level"] and KEYS.leader in found["message"], found
    admin.delete(KEYS.leader)
    eventually(lambda: elected_since([a, b], marks))
    [(_, term)] = elected_since([a, b], marks)
    assert term >= 2
    assert 1 == len(leaders(server.url))
    for w in (a, b):
        assert 1 == w.stderr.count("leader_value_foreign"), w.stderr
    assert_sound([a, b])


@pytest.mark.parametrize(("kind", "value"), [("history", "x"), ("members", "x"), ("term", None)])
def test_a_pool_key_of_the_wrong_type_stalls_claims_without_crashing(
    pool: tuple[Workers, redis.Redis], server: RedisServer, kind: str, value: str | None
) -> None:
    """A string where a stream or hash belongs (a hash where the term counter belongs): scripts
    refuse before writing, members log it once and retry, nobody is elected meanwhile, doctor names
    the key; once deleted, the pool elects exactly one leader again."""
    ws, admin = pool
    a = ws.start("a")
    a.elected()
    b = ws.start("b")
    b.sees("a")
    key = getattr(KEYS, kind)
    marks = [b.mark()]
    with admin.pipeline(transaction=True) as swap:  # one step: a beat between a DEL and an HSET recreates the key
        swap.delete(key)
        if value is None:
            swap.hset(key, "x", "y")
        else:
            swap.set(key, value)
        swap.execute()
    a.kill()
    eventually(lambda: "bad_pool_data" in b.stderr)
    found = doctor_pool_data(server.url)
    assert "fail" == found["level"] and key in found["message"], found
    if kind == "members":  # status reads the members: it names the problem, exit 1
        shown = cli("--redis", server.url, "status")
        assert (
            1 == shown.returncode and f"pool p: unreadable: script observe refused: BADDATA key {key}" in shown.stdout
        )
    time.sleep(2.0)  # a lease and more: b would have been elected by now without the bad key
    assert [] == elected_since([b], marks)
    assert 1 == b.stderr.count("bad_pool_data"), b.stderr
    admin.delete(key)
    b.elected()
    assert_sound([b])
    assert ["b"] == leaders(server.url)


def test_garbage_on_the_pool_channel_is_ignored(pool: tuple[Workers, redis.Redis], server: RedisServer) -> None:
    """Messages that do not parse (bad term, bad hand-over time, unknown event, not UTF-8) change
    nothing: same leader, same term, each logged once."""
    ws, admin = pool
    a = ws.start("a")
    a.elected()
    b = ws.start("b")
    b.sees("a")
    garbage = [b"elected|notanumber||b", b"elected|9|handoff:abc|b", b"zzz", b"\xff\xfe|1||b", b"left|x||a"]
    marks = [a.mark(), b.mark()]
    for _ in range(3):
        for message in garbage:
            admin.publish(KEYS.events, message)
    eventually(lambda: all(w.stderr.count("pool_message_ignored") >= len(garbage) for w in (a, b)))
    assert [] == elected_since([a, b], marks)
    assert ["a"] == leaders(server.url)
    assert "ok" == doctor_pool_data(server.url)["level"]
    for w in (a, b):
        assert len(garbage) == w.stderr.count("pool_message_ignored"), w.stderr  # once per distinct message
    assert_sound([a, b])


def test_the_type_guard_benchmark_runs() -> None:
    """``python -m benchmarks.type_guard`` measures each variant of the heartbeat, as a follower's
    beat and as the leader's (a short run, so it cannot rot)."""
    from benchmarks.type_guard import measure

    results = measure(20)
    assert {"checked", "unchecked", "type_guard"} == set(results)
    for by_beat in results.values():
        assert {"follower", "leader"} == set(by_beat)
        assert all(r["calls"] == 20 and r["redis_us_per_call"] > 0 for r in by_beat.values())
    assert results["type_guard"]["follower"]["commands_per_call"] > results["checked"]["follower"]["commands_per_call"]
