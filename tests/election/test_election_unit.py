"""The election on fakeredis: fast checks of the protocol (no `expired` events there, no CONFIG:
failover runs on the members' own lease timers, as it must on managed Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import fakeredis
import pytest
import structlog
from structlog.testing import capture_logs

from leaderpool import AsyncElection, MemberConfig, NotLeader, StaleTerm
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import LeaderValue, PoolStore
from leaderpool.fencing import afenced_set
from leaderpool.util.timeouts import within
from tests.support.helpers import Recorder, eventually, leaders, start_all, stop_all

FAST: dict[str, Any] = {"ttl_s": 0.6}


@pytest.fixture(autouse=True)
def _structlog_left_unconfigured() -> Iterator[None]:
    """capture_logs() leaves structlog marked as configured, which would send every later
    test's leaderpool events through structlog instead of the standard ``logging`` module."""
    yield
    structlog.reset_defaults()


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


class TestOneLeader:
    def test_one_leader_among_many(self, fake_server: fakeredis.FakeServer) -> None:
        """Of five members exactly one leads, the oldest, and all of them know it. Elected once: with
        a lease a loaded machine's stalls cannot outlast (at 0.6 s a 0.4 s stall of the test process
        rightly cost m0 its lead, and it was elected again, in term 2)."""

        async def main() -> None:
            rec = Recorder()
            members = [
                rec.election("p", f"m{i}", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=10.0) for i in range(5)
            ]
            await start_all(members)
            await eventually(lambda: len(leaders(members)) == 1 and all(e.leader for e in members))
            assert ["m0"] == leaders(members)
            assert {"m0"} == {e.leader.member for e in members if e.leader}
            assert [1] == rec.of("m0", "elected")
            await stop_all(members)

        run(main())

    def test_members_listing_has_records_and_leases(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            rec = Recorder()
            e = rec.election("p", "solo", client, priority=3, meta={"zone": "eu"}, node="n1", **FAST)
            await e.start()
            await e.wait_until_leader(5)
            [info] = await e.members()
            assert ("solo", 3, {"zone": "eu"}, "n1") == (info.member, info.priority, dict(info.meta), info.node)
            assert 0 < info.lease_ms <= 600
            leader = await e.current_leader(fresh=True)
            assert leader is not None and ("solo", {"zone": "eu"}) == (leader.member, leader.meta)
            await e.stop()

        run(main())


class TestHandover:
    def test_graceful_stop_hands_over_to_the_next_oldest(self, fake_server: fakeredis.FakeServer) -> None:
        """stop() releases and leaves in one step; the next member leads, with a higher term."""

        async def main() -> None:
            rec = Recorder()
            a, b, c = rec.elections("p", "abc", lambda: fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b, c])
            await a.wait_until_leader(5)
            await a.stop()
            assert 2 == await b.wait_until_leader(5)
            assert ["shutdown"] == rec.of("a", "revoked")
            assert not c.is_leader
            await stop_all([b, c])

        run(main())

    def test_a_stop_gives_the_lead_up_at_once_and_hands_it_over_only_after_on_revoked(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """request_stop() ends the lead locally at once (is_leader is False before the loop's next
        turn) and dispatches on_revoked; while on_revoked has not returned, the lead stays ours in
        Redis and nobody else leads; once it returns the next member leads, granted term 2."""

        async def main() -> None:
            rec = Recorder()
            gate, revoked = asyncio.Event(), asyncio.Event()

            async def slow_revoked(reason: Any) -> None:
                revoked.set()
                await gate.wait()

            client = fakeredis.FakeAsyncRedis(server=fake_server)
            a = AsyncElection(MemberConfig(pool="p", member_id="a", **FAST), client, on_revoked=slow_revoked)
            b = rec.election("p", "b", fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b])
            await a.wait_until_leader(5)
            a.request_stop()
            assert not a.is_leader  # at once, not a loop turn later
            await within(revoked.wait(), 5)
            await asyncio.sleep(FAST["ttl_s"] / 2)  # the application still stops its work
            held = LeaderValue.parse(await client.get(Keyspace("p").leader))
            assert (LeaderValue(1, "a"), False) == (held, b.is_leader)
            gate.set()
            await a.stop()
            assert 2 == await b.wait_until_leader(5)
            await stop_all([b])

        run(main())

    def test_resign_hands_over_and_stays(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            rec = Recorder()
            a, b = rec.elections("p", "ab", lambda: fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b])
            await a.wait_until_leader(5)
            with pytest.raises(NotLeader):
                await b.resign()
            await a.resign()
            await b.wait_until_leader(5)
            assert ["resigned"] == rec.of("a", "revoked")
            await asyncio.sleep(0.3)
            assert ["b"] == leaders([a, b])
            assert a.role.value == "follower"
            await stop_all([a, b])

        run(main())

    def test_crash_fails_over_on_the_lease_timer(self, fake_server: fakeredis.FakeServer) -> None:
        """No `expired` event in fakeredis: the members' deadline timers elect the next one."""

        async def main() -> None:
            rec = Recorder()
            a, b, c = rec.elections("p", "abc", lambda: fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b, c])
            await a.wait_until_leader(5)
            a.core.abandon()
            await b.wait_until_leader(5)
            assert not c.is_leader
            assert [] == rec.of("c", "elected")
            await stop_all([a, b, c])

        run(main())

    def test_takeover_by_higher_priority(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            rec = Recorder()
            a = rec.election("p", "a", fakeredis.FakeAsyncRedis(server=fake_server), takeover=True, **FAST)
            await a.start()
            await a.wait_until_leader(5)
            big = rec.election(
                "p", "big", fakeredis.FakeAsyncRedis(server=fake_server), priority=10, takeover=True, **FAST
            )
            await big.start()
            await big.wait_until_leader(5)
            assert ["takeover"] == rec.of("a", "revoked")
            await stop_all([a, big])

        run(main())

    def test_no_takeover_by_default(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            a = Recorder().election("p", "a", fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await a.start()
            await a.wait_until_leader(5)
            big = Recorder().election("p", "big", fakeredis.FakeAsyncRedis(server=fake_server), priority=10, **FAST)
            await big.start()
            await asyncio.sleep(0.5)
            assert ["a"] == leaders([a, big])
            await stop_all([a, big])

        run(main())


class TestEventsContract:
    def test_elected_and_revoked_pair_up_and_followers_hear_nothing(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            rec = Recorder()
            a, b = rec.elections("p", "ab", lambda: fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b])
            await a.wait_until_leader(5)
            await a.resign()
            await b.wait_until_leader(5)
            await b.resign()
            await a.wait_until_leader(5)
            await stop_all([a, b])
            for member in "ab":
                kinds = [k for _, m, k, _ in rec.events if m == member and k != "leader"]
                assert kinds == ["elected", "revoked"] * (len(kinds) // 2)
            follower = Recorder()
            c = follower.election("p", "c", fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            d = follower.election("p", "d", fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([c, d])
            await c.wait_until_leader(5)
            await stop_all([d, c])
            assert [] == follower.of("d", "revoked")

        run(main())

    def test_log_events_carry_pool_member_and_term(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> list[MutableMapping[str, Any]]:
            with capture_logs() as logs:
                a = Recorder().election("p", "a", fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
                await a.start()
                await a.wait_until_leader(5)
                await a.stop()
            return logs

        logs = run(main())
        elected = next(e for e in logs if e["event"] == "elected")
        assert ("p", "a", 1) == (elected["pool"], elected["member"], elected["term"])
        assert all({"pool", "member", "term"} <= e.keys() for e in logs if e.get("pool"))

    def test_refused_config_gives_one_warning_per_process(self, fake_server: fakeredis.FakeServer) -> None:
        """fakeredis, like managed Redis, refuses CONFIG: one clear warning, then timers."""
        from leaderpool.backend import watcher

        watcher._warned_about_config.clear()

        async def main() -> list[MutableMapping[str, Any]]:
            with capture_logs() as logs:
                for pool in ("p1", "p2"):
                    e = Recorder().election(pool, "a", fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
                    await e.start()
                    await e.wait_until_leader(5)
                    await e.stop()
            return logs

        logs = run(main())
        assert 1 == sum(e["event"] == "keyspace_events_unavailable" for e in logs)


class TestTermsAndFencing:
    def test_claim_starts_above_the_highest_term_seen(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """After Redis lost its counter, claims wait one lease for every member to report the
        highest term it saw; then a member that saw term 41 claims 42, never 1."""

        async def main() -> None:
            from leaderpool.members import MemberInfo

            store = PoolStore(fake_client, Keyspace("p"))
            await store.register(MemberInfo("a", "n", "h", 1, 0, 1, {}), 1000)
            held = await store.claim("a", 200, seen_term=41)
            assert -2 == held.status and 0 < held.leader_pttl_ms <= 200
            await asyncio.sleep(0.25)
            await store.heartbeat("a", 1000, None, False, seen_term=41)
            result = await store.claim("a", 1000, seen_term=41)
            assert (1, 42) == (result.status, result.term)
            assert (True, 0) == await store.release(LeaderValue(42, "a"), "resigned")
            assert (False, 0) == await store.release(LeaderValue(42, "a"), "resigned")
            assert 43 == (await store.claim("a", 1000, seen_term=0)).term

        run(main())

    def test_fenced_write_rejects_a_stale_term(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """The module-level write raises StaleTerm for a stale term, as the method does."""

        async def main() -> None:
            assert (await afenced_set(fake_client, "state", "v5", 5)).written
            assert (await afenced_set(fake_client, "state", "v5b", 5)).written
            with pytest.raises(StaleTerm) as refused:
                await afenced_set(fake_client, "state", "v4", 4)
            assert (4, 5) == (refused.value.term, refused.value.highest)
            assert b"v5b" == await fake_client.get("state")

        run(main())

    def test_the_blocking_function_behaves_like_the_asyncio_one(self, fake_server: fakeredis.FakeServer) -> None:
        """fenced_set() takes a blocking client and raises StaleTerm too; given the other kind of
        client, each function says which to use instead of failing quietly."""
        from leaderpool import afenced_set, fenced_set

        client = fakeredis.FakeRedis(server=fake_server)
        assert fenced_set(client, "doc", "v3", 3).written
        with pytest.raises(StaleTerm):
            fenced_set(client, "doc", "v2", 2)
        assert b"v3" == client.get("doc")
        with pytest.raises(TypeError, match="afenced_set"):
            fenced_set(fakeredis.FakeAsyncRedis(server=fake_server), "doc", "v", 4)  # type: ignore[arg-type]  # on purpose
        with pytest.raises(TypeError, match="fenced_set"):
            run(afenced_set(client, "doc", "v", 4))  # type: ignore[arg-type]  # on purpose

    def test_fences_are_per_pool(self, fake_server: fakeredis.FakeServer) -> None:
        """Another pool's (smaller) terms do not refuse this pool's writes to the same key;
        within a pool, a stale term is still refused."""
        from leaderpool import fenced_set

        client = fakeredis.FakeRedis(server=fake_server)
        fenced_set(client, "shared", "from-pool-a", 50, pool="a")
        assert fenced_set(client, "shared", "from-pool-b", 2, pool="b").written
        with pytest.raises(StaleTerm):
            fenced_set(client, "shared", "stale-b", 1, pool="b")
        assert b"from-pool-b" == client.get("shared")

    def test_a_lead_past_its_renew_deadline_raises_lease_lost(self, fake_server: fakeredis.FakeServer) -> None:
        """A fenced write after the renew deadline passed, before the loop noticed, is refused
        locally with LeaseLost (a NotLeader), not sent."""
        from leaderpool import LeaseLost

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            a = Recorder().election("p", "a", client, **FAST)
            await a.start()
            await a.wait_until_leader(5)
            a.core.lead.renew_deadline = 0.0  # as after a freeze: the loop has not run since
            with pytest.raises(LeaseLost) as lost:
                await a.fenced_set("k", "v")
            assert isinstance(lost.value, NotLeader) and a.pool == lost.value.pool
            assert await client.get("k") is None
            await a.stop()

        run(main())

    def test_fenced_set_needs_leadership_and_raises_on_stale(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            a = Recorder().election("p", "a", client, **FAST)
            with pytest.raises(NotLeader):
                await a.fenced_set("k", "v")
            await a.start()
            term = await a.wait_until_leader(5)
            await afenced_set(client, "k", "from-the-future", term + 10, pool="p")
            with pytest.raises(StaleTerm):
                await a.fenced_set("k", "v")
            await a.stop()

        run(main())


def test_config_is_required_to_be_valid_before_io() -> None:
    """A bad config fails before any connection is attempted."""
    with pytest.raises(ValueError):
        MemberConfig(pool="p", ttl_s=1, heartbeat_s=1)


class _Forbidden(fakeredis.FakeRedis):
    """A blocking client that records every command and refuses it."""

    sent: ClassVar[list[Any]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(args)
        raise AssertionError(f"a constructor sent {args!r}")


class _AsyncForbidden(fakeredis.FakeAsyncRedis):
    sent: ClassVar[list[Any]] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(args)
        raise AssertionError(f"a constructor sent {args!r}")


def test_constructors_do_no_io(fake_server: fakeredis.FakeServer) -> None:
    """Building either face sends nothing to Redis (nor does building it from a URL connect)."""
    from leaderpool import AsyncElection, Election

    config = MemberConfig(pool="p", member_id="quiet")
    AsyncElection(config, _AsyncForbidden(server=fake_server))
    Election(config, _Forbidden(server=fake_server))
    AsyncElection(config, "redis://127.0.0.1:1/0")
    Election(config, "redis://127.0.0.1:1/0")
    assert [] == _Forbidden.sent
    assert [] == _AsyncForbidden.sent


class TestFaces:
    def test_step_down_has_one_signature_in_both_faces(self) -> None:
        """rejoin is keyword-only in the asyncio and the blocking face alike."""
        import inspect

        from leaderpool import AsyncElection, Election

        for face in (AsyncElection, Election):
            params = inspect.signature(face.step_down).parameters
            assert inspect.Parameter.KEYWORD_ONLY == params["rejoin"].kind, face

    @pytest.mark.parametrize("wait", ["wait_until_leader", "wait_for_leader"])
    def test_a_wait_timeout_bounds_the_whole_wait(self, wait: str) -> None:
        """A wake-up that finds nothing to return (the lead already over) does not restart the
        timeout: the wait still ends after it."""

        async def main() -> None:
            e = Recorder().election("p", "w", "redis://127.0.0.1:1/0")  # never started: never leads
            event = e._leading if wait == "wait_until_leader" else e._leader_known

            async def spurious_wakeups() -> None:
                while True:
                    event.set()
                    await asyncio.sleep(0.02)

            nagger = asyncio.get_running_loop().create_task(spurious_wakeups())
            waiting = asyncio.get_running_loop().create_task(getattr(e, wait)(0.3))
            await eventually(waiting.done, timeout=10)
            nagger.cancel()
            assert isinstance(waiting.exception(), asyncio.TimeoutError)

        run(main())


class TestFailures:
    def test_a_broken_script_is_logged_with_its_name_and_surfaced(
        self, fake_server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An error inside a script is a bug: one error-level log naming the script, the member
        leaves the pool, and the election's waits and stop() raise ScriptError (no retry loop)."""
        from leaderpool import ScriptError
        from leaderpool.backend.pool_scripts import PoolScripts
        from leaderpool.events import Role

        # the script every member's first settle runs (the default ranking: a glance)
        monkeypatch.setattr(PoolScripts.glance, "source", "return redis.error_reply('ERR deliberately broken')")

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            e = Recorder().election("broken", "a", client, **FAST)
            with capture_logs() as logs:
                await e.start()
                with pytest.raises(ScriptError) as raised:
                    await e.wait_until_leader(10)
                assert "glance" == raised.value.script
                assert Role.STOPPED == e.role
                with pytest.raises(ScriptError):
                    await e.stop()
            failed = [entry for entry in logs if entry["event"] == "script_failed"]
            assert [("error", "glance", "broken", "a")] == [
                (f["log_level"], f["script"], f["pool"], f["member"]) for f in failed
            ]
            assert not any(entry["event"] == "election_turn_failed" for entry in logs)
            assert 0 == await client.hlen(Keyspace("broken").members)  # it left

        run(main())

    @pytest.mark.parametrize(
        "error",
        [
            "redis.exceptions.NoPermissionError('NOPERM this user has no permissions to run the evalsha command')",
            "redis.exceptions.AuthenticationError('invalid username-password pair or user is disabled.')",
            "redis.exceptions.ResponseError('WRONGPASS invalid username-password pair')",
            "leaderpool.errors.RedisAuthFailed('Authentication required.', code='NOAUTH')",
        ],
    )
    def test_auth_failures_are_logged_once_and_retried_slowly(self, error: str) -> None:
        """A refused password or ACL is a configuration error: one error-level log per distinct
        error, and retries a heartbeat apart rather than the doubling-from-50-ms of an outage."""
        import redis.exceptions  # noqa: F401  # used by eval

        import leaderpool.errors  # noqa: F401
        from leaderpool.election.core import ElectionCore

        exc = eval(error)
        now = [1000.0]
        config = MemberConfig(pool="auth", member_id="a", ttl_s=3.0)
        core = ElectionCore(config, fakeredis.FakeAsyncRedis(), lambda event: None, clock=lambda: now[0])
        with capture_logs() as logs:
            for _ in range(3):
                core._on_failure(exc)
                assert config.heartbeat == core.wakeups.timers.backoff_until - now[0]  # type: ignore[operator]
                now[0] += config.heartbeat
        assert [("error", "redis_auth_failed", "auth", "a")] == [
            (f["log_level"], f["event"], f["pool"], f["member"]) for f in logs
        ]
        assert logs[0]["code"] in ("NOPERM", "WRONGPASS", "WRONGPASS/NOAUTH", "NOAUTH")

    def test_outages_still_back_off_from_50_ms(self) -> None:
        """For contrast: an unreachable Redis is retried fast at first (within 50 ms, jittered
        down to half of it, so members that failed together do not retry in step)."""
        import redis.exceptions

        from leaderpool.election.core import ElectionCore

        config = MemberConfig(pool="down", member_id="a", ttl_s=3.0)
        core = ElectionCore(config, fakeredis.FakeAsyncRedis(), lambda event: None, clock=lambda: 5.0)
        delays = set()
        for _ in range(20):
            core._retries.failures = 0
            core._on_failure(redis.exceptions.ConnectionError("refused"))
            delays.add(core.wakeups.timers.backoff_until - 5.0)  # type: ignore[operator]
        assert all(0.025 <= d <= 0.05 for d in delays), delays
        assert len(delays) > 1  # jittered


class TestCachedLeader:
    def test_the_cached_leaders_record_carries_its_lease_left(self, fake_server: fakeredis.FakeServer) -> None:
        """election.leader.info.lease_ms is the lead's lease left as of the read, not 0."""

        async def main() -> None:
            rec = Recorder()
            a, b = rec.elections("lease", "ab", lambda: fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b])
            await a.wait_until_leader(5)
            await eventually(lambda: b.leader is not None and b.leader.info is not None)
            for seen in (a.leader, b.leader):
                assert seen is not None and seen.info is not None and "a" == seen.member
                assert 0 < seen.info.lease_ms <= 600, seen.info
            await stop_all([a, b])

        run(main())


class TestBlockingFace:
    def test_callbacks_run_in_order_on_their_own_thread(self, fake_server: fakeredis.FakeServer) -> None:
        """The blocking face shares the core; its callbacks run off the election loop, in order,
        and stop() returns only after on_revoked has run."""
        import threading

        from leaderpool import Election

        seen: list[tuple[str, object, str]] = []
        client = fakeredis.FakeRedis(server=fake_server)
        with Election(
            MemberConfig(pool="b", member_id="solo", **FAST),
            client,
            on_elected=lambda term: seen.append(("elected", term, threading.current_thread().name)),
            on_revoked=lambda reason: seen.append(("revoked", reason.value, threading.current_thread().name)),
        ) as election:
            assert 1 == election.wait_until_leader(5)
            assert election.is_leader and 1 == election.term
            assert "solo" == election.current_leader(fresh=True).member  # type: ignore[union-attr]
            assert ["solo"] == [m.member for m in election.members()]
        assert [("elected", 1), ("revoked", "shutdown")] == [(k, v) for k, v, _ in seen]
        assert all(name.startswith("leaderpool-callbacks") for _, _, name in seen)
        assert not election.is_leader
        assert 0 == client.hlen(Keyspace("b").members)


class TestEdges:
    def test_vacancy_is_bounded_even_when_the_preferred_member_never_claims(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """Two members whose rankers each prefer the other: neither is "first" for itself, yet
        one claims after ttl + heartbeat of vacancy."""

        async def main() -> None:
            def prefer_other(me: str) -> Any:
                return lambda ms: sorted(ms, key=lambda m: m.member == me)

            rec = Recorder()
            a = rec.election("div", "a", fakeredis.FakeAsyncRedis(server=fake_server), ranker=prefer_other("a"), **FAST)
            b = rec.election("div", "b", fakeredis.FakeAsyncRedis(server=fake_server), ranker=prefer_other("b"), **FAST)
            await start_all([a, b])
            started = asyncio.get_running_loop().time()
            await eventually(lambda: len(leaders([a, b])) == 1, timeout=10)
            waited = asyncio.get_running_loop().time() - started
            assert waited < 0.6 + 0.2 + 2.0  # ttl + heartbeat, with room for a busy machine
            await stop_all([a, b])

        run(main())

    def test_evicted_leader_is_released_and_rejoins_as_the_youngest(self, fake_server: fakeredis.FakeServer) -> None:
        async def main() -> None:
            rec = Recorder()
            a, b = rec.elections("ev", "ab", lambda: fakeredis.FakeAsyncRedis(server=fake_server), **FAST)
            await start_all([a, b])
            await a.wait_until_leader(5)
            first_start = a.core.membership.started_at_ms
            store = PoolStore(fakeredis.FakeAsyncRedis(server=fake_server), Keyspace("ev"))
            await store.leave("a", "evicted", event="evicted")
            await b.wait_until_leader(5)
            await eventually(lambda: rec.of("a", "revoked") == ["released"])
            await eventually(
                lambda: a.core.membership.started_at_ms is not None and a.core.membership.started_at_ms != first_start
            )
            assert {"a", "b"} == {m.member for m in await b.members()}
            await stop_all([a, b])

        run(main())


def test_a_resigning_member_ranks_last_even_if_its_lead_lapsed_meanwhile(
    fake_client: fakeredis.FakeAsyncRedis,
) -> None:
    """resign() waits for on_revoked before releasing; if that outlasted the lease, the release
    finds the key gone, yet the member still ranks last, so it cannot win the lead back from
    the member it meant to hand over to (seen once on a loaded machine)."""

    async def main() -> None:
        from leaderpool.members import MemberInfo

        store = PoolStore(fake_client, Keyspace("late"))
        await store.register(MemberInfo("a", "n", "h", 1, 0, 1, {}), 5000)
        await store.register(MemberInfo("b", "n", "h", 2, 0, 2, {}), 5000)
        term = (await store.claim("a", 5000, 0)).term
        await fake_client.delete(Keyspace("late").leader)  # the lease lapsed during on_revoked
        assert (False, 0) == await store.release(LeaderValue(term, "a"), "resigned", 5000, successor="b")
        assert "a" == (await store.observe()).resigned

    run(main())


def test_lapsed_members_are_hidden_and_pruned_only_by_members(fake_client: fakeredis.FakeAsyncRedis) -> None:
    """A lapsed member is in no listing; tools read without writing, members clean up."""

    async def main() -> None:
        from leaderpool.members import MemberInfo

        store = PoolStore(fake_client, Keyspace("lapse"))
        await store.register(MemberInfo("short", "n", "h", 1, 0, 1, {}), 50)
        await store.register(MemberInfo("long", "n", "h", 2, 0, 2, {}), 5000)
        await asyncio.sleep(0.1)
        assert ["long"] == [m.member for m in (await store.observe(prune=False)).members]
        assert 2 == await fake_client.hlen(Keyspace("lapse").members)
        assert ["long"] == [m.member for m in (await store.observe()).members]
        assert 1 == await fake_client.hlen(Keyspace("lapse").members)

    run(main())
