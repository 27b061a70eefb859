"""Leader state: saved under the leader's term, refused from a stale term, read by the next
leader when it is elected -- in the library (both faces) and in worker tasks (async and thread)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from leaderpool import AsyncElection, Election, MemberConfig, NotLeader, StaleTerm
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.errors import StateTooLarge
from leaderpool.state import MAX_STATE_BYTES, LeaderState, read_state, save_state
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.schedule_tasks import RUNS_FILE
from tests.support.worker_procs import PATIENCE, eventually, workers_for

TTL = 1.0


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


class TestLibrary:
    def test_the_next_leader_reads_the_state_before_on_elected(self, redis_server: RedisServer) -> None:
        """a saves twice (versions 1, 2); it stops; b, elected by hand-over, finds a's last state in
        ``e.state`` inside its on_elected; a's saves from its old term are refused afterwards."""

        async def scenario() -> None:
            seen: list[LeaderState | None] = []
            told = asyncio.Event()

            def on_elected(term: int) -> None:
                seen.append(b.state)
                told.set()

            a = AsyncElection(MemberConfig(pool="st", member_id="a", ttl_s=TTL), redis_server.url, with_state=True)
            b = AsyncElection(
                MemberConfig(pool="st", member_id="b", ttl_s=TTL), redis_server.url, with_state=True,
                on_elected=on_elected,
            )  # fmt: skip
            await a.start()
            term_a = await a.wait_until_leader(10)
            assert a.state is None  # nothing saved yet
            assert 1 == (await a.save_state({"cursor": 1})).version
            saved = await a.save_state({"cursor": 2})
            assert (2, term_a, "a", {"cursor": 2}) == (saved.version, saved.term, saved.member, saved.data)
            await b.start()
            await b.wait_for_leader(10)
            await a.stop()
            term_b = await b.wait_until_leader(10)
            await within(told.wait(), 10)
            assert [saved] == seen
            client = redis.asyncio.Redis.from_url(redis_server.url)
            try:
                with pytest.raises(StaleTerm) as refused:  # a's term, after b was elected
                    await save_state(client, Keyspace("st"), LeaderValue(term_a, "a"), {"cursor": 99})
                assert term_b == refused.value.highest
                assert {"cursor": 2} == (await read_state(client, Keyspace("st"))).data  # type: ignore[union-attr]
            finally:
                await client.aclose()
            with pytest.raises(NotLeader):
                await a.save_state({"cursor": 99})
            assert 3 == (await b.save_state({"cursor": 3})).version
            await b.stop()

        run(scenario())

    def test_a_state_over_the_limit_or_not_json_is_refused_and_nothing_is_saved(
        self, redis_server: RedisServer
    ) -> None:
        """Over MAX_STATE_BYTES: StateTooLarge naming the size; not JSON: TypeError; the state stays."""
        with Election(MemberConfig(pool="big", member_id="a", ttl_s=TTL), redis_server.url) as e:
            e.wait_until_leader(10)
            e.save_state({"ok": True})
            with pytest.raises(StateTooLarge) as raised:
                e.save_state("x" * MAX_STATE_BYTES)
            assert f"at most {MAX_STATE_BYTES}" in str(raised.value) and raised.value.size > MAX_STATE_BYTES
            with pytest.raises(TypeError, match="must be JSON"):
                e.save_state({"when": object()})
            state = e.load_state()
            assert state is not None and ({"ok": True}, 1) == (state.data, state.version)

    def test_the_blocking_face_reads_the_state_when_elected(self, redis_server: RedisServer) -> None:
        """Election(with_state=True): ``e.state`` holds what the previous leader saved, in on_elected."""
        with Election(MemberConfig(pool="bl", member_id="a", ttl_s=TTL), redis_server.url) as a:
            a.wait_until_leader(10)
            a.save_state([1, 2, 3])
        seen: list[Any] = []
        b = Election(
            MemberConfig(pool="bl", member_id="b", ttl_s=TTL), redis_server.url, with_state=True,
            on_elected=lambda term: seen.append(b.state.data if b.state else None),
        )  # fmt: skip
        with b:
            b.wait_until_leader(10)
            eventually(lambda: seen)
        assert [[1, 2, 3]] == seen


class TestWorkerTasks:
    def test_the_state_saved_by_a_leader_is_read_by_the_next_after_a_sigkill(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """a (an async task) counts in the leader state; it is SIGKILLed; b (a thread task) resumes
        from a's last save, and its own saves carry on the versions."""
        runs = tmp_path / "runs.jsonl"
        env = {RUNS_FILE: str(runs)}

        def lines() -> list[dict[str, Any]]:
            return [json.loads(x) for x in runs.read_text().splitlines()] if runs.exists() else []

        with workers_for(redis_server.url, pool="counter") as workers:
            a = workers.start("a", "--task", "tests.support.schedule_tasks:count_in_state", env=env)
            term_a = a.elected()["term"]
            b = workers.start("b", "--task", "tests.support.schedule_tasks:count_in_state_in_thread", env=env)
            b.sees("a")
            eventually(lambda: sum(1 for x in lines() if x["event"] == "saved") >= 3, PATIENCE)
            a.signal(signal.SIGKILL)
            term_b = b.elected()["term"]
            eventually(lambda: any(x["event"] == "saved" and x["term"] == term_b for x in lines()), PATIENCE)
        by_a = [x for x in lines() if x["term"] == term_a]
        by_b = [x for x in lines() if x["term"] == term_b]
        assert {"event": "resumed", "count": 0, "version": 0} == {k: by_a[0][k] for k in ("event", "count", "version")}
        last_of_a = max(x["count"] for x in by_a if x["event"] == "saved")
        resumed = by_b[0]
        assert "resumed" == resumed["event"]
        # a may have been killed between a save and its line: b resumes from a's last save
        assert resumed["count"] in (last_of_a, last_of_a + 1)
        assert resumed["version"] == resumed["count"]  # one version per save, none lost or doubled
        assert resumed["count"] + 1 == by_b[1]["count"] == by_b[1]["version"]


class TestForget:
    def test_forget_deletes_the_state_and_the_schedules_with_the_pool(self, redis_server: RedisServer) -> None:
        """``leaderpool-cli forget`` lists the state and schedules keys with the pool's other keys."""
        import redis as blocking_redis

        from tests.support.worker_procs import cli

        with Election(MemberConfig(pool="gone", member_id="a", ttl_s=TTL), redis_server.url) as e:
            e.wait_until_leader(10)
            e.save_state({"n": 1})
        keys = Keyspace("gone")
        client = blocking_redis.Redis.from_url(redis_server.url)
        try:
            client.hset(keys.schedules, "job", "{}")
            done = cli("--redis", redis_server.url, "forget", "gone")
            assert 0 == done.returncode, done.stderr
            assert 0 == client.exists(keys.state, keys.schedules)
        finally:
            client.close()
