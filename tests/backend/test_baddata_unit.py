"""Hostile or broken data, unit level: the parsers skip what leaderpool did not write and say so
once; the scripts (on fakeredis's Lua) refuse a pool key of the wrong type before writing, treat
a foreign leader value as held, and a garbage term counter as lost."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import fakeredis
import pytest

from leaderpool.backend import baddata
from leaderpool.backend.baddata import FOREIGN_HOLDER, MAX_RECORD_BYTES
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import ClaimStatus, LeaderValue, PoolEvent, PoolMessage, member_info, parse_history
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.errors import BadPoolData
from leaderpool.members import MemberInfo
from leaderpool.util.timeouts import within

GOOD = MemberInfo("a", "n", "h", 1, 0, 1000).record_json()


@pytest.fixture(autouse=True)
def _fresh_reports() -> Iterator[None]:
    baddata._reported.clear()
    yield
    baddata._reported.clear()


def reports(caplog: pytest.LogCaptureFixture, event: str) -> int:
    return sum(event in r.getMessage() for r in caplog.records)


class TestParsers:
    @pytest.mark.parametrize("raw", ["garbage", b"\xff\xfe", "x|a", "|a", "5|", "-1|a", "1.5|a"])
    def test_a_foreign_leader_value_is_held_by_someone_unknown(self, raw: str | bytes) -> None:
        """Not ``<term>|<member>``: a lead held at term 0 by a holder no member id can equal."""
        assert LeaderValue(0, FOREIGN_HOLDER) == LeaderValue.parse(raw)

    def test_a_leader_value_keeps_separators_in_the_member(self) -> None:
        assert LeaderValue(7, "a|b") == LeaderValue.parse(b"7|a|b")

    @pytest.mark.parametrize(
        "record",
        ["not json", "[1, 2]", '"text"', '{"pid": "x"}', '{"meta": "text"}', '{"priority": null}', b"\xff"],
    )
    def test_a_malformed_member_record_is_skipped(self, record: str | bytes) -> None:
        assert member_info("ghost", record, 100) is None

    def test_a_huge_member_record_is_skipped_and_a_good_one_kept(self) -> None:
        huge = json.dumps({"meta": {"x": "y" * MAX_RECORD_BYTES}})
        assert member_info("ghost", huge, 100) is None
        info = member_info("a", GOOD, 100)
        assert info is not None and ("a", 100) == (info.member, info.lease_ms)

    @pytest.mark.parametrize(
        "raw", ["elected|notanumber||x", "elected|5|handoff:abc|b", "left|-3||a", b"\xff\xfe|1||a"]
    )
    def test_garbage_on_the_pool_channel_is_ignored(self, raw: str | bytes) -> None:
        assert PoolMessage.parse(raw) is None

    def test_a_good_pool_message_still_parses(self) -> None:
        msg = PoolMessage.parse("elected|5|handoff:123|b")
        assert msg is not None and (PoolEvent.ELECTED, 5, 123, "b") == (msg.event, msg.term, msg.handoff_ms, msg.member)

    def test_garbage_in_the_history_reads_as_zero(self) -> None:
        [entry] = parse_history([("1-0", {b"event": b"elected", b"term": b"x", b"t_ms": b"-"})])
        assert (0, 0) == (entry.term, entry.t_ms)

    def test_each_distinct_problem_is_logged_once(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                member_info("ghost", "not json", 0)
                LeaderValue.parse("garbage")
            member_info("ghost2", "not json", 0)
        assert 2 == reports(caplog, "member_record_skipped")
        assert 1 == reports(caplog, "leader_value_foreign")

    def test_reports_are_capped(self, caplog: pytest.LogCaptureFixture) -> None:
        """Random garbage cannot flood the logs: at most a few hundred distinct reports."""
        with caplog.at_level(logging.WARNING):
            for i in range(1000):
                member_info(f"ghost{i}", "not json", 0)
        assert baddata._REPORTS_MAX == reports(caplog, "member_record_skipped")
        assert 1 == reports(caplog, "bad_data_reports_capped")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(within(coro, 60))


@pytest.fixture
def store(fake_client: fakeredis.FakeAsyncRedis) -> PoolStore:
    return PoolStore(fake_client, Keyspace("p"))


def info(member: str) -> MemberInfo:
    return MemberInfo(member, "n", "h", 1, 0, 1000)


class TestScripts:
    def test_a_foreign_leader_value_is_never_claimed_over(
        self, store: PoolStore, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        """The claim finds the lead held; the value stays; leader_record reads it without a record."""

        async def scenario() -> None:
            await store.register(info("a"), 5000)
            await fake_client.set(store.keys.leader, "garbage")
            result = await store.claim("a", 5000, 0)
            assert (ClaimStatus.HELD, LeaderValue(0, FOREIGN_HOLDER)) == (result.status, result.leader)
            assert b"garbage" == await fake_client.get(store.keys.leader)
            record = await store.leader_record()
            assert record is not None and (LeaderValue(0, FOREIGN_HOLDER), None) == (record.value, record.info)
            left = await store.leave("a", "shutdown")
            assert (True, 0) == (left.was_member, left.released_term)

        run(scenario())

    def test_a_malformed_member_is_skipped_by_the_read(
        self, store: PoolStore, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        async def scenario() -> None:
            await store.register(info("a"), 5000)
            await fake_client.hset(store.keys.members, "ghost", "not json")
            await fake_client.zadd(store.keys.leases, {"ghost": 2**40})
            assert ["a"] == [m.member for m in (await store.observe()).members]

        run(scenario())

    @pytest.mark.parametrize("kind", ["members", "leases", "leader", "term", "history"])
    def test_a_key_of_the_wrong_type_is_refused_before_any_write(
        self, store: PoolStore, fake_client: fakeredis.FakeAsyncRedis, kind: str
    ) -> None:
        """BADDATA, a retryable error naming the key; nothing written (the term did not move)."""

        async def scenario() -> None:
            await store.register(info("a"), 5000)
            key = getattr(store.keys, kind)
            await fake_client.delete(key)
            if kind in ("leader", "term"):
                await fake_client.hset(key, "x", "y")
            else:
                await fake_client.set(key, "x")
            term_before = None if kind == "term" else await fake_client.get(store.keys.term)
            with pytest.raises(BadPoolData) as caught:
                await store.claim("a", 5000, 0)
            assert key in str(caught.value) and isinstance(caught.value, RETRYABLE)
            if kind != "term":
                assert term_before == await fake_client.get(store.keys.term)

        run(scenario())

    def test_a_garbage_term_counter_is_treated_as_lost(
        self, store: PoolStore, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        """Members' reported terms restore it: the claim waits for recovery, then grants above them."""

        async def scenario() -> None:
            await store.register(info("a"), 5000)
            await fake_client.set(store.keys.term, "garbage")
            held = await store.claim("a", 5000, 7)
            assert ClaimStatus.RECOVERING == held.status
            assert b"7" == await fake_client.get(store.keys.term)
            await fake_client.delete(store.keys.recovery)
            elected = await store.claim("a", 5000, 7)
            assert (ClaimStatus.ELECTED, 8) == (elected.status, elected.term)

        run(scenario())


class TestScheduleRecords:
    def test_a_foreign_schedule_record_is_skipped_then_overwritten(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """Garbage in the schedules hash: reads skip it, the leader's next claim starts it afresh."""
        from leaderpool.schedules.schedule_store import ClaimStatus as SlotClaim
        from leaderpool.schedules.schedule_store import ScheduleStore

        async def scenario() -> None:
            keys = Keyspace("p")
            store = ScheduleStore(fake_client, keys)
            held = LeaderValue(3, "a")
            await fake_client.set(keys.leader, held.encode())
            await fake_client.hset(keys.schedules, mapping={"bad": "not json", "worse": '{"last_slot_ms": "x"}'})
            now, records = await store.read()
            assert [] == records
            for name in ("bad", "worse"):
                claim = await store.claim(held, name, now - 1000, "every 1s", "once")
                assert SlotClaim.CLAIMED == claim.status
            _, records = await store.read()
            assert {("bad", 1), ("worse", 1)} == {(r.name, r.runs) for r in records}

        run(scenario())


class TestLeaderState:
    def test_a_foreign_state_reads_as_none_and_the_next_save_replaces_it(
        self, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        from leaderpool.state import read_state, save_state

        async def scenario() -> None:
            keys = Keyspace("p")
            held = LeaderValue(3, "a")
            await fake_client.set(keys.leader, held.encode())
            await fake_client.hset(keys.state, mapping={"version": "x", "term": "y", "data": "{not json"})
            assert await read_state(fake_client, keys) is None
            saved = await save_state(fake_client, keys, held, {"n": 1})
            assert (1, {"n": 1}) == (saved.version, saved.data)
            again = await read_state(fake_client, keys)
            assert again is not None and (1, 3, {"n": 1}) == (again.version, again.term, again.data)

        run(scenario())


class TestDoctorPoolData:
    def test_each_kind_of_foreign_data_is_named_and_a_clean_pool_is_ok(
        self, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        from leaderpool.cli.doctor_data import check_pool_data

        async def scenario() -> None:
            store = PoolStore(fake_client, Keyspace("good"))
            await store.register(info("a"), 5000)
            assert "ok" == (await check_pool_data(fake_client)).level
            bad = Keyspace("bad")
            await fake_client.set(bad.leader, "garbage")
            await fake_client.set(bad.term, "x")
            await fake_client.set(bad.history, "x")
            await fake_client.hset(bad.members, "m", "not json")
            await fake_client.hset(bad.schedules, "s", "[1]")
            await fake_client.hset(bad.state, mapping={"version": "1", "data": "{"})
            found = await check_pool_data(fake_client)
            assert "fail" == found.level and found.message.startswith("6 problem(s)"), found
            other = await check_pool_data(fake_client, prefix="elsewhere")
            assert ("ok", "0 pool(s) under elsewhere:, nothing foreign") == (other.level, other.message)

        run(scenario())
