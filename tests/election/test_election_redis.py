"""The election against a real redis-server: timing, notifications, restarts, pauses, processes.

Bounds are generous (a shared 2-core machine); speed is measured in benchmarks/, not here.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from leaderpool import Election, MemberConfig, NotLeader, StaleTerm
from leaderpool.backend.keys import Keyspace
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.helpers import Recorder, eventually, leaders, start_all, stop_all
from tests.support.processes import member_processes, overlaps, settled_pool

TTL = 1.0


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 90))


class TestOneLeader:
    def test_one_leader_among_threads(self, redis_server: RedisServer) -> None:
        """Five blocking members started from five threads: one leader, everyone agrees."""
        elections = [Election(MemberConfig(pool="t", member_id=f"m{i}", ttl_s=TTL), redis_server.url) for i in range(5)]
        threads = [threading.Thread(target=e.start) for e in elections]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            leader = elections[0].wait_for_leader(10)
            deadline = time.monotonic() + 10
            while not all(e.leader == leader for e in elections) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [leader.member] == [e.member_id for e in elections if e.is_leader]
            assert all(e.leader == leader for e in elections)
        finally:
            for e in elections:
                e.stop(10)

    def test_one_leader_among_processes_and_crash_failover(self, redis_server: RedisServer) -> None:
        """Three processes: one leader; SIGKILL it, the next oldest leads; never two at once."""
        with member_processes() as start:
            procs = settled_pool(start, redis_server.url, "procs", ttl=TTL)
            a, b, c = procs
            b.wait_event("leader")
            killed_at = time.time()
            a.signal(signal.SIGKILL)
            a.events.append({"event": "killed", "t": killed_at})
            elected = b.wait_event("elected")
            assert elected["t"] - killed_at < TTL + 2.0
            assert [] == c.of("elected")
            assert 0 == overlaps(procs)
            assert elected["term"] == 2

    def test_sigterm_hands_over_at_once(self, redis_server: RedisServer) -> None:
        """A kind shutdown releases and leaves in one step: the next member leads long before
        the lease could have expired."""
        with member_processes() as start:
            a = start(redis_server.url, "kind", "a", ttl=5.0)
            a.wait_event("elected")
            b = start(redis_server.url, "kind", "b", ttl=5.0)
            b.wait_event("leader")
            sent = time.time()
            a.signal(signal.SIGTERM)
            elected = b.wait_event("elected")
            assert elected["t"] - sent < 2.0  # the lease is 5 s
            assert 0 == a.popen.wait(10)
            assert ["shutdown"] == [e["reason"] for e in a.of("revoked")]
            assert 0 == overlaps([a, b])


class TestPreference:
    def test_preferred_survivor_wins_failover(self, redis_server: RedisServer) -> None:
        """When the leader dies, the highest-priority survivor leads, not the oldest."""

        async def main() -> None:
            rec = Recorder()
            old = rec.election("pref", "old", redis_server.url, ttl_s=TTL)
            mid = rec.election("pref", "mid", redis_server.url, ttl_s=TTL)
            big = rec.election("pref", "big", redis_server.url, ttl_s=TTL, priority=5)
            await start_all([old])
            await old.wait_until_leader(10)
            await start_all([mid, big])
            await eventually(lambda: big.leader is not None and mid.leader is not None)
            old.core.abandon()
            await big.wait_until_leader(10)
            assert [] == rec.of("mid", "elected")
            await stop_all([old, mid, big])

        run(main())

    def test_custom_ranker_and_anti_affinity(self, redis_server: RedisServer) -> None:
        """A ranker callable picks the leader; anti-affinity keeps a pool's leader off the node
        that leads another pool, yet a lone member on that node still leads."""

        async def main() -> None:
            def youngest_first(members: Any) -> list[Any]:
                return sorted(members, key=lambda m: -m.started_at_ms)

            rec = Recorder()
            x = rec.election("cust", "x", redis_server.url, ttl_s=TTL, ranker=youngest_first)
            y = rec.election("cust", "y", redis_server.url, ttl_s=TTL, ranker=youngest_first)
            await start_all([x, y], gap=0.05)
            await eventually(lambda: len(leaders([x, y])) == 1)
            # "x" was alone at first and took the lead; hand it over: the youngest ranks first
            if x.is_leader:
                await x.resign()
            await y.wait_until_leader(10)

            other = rec.election("db", "db-on-n1", redis_server.url, ttl_s=TTL, node="n1")
            await other.start()
            await other.wait_until_leader(10)
            lone = rec.election("svc", "svc-on-n1", redis_server.url, ttl_s=TTL, node="n1", avoid_pools=["db"])
            await lone.start()
            await lone.wait_until_leader(10)  # single node: still elected
            free = rec.election("svc", "svc-on-n2", redis_server.url, ttl_s=TTL, node="n2", avoid_pools=["db"])
            await free.start()
            await eventually(lambda: free.leader is not None)
            lone.core.abandon()
            await free.wait_until_leader(10)
            await stop_all([x, y, other, lone, free])

        run(main())

    def test_takeover_and_resign(self, redis_server: RedisServer) -> None:
        async def main() -> None:
            rec = Recorder()
            a = rec.election("tk", "a", redis_server.url, ttl_s=TTL, takeover=True)
            await a.start()
            await a.wait_until_leader(10)
            big = rec.election("tk", "big", redis_server.url, ttl_s=TTL, takeover=True, priority=9)
            await big.start()
            term = await big.wait_until_leader(10)
            assert ["takeover"] == rec.of("a", "revoked")
            await big.resign()
            resigned_at = time.monotonic()
            assert await a.wait_until_leader(10) > term
            assert ["resigned"] == rec.of("big", "revoked")
            # the resigned member stays ranked last for one lease, then takes over again
            await big.wait_until_leader(10)
            assert time.monotonic() - resigned_at >= TTL * 0.9
            await stop_all([a, big])

        run(main())

    def test_stuck_preferred_member_delays_vacancy_by_at_most_one_lease(self, redis_server: RedisServer) -> None:
        """SIGSTOP the preferred survivor, SIGKILL the leader: the third member leads once the
        frozen one's lease lapses; the frozen one, thawed, never becomes a second leader."""
        with member_processes() as start:
            procs = settled_pool(start, redis_server.url, "stuck", ttl=TTL)
            a, b, c = procs
            b.signal(signal.SIGSTOP)
            killed_at = time.time()
            a.signal(signal.SIGKILL)
            a.events.append({"event": "killed", "t": killed_at})
            elected = c.wait_event("elected")
            assert elected["t"] - killed_at < TTL + TTL / 3 + 2.0
            b.signal(signal.SIGCONT)
            time.sleep(TTL * 1.5)
            assert [] == b.of("elected")
            assert 0 == overlaps(procs)


class TestSafety:
    def test_leader_steps_down_when_redis_pauses(self, redis_server: RedisServer) -> None:
        """With Redis frozen (SIGSTOP) the leader stops acting by its renew deadline, before
        its lease could expire; after Redis returns, a leader is elected with a higher term."""

        async def main() -> None:
            rec = Recorder()
            ttl = 1.5
            a = rec.election("pause", "a", redis_server.url, ttl_s=ttl)
            await a.start()
            term = await a.wait_until_leader(10)
            await asyncio.sleep(0.3)
            paused_at = time.monotonic()
            redis_server.pause()
            try:
                await eventually(lambda: not a.is_leader, timeout=5)
                stepped = time.monotonic() - paused_at
                await eventually(lambda: bool(rec.of("a", "revoked")), timeout=5)
                revoked_at = next(t for t, m, k, v in rec.events if m == "a" and k == "revoked")
            finally:
                redis_server.resume()
            assert ["lease_lost"] == rec.of("a", "revoked")
            # is_leader turned false by the renew deadline (2/3 of the lease), the application
            # heard it before the lease could run out anywhere
            assert stepped < a.config.renew_deadline + 0.3 < ttl
            assert revoked_at - paused_at < ttl
            assert await a.wait_until_leader(15) > term
            await a.stop()

        run(main())

    def test_leader_steps_down_when_redis_dies_and_terms_survive_data_loss(self, redis_server: RedisServer) -> None:
        """Kill Redis: the leader steps down; restart it empty: members re-register and the
        new term is above every term before, although Redis lost its counter."""

        async def main() -> None:
            rec = Recorder()
            a, b = rec.elections("loss", "ab", redis_server.url, ttl_s=TTL)
            await start_all([a, b])
            await a.wait_until_leader(10)
            await a.resign()
            await b.wait_until_leader(10)
            await b.resign()
            before = await a.wait_until_leader(10)
            assert before >= 3
            revoked_before = len(rec.of("a", "revoked"))
            redis_server.stop()
            await eventually(lambda: len(rec.of("a", "revoked")) > revoked_before, timeout=5)
            assert ["lease_lost"] == rec.of("a", "revoked")[-1:]
            redis_server.start()
            await eventually(lambda: len(leaders([a, b])) == 1, timeout=20)
            after = next(e for e in (a, b) if e.is_leader).term
            assert after is not None and after > before
            client = redis.Redis.from_url(redis_server.url)
            assert {b"a", b"b"} == set(client.hkeys(Keyspace("loss").members))
            client.close()
            await stop_all([a, b])

        run(main())

    def test_timer_fallback_without_keyspace_notifications(self, redis_binary: str) -> None:
        """CONFIG disabled and notifications off (as on managed Redis): a crashed leader is still
        replaced within ttl + heartbeat, by the members' own deadline timers."""
        server = RedisServer(redis_binary, extra_args=("--rename-command", "CONFIG", "")).start()
        try:

            async def main() -> None:
                rec = Recorder()
                a, b = rec.election("nf", "a", server.url, ttl_s=TTL), rec.election("nf", "b", server.url, ttl_s=TTL)
                await start_all([a, b])
                await a.wait_until_leader(10)
                await eventually(lambda: b.leader is not None)
                from leaderpool.backend.shared_watcher import shared_watcher

                assert shared_watcher(b.core._client).keyspace_notifications is False
                crashed = time.monotonic()
                a.core.abandon()
                await b.wait_until_leader(10)
                assert time.monotonic() - crashed < TTL + TTL / 3 + 1.0
                await stop_all([a, b])

            run(main())
        finally:
            server.cleanup()

    def test_fenced_write_rejects_a_paused_stale_leader(self, redis_server: RedisServer) -> None:
        """The old leader's write, carrying its old term, is refused once a newer term wrote."""

        async def main() -> None:
            from leaderpool.fencing import afenced_set

            rec = Recorder()
            a, b = rec.elections("fence", "ab", redis_server.url, ttl_s=TTL)
            await start_all([a, b])
            old_term = await a.wait_until_leader(10)
            await a.fenced_set("orders:state", "a-was-here")
            await a.resign()
            await b.wait_until_leader(10)
            await b.fenced_set("orders:state", "b-now")
            client = redis.asyncio.Redis.from_url(redis_server.url)
            with pytest.raises(StaleTerm):
                await afenced_set(client, "orders:state", "late-write-from-a", old_term, pool="fence")
            assert b"b-now" == await client.get("orders:state")
            with pytest.raises((NotLeader, StaleTerm)):
                await a.fenced_set("orders:state", "x")  # a no longer leads
            await client.aclose()
            await stop_all([a, b])

        run(main())


class TestWatcher:
    def test_notifications_reach_members_and_one_connection_serves_all_pools(self, redis_server: RedisServer) -> None:
        """Ten pools in one process share one pub/sub connection; a release elsewhere reaches
        the follower without waiting for a heartbeat (the lease here is 30 s)."""

        async def main() -> None:
            rec = Recorder()
            members = []
            for i in range(10):
                members += [
                    rec.election(f"w{i}", f"a{i}", redis_server.url, ttl_s=30),
                    rec.election(f"w{i}", f"b{i}", redis_server.url, ttl_s=30),
                ]
            await start_all(members, gap=0.005)
            await eventually(lambda: all(m.leader is not None for m in members))
            client = redis.asyncio.Redis.from_url(redis_server.url)
            clients = await client.client_list()
            assert 1 == sum(1 for c in clients if int(c.get("sub", 0)) > 0)
            started = time.monotonic()
            await members[0].stop()
            await members[1].wait_until_leader(5)
            assert time.monotonic() - started < 5  # far below a heartbeat of 10 s
            await client.aclose()
            await stop_all(members)

        run(main())

    def test_lost_pubsub_connection_is_reestablished_and_resynced(self, redis_server: RedisServer) -> None:
        async def main() -> None:
            rec = Recorder()
            a, b = (
                rec.election("rc", "a", redis_server.url, ttl_s=30),
                rec.election("rc", "b", redis_server.url, ttl_s=30),
            )
            await start_all([a, b])
            await a.wait_until_leader(10)
            client = redis.asyncio.Redis.from_url(redis_server.url)
            await client.client_kill_filter(_type="pubsub")
            await asyncio.sleep(0.5)  # the watcher reconnects and resubscribes
            await a.stop()
            await b.wait_until_leader(5)  # heard through the new connection, long before a heartbeat
            await client.aclose()
            await b.stop()

        run(main())


def test_scripts_are_reloaded_after_script_flush(redis_server: RedisServer) -> None:
    """EVALSHA falls back to loading the script on NOSCRIPT (as after a Redis restart)."""

    async def main() -> None:
        rec = Recorder()
        a, b = rec.elections("ns", "ab", redis_server.url, ttl_s=TTL)
        await start_all([a, b])
        await a.wait_until_leader(10)
        client = redis.asyncio.Redis.from_url(redis_server.url)
        await client.script_flush()
        await asyncio.sleep(TTL)  # several heartbeats through EVALSHA -> NOSCRIPT -> reload
        assert a.is_leader and [] == rec.of("a", "revoked")
        await a.stop()
        await b.wait_until_leader(10)
        await client.aclose()
        await b.stop()

    run(main())


def test_a_refused_acl_is_logged_once_and_retried_a_heartbeat_apart(redis_server: RedisServer) -> None:
    """A member whose Redis user may not run scripts (NOPERM) is misconfigured: one error-level
    log naming the cause, and retries a heartbeat apart instead of a hot loop."""
    import structlog
    from structlog.testing import capture_logs

    async def main() -> None:
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        await admin.acl_setuser(
            "limited", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], categories=["+@all"],
            commands=["-evalsha", "-eval"],
        )  # fmt: skip
        url = redis_server.url.replace("redis://", "redis://limited:pw@")
        e = Recorder().election("acl", "a", url, ttl_s=0.6)
        with capture_logs() as logs:
            await e.start()
            await eventually(lambda: e.core._retries.failures >= 3, timeout=20)
            await e.stop()
        refused = [entry for entry in logs if entry["event"] == "redis_auth_failed"]
        assert 1 == len(refused), logs
        assert ("error", e.config.heartbeat) == (refused[0]["log_level"], refused[0]["retry_s"])
        assert "NOPERM" == refused[0]["code"] and "evalsha" in refused[0]["error"]
        assert not e.is_leader
        await admin.aclose()

    try:
        run(main())
    finally:
        structlog.reset_defaults()  # capture_logs() leaves structlog marked as configured


def test_steady_state_costs_one_command_per_member_per_heartbeat(redis_server: RedisServer) -> None:
    """A settled pool sends one EVALSHA per member per heartbeat and nothing else. (A 2 s lease:
    at 0.6 s, a 0.4 s pause of the leader's process on a busy machine passed its renew deadline
    and its hand-over's scripts fell into the window, seen in a CI run; the counts are exact.)"""

    async def main() -> None:
        members = [Recorder().election("cost", f"m{i}", redis_server.url, ttl_s=2.0) for i in range(3)]
        await start_all(members)
        await eventually(lambda: all(m.leader is not None for m in members))
        await asyncio.sleep(1.0)
        client = redis.asyncio.Redis.from_url(redis_server.url)
        await client.config_resetstat()
        window = 6.0
        await asyncio.sleep(window)
        stats = await client.info("commandstats")
        sent = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
        beats = 3 * window / members[0].config.heartbeat
        # commandstats also counts what scripts run: every EVALSHA here was a heartbeat (one
        # ZADD and one MGET each), none a listing of the pool (a listing reads each record with
        # HGET; a beat reads its own record only every eighth beat or after a gap; one in about
        # eight reads the ranking's head, one bounded ZRANGE) and none read the lead's PTTL (its
        # deadline is in the MGET)
        assert beats * 0.7 <= sent["evalsha"] <= beats * 1.3 + 3, sent
        assert sent["evalsha"] == sent["zadd"] == sent["mget"], sent
        assert sent.get("hget", 0) <= sent["evalsha"] / 4 and sent.get("zrange", 0) <= sent["evalsha"] / 2, sent
        assert 0 == sent.get("pttl", 0) == sent.get("get", 0) == sent.get("type", 0), sent
        await client.aclose()
        await stop_all(members)

    run(main())


def test_a_frozen_successor_never_acts_on_a_stale_hand_over(redis_server: RedisServer) -> None:
    """The leader hands its lead to the next member while that member is frozen (SIGSTOP); the
    lead lapses and a third member takes it. Thawed, the successor reads the old announcement
    and must not act on it: never two acting leaders."""
    with member_processes() as start:
        procs = settled_pool(start, redis_server.url, "frozen", ttl=TTL)
        a, b, c = procs
        b.signal(signal.SIGSTOP)
        a.signal(signal.SIGTERM)  # hands over to b, the next oldest: frozen
        assert 0 == a.popen.wait(10)
        elected = c.wait_event("elected", timeout=TTL * 3 + 5)
        assert elected["term"] == 3  # term 2 went to the frozen b
        b.signal(signal.SIGCONT)
        time.sleep(TTL)
        assert [] == b.of("elected")
        assert 0 == overlaps(procs)
