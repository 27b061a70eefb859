"""Succession rules as pure functions: who is next, whom to hand to, and the deadline arithmetic."""

from __future__ import annotations

import pytest

from leaderpool.backend.protocol import LeaderRecord, LeaderValue
from leaderpool.election import succession as succ
from leaderpool.members import MemberInfo


def member(name: str, started: int, *, priority: int = 0, node: str = "n", lease_ms: int = 1000) -> MemberInfo:
    return MemberInfo(name, node, "h", 1, priority, started, {}, lease_ms)


A, B, C = member("a", 1), member("b", 2), member("c", 3)


class TestWhoIsNext:
    def test_next_in_line_is_the_best_ranked_other_than_the_leader(self) -> None:
        assert "b" == succ.next_in_line([A, B, C], "a", None, resigned=None, anti_affinity=False)
        assert "a" == succ.next_in_line([A, B, C], "b", None, resigned=None, anti_affinity=False)

    def test_the_member_that_just_resigned_comes_last(self) -> None:
        assert "c" == succ.next_in_line([A, B, C], "a", None, resigned="b", anti_affinity=False)

    def test_anti_affinity_needs_a_read(self) -> None:
        """Its ranking depends on other pools' leaders: nobody is next without a fresh read."""
        assert succ.next_in_line([A, B, C], "a", None, resigned=None, anti_affinity=True) is None

    def test_nobody_is_next_in_a_pool_of_one(self) -> None:
        assert succ.next_in_line([A], "a", None, resigned=None, anti_affinity=False) is None

    def test_a_leader_hands_to_the_best_live_other_member(self) -> None:
        lapsed = member("b", 2, lease_ms=0)
        assert "c" == succ.successor_for([A, lapsed, C], "a", None)
        assert "" == succ.successor_for([A], "a", None)

    def test_hand_over_avoids_nodes_running_avoided_leaders(self) -> None:
        b_on_busy = member("b", 2, node="busy")
        assert "c" == succ.successor_for([A, b_on_busy, C], "a", None, frozenset({"busy"}))

    def test_takeover_only_for_a_better_live_member(self) -> None:
        big = member("big", 9, priority=5)
        assert big == succ.preferred_over([A, big], "a", None, avoid_nodes=frozenset(), resigned=None)
        assert succ.preferred_over([A, B], "a", None, avoid_nodes=frozenset(), resigned=None) is None

    def test_leader_nodes_feed_anti_affinity(self) -> None:
        record = LeaderRecord(LeaderValue(1, "x"), 500, member("x", 1, node="n9"))
        assert frozenset({"n9"}) == succ.leader_nodes([record, None, LeaderRecord(LeaderValue(2, "y"), 1, None)])


class TestVacancy:
    def test_claim_position(self) -> None:
        position, ranked = succ.claim_position([C, A, B], "b", None, avoid_nodes=frozenset(), resigned=None)
        assert (1, ["a", "b", "c"]) == (position, [m.member for m in ranked])

    def test_forced_claims_keep_the_order_and_are_bounded(self) -> None:
        """The second waits ttl + 0, the last ttl + heartbeat: nobody longer."""
        at = [succ.forced_at(100.0, p, 4, ttl_s=3.0, heartbeat_s=1.0) for p in range(4)]
        assert [103.0, 103.0, 103.5, 104.0] == at

    def test_retry_when_the_preferred_lease_would_lapse_or_when_forced(self) -> None:
        assert 10.501 == pytest.approx(succ.vacancy_retry_at(10.0, member("p", 1, lease_ms=500), 20.0))
        assert 10.2 == succ.vacancy_retry_at(10.0, member("p", 1, lease_ms=500), 10.2)

    def test_grace_is_bounded_by_a_heartbeat(self) -> None:
        assert 0.15 == pytest.approx(succ.vacancy_grace(1.0))
        assert 0.04 == succ.vacancy_grace(0.04)

    def test_lease_end_aims_from_the_middle_of_the_round_trip(self) -> None:
        assert 10.5 + 2.0 == pytest.approx(succ.lease_end(10.0, 11.0, 2_000_000))
        assert succ.lease_end(10.0, 11.0, -1) is None


class TestHandOverClock:
    def test_the_grant_is_placed_no_earlier_than_our_last_sample_allows(self) -> None:
        """Redis read 5000 ms no earlier than we sent at t=100: a grant at 5300 ms is at or
        after t=100.299 here (one ms off for truncation)."""
        assert 100.299 == pytest.approx(succ.grant_instant((100.0, 5000), 5300))
        assert succ.grant_instant(None, 5300) is None

    def test_act_on_a_grant_only_with_more_than_half_a_heartbeat_left(self) -> None:
        ok = succ.safe_to_act_on_grant(100.0, 101.0, renew_deadline_s=2.0, heartbeat_s=1.0)
        late = succ.safe_to_act_on_grant(100.0, 101.6, renew_deadline_s=2.0, heartbeat_s=1.0)
        unknown = succ.safe_to_act_on_grant(None, 101.0, renew_deadline_s=2.0, heartbeat_s=1.0)
        assert (True, False, False) == (ok, late, unknown)


class TestRetryDelay:
    def test_doubles_up_to_a_heartbeat(self) -> None:
        delays = [succ.retry_delay(n, heartbeat_s=1.0, renew_left_s=None) for n in range(1, 8)]
        assert [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0] == pytest.approx(delays)

    def test_a_leader_retries_within_a_quarter_of_its_renew_deadline(self) -> None:
        assert 0.1 == pytest.approx(succ.retry_delay(8, heartbeat_s=1.0, renew_left_s=0.4))
        assert 0.01 == succ.retry_delay(8, heartbeat_s=1.0, renew_left_s=0.0)
