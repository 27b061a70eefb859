"""Periodic singleton tasks: which slot is due (pure), the claim script's refusals (a real
redis-server), and real worker processes keeping the cadence across a SIGKILL of the leader."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.console.args import UsageError
from leaderpool.errors import ConfigError
from leaderpool.schedules.schedule import CatchUp, Due, Schedule, next_due
from leaderpool.schedules.schedule_store import ClaimStatus, ScheduleStore
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from leaderpool.worker.settings import parse_settings
from tests.support.schedule_tasks import RUNS_FILE, read_runs, starts
from tests.support.worker_procs import PATIENCE, cli, eventually, workers_for

TASK = "tests.support.schedule_tasks:record_slot"
THREAD_TASK = "tests.support.schedule_tasks:record_slot_in_thread"


# ---- which slot is due ----


class TestSlots:
    def test_every_counts_slots_from_the_epoch(self) -> None:
        """Slots of every_s are multiples of the period: every member computes the same ones."""
        s = Schedule("s", every_s=0.5)
        assert 1500 == s.after(1000) == s.after(1499)
        assert 1000 == s.at_or_before(1499) == s.at_or_after(1000)
        assert 1500 == s.at_or_after(1001)

    def test_cron_slots_come_from_croniter_in_utc(self) -> None:
        """A cron expression's slots are its instants in UTC; a 6th field counts seconds."""
        s = Schedule("s", cron="*/5 * * * *")
        assert 300_000 == s.after(0) == s.after(299_999)
        assert 300_000 == s.at_or_before(599_999)
        assert 2_000 == Schedule("s", cron="* * * * * */2").after(0)

    def test_the_next_slot_runs_even_late_within_the_grace(self) -> None:
        """After the last claimed slot, the next one runs, on time or late (as after a failover)."""
        s = Schedule("s", every_s=1)
        assert Due(2000) == next_due(s, 1000, 1500, grace_ms=3000)  # not yet due: wait for it
        assert Due(2000) == next_due(s, 1000, 4900, grace_ms=3000)  # 2.9 s late: runs now, then 3000, 4000
        assert Due(3000) == next_due(s, 2000, 4900, grace_ms=3000)

    def test_once_runs_the_missed_slots_as_one_run(self) -> None:
        """Slots later than the grace are missed: ONCE runs one run for all, as the latest slot due."""
        s = Schedule("s", every_s=1, catch_up=CatchUp.ONCE)
        assert Due(10_000, 2000, 9000) == next_due(s, 1000, 10_500, grace_ms=3000)

    def test_skip_drops_the_missed_slots(self) -> None:
        """SKIP drops the missed slots and goes on with the first one that is not yet too late."""
        s = Schedule("s", every_s=1, catch_up=CatchUp.SKIP)
        assert Due(8000, 2000, 7000) == next_due(s, 1000, 10_500, grace_ms=2500)

    @pytest.mark.parametrize(
        ("fields", "words"),
        [
            ({"every_s": 0.001}, "every_s must be"),
            ({"every_s": 1, "cron": "* * * * *"}, "exactly one"),
            ({}, "exactly one"),
            ({"cron": "61 * * * *"}, "cron expression '61 * * * *' is invalid"),
            ({"cron": "not a cron"}, "is invalid"),
        ],
    )
    def test_a_bad_schedule_is_a_config_error_naming_the_field(self, fields: dict[str, Any], words: str) -> None:
        """A bad period or cron expression raises ConfigError saying what is wrong."""
        with pytest.raises(ConfigError) as raised:
            Schedule("s", **fields)
        assert words in str(raised.value)


# ---- the worker's flags ----


class TestScheduleFlags:
    def test_every_and_cron_become_the_schedule(self) -> None:
        """--every/--cron with --task make a schedule named after the task, catch-up once, grace 2 x ttl."""
        s = parse_settings(["--pool", "p", "--task", TASK, "--every", "0.5", "--ttl", "2"], {})
        assert Schedule(TASK, every_s=0.5, catch_up=CatchUp.ONCE, grace_s=4.0) == s.schedule
        s = parse_settings(["--pool", "p", "--task", TASK, "--cron", "*/5 * * * *", "--catch-up", "skip"], {})
        assert s.schedule is not None and ("*/5 * * * *", CatchUp.SKIP) == (s.schedule.cron, s.schedule.catch_up)
        env = {"LEADERPOOL_POOL": "p", "LEADERPOOL_TASK": TASK, "LEADERPOOL_EVERY": "3"}
        assert 3 == parse_settings([], env).schedule.every_s  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (["--task", TASK, "--cron", "61 * * * *"], "argument --cron: cron expression '61 * * * *' is invalid"),
            (["--task", TASK, "--every", "1", "--cron", "* * * * *"], "give one of --every or --cron"),
            (["--every", "1"], "argument --every: needs --task MODULE:FUNCTION"),
            (["--task", TASK, "--catch-up", "skip"], "argument --catch-up: only applies with --every or --cron"),
            (
                ["--task", TASK, "--every", "1", "--catch-up", "twice"],
                "argument --catch-up: must be once, skip, all or a window",
            ),
            (["--task", TASK, "--every", "0"], "argument --every: must be a number of seconds > 0"),
        ],
    )
    def test_bad_schedule_flags_name_the_flag(self, args: list[str], line: str) -> None:
        """Each bad combination is one UsageError naming the flag."""
        with pytest.raises(UsageError) as raised:
            parse_settings(["--pool", "p", *args], {})
        assert line in str(raised.value)

    def test_an_invalid_cron_ends_the_worker_with_one_line_and_exit_2(self, tmp_path: Path) -> None:
        """The worker process refuses a bad cron expression before it starts: one line, exit 2."""
        with workers_for("redis://127.0.0.1:1/0") as workers:
            w = workers.start("a", "--task", TASK, "--cron", "*/5 * * *")
            assert 2 == w.wait()
            lines = w.stderr.strip().splitlines()
            assert 1 == len(lines) and "argument --cron:" in lines[0] and "is invalid" in lines[0], w.stderr


# ---- the claim in Redis ----


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(within(coro, 60))


class TestClaims:
    def test_only_the_current_lead_claims_each_slot_once_and_not_early(self, redis_server: RedisServer) -> None:
        """The claim script refuses a stale lead, a slot already claimed or older, and a slot
        still in the future; the record shows the last run."""
        run(self._claims(redis_server.url))

    async def _claims(self, url: str) -> None:
        client = redis.asyncio.Redis.from_url(url)
        try:
            await self._check_claims(client)
        finally:
            await client.aclose()

    async def _check_claims(self, client: redis.asyncio.Redis) -> None:
        keys = Keyspace("claims")
        store = ScheduleStore(client, keys)
        await client.set(keys.leader, LeaderValue(2, "b").encode())
        now_ms, _ = await store.read()
        slot = now_ms - 1000
        stale = await store.claim(LeaderValue(1, "a"), "job", slot, "every 1s", "once")
        assert ClaimStatus.NOT_LEADER == stale.status
        assert ClaimStatus.CLAIMED == (await store.claim(LeaderValue(2, "b"), "job", slot, "every 1s", "once")).status
        again = await store.claim(LeaderValue(2, "b"), "job", slot, "every 1s", "once")
        assert (ClaimStatus.ALREADY_CLAIMED, slot) == (again.status, again.last_slot_ms)
        older = await store.claim(LeaderValue(2, "b"), "job", slot - 1000, "every 1s", "once")
        assert ClaimStatus.ALREADY_CLAIMED == older.status
        early = await store.claim(LeaderValue(2, "b"), "job", now_ms + 60_000, "every 1s", "once")
        assert ClaimStatus.TOO_EARLY == early.status
        assert await store.finish("job", slot, 2, "ok", slot + 1000)
        assert not await store.finish("job", slot, 1, "ok", slot + 1000)  # not that term's run
        _, (record,) = await store.read("job")
        assert (slot, 2, "b", "ok", 1, slot + 1000) == (
            record.last_slot_ms, record.term, record.member, record.outcome, record.runs, record.next_slot_ms
        )  # fmt: skip


# ---- real workers ----


@pytest.fixture
def runs_file(tmp_path: Path) -> Path:
    return tmp_path / "runs.jsonl"


class TestCadenceAcrossFailover:
    def test_a_sigkill_of_the_leader_keeps_the_cadence(self, redis_server: RedisServer, runs_file: Path) -> None:
        """Every 0.5 s with a 1 s lease, the leader is SIGKILLed: the next leader carries on from the
        last slot claimed -- every slot of the grid runs, none twice, runs never overlap, and the
        gap between two runs at the failover is at most the lease plus one period (plus slack)."""
        period, ttl = 0.5, 1.0
        env = {RUNS_FILE: str(runs_file)}
        args = ("--task", TASK, "--every", str(period), "--schedule-grace", "10", "--schedule-name", "cleaner")
        with workers_for(redis_server.url) as workers:
            a = workers.start("a", *args, env=env)
            a.elected()
            b = workers.start("b", "--task", THREAD_TASK, *args[2:], env=env)  # the next leader runs a thread task
            b.sees("a")
            eventually(lambda: len(starts(runs_file, "a")) >= 3, PATIENCE)
            killed_at = time.time()
            a.signal(signal.SIGKILL)
            b.elected()
            eventually(lambda: len(starts(runs_file, "b")) >= 3, PATIENCE)
            b.signal(signal.SIGTERM)
            assert 0 == b.wait()
            shown = cli("--redis", redis_server.url, "schedules", "--json")
        runs = read_runs(runs_file)
        begun = [r for r in runs if r["event"] == "start"]
        slots = [r["slot"] for r in begun]
        assert len(slots) == len(set(slots)), "a slot ran twice"
        assert sorted(slots) == slots
        assert 0 == shown.returncode, shown.stderr
        (pool,) = json.loads(shown.stdout)["pools"]
        (record,) = pool["schedules"]
        # Each claim counts a run. A hole in the grid is allowed only where the killed leader had
        # claimed the slot and died before its task began: right after its last run, before the kill.
        grid = [round(s / period) for s in slots]
        holes = sorted(set(range(grid[0], grid[-1] + 1)) - set(grid))
        assert len(holes) == record["runs"] - len(slots), "a slot was skipped while a member was alive"
        last_of_a = max(round(r["slot"] / period) for r in begun if r["member"] == "a")
        assert holes in ([], [last_of_a + 1]) and all(h * period <= killed_at for h in holes)
        assert {"a", "b"} == {r["member"] for r in begun}
        assert all(r["t"] >= r["slot"] for r in begun), "a run started before its slot"
        ends = {r["slot"]: r["t"] for r in runs if r["event"] == "end"}
        for before, after in itertools.pairwise(begun):
            finished = ends.get(before["slot"], killed_at)  # a run without an end died with its leader
            assert finished <= after["t"], f"slot {after['slot']} started before slot {before['slot']} ended"
        gap = max(later["t"] - earlier["t"] for earlier, later in itertools.pairwise(begun))
        assert gap <= ttl + period + 1.0, f"the failover gap was {gap:.2f}s"
        assert ("cleaner", "every 0.5s", "b", slots[-1]) == (
            record["name"], record["spec"], record["member"], record["last_slot"]
        )  # fmt: skip
        assert record["next_slot"] > record["last_slot"]

    def test_a_frozen_leader_claims_no_slot_when_it_wakes(self, redis_server: RedisServer, runs_file: Path) -> None:
        """SIGSTOP of the leader past its lease: b carries on the cadence; SIGCONT: a's lead is over
        (its renew deadline passed, and Redis's leader key holds b's term), so a starts no run again,
        and no slot ever runs twice."""
        args = ("--task", TASK, "--every", "0.2", "--schedule-grace", "10", "--schedule-name", "frozen")
        with workers_for(redis_server.url) as workers:
            a = workers.start("a", *args, env={RUNS_FILE: str(runs_file)})
            a.elected()
            b = workers.start("b", *args, env={RUNS_FILE: str(runs_file)})
            b.sees("a")
            eventually(lambda: len(starts(runs_file, "a")) >= 3, PATIENCE)
            a.signal(signal.SIGSTOP)
            try:
                b.elected()
                eventually(lambda: len(starts(runs_file, "b")) >= 3, PATIENCE)
            finally:
                woken_at = a.signal(signal.SIGCONT)
            assert 1 == a.wait_for(lambda e: e["event"] == "revoked")["term"]
            seen = len(starts(runs_file, "b"))
            eventually(lambda: len(starts(runs_file, "b")) >= seen + 3, PATIENCE)  # a had time to act, if it would
            for worker in (a, b):
                worker.signal(signal.SIGTERM)
                assert 0 == worker.wait()
            shown = cli("--redis", redis_server.url, "schedules", "--json")
        by_a, by_b = starts(runs_file, "a"), starts(runs_file, "b")
        assert [] == [r for r in by_a if r["t"] >= woken_at]
        slots = [r["slot"] for r in starts(runs_file)]
        assert len(slots) == len(set(slots)) and max(r["slot"] for r in by_a) < min(r["slot"] for r in by_b)
        (record,) = json.loads(shown.stdout)["pools"][0]["schedules"]
        assert record["runs"] - len(slots) in (0, 1)  # a may have claimed one slot and frozen before it began

    def test_a_run_that_raises_is_a_crash_and_its_slot_is_not_run_again(
        self, redis_server: RedisServer, runs_file: Path
    ) -> None:
        """The leader's second run raises: it steps down (task_failed) and, the only member, leads
        again after the crash delay, carrying on with the slot after the failed one (claimed, so
        not run twice; the slots that fell during the delay run late, none skipped)."""
        args = ("--task", "tests.support.schedule_tasks:fail_second_run", "--every", "0.2", "--schedule-grace", "10")
        with workers_for(redis_server.url) as workers:
            a = workers.start("a", *args, env={RUNS_FILE: str(runs_file)})
            assert 1 == a.elected()["term"]
            assert "task_failed" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
            term = a.wait_for(lambda e: e["event"] == "elected" and e["term"] > 1)["term"]
            eventually(lambda: any(r["term"] == term for r in starts(runs_file)), PATIENCE)
        first_term = [r["slot"] for r in starts(runs_file) if r["term"] == 1]
        after = [r["slot"] for r in starts(runs_file) if r["term"] == term]
        assert 2 == len(first_term) and round(first_term[1] + 0.2, 3) == round(after[0], 3)

    def test_a_cron_schedule_runs_on_its_instants(self, redis_server: RedisServer, runs_file: Path) -> None:
        """--cron with a seconds field runs once per whole second, on the leader only."""
        with workers_for(redis_server.url) as workers:
            a = workers.start("a", "--task", TASK, "--cron", "* * * * * *", env={RUNS_FILE: str(runs_file)})
            a.elected()
            workers.start("b", "--task", TASK, "--cron", "* * * * * *", env={RUNS_FILE: str(runs_file)})
            eventually(lambda: len(starts(runs_file)) >= 2, PATIENCE)
            a.signal(signal.SIGTERM)
            assert 0 == a.wait()
        begun = starts(runs_file)[:2]
        assert {"a"} == {r["member"] for r in begun}
        assert [float(int(r["slot"])) for r in begun] == [r["slot"] for r in begun]
        assert 1.0 == begun[1]["slot"] - begun[0]["slot"]


class TestLibrary:
    def test_run_schedule_runs_each_slot_once_on_whoever_leads(self, redis_server: RedisServer) -> None:
        """Two members run ``run_schedule`` every 0.2 s; the leader stops (a kind hand-over) during
        a run that lasts longer than the period: the hand-over waits for it, so b's first run starts
        after a's last one ended; the slots run once each, in order, none of the grid left out."""
        run(self._hand_over(redis_server.url))

    async def _hand_over(self, url: str) -> None:
        from leaderpool import AsyncElection, MemberConfig, ScheduledRun, run_schedule

        period = 0.2
        ran: list[tuple[str, float, float, float]] = []  # member, slot, started, ended
        long_run = asyncio.Event()

        async def job(slot: ScheduledRun) -> None:
            started = time.monotonic()
            if len(ran) == 3:  # a's fourth run outlasts the period: the hand-over comes during it
                long_run.set()
                await asyncio.sleep(2 * period)
            else:
                await asyncio.sleep(0.02)
            ran.append((slot.member, slot.slot, started, time.monotonic()))

        schedule = Schedule("lib", every_s=period)
        a = AsyncElection(MemberConfig(pool="lib", member_id="a", ttl_s=1.0), url)
        b = AsyncElection(MemberConfig(pool="lib", member_id="b", ttl_s=1.0), url)
        await a.start()
        await a.wait_until_leader(10)
        await b.start()
        runners = [asyncio.ensure_future(run_schedule(e, schedule, job)) for e in (a, b)]
        try:
            await within(long_run.wait(), 20)
            await a.stop()
            await b.wait_until_leader(10)
            while sum(1 for r in ran if r[0] == "b") < 3:
                await asyncio.sleep(0.02)
        finally:
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            await a.stop()
            await b.stop()
        members = [r[0] for r in ran]
        assert members == sorted(members) and {"a", "b"} == set(members)
        grid = [round(r[1] / period) for r in ran]
        assert list(range(grid[0], grid[-1] + 1)) == grid
        for before, after in itertools.pairwise(ran):
            assert before[3] <= after[2], f"slot {after[1]} started before slot {before[1]} ended"

    def test_the_blocking_face_runs_a_schedule_in_the_background(self, redis_server: RedisServer) -> None:
        """Election.run_schedule: a plain function runs once per slot, in order, until cancelled."""
        from leaderpool import Election, MemberConfig, ScheduledRun

        slots: list[float] = []

        def job(run: ScheduledRun) -> None:
            assert not run.stopping
            slots.append(run.slot)

        with Election(MemberConfig(pool="blk", member_id="a", ttl_s=1.0), redis_server.url) as election:
            election.wait_until_leader(10)
            running = election.run_schedule(Schedule("blk", every_s=0.1), job)
            eventually(lambda: len(slots) >= 3, PATIENCE)
            running.cancel()
        assert [round(s - slots[0], 3) for s in slots[:3]] == [0.0, 0.1, 0.2]


class TestCatchUpAfterAnOutage:
    @pytest.mark.parametrize("catch_up", [CatchUp.ONCE, CatchUp.SKIP])
    def test_slots_missed_while_no_member_ran_them_run_once_or_are_skipped(
        self, redis_server: RedisServer, catch_up: CatchUp
    ) -> None:
        """The last slot was claimed 60 s ago (every 1 s, grace 2 s): ONCE runs one run at once, as
        the latest slot due; SKIP runs the first slot not yet 2 s late, the older ones dropped."""
        run(self._after_outage(redis_server.url, catch_up))

    async def _after_outage(self, url: str, catch_up: CatchUp) -> None:
        from leaderpool.schedules.periodic import Run, SlotWalker

        client = redis.asyncio.Redis.from_url(url)
        try:
            keys = Keyspace("outage")
            store = ScheduleStore(client, keys)
            held = LeaderValue(3, "a")
            await client.set(keys.leader, held.encode())
            now_ms, _ = await store.read()
            old = (now_ms - 60_000) // 1000 * 1000
            assert ClaimStatus.CLAIMED == (await store.claim(held, "job", old, "every 1s", "once")).status
            walker = SlotWalker(store, Schedule("job", every_s=1, catch_up=catch_up), held, grace_s=2.0)
            step = await walker.step()
            while not isinstance(step, Run):
                await asyncio.sleep(step.seconds)
                step = await walker.step()
            late_ms = (await store.read())[0] - step.slot_ms
            if catch_up is CatchUp.ONCE:
                assert 0 <= late_ms < 1000 + 500  # the latest slot due, run now (a slow call aside)
            else:
                assert 0 <= late_ms <= 2000 + 500 and step.slot_ms > old + 50_000
        finally:
            await client.aclose()


class TestSchedulesCommand:
    def test_the_table_shows_the_last_run_by_whom_and_the_next_slot(self) -> None:
        """One row per schedule: spec, last slot, member, term, outcome, runs, next slot and how soon."""
        from leaderpool.cli.schedules import PoolSchedules, render
        from leaderpool.schedules.schedule_store import ScheduleRecord

        record = ScheduleRecord("cleaner", "every 300s", "once", 1_000_000, 4, "b", 1_000_010, 1_000_500, "ok", 12,
                                1_300_000)  # fmt: skip
        lines = render([PoolSchedules("jobs", 1_296_000, [record])]).splitlines()
        assert "pool jobs: 1 schedule(s)" == lines[0]
        assert ["SCHEDULE", "SPEC", "LAST", "SLOT", "BY", "TERM", "OUTCOME", "RUNS", "NEXT", "SLOT"] == lines[1].split()
        row = lines[2].split()
        assert ["cleaner", "every", "300s"] == row[:3] and ["b", "4", "ok", "12"] == row[5:9]
        assert lines[2].endswith("(in 4.0s)")
        assert "no schedules found" == render([])
