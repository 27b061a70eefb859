"""The kind hand-over's grant, with real member processes: the leaving leader's script grants the
lead and the next term to the next in line, and names that member's run in the announcement; the
successor acts on the announcement without a claim. A grant to a member that died meanwhile leaves
the pool to the normal path; a grant that reaches another run under the id is never acted on.

Bounds are generous (a shared 2-core machine); speed is measured in benchmarks/, not here.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import redis

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import HANDOFF_PREFIX, HANDOFF_RUN, PoolEvent, PoolMessage
from leaderpool.testing.redis_server import RedisServer
from tests.support.processes import Proc, member_processes, overlaps, settled_pool

TTL = 1.0


def history(client: redis.Redis, pool: str) -> list[dict[str, str]]:
    """The pool's history stream, oldest first, as plain dicts."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(Keyspace(pool).history)  # type: ignore[assignment]
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def run_of(client: redis.Redis, pool: str, member: str) -> str:
    """The run (incarnation) the member's record names."""
    record = client.hget(Keyspace(pool).members, member)
    assert record is not None
    return str(json.loads(record)["incarnation"])


def forge_grant(client: redis.Redis, pool: str, member: str, term: int, run: str | None) -> None:
    """Publish a hand-over announcement to ``member`` for ``term``, granted now on Redis's clock,
    naming ``run`` (None: no run, as an earlier version's leader announced it)."""
    seconds, micros = client.time()
    detail = f"{HANDOFF_PREFIX}{seconds * 1000 + micros // 1000}" + ("" if run is None else f"{HANDOFF_RUN}{run}")
    client.publish(Keyspace(pool).events, PoolMessage(PoolEvent.ELECTED, term, detail, member).encode())


def leaders_seen(proc: Proc) -> list[Any]:
    return [e["leader"] for e in proc.events if e["event"] == "leader"]


class TestGrant:
    def test_sigterm_grants_the_next_in_line_the_next_term_without_a_claim(self, redis_server: RedisServer) -> None:
        """SIGTERM of the leader: the next in line (the oldest follower) leads with term + 1, granted
        by the leaving leader's script (history: released, then elected for a hand-over), and
        nobody else claims."""
        client = redis.Redis.from_url(redis_server.url)
        with member_processes() as start:
            procs = settled_pool(start, redis_server.url, "grant", ttl=TTL)
            a, b, c = procs
            assert [1] == [e["term"] for e in a.of("elected")]
            a.signal(signal.SIGTERM)
            assert 0 == a.popen.wait(15)
            assert 2 == b.wait_event("elected")["term"]
            c.wait_for(lambda e: e.get("event") == "leader" and e.get("leader") == "b", 15)
            after = [(e["event"], e["member"], e["term"], e["reason"]) for e in history(client, "grant")][-2:]
            assert [("released", "a", "1", "shutdown"), ("elected", "b", "2", "handoff")] == after
            assert [] == c.of("elected")
            assert b"2" == client.get(Keyspace("grant").term)
            assert 0 == overlaps(procs)
        client.close()

    def test_a_grant_to_a_successor_killed_just_before_still_leaves_a_leader(self, redis_server: RedisServer) -> None:
        """The next in line is SIGKILLed, then the leader SIGTERMed at once: the grant goes to the
        dead member (its lease still runs); the normal path (its lease lapsing, or its death
        proved) makes the third member leader with a higher term, and never two at once."""
        client = redis.Redis.from_url(redis_server.url)
        with member_processes() as start:
            procs = settled_pool(start, redis_server.url, "dead-heir", ttl=TTL)
            a, b, c = procs
            killed_at = time.time()
            b.signal(signal.SIGKILL)
            b.events.append({"event": "killed", "t": killed_at})
            a.signal(signal.SIGTERM)
            assert 0 == a.popen.wait(15)
            elected = c.wait_event("elected", timeout=TTL * 3 + 10)
            assert 3 == elected["term"]  # term 2 went to the dead b
            granted = [(e["event"], e["member"], e["term"], e["reason"]) for e in history(client, "dead-heir")]
            assert ("elected", "b", "2", "handoff") in granted
            assert [] == b.of("elected")
            assert 0 == overlaps(procs)
        client.close()

    def test_a_grant_naming_another_run_or_none_is_not_acted_on(self, redis_server: RedisServer) -> None:
        """Announcements of a grant to b that name another run (a stale message for an earlier
        process under b's id), or no run at all, do not make b act: b confirms through Redis,
        where a still leads. The real hand-over after them is b's first and only lead."""
        client = redis.Redis.from_url(redis_server.url)
        with member_processes() as start:
            procs = settled_pool(start, redis_server.url, "stale", names="ab", ttl=TTL)
            a, b = procs
            assert run_of(client, "stale", "b") != "0" * 16
            forge_grant(client, "stale", "b", 7, "0" * 16)
            forge_grant(client, "stale", "b", 8, None)
            a.signal(signal.SIGTERM)  # its grant comes after the forged ones on b's connection
            assert 0 == a.popen.wait(15)
            assert 2 == b.wait_event("elected")["term"]
            assert [2] == [e["term"] for e in b.of("elected")]
            assert 0 == overlaps(procs)
        client.close()

    def test_a_grant_for_the_previous_process_under_an_id_is_not_acted_on(self, redis_server: RedisServer) -> None:
        """c is SIGKILLed and started again under its id (another run); a grant naming the killed
        run reaches the new process, which does not act on it. Then the leader hands over to b
        as usual, and the new c only ever sees b lead."""
        client = redis.Redis.from_url(redis_server.url)
        with member_processes() as start:
            a, b, c = settled_pool(start, redis_server.url, "restarted", ttl=TTL)
            old_run = run_of(client, "restarted", "c")
            c.signal(signal.SIGKILL)
            c.popen.wait(15)
            c2 = start(redis_server.url, "restarted", "c", ttl=TTL)
            c2.wait_event("leader", timeout=TTL * 3 + 10)  # joined once the killed run's lease lapsed
            assert old_run != run_of(client, "restarted", "c")
            forge_grant(client, "restarted", "c", 2, old_run)  # the next term: b hears it too
            a.signal(signal.SIGTERM)
            assert 0 == a.popen.wait(15)
            assert 2 == b.wait_event("elected")["term"]
            c2.wait_for(lambda e: e.get("event") == "leader" and e.get("leader") == "b", 15)  # it read past the forgery
            assert [] == c2.of("elected")
            assert "c" not in leaders_seen(c2)
            assert 0 == overlaps([a, b, c2])
        client.close()
