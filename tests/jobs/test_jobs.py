"""Work for the leader, in one process against a real redis-server: jobs, calls, targeted calls,
multicalls, dead letters, the cap, stale acks, and the pool client's cache.

Bounds are generous (a shared 2-core machine); speed is measured in benchmarks/, not here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis.asyncio

from leaderpool import (
    AsyncElection,
    AsyncPoolClient,
    BacklogFull,
    CallTimeout,
    Election,
    JobContext,
    JobFailed,
    JobsConfig,
    MemberConfig,
    NoTaker,
    PayloadError,
    PoolClient,
)
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import LeaderValue
from leaderpool.errors import ConfigError
from leaderpool.jobs.job_store import Done, JobStore
from leaderpool.jobs.wire import Job, ok_reply
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.helpers import eventually, eventually_read

TTL = 1.0


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


class Seen:
    """A handler that records what it ran: (payload, context)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, JobContext]] = []

    def __call__(self, payload: Any, ctx: JobContext) -> Any:
        self.calls.append((payload, ctx))
        if isinstance(payload, dict) and payload.get("fail"):
            raise ValueError(f"failing on purpose: {payload['fail']}")
        return {"member": ctx.member, "payload": payload}

    def payloads(self) -> list[Any]:
        return [p for p, _ in self.calls]


def member(url: str, name: str, handler: Any = None, **jobs: Any) -> AsyncElection:
    return AsyncElection(
        MemberConfig(pool="w", member_id=name, ttl_s=TTL), url, handler=handler, jobs=JobsConfig(**jobs)
    )


class TestJobs:
    def test_a_job_submitted_before_any_leader_runs_once_a_leader_is_elected(self, redis_server: RedisServer) -> None:
        """submit works with no leader; the first leader runs the job with its id, delivery 1 and term."""

        async def go() -> None:
            async with AsyncPoolClient("w", redis_server.url) as client:
                job_id = await client.submit({"n": 1})
                seen = Seen()
                async with member(redis_server.url, "a", seen) as a:
                    term = await a.wait_until_leader(10)
                    await eventually(lambda: len(seen.calls) == 1)
                    payload, ctx = seen.calls[0]
                    assert ({"n": 1}, job_id, 1, term, "a", "job") == (
                        payload, ctx.job_id, ctx.delivery, ctx.term, ctx.member, ctx.kind,
                    )  # fmt: skip
                    store = JobStore(a.calls.store.client, Keyspace("w"))
                    backlog = await store.backlog()
                    deadline = time.monotonic() + 10
                    while backlog.jobs:  # acknowledged right after the handler returned, then deleted
                        assert time.monotonic() < deadline, "the job was never acknowledged"
                        await asyncio.sleep(0.01)
                        backlog = await store.backlog()
                    assert (0, 0, True) == (backlog.pending, backlog.dead, backlog.exists)

        run(go())

    def test_call_returns_the_leaders_reply_and_a_blocking_member_can_call_too(self, redis_server: RedisServer) -> None:
        """call() waits for the leader's reply; Election (blocking) has the same surface."""
        seen = Seen()
        with Election(MemberConfig(pool="w", member_id="a", ttl_s=TTL), redis_server.url, handler=seen) as a:
            a.wait_until_leader(10)
            assert {"member": "a", "payload": [1, "x"]} == a.call([1, "x"], timeout=10)
            assert {"member": "a", "payload": "t"} == a.call("t", timeout=10, member="a")

    def test_an_async_handler_runs_on_the_loop(self, redis_server: RedisServer) -> None:
        """handler may be an async def: awaited on the election's loop, its return value the reply."""

        async def handler(payload: Any, ctx: JobContext) -> Any:
            await asyncio.sleep(0)
            return {"doubled": payload * 2, "delivery": ctx.delivery}

        async def go() -> None:
            async with member(redis_server.url, "a", handler) as a:
                await a.wait_until_leader(10)
                assert {"doubled": 42, "delivery": 1} == await a.call(21, timeout=10)
                assert {"doubled": 4, "delivery": 1} == await a.call(2, timeout=10, member="a")

        run(go())

    def test_a_failing_job_is_retried_then_dead_lettered_and_the_caller_gets_the_error(
        self, redis_server: RedisServer
    ) -> None:
        """N failed deliveries (growing delivery count) move the job to the dead letters with its
        error; a caller gets JobFailed; requeue submits it again."""

        async def go() -> None:
            seen = Seen()
            async with member(redis_server.url, "a", seen, max_deliveries=3, retry_delay_s=0.01) as a:
                await a.wait_until_leader(10)
                with pytest.raises(JobFailed) as failed:
                    await a.call({"fail": "boom"}, timeout=10)
                assert (3, "ValueError: failing on purpose: boom") == (failed.value.deliveries, failed.value.error)
                assert [1, 2, 3] == [ctx.delivery for _, ctx in seen.calls]
                store = a.calls.store
                dead = await store.dead_letters()
                assert 1 == len(dead)
                assert ("3", '{"fail":"boom"}', "ValueError: failing on purpose: boom") == (
                    dead[0][1]["deliveries"], dead[0][1]["p"], dead[0][1]["error"],
                )  # fmt: skip
                assert (1, 0) == await store.requeue([], 100)
                await eventually(lambda: len(seen.calls) == 6)  # the handler's 6th start: its failure comes after
                assert 1 == len(await eventually_read(store.dead_letters))  # dead again after 3 more deliveries
                assert 1 == await store.drop([])
                assert [] == await store.dead_letters()

        run(go())

    def test_the_cap_refuses_a_submit_and_drops_nothing(self, redis_server: RedisServer) -> None:
        """At max_backlog unfinished jobs, submit raises BacklogFull; every accepted job runs."""

        async def go() -> None:
            config = JobsConfig(max_backlog=3)
            async with AsyncPoolClient("w", redis_server.url, jobs=config) as client:
                ids = [await client.submit(i) for i in range(3)]
                with pytest.raises(BacklogFull):
                    await client.submit(3)
                with pytest.raises(BacklogFull):
                    await client.submit_many([3, 4])
                seen = Seen()
                async with member(redis_server.url, "a", seen):
                    await eventually(lambda: len(seen.calls) == 3)
                assert ids == [ctx.job_id for _, ctx in seen.calls]
                assert [0, 1, 2] == seen.payloads()
                await client.submit(3)  # room again

        run(go())

    def test_payloads_and_replies_must_be_json_within_the_limit(self, redis_server: RedisServer) -> None:
        """A non-JSON or oversized payload is refused before anything is sent; a reply that is not
        JSON fails the delivery."""

        async def go() -> None:
            async with AsyncPoolClient("w", redis_server.url, jobs=JobsConfig(max_payload_bytes=100)) as client:
                with pytest.raises(PayloadError, match="not JSON"):
                    await client.submit({"x": object()})
                with pytest.raises(PayloadError, match="above the limit of 100"):
                    await client.submit("x" * 200)
                with pytest.raises(PayloadError, match="not JSON"):
                    await client.submit(float("nan"))
                assert 0 == (await client.calls.store.backlog()).jobs

                def bad_reply(payload: Any, ctx: JobContext) -> Any:
                    return {1, 2}

                async with member(redis_server.url, "a", bad_reply, max_deliveries=1) as a:
                    await a.wait_until_leader(10)
                    with pytest.raises(JobFailed, match="the reply is not JSON"):
                        await client.call("x", timeout=10)

        run(go())

    def test_jobs_config_is_validated(self) -> None:
        """Bad settings raise ConfigError naming the field."""
        with pytest.raises(ConfigError, match="max_deliveries"):
            JobsConfig(max_deliveries=0)
        with pytest.raises(ConfigError, match="flush_s"):
            JobsConfig(flush_s=float("inf"))


class TestFailFast:
    def test_calls_with_nobody_to_take_them_fail_at_once(self, redis_server: RedisServer) -> None:
        """Empty pool, unknown member, a member without a handler: NoTaker before the timeout."""

        async def go() -> None:
            async with AsyncPoolClient("w", redis_server.url) as client:
                started = time.monotonic()
                with pytest.raises(NoTaker, match="no live member that runs a handler"):
                    await client.call("x", timeout=30)
                with pytest.raises(NoTaker, match="not a live member"):
                    await client.call("x", timeout=30, member="ghost")
                async with member(redis_server.url, "plain") as plain:
                    await plain.wait_until_leader(10)
                    with pytest.raises(NoTaker, match="no live member that runs a handler"):
                        await client.call("x", timeout=30)
                    with pytest.raises(NoTaker, match="runs no handler"):
                        await client.call("x", timeout=30, member="plain")
                    assert [] == (await client.multicall("x", timeout=30)).members
                assert time.monotonic() - started < 20  # far below one 30 s timeout

        run(go())

    def test_a_call_nobody_answers_in_time_times_out(self, redis_server: RedisServer) -> None:
        """A slow handler: CallTimeout after the timeout; the job still runs, its reply expires."""
        release = threading.Event()

        def slow(payload: Any, ctx: JobContext) -> Any:
            release.wait(10)
            return "late"

        async def go() -> None:
            async with member(redis_server.url, "a", slow, reply_grace_s=0.2) as a:
                await a.wait_until_leader(10)
                with pytest.raises(CallTimeout):
                    await a.call("x", timeout=0.3)
                release.set()
                client = redis.asyncio.Redis.from_url(redis_server.url)
                try:

                    async def replies() -> list[Any]:
                        return [k async for k in client.scan_iter(match=Keyspace("w").reply("*"))]

                    deadline = time.monotonic() + 10
                    while not await replies():  # the late reply is pushed...
                        assert time.monotonic() < deadline, "the late reply never came"
                        await asyncio.sleep(0.01)
                    assert 0 < await client.pttl((await replies())[0]) <= 500  # ...with timeout + grace to live
                    while await replies():  # ...and expires, uncollected
                        assert time.monotonic() < deadline, "the uncollected reply did not expire"
                        await asyncio.sleep(0.05)
                finally:
                    await client.aclose()

        run(go())


class TestTargetedAndMulticall:
    def test_targeted_call_and_multicall(self, redis_server: RedisServer) -> None:
        """call(member=ID) runs on that member, follower or not; multicall asks every member with
        a handler and names those that did not answer in time."""
        stuck = threading.Event()

        def handler(payload: Any, ctx: JobContext) -> Any:
            if ctx.member == "c" and payload == "all":
                stuck.wait(10)
            return [ctx.member, ctx.kind, ctx.term]

        async def go() -> None:
            a, b, c = (member(redis_server.url, n, handler) for n in "abc")
            async with a:  # a leads before the others start (started together, b may claim first)
                term = await a.wait_until_leader(10)
                async with b, c, AsyncPoolClient("w", redis_server.url) as client:
                    await eventually(lambda: len(client.members()) == 3)
                    assert ["b", "member", None] == await client.call("x", timeout=10, member="b")
                    assert ["a", "member", term] == await client.call("x", timeout=10, member="a")
                    result = await client.multicall("all", timeout=1.0)
                    stuck.set()
                    assert {"a": ["a", "multicall", term], "b": ["b", "multicall", None]} == result.replies
                    assert (["c"], {}) == (result.missing, result.errors)

        run(go())


class TestFencing:
    def test_a_stale_leaders_ack_is_refused_and_the_new_leader_runs_the_job_again(
        self, redis_server: RedisServer
    ) -> None:
        """The leader a is evicted while its handler runs; b is elected, claims the job at once and
        runs it (delivery 2, its term); a's ack is refused by Redis: one reply, nothing lost."""
        a_started, a_release = threading.Event(), threading.Event()
        runs: list[tuple[str, int, int | None]] = []

        def handler(payload: Any, ctx: JobContext) -> Any:
            runs.append((ctx.member, ctx.delivery, ctx.term))
            if ctx.member == "a":
                a_started.set()
                a_release.wait(10)
            return ctx.member

        async def go() -> None:
            async with member(redis_server.url, "a", handler) as a:
                # a leads before b starts: start() returns before the join, and on a loaded machine
                # b started right after could join first, be the oldest, and lead instead
                term_a = await a.wait_until_leader(10)
                async with member(redis_server.url, "b", handler) as b:
                    await self._evicted_while_running(redis_server.url, a, b, term_a, a_started, a_release, runs)

        run(go())

    async def _evicted_while_running(
        self,
        url: str,
        a: AsyncElection,
        b: AsyncElection,
        term_a: int,
        a_started: threading.Event,
        a_release: threading.Event,
        runs: list[tuple[str, int, int | None]],
    ) -> None:
        async with AsyncPoolClient("w", url) as client:
            call = asyncio.ensure_future(client.call("job", timeout=20))
            await eventually(a_started.is_set)
            store = PoolStore(client.calls.store.client, Keyspace("w"))
            await store.leave("a", "evicted", event="evicted")  # as leaderpool-cli evict does
            term_b = await b.wait_until_leader(10)
            assert "b" == await call  # the new leader's reply
            jobs = JobStore(client.calls.store.client, Keyspace("w"))
            stale = Job("0-1", "null", "", 0, 1)
            refused = await jobs.settle(LeaderValue(term_a, "a"), [Done(stale, ok_reply("1"))], [], 5, 100)
            assert not refused.accepted
            a_release.set()
            await eventually(lambda: not a.is_leader)
            await asyncio.sleep(0.2)  # a's own (refused) ack had time to arrive
            assert [("a", 1, term_a), ("b", 2, term_b)] == runs
            backlog = await jobs.backlog()
            assert (0, 0, 0) == (backlog.jobs, backlog.pending, backlog.dead)


class TestHandOver:
    def test_a_kind_hand_over_finishes_the_job_under_way_and_runs_nothing_twice(
        self, redis_server: RedisServer
    ) -> None:
        """The leader stops (SIGTERM's path) while a job runs: it finishes and acknowledges it
        before the lead moves; the successor runs the rest; no job runs twice."""
        started = threading.Event()
        runs: list[tuple[str, Any, int]] = []

        def handler(payload: Any, ctx: JobContext) -> Any:
            runs.append((ctx.member, payload, ctx.delivery))
            if payload == "slow":
                started.set()
                time.sleep(0.3)
            return payload

        async def go() -> None:
            a, b = member(redis_server.url, "a", handler), member(redis_server.url, "b", handler)
            await a.start()  # a first, then b: the member that registered first leads
            try:
                await a.wait_until_leader(10)
                await b.start()
                assert "a" == (await b.wait_for_leader(10)).member
                await a.submit("slow")
                await a.calls.submit_many(list(range(5)))
                await eventually(started.is_set)
            finally:
                await a.stop()
            try:
                await b.wait_until_leader(10)
                await eventually(lambda: len(runs) >= 6)
                await asyncio.sleep(0.1)  # room for a wrong second run to show
            finally:
                await b.stop()
            assert ("a", "slow", 1) == runs[0]
            assert (6, {"slow", 0, 1, 2, 3, 4}) == (len(runs), {p for _, p, _ in runs})  # each once
            assert {"b"} == {m for m, p, _ in runs if p != "slow"}

        run(go())


class TestPoolClient:
    def test_the_client_caches_leader_and_members_and_follows_a_hand_over(self, redis_server: RedisServer) -> None:
        """leader and members() answer from the cache, which follows a resignation at once."""
        with PoolClient("w", redis_server.url) as client:
            assert client.leader is None
            a = Election(
                MemberConfig(pool="w", member_id="a", ttl_s=TTL, meta={"addr": "10.0.0.1:80"}), redis_server.url
            )
            b = Election(MemberConfig(pool="w", member_id="b", ttl_s=TTL), redis_server.url)
            with a:
                a.wait_until_leader(10)  # before b starts: started together, b (on its own connection) may claim first
                with b:
                    deadline = time.monotonic() + 10
                    while (client.leader is None or len(client.members()) < 2) and time.monotonic() < deadline:
                        time.sleep(0.01)
                    leader = client.leader
                    assert leader is not None
                    assert ("a", {"addr": "10.0.0.1:80"}) == (leader.member, leader.meta)
                    assert ["a", "b"] == [m.member for m in client.members()]
                    a.resign()
                    while (client.leader is None or client.leader.member != "b") and time.monotonic() < deadline:
                        time.sleep(0.01)
                    assert "b" == getattr(client.leader, "member", None)


class TestLongWaits:
    def test_a_call_outlasts_the_clients_socket_timeout(self, redis_server: RedisServer) -> None:
        """A client whose socket timeout (0.4 s) is shorter than the call's wait still gets the
        reply: blocking commands are sent in chunks below the socket timeout."""

        def slow(payload: Any, ctx: JobContext) -> Any:
            time.sleep(1.0)
            return "done"

        async def go() -> None:
            client = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=0.4)
            try:
                async with member(redis_server.url, "a", slow) as a:
                    await a.wait_until_leader(10)
                    async with AsyncPoolClient("w", client) as pool:
                        assert "done" == await pool.call("x", timeout=10)
                        assert "done" == await pool.call("x", timeout=10, member="a")
            finally:
                await client.aclose()

        run(go())

    def test_the_leader_recovers_when_the_job_stream_is_deleted(self, redis_server: RedisServer) -> None:
        """The job stream (and its group) is deleted under a running leader (forget --force):
        the next job is still run; the consumer makes the group again."""
        seen = Seen()

        async def go() -> None:
            async with member(redis_server.url, "a", seen) as a:
                await a.wait_until_leader(10)
                assert {"member": "a", "payload": 1} == await a.call(1, timeout=10)
                await a.calls.store.client.delete(Keyspace("w").jobs)
                assert {"member": "a", "payload": 2} == await a.call(2, timeout=10)

        run(go())

    def test_no_job_is_stranded_when_connections_drop_mid_stream(self, redis_server: RedisServer) -> None:
        """Redis drops every client connection while the leader works through 200 jobs (a read or
        an ack may be lost on the way): the leader starts over from its pending list; all run."""
        seen = Seen()

        def slow(payload: Any, ctx: JobContext) -> Any:
            time.sleep(0.002)
            return seen(payload, ctx)

        async def go() -> None:
            admin = redis.asyncio.Redis.from_url(redis_server.url)
            try:
                async with member(redis_server.url, "a", slow, batch=10) as a:
                    await a.wait_until_leader(10)
                    await a.calls.submit_many(list(range(200)))
                    await eventually(lambda: len(seen.calls) >= 50)
                    await admin.client_kill_filter(_type="normal", skipme=True)
                    await eventually(lambda: set(range(200)) <= set(seen.payloads()), timeout=30)
            finally:
                await admin.aclose()

        run(go())


class TestWorkerSettings:
    def test_handler_and_max_deliveries_from_flags_and_environment(self) -> None:
        """--handler loads MODULE:FUNCTION (or LEADERPOOL_HANDLER); --max-deliveries sets the config."""
        from leaderpool.worker.settings import parse_settings
        from tests.support.jobs_handlers import record

        s = parse_settings(
            ["--pool", "p", "--handler", "tests.support.jobs_handlers:record", "--max-deliveries", "2"], {}
        )
        assert (record, "tests.support.jobs_handlers:record", 2) == (s.handler, s.handler_spec, s.jobs.max_deliveries)
        s = parse_settings(["--pool", "p"], {"LEADERPOOL_HANDLER": "tests.support.jobs_handlers:record"})
        assert record == s.handler
        assert None is parse_settings(["--pool", "p"], {}).handler

    def test_bad_handler_or_max_deliveries_names_the_argument(self) -> None:
        """A handler that is not MODULE:FUNCTION, or a delivery count below 1: UsageError naming it."""
        from leaderpool.console.args import UsageError
        from leaderpool.worker.settings import parse_settings

        with pytest.raises(UsageError, match="argument --handler: must be MODULE:FUNCTION"):
            parse_settings(["--pool", "p", "--handler", "nope"], {})
        with pytest.raises(UsageError, match="argument LEADERPOOL_HANDLER: cannot import module"):
            parse_settings(["--pool", "p"], {"LEADERPOOL_HANDLER": "no_such_module_x:f"})
        with pytest.raises(UsageError, match="argument --max-deliveries: must be a positive integer"):
            parse_settings(["--pool", "p", "--max-deliveries", "0"], {})
