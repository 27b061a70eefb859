"""What bounds a pool's work in Redis: the dead letters keep about their cap (the oldest go), and
``requeue`` adds no more jobs than the backlog's cap has room for (the rest stay dead letters)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.jobs.job_store import Failed, JobStore
from leaderpool.jobs.jobs_config import DEFAULT_MAX_BACKLOG, GROUP, JobsConfig
from leaderpool.jobs.wire import Job
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.worker_procs import cli

NODE = 100
"""Redis trims a stream by whole nodes under MAXLEN ~ (stream-node-max-entries, 100 by default)."""


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


def _pending_jobs(client: Any, keys: Keyspace, count: int) -> list[Job]:
    """``count`` jobs delivered once to member ``a``, the leader of term 1."""
    client.xgroup_create(keys.jobs, GROUP, id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(keys.jobs, {"p": str(n)})
    pipe.execute()
    client.xreadgroup(GROUP, "a", {keys.jobs: ">"}, count=count)
    client.set(keys.leader, LeaderValue(1, "a").encode())
    return [Job(i.decode(), "null", "", 0, 1) for i, _ in client.xrange(keys.jobs)]


class TestDeadLetters:
    def test_the_dead_letters_keep_about_their_cap(self, redis_server: RedisServer) -> None:
        """300 jobs failing for good with a cap of 10: the stream keeps the newest, at most a
        node beyond the cap, not all 300."""
        keys = Keyspace("capped")
        sync: Any = redis.Redis(port=redis_server.port)
        jobs = _pending_jobs(sync, keys, 300)

        async def go() -> None:
            client = redis.asyncio.Redis(port=redis_server.port)
            try:
                store = JobStore(client, keys)
                for start in range(0, 300, 50):
                    failed = [Failed(j, "boom") for j in jobs[start : start + 50]]
                    settled = await store.settle(LeaderValue(1, "a"), [], failed, 1, 10)
                    assert settled.accepted and 50 == len(settled.dead)
            finally:
                await client.aclose()

        run(go())
        assert 10 <= sync.xlen(keys.dead) <= 10 + NODE
        newest = sync.xrevrange(keys.dead, count=1)[0][1]
        assert jobs[-1].job_id.encode() == newest[b"job"]
        sync.close()

    def test_the_cap_is_configurable_and_checked(self) -> None:
        """``JobsConfig.max_dead_letters`` defaults to a documented number and must be positive."""
        assert 10_000 == JobsConfig().max_dead_letters
        for bad in (0, -1, 1.5, True):
            try:
                JobsConfig(max_dead_letters=bad)  # type: ignore[arg-type]
            except ValueError as exc:
                assert "max_dead_letters" in str(exc)
            else:
                raise AssertionError(f"{bad!r} accepted")


class TestRequeue:
    def test_requeue_fills_the_backlog_up_to_its_cap_and_leaves_the_rest(self, redis_server: RedisServer) -> None:
        """With room for 5 under the cap, requeueing 20 dead letters moves the 5 oldest and keeps 15."""
        keys = Keyspace("room")
        sync: Any = redis.Redis(port=redis_server.port)
        for n in range(45):
            sync.xadd(keys.jobs, {"p": str(n)})
        dead = [
            sync.xadd(keys.dead, {"job": "0-1", "p": f'"d{n}"', "error": "e", "deliveries": "1"}) for n in range(20)
        ]

        async def go() -> tuple[tuple[int, int], tuple[int, int]]:
            client = redis.asyncio.Redis(port=redis_server.port)
            try:
                store = JobStore(client, keys)
                return await store.requeue([], 50), await store.requeue([d.decode() for d in dead[10:]], 50)
            finally:
                await client.aclose()

        everything, chosen = run(go())
        assert (5, 15) == everything
        assert (0, 10) == chosen
        assert 50 == sync.xlen(keys.jobs) and 15 == sync.xlen(keys.dead)
        assert b'"d4"' == sync.xrevrange(keys.jobs, count=1)[0][1][b"p"]
        sync.close()

    def test_the_cli_requeue_all_stops_at_the_cap_with_one_line_and_exit_1(self, redis_server: RedisServer) -> None:
        """``requeue POOL --all`` against a stream 2 short of the default cap: 2 requeued, the
        rest stay, one line saying so, exit 1."""
        keys = Keyspace("full")
        sync: Any = redis.Redis(port=redis_server.port)
        pipe = sync.pipeline(transaction=False)
        for n in range(DEFAULT_MAX_BACKLOG - 2):
            pipe.xadd(keys.jobs, {"p": "0"})
            if n % 10_000 == 0:
                pipe.execute()
        pipe.execute()
        for n in range(5):
            sync.xadd(keys.dead, {"job": "0-1", "p": str(n), "error": "e", "deliveries": "1"})
        done = cli("--redis", redis_server.url, "requeue", "full", "--all")
        assert 1 == done.returncode, done.stdout + done.stderr
        assert 1 == len(done.stderr.strip().splitlines()), done.stderr
        assert "requeued 2" in done.stderr and "3 left" in done.stderr
        assert DEFAULT_MAX_BACKLOG == sync.xlen(keys.jobs) and 3 == sync.xlen(keys.dead)
        sync.close()
