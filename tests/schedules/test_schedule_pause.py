"""Pausing a schedule: held in Redis, so whoever leads (the leader at the pause, or the one after a
SIGKILL) skips its slots until it is resumed, counts none of them as missed, and runs the next slot
on time once resumed. The claim script's refusals (a real redis-server), the CLI's answers, and
real workers."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import fakeredis
import redis.asyncio

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.schedules.schedule_store import ClaimStatus, ScheduleStore
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.schedule_tasks import RUNS_FILE
from tests.support.worker_procs import PATIENCE, cli, eventually, workers_for

TASK = "tests.support.schedule_tasks:record_slot"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(within(coro, 30))


class TestPausedClaims:
    def test_a_paused_schedule_skips_each_due_slot_and_a_skipped_slot_never_runs(
        self, redis_server: RedisServer
    ) -> None:
        run(self._claims(redis.asyncio.Redis.from_url(redis_server.url)))

    async def _claims(self, client: Any) -> None:
        try:
            keys = Keyspace("paused")
            store = ScheduleStore(client, keys)
            held = LeaderValue(4, "a")
            await client.set(keys.leader, held.encode())
            now_ms, _ = await store.read()
            first, second, third = now_ms - 3000, now_ms - 2000, now_ms - 1000
            assert not await store.set_paused("job", True)  # no such schedule yet
            assert ClaimStatus.CLAIMED == (await store.claim(held, "job", first, "every 1s", "once")).status
            assert await store.set_paused("job", True, by="ops")
            assert ClaimStatus.PAUSED == (await store.claim(held, "job", second, "every 1s", "once")).status
            _, (record,) = await store.read("job")
            assert (True, "ops", second, 1, first, 1) == (
                record.paused, record.paused_by, record.skipped_ms, record.skipped, record.last_slot_ms, record.runs
            )  # fmt: skip
            assert second == record.last_passed_ms
            assert await store.set_paused("job", False)
            again = await store.claim(held, "job", second, "every 1s", "once")
            assert (ClaimStatus.ALREADY_CLAIMED, second) == (again.status, again.last_slot_ms)  # skipped: never run
            assert ClaimStatus.CLAIMED == (await store.claim(held, "job", third, "every 1s", "once")).status
            _, (record,) = await store.read("job")
            assert (False, None, third, 2, 1) == (
                record.paused, record.paused_ms, record.last_slot_ms, record.runs, record.skipped
            )  # fmt: skip
            assert {"paused": False, "paused_since": None, "paused_by": None, "skipped": 1}.items() <= (
                record.to_json().items()
            )
        finally:
            await client.aclose()

    def test_a_paused_flag_that_is_not_true_pauses_nothing(self, fake_server: fakeredis.FakeServer) -> None:
        """Foreign data ("paused": "yes") is not a pause: the slot is claimed."""

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            keys = Keyspace("foreign")
            store = ScheduleStore(client, keys)
            held = LeaderValue(1, "a")
            await client.set(keys.leader, held.encode())
            now_ms, _ = await store.read()
            await client.hset(keys.schedules, "job", json.dumps({"paused": "yes", "paused_ms": 5}))
            _, (record,) = await store.read("job")
            assert not record.paused
            assert ClaimStatus.CLAIMED == (await store.claim(held, "job", now_ms - 1000, "every 1s", "once")).status

        run(main())


class TestPauseCommand:
    def test_pause_and_resume_answer_in_one_line(self, redis_server: RedisServer) -> None:
        base = ("--redis", redis_server.url)
        unknown = cli(*base, "schedules", "pause", "jobs", "nightly")
        assert 1 == unknown.returncode and "no schedule 'nightly' in pool jobs" in unknown.stderr
        assert 1 == len(unknown.stderr.strip().splitlines())
        for args in (("pause", "jobs"), ("resume",), ("pause", "jobs", "a", "b")):
            bad = cli(*base, "schedules", *args)
            assert 2 == bad.returncode and "needs POOL NAME" in bad.stderr, bad.stderr
            assert "Traceback" not in bad.stderr
        stray = cli(*base, "schedules", "jobs")
        assert (
            2 == stray.returncode
            and "invalid choice: 'jobs' (choose from 'pause', 'resume', 'history')" in stray.stderr
        )
        bad_name = cli(*base, "schedules", "pause", "jobs", "no spaces")
        assert 2 == bad_name.returncode and "NAME" in bad_name.stderr


def _starts(path: Path, member: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in runs if r["event"] == "start" and member in (None, r["member"])]


def _record(url: str, name: str) -> dict[str, Any]:
    shown = cli("--redis", url, "schedules", "--json")
    assert 0 == shown.returncode, shown.stderr
    (pool,) = json.loads(shown.stdout)["pools"]
    return next(s for s in pool["schedules"] if s["name"] == name)


class TestPausedAcrossFailover:
    def test_a_pause_holds_across_a_sigkill_and_a_resume_runs_the_next_slot(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """Every 0.3 s: paused, the leader starts no run of a slot after the pause; SIGKILLed, the
        next leader starts none either, and reports no missed slot; resumed, it runs the next
        slots on time; no slot ever runs twice."""
        runs_file = tmp_path / "runs.jsonl"
        env = {RUNS_FILE: str(runs_file)}
        args = ("--task", TASK, "--every", "0.3", "--schedule-grace", "10", "--schedule-name", "sweeper")
        url = redis_server.url
        with workers_for(url) as workers:
            a = workers.start("a", *args, env=env)
            a.elected()
            b = workers.start("b", *args, env=env)
            b.sees("a")
            eventually(lambda: len(_starts(runs_file, "a")) >= 2, PATIENCE)
            paused = cli("--redis", url, "schedules", "pause", "p", "sweeper")
            assert 0 == paused.returncode and "paused sweeper in pool p" in paused.stdout, paused.stderr
            paused_at = _record(url, "sweeper")["paused_since"]
            eventually(lambda: _record(url, "sweeper")["skipped"] >= 2, PATIENCE)
            a.signal(signal.SIGKILL)
            b.elected()
            skipped = _record(url, "sweeper")["skipped"]
            eventually(lambda: _record(url, "sweeper")["skipped"] >= skipped + 2, PATIENCE)  # b skips too
            assert [] == [r for r in _starts(runs_file) if r["slot"] > paused_at]
            resumed = cli("--redis", url, "schedules", "resume", "p", "sweeper")
            assert 0 == resumed.returncode, resumed.stderr
            eventually(lambda: len(_starts(runs_file, "b")) >= 2, PATIENCE)
            logged = b.stderr
            b.signal(signal.SIGTERM)
            assert 0 == b.wait()
            record = _record(url, "sweeper")
        assert "slots_missed" not in logged
        assert "schedule_paused" in logged and "schedule_resumed" in logged
        slots = [r["slot"] for r in _starts(runs_file)]
        assert len(slots) == len(set(slots)) and sorted(slots) == slots
        late = [r["t"] - r["slot"] for r in _starts(runs_file, "b")]
        assert all(0 <= lateness < 2.0 for lateness in late), late  # on time, not caught up
        assert not record["paused"] and record["skipped"] >= 4


class TestSlotLog:
    def test_each_slot_run_skipped_or_missed_is_logged_and_listed(self, redis_server: RedisServer) -> None:
        """The claim, finish and missed scripts log each slot in the pool's capped stream; the store
        reads it newest first, per schedule; ``schedules history`` prints it and its JSON."""
        run(self._log(redis.asyncio.Redis.from_url(redis_server.url)))
        url = redis_server.url
        shown = cli("--redis", url, "schedules", "history", "logged", "job", "--json")
        assert 0 == shown.returncode, shown.stderr
        slots = json.loads(shown.stdout)["slots"]
        assert ["ok", "skipped", "missed", "failed"] == [s["outcome"] for s in slots]
        assert 5 == slots[2]["count"] and slots[2]["last_slot"] > slots[2]["slot"]
        table = cli("--redis", url, "schedules", "history", "logged", "--count", "2")
        assert 0 == table.returncode and "the latest 2 slot(s)" in table.stdout, table.stderr
        assert "missed x5" not in table.stdout and " ok " in table.stdout and "other" in table.stdout
        none = cli("--redis", url, "schedules", "history", "logged", "nothing")
        assert 1 == none.returncode and "no slot of schedule 'nothing' in pool logged" in none.stderr
        bad = cli("--redis", url, "schedules", "--count", "3")
        assert 2 == bad.returncode and "--count" in bad.stderr

    async def _log(self, client: Any) -> None:
        try:
            keys = Keyspace("logged")
            store = ScheduleStore(client, keys)
            held = LeaderValue(2, "a")
            await client.set(keys.leader, held.encode())
            now_ms, _ = await store.read()
            base = now_ms - 10_000
            assert ClaimStatus.CLAIMED == (await store.claim(held, "job", base, "every 1s", "once")).status
            assert await store.finish("job", base, 2, "failed", base + 1000, "a")
            assert await store.passed_over(held, "job", base + 1000, base + 5000, 5)
            assert not await store.passed_over(LeaderValue(1, "z"), "job", base, base, 1)  # not the leader: nothing
            assert await store.set_paused("job", True)
            assert ClaimStatus.PAUSED == (await store.claim(held, "job", base + 6000, "every 1s", "once")).status
            assert await store.set_paused("job", False)
            assert ClaimStatus.CLAIMED == (await store.claim(held, "job", base + 7000, "every 1s", "once")).status
            assert await store.finish("job", base + 7000, 2, "ok", base + 8000, "a", base + 7001)
            assert ClaimStatus.CLAIMED == (await store.claim(held, "other", base + 7000, "every 1s", "once")).status
            assert await store.finish("other", base + 7000, 2, "ok", base + 8000)
            latest = await store.slot_log("job", 10)
            assert [("ok", base + 7000), ("skipped", base + 6000), ("missed", base + 1000), ("failed", base)] == [
                (s.outcome, s.slot_ms) for s in latest
            ]
            assert (2, "a") == (latest[0].term, latest[0].member) and latest[0].finished_ms is not None
            assert 1 == len(await store.slot_log("", 1)) and "other" == (await store.slot_log("", 1))[0].schedule
        finally:
            await client.aclose()
