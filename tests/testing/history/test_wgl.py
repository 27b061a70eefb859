"""The linearizability search on known histories: what must pass, what must fail, ``info``
operations that may or may not have taken effect, and the bound that answers "unknown"."""

from __future__ import annotations

import math
from typing import Any

import pytest

from leaderpool.testing.history import wgl
from leaderpool.testing.history.models import Mutex, Register, unread_info_writes_dropped
from leaderpool.testing.history.ops import NEMESIS, Op, Operation, epochs, operations


def ops(*rows: tuple[str, str, Any, float, float] | tuple[str, str, Any, float, float, str]) -> list[Operation]:
    """(process, f, value, start, end[, status]) rows, numbered in order."""
    out = []
    for i, row in enumerate(rows):
        process, f, value, start, end = row[:5]
        status = row[5] if len(row) == 6 else "ok"
        out.append(Operation(i, process, f, value, start, math.inf if status == "info" else end, status))  # type: ignore[arg-type]
    return out


def verdict(model: Any, history: list[Operation]) -> str:
    return wgl.check(model, history).verdict


class TestARegister:
    def test_sequential_writes_and_reads_are_linearizable(self) -> None:
        """Each read returns the last write before it."""
        h = ops(("a", "write", 1, 0, 1), ("a", "read", 1, 2, 3), ("b", "write", 2, 4, 5), ("b", "read", 2, 6, 7))
        assert "linearizable" == verdict(Register(), h)

    def test_a_read_of_an_overwritten_value_is_not(self) -> None:
        """Write 1, then write 2 completes, then a read returns 1: stale."""
        h = ops(("a", "write", 1, 0, 1), ("b", "write", 2, 2, 3), ("c", "read", 1, 4, 5))
        result = wgl.check(Register(), h)
        assert "not linearizable" == result.verdict and result.valid is False
        assert result.stuck_at is not None and "read" == result.stuck_at.f

    def test_concurrent_operations_may_take_effect_in_either_order(self) -> None:
        """A read concurrent with a write may see the old or the new value."""
        for seen in (None, 1):
            h = ops(("a", "write", 1, 0, 10), ("b", "read", seen, 1, 2))
            assert "linearizable" == verdict(Register(), h)

    def test_two_reads_may_not_see_values_in_opposite_orders(self) -> None:
        """Writes 1 and 2 overlap; one reader sees 1 then 2, the other 2 then 1: no single order."""
        h = ops(
            ("w1", "write", 1, 0, 10), ("w2", "write", 2, 0, 10),
            ("r1", "read", 1, 1, 2), ("r1", "read", 2, 3, 4),
            ("r2", "read", 2, 1, 2), ("r2", "read", 1, 3, 4),
        )  # fmt: skip
        assert "not linearizable" == verdict(Register(), h)

    def test_a_read_of_a_value_never_written_is_not(self) -> None:
        assert "not linearizable" == verdict(Register(), ops(("a", "write", 1, 0, 1), ("b", "read", 7, 2, 3)))

    def test_an_info_write_may_have_taken_effect(self) -> None:
        """A write that timed out (info) may be seen by a later read, at any later time."""
        h = ops(("a", "write", 1, 0, 1), ("b", "write", 2, 2, 3, "info"), ("c", "read", 2, 100, 101))
        assert "linearizable" == verdict(Register(), h)

    def test_an_info_write_may_have_never_taken_effect(self) -> None:
        h = ops(("a", "write", 1, 0, 1), ("b", "write", 2, 2, 3, "info"), ("c", "read", 1, 100, 101))
        assert "linearizable" == verdict(Register(), h)

    def test_an_info_write_cannot_take_effect_before_it_was_invoked(self) -> None:
        """A read that ended before the info write began cannot have seen it."""
        h = ops(("c", "read", 2, 0, 1), ("b", "write", 2, 2, 3, "info"))
        assert "not linearizable" == verdict(Register(), h)

    def test_an_info_write_takes_effect_once(self) -> None:
        """Seen, then overwritten, it cannot come back."""
        h = ops(
            ("b", "write", 2, 0, 1, "info"), ("c", "read", 2, 2, 3),
            ("a", "write", 3, 4, 5), ("c", "read", 2, 6, 7),
        )  # fmt: skip
        assert "not linearizable" == verdict(Register(), h)

    def test_a_stale_write_accepted_after_a_newer_one_is_caught(self) -> None:
        """The broken fence: term 1's write is acknowledged after term 2's, so a read after both
        sees 1; but a read between them had seen 2 as current, then 1 came back."""
        h = ops(
            ("m2", "write", 20, 0, 1), ("m2", "read", 20, 2, 3),
            ("m1", "write", 10, 4, 5), ("m2", "read", 20, 6, 7),
        )  # fmt: skip
        assert "not linearizable" == verdict(Register(), h)


class TestAMutex:
    def test_acquire_release_in_turn_is_linearizable(self) -> None:
        h = ops(("a", "acquire", None, 0, 1), ("a", "release", None, 2, 3), ("b", "acquire", None, 4, 5))
        assert "linearizable" == verdict(Mutex(), h)

    def test_two_holders_at_once_are_not(self) -> None:
        """b acquires after a acquired and before a released."""
        h = ops(("a", "acquire", None, 0, 1), ("b", "acquire", None, 2, 3), ("a", "release", None, 4, 5))
        assert "not linearizable" == verdict(Mutex(), h)

    def test_overlapping_acquires_may_order_either_way(self) -> None:
        h = ops(("a", "acquire", None, 0, 10), ("b", "acquire", None, 1, 2), ("b", "release", None, 3, 4))
        assert "linearizable" == verdict(Mutex(), h)

    def test_a_reset_frees_the_lock_and_the_old_holder_may_release_after(self) -> None:
        """The store lost its data: the lock is free; the old holder's later release is legal."""
        h = ops(
            ("a", "acquire", None, 0, 1), (NEMESIS, "reset", None, 2, 2),
            ("b", "acquire", None, 3, 4), ("a", "release", None, 5, 6), ("b", "release", None, 7, 8),
        )  # fmt: skip
        assert "linearizable" == verdict(Mutex(), h)

    def test_a_release_by_a_non_holder_is_not(self) -> None:
        assert "not linearizable" == verdict(Mutex(), ops(("a", "acquire", None, 0, 1), ("b", "release", None, 2, 3)))


class TestTheBound:
    def test_a_search_past_its_step_bound_answers_unknown(self) -> None:
        """Many concurrent writes and reads of values nobody wrote last: the search needs far more
        than 50 steps, so it stops and says so instead of answering."""
        h = ops(*[(f"p{i}", "write", i, 0, 100) for i in range(12)], ("r", "read", 99, 200, 201))
        result = wgl.check(Register(), h, max_steps=50)
        assert "unknown" == result.verdict and result.valid is None and "50 steps" in result.reason

    def test_a_search_past_its_time_bound_answers_unknown(self) -> None:
        """A clock that jumps an hour per look: the first look past the deadline ends the search."""
        h = ops(*[(f"p{i}", "write", i, 0, 100) for i in range(14)], ("r", "read", 99, 200, 201))
        ticks = iter(range(0, 10**9, 3600))
        result = wgl.check(Register(), h, max_seconds=1.0, clock=lambda: float(next(ticks)))
        assert "unknown" == result.verdict and "1s" in result.reason

    def test_the_cache_keeps_a_wide_concurrent_history_quick(self) -> None:
        """14 concurrent writes then a read of the first: 2^14 subsets, each state seen once."""
        h = ops(*[(f"p{i}", "write", i, 0, 100) for i in range(14)], ("r", "read", 0, 200, 201))
        result = wgl.check(Register(), h, max_steps=500_000)
        assert "linearizable" == result.verdict


class TestBuildingOperations:
    def test_events_pair_into_operations_and_fail_is_dropped(self) -> None:
        """invoke+ok, invoke+fail (dropped), invoke+info (open-ended), invoke with no end (info)."""
        ev = [
            Op("invoke", "write", 1, "a", 0, 0.0, "register"), Op("ok", "write", 1, "a", 0, 1.0, "register"),
            Op("invoke", "write", 2, "a", 0, 2.0, "register"), Op("fail", "write", 2, "a", 0, 3.0, "register"),
            Op("invoke", "write", 3, "b", 0, 2.5, "register"), Op("info", "write", None, "b", 0, 4.0, "register"),
            Op("invoke", "read", None, "c", 0, 5.0, "register"), Op("ok", "read", 1, "c", 0, 6.0, "register"),
            Op("invoke", "write", 4, "c", 0, 7.0, "register"),
        ]  # fmt: skip
        got = [(o.process, o.f, o.value, o.start, o.end, o.status) for o in operations(ev, key="register")]
        assert [
            ("a", "write", 1, 0.0, 1.0, "ok"),
            ("b", "write", 3, 2.5, math.inf, "info"),
            ("c", "read", 1, 5.0, 6.0, "ok"),
            ("c", "write", 4, 7.0, math.inf, "info"),
        ] == got

    def test_an_operation_spanning_a_data_loss_is_info_on_both_sides(self) -> None:
        """The loss at t=5 cuts the history; the write from 4 to 6 may have landed before it (and
        been lost) or after it."""
        h = ops(("a", "write", 1, 0, 1), ("a", "write", 2, 4, 6), ("b", "read", 2, 7, 8))
        before, after = epochs(h, [(5.0, 5.0)])
        assert [("write", 1, "ok"), ("write", 2, "info")] == [(o.f, o.value, o.status) for o in before]
        assert [("write", 2, "info"), ("read", 2, "ok")] == [(o.f, o.value, o.status) for o in after]
        assert all("linearizable" == verdict(Register(), part) for part in (before, after))

    def test_a_read_after_a_data_loss_of_a_value_from_before_is_caught(self) -> None:
        """The loss empties the register: reading the old value after it is not linearizable."""
        _, after = epochs(ops(("a", "write", 1, 0, 1), ("b", "read", 1, 7, 8)), [(5.0, 5.5)])
        assert "not linearizable" == verdict(Register(), after)


@pytest.mark.parametrize("n", [200, 2000])
def test_a_long_sequential_history_is_checked_in_linear_steps(n: int) -> None:
    """A leader's history is mostly sequential: the search takes a few steps per operation."""
    rows = []
    for i in range(n):
        rows += [("a", "write", i, 4 * i, 4 * i + 1), ("a", "read", i, 4 * i + 2, 4 * i + 3)]
    result = wgl.check(Register(), ops(*rows))
    assert "linearizable" == result.verdict and result.steps < 10 * len(rows)


class TestDroppingUnreadInfoWrites:
    def test_info_writes_nobody_read_are_dropped_and_the_verdict_kept(self) -> None:
        """Twelve writes that timed out, none read, between acknowledged writes and reads: dropped,
        the search takes one step per operation, and a stale read is still caught."""
        rows: list[tuple[str, str, Any, float, float] | tuple[str, str, Any, float, float, str]] = [
            ("a", "write", 1, 0, 1),
            *[(f"i{i}", "write", 100 + i, 2, 3, "info") for i in range(12)],
            ("a", "write", 2, 4, 5),
            ("a", "read", 2, 6, 7),
        ]
        pruned = unread_info_writes_dropped(ops(*rows))
        assert [1, 2, 2] == [o.value for o in pruned] and [0, 1, 2] == [o.id for o in pruned]
        result = wgl.check(Register(), pruned)
        assert "linearizable" == result.verdict and result.steps <= 3
        stale = unread_info_writes_dropped(ops(*rows, ("a", "read", 1, 8, 9)))
        assert "not linearizable" == verdict(Register(), stale)

    def test_an_info_write_that_was_read_is_kept(self) -> None:
        h = ops(("b", "write", 7, 0, 1, "info"), ("c", "read", 7, 2, 3))
        assert 2 == len(unread_info_writes_dropped(h)) and "linearizable" == verdict(Register(), h)
