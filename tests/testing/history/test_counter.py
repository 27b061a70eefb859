"""The lost-update check of a counter read-modify-written through fenced writes."""

from __future__ import annotations

import math

from leaderpool.testing.history import counter
from leaderpool.testing.history.ops import Operation


def incr(i: int, process: str, read: int, start: float, end: float, status: str = "ok", term: int = 1) -> Operation:
    end = math.inf if status == "info" else end
    return Operation(i, process, "incr", (read, read + 1), start, end, status, term)  # type: ignore[arg-type]


def test_increments_one_after_another_lose_nothing() -> None:
    ops = [incr(i, "a", i, 2 * i, 2 * i + 1) for i in range(5)]
    result = counter.check(ops, final=5)
    assert result.valid and 5 == result.acknowledged and [] == result.lost


def test_two_acknowledged_increments_to_one_value_are_a_lost_update() -> None:
    """Two leaders read 3 and both wrote 4, both acknowledged: one increment is gone."""
    ops = [incr(0, "a", 3, 0, 2, term=1), incr(1, "b", 3, 1, 3, term=2)]
    result = counter.check(ops)
    assert ["twice"] == [x.kind for x in result.lost]
    assert "2 acknowledged increments to 4" in result.lost[0].detail


def test_a_read_behind_an_acknowledged_increment_is_a_lost_update() -> None:
    """b began after a's increment to 6 was acknowledged, yet read 4: it overwrote it."""
    ops = [incr(0, "a", 5, 0, 1), incr(1, "b", 4, 2, 3, term=2)]
    assert "read_behind" in [x.kind for x in counter.check(ops).lost]


def test_an_indeterminate_increment_may_be_lost_or_kept() -> None:
    """An info increment (its write timed out) may or may not be in the final value."""
    ops = [incr(0, "a", 0, 0, 1), incr(1, "a", 1, 2, 3, "info"), incr(2, "b", 1, 4, 5, term=2)]
    for final in (2, 3):
        result = counter.check(ops, final=final)
        assert result.valid and (2, 1) == (result.acknowledged, result.indeterminate)


def test_a_final_value_below_the_acknowledged_increments_is_caught() -> None:
    ops = [incr(i, "a", i, 2 * i, 2 * i + 1) for i in range(3)]
    assert ["final_short"] == [x.kind for x in counter.check(ops, final=2).lost]


def test_concurrent_increments_reading_one_value_one_refused_are_fine() -> None:
    """The fence refused the older term's write (a fail, dropped before the check)."""
    ops = [incr(0, "b", 3, 1, 3, term=2)]
    assert counter.check(ops, final=4).valid
