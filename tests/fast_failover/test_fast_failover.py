"""Fast failover (:mod:`leaderpool.fast_failover.failover`), end to end: real worker processes, real signals,
a real redis-server, and a TCP proxy (``tests/support/liveness_proxy.py``) for the middlebox cases.

A takeover before the lease ends needs a trigger (the leader's liveness endpoint closes on the
next in line) *and* a confirmation through Redis (the leader's registered connection is gone);
everything a closed connection cannot prove waits for the lease."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from leaderpool import AsyncElection
from leaderpool.backend.keys import Keyspace, connection_channel
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import ClaimStatus, LeaderConn, LeaderValue
from leaderpool.config import MemberConfig, parse_host_port
from leaderpool.errors import ConfigError
from leaderpool.events import RevokeReason
from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.helpers import Recorder, start_all, stop_all
from tests.support.helpers import eventually as eventually_async
from tests.support.liveness_proxy import Proxy
from tests.support.worker_procs import WorkerProc, Workers, cli, eventually, workers_for

FAST_BOUND_S = 3.0
"""A fast takeover must come within this (generous on a shared 2-core box), far below the leases
used here; the benchmark measures the real figure (milliseconds)."""


@pytest.fixture
def workers(redis_one: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_one.url) as ws:
        yield ws


def history(url: str) -> list[tuple[str, int, str, str]]:
    done = cli("--redis", url, "history", "p", "--json")
    assert 0 == done.returncode, done.stderr
    return [(r["event"], r["term"], r["member"], r["reason"]) for r in json.loads(done.stdout)["transitions"]]


def record(url: str, member: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        raw = client.hget(Keyspace("p").members, member)
    finally:
        client.close()
    assert raw is not None, f"{member} has no record"
    found: dict[str, Any] = json.loads(raw)
    return found


def start(ws: Workers, member: str, *extra: str, ttl: str) -> WorkerProc:
    """A worker logging JSON on stderr (its log events are read by :func:`logs`)."""
    return ws.start(member, "--log-format", "json", *extra, ttl=ttl)


def logs(worker: WorkerProc, event: str) -> list[dict[str, Any]]:
    """The worker's log events named ``event``."""
    found = []
    for line in worker.stderr.splitlines():
        if f'"{event}"' in line:
            entry = json.loads(line)
            if entry.get("event") == event:
                found.append(entry)
    return found


def takeover(worker: WorkerProc) -> dict[str, Any]:
    """``worker``'s last ``leader_process_died`` line (logged just after the ``elected`` event)."""
    found: list[dict[str, Any]] = eventually(lambda: logs(worker, "leader_process_died"))
    return found[-1]


def watched_by(url: str, leader: str, followers: list[WorkerProc]) -> WorkerProc:
    """Wait until one of ``followers`` holds a connection to ``leader``'s liveness endpoint."""
    endpoint = record(url, leader)["liveness"]

    def watcher() -> WorkerProc | None:
        watching = (f for f in followers if f.alive() and watches(f, endpoint))
        return next(watching, None)

    found: WorkerProc = eventually(watcher)
    return found


@contextlib.contextmanager
def leader_behind_a_proxy(ws: Workers, url: str) -> Iterator[tuple[Proxy, WorkerProc, WorkerProc]]:
    """Leader a, whose liveness endpoint the others reach only through a proxy the test
    controls, and b, next in line, connected to it through the proxy."""
    port = free_port()
    proxy = Proxy(port).start()
    try:
        a = start(ws, "a", "--liveness-address", f"127.0.0.1:{port}",
                  "--liveness-advertise", f"127.0.0.1:{proxy.port}", ttl="2")  # fmt: skip
        a.elected()
        b = start(ws, "b", ttl="2")
        b.sees("a")
        watched_by(url, "a", [b])
        yield proxy, a, b
    finally:
        proxy.close()


def watches(worker: WorkerProc, endpoint: str) -> int:
    """How many times ``worker`` connected to ``endpoint``."""
    return sum(1 for e in logs(worker, "liveness_watching") if e["endpoint"] == endpoint)


def user_url(server: RedisServer, user: str, *, commands: list[str], channels: tuple[str, ...] = ("*",)) -> str:
    """The URL of a new ACL user of ``server`` allowed everything but ``commands``' rules, on
    ``channels`` only (``resetchannels`` first: Redis 6.2 gives a new user every channel)."""
    admin = redis.Redis.from_url(server.url)
    try:
        admin.acl_setuser(
            user, enabled=True, passwords=["+pw"], keys=["*"], channels=list(channels), categories=["+@all"],
            commands=commands, reset_channels=True,
        )  # fmt: skip
    finally:
        admin.close()
    return server.url.replace("redis://", f"redis://{user}:pw@")


def registered(url: str) -> LeaderConn | None:
    client = redis.Redis.from_url(url)
    try:
        return LeaderConn.parse(client.get(Keyspace("p").leader_conn))
    finally:
        client.close()


def killed_leader_replaced(url: str) -> tuple[LeaderConn, dict[str, Any]]:
    """Leader a and b next in line, both of ``url``'s user; a SIGKILLed: a's registration, and
    b's takeover line."""
    with workers_for(url) as ws:
        a = start(ws, "a", ttl="10")
        a.elected()
        b = start(ws, "b", ttl="10")
        b.sees("a")
        watched_by(url, "a", [b])
        conn: LeaderConn = eventually(lambda: registered(url))
        killed_at = a.kill()
        elected = b.wait_for(lambda e: e["event"] == "elected", timeout=FAST_BOUND_S)
        assert elected["t"] - killed_at < FAST_BOUND_S and 2 == elected["term"]
        return conn, takeover(b)


async def a_leads_b_follows(url: str) -> tuple[Recorder, AsyncElection, AsyncElection, redis.asyncio.Redis]:
    """In this process: a leads pool p (10 s lease), b follows; and an admin client of ``url``."""
    rec = Recorder()
    a, b = rec.elections("p", "ab", url, ttl_s=10)
    await start_all([a, b])
    await a.wait_until_leader(10)
    return rec, a, b, redis.asyncio.Redis.from_url(url)


def lease_deadline(url: str, member: str) -> float:
    """``member``'s lease deadline (Redis clock, ms): it moves on with each of its heartbeats."""
    client = redis.Redis.from_url(url)
    try:
        deadline = client.zscore(Keyspace("p").leases, member)
    finally:
        client.close()
    assert deadline is not None, f"{member} has no lease"
    return deadline


def registered_term(url: str) -> int | None:
    """The term whose leader's connection is registered (fast failover's ``leader_conn``)."""
    client = redis.Redis.from_url(url)
    try:
        conn = LeaderConn.parse(client.get(Keyspace("p").leader_conn))
        return None if conn is None else conn.term
    finally:
        client.close()


def leader_pttl_ms(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.pttl(Keyspace("p").leader))
    finally:
        client.close()


def newly_elected(candidates: list[WorkerProc]) -> Callable[[], WorkerProc | None]:
    """A predicate: the first of ``candidates`` elected since now, if any."""
    marks = {c.name: len(c.of("elected")) for c in candidates}
    return lambda: next((c for c in candidates if len(c.of("elected")) > marks[c.name]), None)


def acting_overlaps(workers: list[WorkerProc], ended: dict[str, float]) -> list[tuple[str, str]]:
    """Pairs of workers whose acting intervals (elected .. revoked, or .. killed) overlap."""
    intervals = []
    for w in workers:
        start = None
        for e in w.events:
            if e["event"] == "elected":
                start = e["t"]
            elif e["event"] == "revoked" and start is not None:
                intervals.append((w.name, start, e["t"]))
                start = None
        if start is not None:
            intervals.append((w.name, start, ended.get(w.name, float("inf"))))
    intervals.sort(key=lambda i: i[1])
    return [(a[0], b[0]) for a, b in itertools.pairwise(intervals) if b[1] < a[2]]


class TestTheFastPath:
    def test_sigkill_of_the_leader_fails_over_far_within_its_lease(self, redis_server: RedisServer) -> None:
        """With a 10 s lease, each SIGKILLed leader is replaced within a fraction of a second, with
        a higher term, the death proved inside the bury script (the leader's connection channel has
        no subscriber: Redis read its close first); never two acting leaders."""
        ended: dict[str, float] = {}
        with workers_for(redis_server.url) as ws:
            procs = [start(ws, "a", ttl="10")]
            procs[0].elected()
            for name in ("b", "c"):
                procs.append(start(ws, name, ttl="10"))
                procs[-1].sees("a")
            leader, term = procs[0], 1
            for generation in range(1, 6):
                followers = [p for p in procs if p is not leader and p.alive()]
                watched_by(redis_server.url, leader.name, followers)
                elected_since_now = newly_elected(followers)  # before the kill: the takeover can beat its reaping
                killed_at = ended[leader.name] = leader.kill()
                new = eventually(elected_since_now, timeout=FAST_BOUND_S, interval=0.005)
                elected = new.of("elected")[-1]
                assert elected["t"] - killed_at < FAST_BOUND_S
                assert elected["term"] > term
                died = takeover(new)
                assert (leader.name, "subscription", "elected") == (died["dead"], died["confirmed_by"], died["claim"])
                assert 0 == died["asks"]  # Redis knew at once: the dead leader released its endpoint's sockets last
                replacement = start(ws, f"{leader.name[0]}{generation}", ttl="10")
                replacement.sees(new.name)
                procs = [*followers, replacement]
                leader, term = new, elected["term"]
            everyone = [p for p in ws.started if isinstance(p, WorkerProc)]
            assert [] == acting_overlaps(everyone, ended)
            rows = history(redis_server.url)
        assert 5 == sum(1 for r in rows if r[0] == "released" and r[3] == "process_died")
        assert [1, 2, 3, 4, 5, 6] == [r[1] for r in rows if r[0] == "elected"]

    def test_a_slow_teardown_of_the_dead_leaders_connection_still_takes_the_fast_path(
        self, redis_one: RedisServer
    ) -> None:
        """A loaded host closes a killed process's sockets one after the other, and Redis may read
        the close of the leader's connection well after the follower read its endpoint's EOF (a
        proxy in front of Redis holds it half a second here): the bury script finds the leader's
        connection still subscribed and does nothing, the follower asks CLIENT LIST beside its
        loop, and takes over once Redis lets go, long before the 10 s lease ends."""
        proxy = Proxy(redis_one.port).start()
        proxy.linger_s = 0.5
        try:
            with workers_for(f"redis://127.0.0.1:{proxy.port}/0") as via_proxy, workers_for(redis_one.url) as direct:
                a = start(via_proxy, "a", ttl="10")
                a.elected()
                b = start(direct, "b", ttl="10")
                b.sees("a")
                watched_by(redis_one.url, "a", [b])
                killed_at = a.kill()
                elected = b.wait_for(lambda e: e["event"] == "elected", timeout=FAST_BOUND_S)
                assert proxy.linger_s - 0.05 <= elected["t"] - killed_at  # Redis let go, then b took over
                assert 2 == elected["term"]
                assert "client_list" == takeover(b)["confirmed_by"]  # the script found it still subscribed
                assert [] == logs(b, "liveness_trigger_unconfirmed")  # the first trigger's proof, waited for
                assert [] == logs(b, "heartbeat_late")
        finally:
            proxy.close()

    def test_a_leader_handed_its_lead_registers_its_connection_and_fails_over_fast(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """A lead taken by a hand-over (not a claim) registers its connection at its first renewal:
        its own crash then takes the fast path too."""
        a = start(workers, "a", ttl="10")
        a.elected()
        b = start(workers, "b", ttl="10")
        b.sees("a")
        c = start(workers, "c", ttl="10")
        c.sees("a")
        a.terminate()
        assert 2 == b.elected()["term"]
        watched_by(redis_one.url, "b", [c])
        eventually(lambda: registered_term(redis_one.url) == 2)  # b's first renewal registered it
        # c knows a registration from its last reply: the re-read it made on hearing of b's lead
        # may have come before that renewal, its next heartbeat comes after it
        beat_before = lease_deadline(redis_one.url, "c")
        eventually(lambda: lease_deadline(redis_one.url, "c") > beat_before)
        killed_at = b.kill()
        elected = c.wait_for(lambda e: e["event"] == "elected", timeout=FAST_BOUND_S)
        assert elected["t"] - killed_at < FAST_BOUND_S and 3 == elected["term"]
        assert "subscription" == takeover(c)["confirmed_by"]

    def test_a_leader_whose_registered_connection_drops_steps_down_at_once(self, redis_one: RedisServer) -> None:
        """Redis drops the leader's pub/sub connection (CLIENT KILL) while it lives: a follower could
        now prove that connection gone, so the leader stops acting at once, long before its renew
        deadline, and a new term follows."""

        async def main() -> None:
            rec, a, b, admin = await a_leads_b_follows(redis_one.url)
            registered = LeaderConn.parse(await admin.get(Keyspace("p").leader_conn))
            assert registered is not None and registered.term == a.term
            dropped_at = time.monotonic()
            await admin.client_kill_filter(_id=str(registered.client_id))
            await eventually_async(lambda: bool(rec.of("a", "revoked")), timeout=FAST_BOUND_S)
            assert [RevokeReason.LEASE_LOST.value] == rec.of("a", "revoked")
            assert time.monotonic() - dropped_at < FAST_BOUND_S  # its renew deadline is 6.7 s away
            await eventually_async(lambda: b.leader is not None and b.leader.term > 1, timeout=10)
            await admin.aclose()
            await stop_all([a, b])

        asyncio.run(main())


class TestTheProofInTheScript:
    def test_a_live_leaders_connection_is_subscribed_so_the_bury_script_does_nothing(
        self, redis_one: RedisServer
    ) -> None:
        """The leader registers its connection as subscribed to its own channel, and a bury
        (a trigger a middlebox faked, say) finds a subscriber there: nothing is written."""

        async def main() -> None:
            rec, a, b, admin = await a_leads_b_follows(redis_one.url)
            keys = Keyspace("p")
            raw = await admin.get(keys.leader_conn)
            conn = LeaderConn.parse(raw)
            assert isinstance(raw, bytes)
            assert conn is not None and conn.subscribed and conn.term == a.term
            channel = connection_channel(keys.prefix, conn.client_id)
            assert [(channel.encode(), 1)] == await admin.pubsub_numsub(channel)
            leader_before = await admin.get(keys.leader)
            result = await PoolStore(admin, keys).bury_and_claim(
                LeaderValue(conn.term, "a"), raw.decode(), "process_died", "b", 10_000, conn.term, "",
                proof_channel=channel,
            )  # fmt: skip
            assert ClaimStatus.STILL_SUBSCRIBED is result.status
            assert leader_before == await admin.get(keys.leader) and raw == await admin.get(keys.leader_conn)
            assert [] == rec.of("a", "revoked")
            await admin.aclose()
            await stop_all([a, b])

        asyncio.run(main())

    def test_without_pubsub_numsub_the_death_is_confirmed_with_client_list(self, redis_one: RedisServer) -> None:
        """An ACL without PUBSUB: the script cannot ask (no script error: no proof), and the
        follower confirms with CLIENT LIST beside its loop."""
        url = user_url(redis_one, "nonumsub", commands=["-pubsub"])  # Redis 6.2 cannot deny a subcommand alone
        conn, died = killed_leader_replaced(url)
        assert conn.subscribed and "client_list" == died["confirmed_by"]

    def test_a_connection_refused_its_own_channel_registers_without_it(self, redis_one: RedisServer) -> None:
        """An ACL that allows the pool's channels but not the connection channels: the watcher
        works on, the registration does not say subscribed (no subscriber there proves nothing),
        and deaths are confirmed with CLIENT LIST."""
        url = user_url(redis_one, "nochannel", commands=[], channels=("leaderpool:{*", "__keyspace@*__:leaderpool:*"))
        conn, died = killed_leader_replaced(url)
        assert conn.client_id > 0 and not conn.subscribed and "client_list" == died["confirmed_by"]


class TestFaultsThatWaitForTheLease:
    def test_a_frozen_leader_is_replaced_only_after_its_lease(self, workers: Workers, redis_one: RedisServer) -> None:
        """SIGSTOP keeps the leader's sockets open: no trigger, no early takeover; the lease decides,
        and the leader steps down when it wakes."""
        a = start(workers, "a", ttl="2")
        a.elected()
        b = start(workers, "b", ttl="2")
        b.sees("a")
        watched_by(redis_one.url, "a", [b])
        a.signal(signal.SIGSTOP)
        lease_end = time.time() + leader_pttl_ms(redis_one.url) / 1000  # nobody renews a frozen leader's lease
        elected = b.elected()
        assert elected["t"] >= lease_end - 0.05  # the read of the lease left took a moment
        assert "leader_process_died" not in b.stderr
        a.signal(signal.SIGCONT)
        assert "lease_lost" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
        assert [("elected", 1, "a", ""), ("expired", 1, "a", "lease_expired"), ("elected", 2, "b", "")] == history(
            redis_one.url
        )

    def test_a_blackholed_path_to_the_leader_is_silence(self, workers: Workers, redis_one: RedisServer) -> None:
        """A middlebox that swallows everything (the leader's close included) proves nothing: the
        leader killed behind it is replaced only after its lease."""
        with leader_behind_a_proxy(workers, redis_one.url) as (proxy, a, b):
            proxy.blackhole()
            lease_end = a.kill() + leader_pttl_ms(redis_one.url) / 1000
            elected = b.elected()
            assert elected["t"] >= lease_end - 0.05
            assert "leader_process_died" not in b.stderr
            assert ("expired", 1, "a", "lease_expired") == history(redis_one.url)[1]

    def test_a_reset_injected_while_the_leader_lives_is_not_a_death(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """A RST from a middlebox triggers the follower, but Redis still lists the leader's
        connection: no takeover, the leader undisturbed, and the follower watches again."""
        with leader_behind_a_proxy(workers, redis_one.url) as (proxy, a, b):
            proxy.reset_clients()
            eventually(lambda: logs(b, "liveness_trigger_unconfirmed"))
            eventually(lambda: watches(b, record(redis_one.url, "a")["liveness"]) >= 2)  # it reconnected
            time.sleep(2.5)  # more than a lease: the leader renews on, nobody else is elected
            assert [] == a.of("revoked") and [] == b.of("elected") and a.alive()
            assert [("elected", 1, "a", "")] == history(redis_one.url)


class TestTheLeaderIsUndisturbed:
    def test_a_dying_follower_does_not_disturb_the_leader(self, workers: Workers, redis_one: RedisServer) -> None:
        """The next in line dies (its liveness connection closes on the leader's side): the leader
        leads on in the same term, and the member after it takes up the watch."""
        a = start(workers, "a", ttl="1")
        a.elected()
        b = start(workers, "b", ttl="1")
        b.sees("a")
        c = start(workers, "c", ttl="1")
        c.sees("a")
        assert b is watched_by(redis_one.url, "a", [b, c])
        b.kill()
        assert c is watched_by(redis_one.url, "a", [c])
        assert [] == a.of("revoked") and [] == c.of("elected")
        assert [("elected", 1, "a", "")] == history(redis_one.url)


class TestWithoutClientCommand:
    def test_an_acl_refusing_client_falls_back_to_a_refused_reconnect(self, redis_one: RedisServer) -> None:
        """Where CLIENT is refused, a death is confirmed by a refused reconnect to the endpoint."""
        conn, died = killed_leader_replaced(user_url(redis_one, "noclient", commands=["-client"]))
        assert 0 == conn.client_id and "endpoint" == died["confirmed_by"]


class TestStatusAndSettings:
    def test_status_shows_the_endpoints_and_whether_the_next_in_line_is_connected(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """Each member's endpoint, and the next in line connected to the leader (at its next beat)."""
        a = start(workers, "a", ttl="1")
        a.elected()
        b = start(workers, "b", ttl="1")
        b.sees("a")
        c = start(workers, "c", "--no-fast-failover", ttl="1")
        c.sees("a")

        def pool() -> dict[str, Any]:
            done = cli("--redis", redis_one.url, "status", "--json")
            assert 0 == done.returncode, done.stderr
            found: dict[str, Any] = json.loads(done.stdout)["pools"][0]
            return found

        shown = eventually(lambda: (p := pool())["next_in_line"]["connected"] and p)
        assert {"member": "b", "connected": True} == shown["next_in_line"]
        endpoints = {m["member"]: m["liveness"] for m in shown["members"]}
        assert endpoints["a"] == record(redis_one.url, "a")["liveness"].rpartition("/")[0]
        assert endpoints["b"] is not None and endpoints["c"] is None
        text = cli("--redis", redis_one.url, "status").stdout
        assert "next in line b, connected to the leader's liveness endpoint" in text

    def test_an_endpoint_that_cannot_listen_leaves_the_member_without_the_fast_path(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """A fixed liveness port already taken: one error line, and the member leads all the same
        (its crash would wait for the lease)."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            a = start(workers, "a", "--liveness-address", f"127.0.0.1:{port}", ttl="1")
            a.elected()
            failed = logs(a, "liveness_endpoint_failed")
            assert 1 == len(failed) and f"127.0.0.1:{port}" == failed[0]["address"]
            assert "liveness" not in record(redis_one.url, "a")

    def test_doctor_says_whether_deaths_are_confirmed_through_redis(self, redis_one: RedisServer) -> None:
        """doctor: ok when CLIENT ID / CLIENT LIST ID are allowed, a warning naming the fallback when not."""
        for url, level in ((redis_one.url, "ok"), (user_url(redis_one, "noclient", commands=["-client"]), "warn")):
            done = cli("--redis", url, "doctor", "--json")
            check = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "fast failover")
            assert level == check["level"], check
        assert "refused reconnect" in check["message"]

    def test_the_library_option_and_its_checks(self) -> None:
        """MemberConfig takes the switch and the addresses; a bad address names the field."""
        assert MemberConfig(pool="p").fast_failover
        assert not MemberConfig(pool="p", fast_failover=False).fast_failover
        assert ("10.0.0.5", 7000) == parse_host_port("x", "10.0.0.5:7000")
        assert ("", 7000) == parse_host_port("x", ":7000")
        assert ("::1", 0) == parse_host_port("x", "[::1]")
        for bad in ("a:b", "h:70000", "[::1]x"):
            with pytest.raises(ConfigError, match="liveness address"):
                MemberConfig(pool="p", liveness_address=bad)
        with pytest.raises(ConfigError, match="liveness advertise"):
            MemberConfig(pool="p", liveness_advertise="host-without-port")

    def test_worker_flags_and_variables(self, workers: Workers) -> None:
        """--no-fast-failover / LEADERPOOL_FAST_FAILOVER=0 turn it off; a bad value is exit 2."""
        from leaderpool.worker.settings import parse_settings

        assert parse_settings(["--pool", "p"], {}).config.fast_failover
        assert not parse_settings(["--pool", "p", "--no-fast-failover"], {}).config.fast_failover
        assert not parse_settings(["--pool", "p"], {"LEADERPOOL_FAST_FAILOVER": "off"}).config.fast_failover
        found = parse_settings(["--pool", "p", "--liveness-address", "127.0.0.1:7100"], {})
        assert "127.0.0.1:7100" == found.config.liveness_address
        bad = workers.start("bad", env={"LEADERPOOL_FAST_FAILOVER": "maybe"})
        assert 2 == bad.wait()
        assert "LEADERPOOL_FAST_FAILOVER" in bad.stderr
