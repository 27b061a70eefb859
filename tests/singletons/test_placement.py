"""Placement is pure: balanced by weight, stable where it can be, minimal moves on a join,
pins and anti-affinity kept; the hash ring moves only what its ring moved."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from leaderpool.singletons.placement import Balanced, HashRing, Member, moves, quotas


def names_of(n: int) -> list[str]:
    return [f"shard-{i}" for i in range(n)]


def members_of(m: int) -> list[Member]:
    return [Member(f"m{i}") for i in range(m)]


def counts(assignment: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for member in assignment.values():
        out[member] = out.get(member, 0) + 1
    return out


sizes = st.tuples(st.integers(0, 60), st.integers(1, 8))


class TestBalanced:
    @given(sizes)
    def test_none_holds_more_than_ceil_n_over_m(self, size: tuple[int, int]) -> None:
        """With equal weights every name is placed and no member holds more than ceil(N/M)."""
        n, m = size
        placed = Balanced().place(names_of(n), members_of(m), {})
        assert set(names_of(n)) == set(placed)
        assert all(c <= math.ceil(n / m) for c in counts(placed).values())

    @given(sizes, st.randoms(use_true_random=False))
    def test_balanced_whatever_ran_where_before(self, size: tuple[int, int], rnd: object) -> None:
        """Starting from any placement (even all on one member, or on dead members), the result is balanced."""
        n, m = size
        everyone = [*members_of(m), Member("gone")]
        current = {name: rnd.choice(everyone).id for name in names_of(n)}  # type: ignore[attr-defined]
        placed = Balanced().place(names_of(n), members_of(m), current)
        assert all(c <= math.ceil(n / m) for c in counts(placed).values())
        assert "gone" not in placed.values()

    @given(sizes)
    def test_a_join_moves_at_most_ceil_n_over_m_plus_one(self, size: tuple[int, int]) -> None:
        """A member joining a balanced pool takes names from the others, no more than it needs."""
        n, m = size
        before = Balanced().place(names_of(n), members_of(m), {})
        after = Balanced().place(names_of(n), members_of(m + 1), before)
        assert len(moves(before, after)) <= math.ceil(n / (m + 1))
        assert len(moves(before, after)) <= math.ceil(n / m) + 1

    @given(sizes)
    def test_a_leave_moves_only_the_leavers_names(self, size: tuple[int, int]) -> None:
        """When a member goes, only its names move (the others stay where they run)."""
        n, m = size
        if m < 2:
            return
        before = Balanced().place(names_of(n), members_of(m), {})
        survivors = members_of(m)[:-1]
        after = Balanced().place(names_of(n), survivors, before)
        moved = {name for name in names_of(n) if before[name] != after[name]}
        assert moved == {name for name, member in before.items() if member == f"m{m - 1}"}

    @given(sizes)
    def test_stable_when_nothing_changes(self, size: tuple[int, int]) -> None:
        """Placing again from its own result moves nothing."""
        n, m = size
        once = Balanced().place(names_of(n), members_of(m), {})
        assert once == Balanced().place(names_of(n), members_of(m), once)

    def test_weights_share_the_names(self) -> None:
        """A member of weight 3 gets three times the names of one of weight 1."""
        placed = Balanced().place(names_of(40), [Member("big", 3.0), Member("small", 1.0)], {})
        assert {"big": 30, "small": 10} == counts(placed)

    def test_priority_takes_the_remainder(self) -> None:
        """With names left over after equal shares, the higher priority members take them."""
        placed = Balanced().place(names_of(4), [Member("a", priority=0), Member("b", priority=5), Member("c")], {})
        assert {"b": 2, "a": 1, "c": 1} == counts(placed)

    @given(st.integers(1, 40), st.integers(1, 6))
    def test_quotas_add_up(self, n: int, m: int) -> None:
        """The quotas sum to the names, each floor or ceil of the share."""
        q = quotas(n, members_of(m))
        assert n == sum(q.values())
        assert all(math.floor(n / m) <= v <= math.ceil(n / m) for v in q.values())

    def test_pins_keep_a_name_on_its_member(self) -> None:
        """A pinned name runs on its member while that member is live; a pin to a dead one is ignored."""
        placed = Balanced().place(names_of(6), members_of(3), {}, pins={"shard-0": "m2", "shard-1": "gone"})
        assert "m2" == placed["shard-0"]
        assert placed["shard-1"] in {"m0", "m1", "m2"}

    @given(st.integers(2, 6), st.integers(0, 30))
    def test_anti_affinity_keeps_a_group_apart(self, m: int, extra: int) -> None:
        """The names of one group run on different members when there are as many members as names in it."""
        group = [f"g{i}" for i in range(m)]
        placed = Balanced().place([*group, *names_of(extra)], members_of(m), {}, apart=[group])
        assert m == len({placed[g] for g in group})

    def test_anti_affinity_moves_a_clashing_name(self) -> None:
        """Two group-mates found on one member are separated."""
        current = {"a": "m0", "b": "m0"}
        placed = Balanced().place(["a", "b"], members_of(2), current, apart=[{"a", "b"}])
        assert placed["a"] != placed["b"]


class TestHashRing:
    @given(sizes)
    def test_a_join_moves_only_names_to_the_newcomer(self, size: tuple[int, int]) -> None:
        """On the ring a join moves names only onto the new member, never between old ones."""
        n, m = size
        ring = HashRing()
        before = ring.place(names_of(n), members_of(m), {})
        after = ring.place(names_of(n), members_of(m + 1), before)
        assert all(after[name] == f"m{m}" for name in moves(before, after))

    @given(sizes)
    def test_a_leave_moves_only_the_leavers_names(self, size: tuple[int, int]) -> None:
        """On the ring a leave moves only the names that were on the member that left."""
        n, m = size
        if m < 2:
            return
        ring = HashRing()
        before = ring.place(names_of(n), members_of(m), {})
        after = ring.place(names_of(n), members_of(m)[:-1], before)
        assert all(before[name] == f"m{m - 1}" for name in moves(before, after))

    @settings(max_examples=20)
    @given(st.integers(2, 5))
    def test_roughly_balanced(self, m: int) -> None:
        """With enough virtual nodes no member is far above its share."""
        placed = HashRing(replicas=128).place(names_of(400), members_of(m), {})
        assert max(counts(placed).values()) <= 2 * 400 / m

    def test_anti_affinity_walks_on(self) -> None:
        """Group-mates that hash to one member are spread by walking the ring."""
        group = names_of(3)
        placed = HashRing().place(group, members_of(3), {}, apart=[group])
        assert 3 == len(set(placed.values()))

    def test_pins(self) -> None:
        """A pin beats the ring."""
        assert "m1" == HashRing().place(["x"], members_of(2), {}, pins={"x": "m1"})["x"]
