"""The pool's preference: priority, then longest running; pluggable; anti-affinity."""

from __future__ import annotations

from collections.abc import Sequence

from leaderpool.members import MemberInfo, by_priority_then_age, rank_members


def m(member: str, *, priority: int = 0, started: int = 0, node: str = "n") -> MemberInfo:
    return MemberInfo(member, node, "h", 1, priority, started, {}, 1000)


def names(members: Sequence[MemberInfo]) -> list[str]:
    return [x.member for x in members]


def test_priority_first_then_oldest() -> None:
    """The bigger machine wins; among equals the longest running one."""
    pool = [m("young", started=30), m("old", started=10), m("big", priority=5, started=50)]
    assert ["big", "old", "young"] == names(by_priority_then_age(pool))


def test_ties_break_by_id_so_every_member_agrees() -> None:
    assert ["a", "b"] == names(by_priority_then_age([m("b"), m("a")]))


def test_custom_ranker_decides() -> None:
    """A callable may pick the leader instead (the seed's selection function)."""

    def youngest_first(members: Sequence[MemberInfo]) -> list[MemberInfo]:
        return sorted(members, key=lambda x: -x.started_at_ms)

    assert ["b", "a"] == names(rank_members([m("a", started=1), m("b", started=2)], youngest_first))


def test_broken_ranker_falls_back_to_default() -> None:
    """A ranker that raises, or drops members, must not leave the pool leaderless."""

    def boom(members: Sequence[MemberInfo]) -> list[MemberInfo]:
        raise RuntimeError("bug")

    def drops(members: Sequence[MemberInfo]) -> list[MemberInfo]:
        return list(members)[:1]

    pool = [m("b", started=2), m("a", started=1)]
    assert ["a", "b"] == names(rank_members(pool, boom))
    assert ["a", "b"] == names(rank_members(pool, drops))


def test_anti_affinity_ranks_down_but_keeps() -> None:
    """Members on a node running another pool's leader go last; alone, they still lead."""
    pool = [m("a", started=1, node="busy"), m("b", started=2, node="free")]
    assert ["b", "a"] == names(rank_members(pool, avoid_nodes=frozenset({"busy"})))
    assert ["a"] == names(rank_members(pool[:1], avoid_nodes=frozenset({"busy"})))


def test_resigned_member_goes_last() -> None:
    pool = [m("a", priority=9), m("b"), m("c", node="busy")]
    assert ["b", "c", "a"] == names(rank_members(pool, avoid_nodes=frozenset({"busy"}), resigned="a"))
