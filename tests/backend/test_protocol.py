"""The wire protocol: one encoder and one parser per format, and the Lua side agreeing with them."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import (
    BeatStatus,
    ClaimStatus,
    LeaderConn,
    LeaderValue,
    PoolEvent,
    PoolMessage,
    parse_beat,
    parse_claim,
)
from leaderpool.members import MemberInfo
from leaderpool.util.timeouts import within


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


class TestLeaderValue:
    def test_round_trip(self) -> None:
        assert "7|host-1" == LeaderValue(7, "host-1").encode()
        assert LeaderValue(7, "host-1") == LeaderValue.parse(b"7|host-1")

    def test_a_member_id_may_hold_the_separator(self) -> None:
        """The member is the last field and split off last."""
        assert LeaderValue(3, "a|b") == LeaderValue.parse(LeaderValue(3, "a|b").encode())

    def test_no_value_is_none(self) -> None:
        assert LeaderValue.parse(None) is None
        assert LeaderValue.parse(False) is None


class TestLeaderConn:
    def test_a_registration_says_whether_its_connection_has_its_own_channel(self) -> None:
        """``"<term>|<id>|s"``: subscribed to its channel (a script may prove it gone);
        ``"<term>|<id>"``: not, or written by an older member."""
        assert LeaderConn(4, 17, True) == LeaderConn.parse(b"4|17|s")
        assert LeaderConn(4, 17, False) == LeaderConn.parse("4|17")
        for conn in (LeaderConn(4, 17, True), LeaderConn(4, 17, False), LeaderConn(2, 0)):
            assert conn == LeaderConn.parse(conn.encode())

    def test_anything_else_is_no_registration(self) -> None:
        for raw in (None, False, "", "4", "x|17", "4|x"):
            assert LeaderConn.parse(raw) is None
        for unknown_flag in ("4|17|t", "4|17|s|more"):  # claims nothing
            assert LeaderConn(4, 17, False) == LeaderConn.parse(unknown_flag)


class TestPoolMessage:
    @pytest.mark.parametrize(
        "message",
        [
            PoolMessage(PoolEvent.JOINED, 0, "", "m1"),
            PoolMessage(PoolEvent.ELECTED, 12, "handoff:1700000000123", "m|2"),
            PoolMessage(PoolEvent.RELEASED, 4, "resigned", "m3"),
            PoolMessage(PoolEvent.RESIGN),
        ],
    )
    def test_round_trip(self, message: PoolMessage) -> None:
        assert message == PoolMessage.parse(message.encode())

    def test_the_hand_over_grant_time_is_parsed(self) -> None:
        assert 1700000000123 == PoolMessage.parse("elected|12|handoff:1700000000123|m2").handoff_ms  # type: ignore[union-attr]
        assert PoolMessage.parse("elected|12||m2").handoff_ms is None  # type: ignore[union-attr]

    def test_the_hand_over_names_the_successors_run(self) -> None:
        """The grant names the run it was granted to; an earlier version's names none ("")."""
        msg = PoolMessage.parse("elected|12|handoff:1700000000123:0a1b2c3d4e5f6789|m2")
        assert msg is not None
        assert (1700000000123, "0a1b2c3d4e5f6789") == (msg.handoff_ms, msg.handoff_run)
        assert "" == PoolMessage.parse("elected|12|handoff:1700000000123|m2").handoff_run  # type: ignore[union-attr]
        assert "" == PoolMessage.parse("left|0|shutdown|m2").handoff_run  # type: ignore[union-attr]

    def test_a_hand_over_with_a_bad_time_is_none(self) -> None:
        assert PoolMessage.parse("elected|12|handoff:soon:0a1b|m2") is None

    def test_an_unknown_event_is_none(self) -> None:
        """A newer peer's message is ignored, not misread."""
        assert PoolMessage.parse("promoted|1||m") is None

    def test_the_resign_request_is_what_the_cli_publishes(self) -> None:
        assert "resign|0||" == PoolMessage(PoolEvent.RESIGN).encode()


class TestLuaAgrees:
    def test_scripts_publish_messages_the_parser_reads(self, fake_server: fakeredis.FakeServer) -> None:
        """join, claim, hand over, release, leave: every message a script publishes parses."""

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            ks = Keyspace("wire")
            pubsub = client.pubsub()
            await pubsub.subscribe(ks.events)
            store = PoolStore(client, ks)
            for i, name in enumerate(("a", "b|x")):
                await store.register(MemberInfo(name, "n", "h", 1, 0, i, {}), 5000)
            claimed = await store.claim("a", 5000, 0)
            assert (ClaimStatus.ELECTED, LeaderValue(1, "a")) == (claimed.status, claimed.leader)
            assert (True, 2) == await store.release(LeaderValue(1, "a"), "resigned", successor="b|x", ttl_ms=5000)
            assert (True, 2, 0) == await store.leave("b|x", "shutdown")
            seen = []
            while (msg := await pubsub.get_message(timeout=0.5)) is not None:
                if msg["type"] == "message":
                    seen.append(PoolMessage.parse(msg["data"]))
            events = [(m.event, m.term, m.member) for m in seen if m is not None]
            assert [
                (PoolEvent.JOINED, 0, "a"),
                (PoolEvent.JOINED, 0, "b|x"),
                (PoolEvent.ELECTED, 1, "a"),
                (PoolEvent.ELECTED, 2, "b|x"),
                (PoolEvent.RELEASED, 2, "b|x"),
                (PoolEvent.LEFT, 0, "b|x"),
            ] == events
            assert seen[3] is not None and seen[3].handoff_ms is not None
            await pubsub.aclose()

        run(main())


class TestReplies:
    def test_statuses_become_enums(self) -> None:
        assert BeatStatus.UNKNOWN_MEMBER is parse_beat([-1, 1000]).status
        assert ClaimStatus.RECOVERING is parse_claim([-2, 150], "a", 1000).status
        assert 150 == parse_claim([-2, 150], "a", 1000).leader_pttl_ms
        held = parse_claim([0, b"4|b", 900, 900500], "a", 1000)
        assert (ClaimStatus.HELD, LeaderValue(4, "b"), 900500) == (held.status, held.leader, held.free_in_us)
