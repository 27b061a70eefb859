"""Redis Sentinel: workers and the CLI reach the master through Sentinel URLs; after a failover
(the master SIGKILLed, a replica promoted) the members find the new master, turn keyspace
notifications on there, re-register and carry on: one leader, terms never going back, even when
the promoted replica missed the last writes."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from leaderpool.backend.connect import blocking_client
from leaderpool.backend.urls import parse_sentinel_url, validate_redis_url
from leaderpool.errors import ConfigError
from leaderpool.testing.sentinel import SentinelSet
from tests.support.worker_procs import PATIENCE, WorkerProc, cli, eventually, workers_for

# ---- URLs ----


def test_sentinel_url_parts() -> None:
    u = parse_sentinel_url(
        "rediss+sentinel://app:s%40cret@h1:26380,[::1],h3/orders/2?sentinel_password=x&sentinel_ssl=0"
    )
    assert (("h1", 26380), ("::1", 26379), ("h3", 26379)) == u.sentinels
    assert ("orders", 2, "app", "s@cret", True, "x", False) == (
        u.master, u.db, u.username, u.password, u.ssl, u.sentinel_password, u.sentinel_ssl
    )  # fmt: skip
    assert "rediss+sentinel://h1:26380,[::1]:26379,h3:26379/orders/2" == u.describe()
    assert (0, None, False) == (parse_sentinel_url("redis+sentinel://h/m").db, None, False)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:26379", "names no master"),
        ("redis+sentinel://h:26379/", "names no master"),
        ("redis+sentinel://h:26379/m/x", "/MASTER_NAME/DB (a number)"),
        ("redis+sentinel://h:26379/m/0/9", "/MASTER_NAME/DB (a number)"),
        ("redis+sentinel://h:99999/m", "port"),
        ("redis+sentinel://h1,,h2/m", "empty Sentinel address"),
        ("redis+sentinel://h/m?ssl_cert_reqs=none", "unknown option(s) ssl_cert_reqs"),
        ("redis+sentinel://h/m?sentinel_ssl=maybe", "sentinel_ssl must be"),
    ],
)
def test_bad_sentinel_urls_are_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_redis_url(url)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_the_worker_refuses_a_bad_sentinel_url_in_one_line() -> None:
    with workers_for("redis+sentinel://127.0.0.1:1/") as ws:
        w = ws.start("a")
        assert 2 == w.wait()
        assert "names no master" in w.stderr and 1 == len(w.stderr.strip().splitlines())


# ---- a real Sentinel set-up ----


@pytest.fixture
def sentinel(redis_binary: str) -> Iterator[SentinelSet]:
    with SentinelSet(redis_binary) as s:
        yield s


def terms_in_order(workers: list[WorkerProc]) -> list[tuple[float, str, int]]:
    """Every election any worker reported, by the time it was reported."""
    return sorted((e["t"], w.name, e["term"]) for w in workers for e in w.of("elected"))


def status(url: str) -> dict[str, Any]:
    """The pool as ``status --json`` shows it, once the Sentinel names a master: its failure
    detector can mark a live master down for a moment on a loaded box, and the CLI then rightly
    finds no master (what leaderpool does is the question here, not the Sentinel's detector)."""
    found: dict[str, Any] = eventually(lambda: _status_once(url), timeout=PATIENCE)
    return found


def _status_once(url: str) -> dict[str, Any] | None:
    done = cli("--redis", url, "status", "--json")
    if done.returncode != 0:
        assert "No master found" in done.stderr, done.stderr
        return None
    pools: list[dict[str, Any]] = json.loads(done.stdout)["pools"]
    return pools[0]


def newer_leader(url: str, term: int) -> bool:
    leader = status(url)["leader"]
    return leader is not None and int(leader["term"]) > term


def settled(url: str, members: int) -> dict[str, Any] | None:
    """The pool once it has a leader and ``members`` live members; None before, or while the
    Sentinel still reports the failover in progress (the CLI cannot reach a master then)."""
    done = cli("--redis", url, "status", "--json")
    if done.returncode != 0:
        assert "No master found" in done.stderr, done.stderr
        return None
    pools: list[dict[str, Any]] = json.loads(done.stdout)["pools"]  # none until a member registers again
    return pools[0] if pools and pools[0]["leader"] and len(pools[0]["members"]) == members else None


def keyspace_flags(port: int) -> str:
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        return str(client.config_get("notify-keyspace-events")["notify-keyspace-events"])
    finally:
        client.close()


def test_the_pool_carries_on_through_a_sentinel_failover(sentinel: SentinelSet) -> None:
    with workers_for(sentinel.url) as ws:
        a = ws.start("a", ttl="2")
        a.elected()
        b, c = ws.start("b", ttl="2"), ws.start("c", ttl="2")
        b.sees("a")
        c.sees("a")
        assert "a" == status(sentinel.url)["leader"]["member"]  # the CLI speaks Sentinel too

        old = sentinel.master_port()
        sentinel.master.stop()  # SIGKILL: the replica is promoted after ~1 s
        new = sentinel.wait_for_failover(away_from=old)
        assert sentinel.replica_port == new
        # the members re-check notifications on the new master (it started without them)
        eventually(lambda: set("Kg$x") <= set(keyspace_flags(new)), timeout=PATIENCE)
        leader = eventually(lambda: settled(sentinel.url, 3), timeout=PATIENCE)["leader"]

        # notifications work on the new master: a kind hand-over is still milliseconds away
        lead = next(w for w in (a, b, c) if w.name == leader["member"])
        lead.signal(signal.SIGTERM)
        assert 0 == lead.wait()
        rest = [w for w in (a, b, c) if w is not lead]
        eventually(lambda: any(w.of("elected")[-1:] and w.of("elected")[-1]["term"] > leader["term"] for w in rest))
        after = status(sentinel.url)
        assert after["leader"]["term"] > leader["term"] and 2 == len(after["members"])

        elections = terms_in_order([a, b, c])
        assert [t for _, _, t in elections] == sorted({t for _, _, t in elections})  # each term once, rising


def test_terms_never_go_back_when_the_promoted_replica_missed_writes(sentinel: SentinelSet) -> None:
    """Cut the replica off (it keeps its data, stale), move the lead on the master twice, then kill
    the master: the Sentinel promotes the stale replica, whose term is behind. The members
    remember the highest term they saw, so the next leader's term is above it."""
    with workers_for(sentinel.url) as ws:
        a = ws.start("a", ttl="2")
        a.elected()
        workers = [a, *(ws.start(m, ttl="2") for m in "bcd")]
        for w in workers[1:]:
            w.sees("a")
        # The Sentinel points a replica that follows another master back at its own once
        # failover-timeout has passed, and never promotes one whose link has been down for more
        # than 10 x down-after: the hand-overs below may take longer than either on a loaded
        # machine, so hold both off for this test.
        sentinel.set_option("failover-timeout", 180_000)
        sentinel.set_option("down-after-milliseconds", 5_000)
        replica = redis.Redis(port=sentinel.replica_port, socket_timeout=5)
        unused = _unused_port()
        replica.execute_command("REPLICAOF", "127.0.0.1", str(unused))  # stale from here on
        stale_term = int(replica.get("leaderpool:{p}:term") or 0)

        # two hand-overs on the master: terms move on where the replica cannot see them
        for _ in range(2):
            leader = status(sentinel.url)["leader"]
            leaving = next(w for w in workers if w.name == leader["member"])
            leaving.signal(signal.SIGTERM)
            assert 0 == leaving.wait()
            term = int(leader["term"])
            eventually(lambda: newer_leader(sentinel.url, term))  # noqa: B023 (called at once)
        highest = max(t for _, _, t in terms_in_order(workers))
        assert highest >= stale_term + 2
        assert stale_term == int(replica.get("leaderpool:{p}:term") or 0)  # still behind
        replica.close()

        old = sentinel.master_port()
        sentinel.master.stop()
        assert sentinel.replica_port == sentinel.wait_for_failover(away_from=old)
        after = eventually(lambda: settled(sentinel.url, 2), timeout=PATIENCE)["leader"]["term"]
        assert after > highest, f"term went back: {after} after {highest}"
        elections = terms_in_order(workers)
        assert [t for _, _, t in elections] == sorted({t for _, _, t in elections})


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_blocking_client_follows_the_master(sentinel: SentinelSet) -> None:
    client = blocking_client(sentinel.url, socket_timeout=5)
    try:
        assert client.ping()
        assert sentinel.master.port == client.connection_pool.get_master_address()[1]
    finally:
        client.close()


def test_wait_replicas_holds_back_a_lead_no_replica_has(sentinel: SentinelSet) -> None:
    """With --wait-replicas 1 a member acts on its lead only once the replica holds it: while the
    replica is frozen the member holds the lead (others see it taken) without acting; when the
    replica answers again it acts, and a hand-over to a member that waits too goes the same way."""
    assert sentinel.replica is not None
    with workers_for(sentinel.url) as ws:
        sentinel.replica.pause()  # SIGSTOP: replication stalls, WAIT cannot be answered
        try:
            a = ws.start("a", "--wait-replicas", "1", ttl="1")
            eventually(lambda: "lead_not_replicated" in a.stderr)
            time.sleep(1.5)  # a few more tries, a heartbeat apart: still not acting
            assert [] == a.of("elected")
            assert "a" == status(sentinel.url)["leader"]["member"]  # held: nobody else can take it
        finally:
            sentinel.replica.resume()
        assert a.elected()["term"] >= 1
        b = ws.start("b", "--wait-replicas", "1", ttl="1")
        b.sees("a")
        a.signal(signal.SIGTERM)
        assert b.elected()["term"] > a.of("elected")[-1]["term"]
        assert "lead_not_replicated" not in b.stderr


# ---- what a new user meets (issue 24) ----


def test_an_unreachable_sentinel_is_one_short_line() -> None:
    """Not redis-py's repr of every Sentinel client it tried: what failed, in one short line, exit 1."""
    done = cli("--redis", "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster", "status")
    line = done.stderr.strip()
    assert (1, 1) == (done.returncode, len(line.splitlines())), done.stderr
    # the last Sentinel's error as redis-py words it: "ConnectionError: Error 111 connecting to
    # 127.0.0.1:2. Connection refused." (redis-py 7), or the bare class name (older, on Python 3.10)
    assert re.search(r"No master found for 'mymaster': no Sentinel answered \(ConnectionError[^()]*\)$", line), line
    assert len(line) < 250 and "<redis." not in line


def test_a_wrong_master_name_is_exit_2_for_the_cli_and_the_worker(sentinel: SentinelSet) -> None:
    """The Sentinels answer but know no such master: a configuration error no retry fixes (one
    line naming the masters they know, exit 2), where the worker used to retry for ever."""
    wrong = sentinel.url.replace("/leaderpool-test/", "/leaderpool-typo/")
    said = "know no master named 'leaderpool-typo' (they know: leaderpool-test)"
    done = cli("--redis", wrong, "status")
    assert (2, 1) == (done.returncode, len(done.stderr.strip().splitlines())), done.stderr
    assert said in done.stderr
    with workers_for(wrong) as ws:
        w = ws.start("a")
        assert 2 == w.wait()
        assert said in w.stderr and 1 == len(w.stderr.strip().splitlines()), w.stderr
