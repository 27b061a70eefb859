"""The singletons' scripts on fakeredis: a claim refuses while another live owner holds, terms
only go up, a release saves the state the next owner resumes from, the placer is fenced by its
lead, and a member's one call per beat confirms what it holds."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import fakeredis

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.singletons.singleton_store import ClaimStatus, SavedState, SingletonStore
from leaderpool.util.timeouts import within

POOL = "sp"


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 30))


async def live(client: fakeredis.FakeAsyncRedis, member: str, run_id: str, ttl_ms: int = 10_000) -> None:
    """Make ``member`` (run ``run_id``) a live member of the pool, as its join would."""
    ks = Keyspace(POOL)
    await client.zadd(ks.leases, {member: int(time.time() * 1000) + ttl_ms})
    await client.hset(ks.members, member, json.dumps({"priority": 0, "incarnation": run_id}, separators=(",", ":")))


async def lapse(client: fakeredis.FakeAsyncRedis, member: str) -> None:
    await client.zadd(Keyspace(POOL).leases, {member: 1})


async def setup(client: fakeredis.FakeAsyncRedis, names: list[str]) -> SingletonStore:
    store = SingletonStore(client, POOL)
    await store.add(names)
    for m in ("a", "b"):
        await live(client, m, f"run-{m}")
        await store.sync(m, f"run-{m}", "1|", "", {})
    await client.set(Keyspace(POOL).leader, LeaderValue(1, "a").encode())
    return store


class TestClaim:
    def test_only_what_is_assigned_is_claimed(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """A member claims a name assigned to it, and is refused one assigned elsewhere."""

        async def go() -> None:
            store = await setup(fake_client, ["x", "y"])
            assert await store.assign(LeaderValue(1, "a"), {"x": "a", "y": "b"})
            claims = await store.claim("a", "run-a", ["x", "y"])
            assert claims is not None
            assert [("x", ClaimStatus.CLAIMED, 1), ("y", ClaimStatus.REFUSED, 0)] == [
                (c.name, c.status, c.term) for c in claims
            ]

        run(go())

    def test_refused_while_a_live_owner_holds_then_granted_with_a_higher_term(
        self, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        """Never two owners: reassigned, the new member waits for the owner's release, then term+1 and its state."""

        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            (first,) = await store.claim("a", "run-a", ["x"]) or []
            await store.assign(LeaderValue(1, "a"), {"x": "b"})
            (held,) = await store.claim("b", "run-b", ["x"]) or []
            assert (ClaimStatus.HELD, "a", 1) == (held.status, held.holder, held.term)
            state = SavedState(first.term, "a", {"offset": 42})
            assert ["x"] == await store.release("a", "run-a", [("x", first.term, state)], leaving=False)
            (taken,) = await store.claim("b", "run-b", ["x"]) or []
            assert taken.state is not None
            assert (ClaimStatus.CLAIMED, 2, {"offset": 42}) == (taken.status, taken.term, taken.state.data)

        run(go())

    def test_a_lapsed_owner_loses_to_the_next(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """An owner whose lease ended holds nothing: the claim takes it with a higher term."""

        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            await store.claim("a", "run-a", ["x"])
            await lapse(fake_client, "a")
            await store.assign(LeaderValue(1, "a"), {"x": "b"})
            (taken,) = await store.claim("b", "run-b", ["x"]) or []
            assert (ClaimStatus.CLAIMED, 2) == (taken.status, taken.term)

        run(go())

    def test_another_run_of_the_owner_id_is_not_the_owner(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """A restarted process under the same id claims anew (term+1): the old run's ownership is dead."""

        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            await store.claim("a", "run-a", ["x"])
            await live(fake_client, "a", "run-a2")
            (again,) = await store.claim("a", "run-a2", ["x"]) or []
            assert (ClaimStatus.CLAIMED, 2) == (again.status, again.term)

        run(go())

    def test_a_member_that_is_not_live_claims_nothing(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            await lapse(fake_client, "a")
            assert await store.claim("a", "run-a", ["x"]) is None

        run(go())


class TestPlacer:
    def test_assign_is_fenced_by_the_lead(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """A placer whose lead is over writes nothing."""

        async def go() -> None:
            store = await setup(fake_client, ["x"])
            assert not await store.assign(LeaderValue(0, "a"), {"x": "a"})
            assert not await store.assign(LeaderValue(1, "b"), {"x": "b"})
            assert {} == (await store.survey()).assign

        run(go())

    def test_a_forgotten_members_registration_goes(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """A crashed member's registration is dropped once the pool pruned its lease."""

        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await fake_client.zrem(Keyspace(POOL).leases, "b")
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            assert [b"a"] == await fake_client.hkeys(Keyspace(POOL).singleton_members)

        run(go())

    def test_survey_sees_live_members_and_owners(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x", "y"])
            await store.assign(LeaderValue(1, "a"), {"x": "a", "y": "b"})
            await store.claim("a", "run-a", ["x"])
            await lapse(fake_client, "b")
            survey = await store.survey()
            assert ["a"] == [m.member for m in survey.members]
            assert ["x", "y"] == survey.names
            assert survey.owners["x"].live and 1 == survey.owners["x"].owner.term
            assert [("x", "a", 1), ("y", None, 0)] == [(s.name, s.member, s.term) for s in await store.list()]

        run(go())

    def test_removed_names_lose_their_assignment(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x", "y"])
            await store.assign(LeaderValue(1, "a"), {"x": "a", "y": "a"})
            assert 1 == await store.remove(["y"])
            survey = await store.survey()
            assert (["x"], {"x": "a"}) == (survey.names, survey.assign)

        run(go())

    def test_the_tools_functions_list_and_move(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """What the CLI builds on: {name, member, term} per singleton, and move as a pin."""

        async def go() -> None:
            from leaderpool.singletons import list_singletons, move_singleton

            store = await setup(fake_client, ["x"])
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            await store.claim("a", "run-a", ["x"])
            assert [{"name": "x", "member": "a", "term": 1}] == [
                s.as_json() for s in await list_singletons(fake_client, POOL)
            ]
            assert await move_singleton(fake_client, POOL, "x", "b")
            assert {"x": "b"} == (await store.survey()).pins

        run(go())

    def test_a_pin_needs_a_singleton(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x"])
            assert await store.pin("x", "b")
            assert not await store.pin("nope", "b")
            assert {"x": "b"} == (await store.survey()).pins

        run(go())


class TestSync:
    def test_one_call_confirms_what_is_held_and_lists_the_assignment_when_it_moved(
        self, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        """The beat's call reports lost names and, only when the epoch moved, the names assigned."""

        async def go() -> None:
            store = await setup(fake_client, ["x", "y"])
            await store.assign(LeaderValue(1, "a"), {"x": "a", "y": "a"})
            await store.claim("a", "run-a", ["x", "y"])
            first = await store.sync("a", "run-a", "1|", "", {"x": 1, "y": 1})
            assert (True, ["x", "y"], []) == (first.live, sorted(first.assigned or []), first.lost)
            same = await store.sync("a", "run-a", "1|", first.epoch, {"x": 1, "y": 1})
            assert same.assigned is None
            await store.assign(LeaderValue(1, "a"), {"y": "b"})
            await store.release("a", "run-a", [("y", 1, None)], leaving=False)
            moved = await store.sync("a", "run-a", "1|", same.epoch, {"x": 1, "y": 1})
            assert (["x"], ["y"]) == (moved.assigned, moved.lost)

        run(go())

    def test_terms_never_go_back_after_redis_lost_them(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """A member still running a singleton at term 5 reports it: the next claim gets 6, not 1."""

        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.sync("a", "run-a", "1|", "", {"x": 5})  # its record is gone: lost, but the term stays
            await store.assign(LeaderValue(1, "a"), {"x": "b"})
            (claim,) = await store.claim("b", "run-b", ["x"]) or []
            assert 6 == claim.term

        run(go())

    def test_a_lapsed_member_holds_nothing(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await lapse(fake_client, "a")
            reply = await store.sync("a", "run-a", "1|", "", {"x": 1})
            assert (False, ["x"]) == (reply.live, reply.lost)

        run(go())

    def test_a_late_save_by_a_deposed_owner_is_refused(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.assign(LeaderValue(1, "a"), {"x": "a"})
            await store.claim("a", "run-a", ["x"])
            assert await store.save("a", "run-a", "x", SavedState(1, "a", 1))
            await lapse(fake_client, "a")
            await store.assign(LeaderValue(1, "a"), {"x": "b"})
            await store.claim("b", "run-b", ["x"])
            assert not await store.save("a", "run-a", "x", SavedState(1, "a", 2))

        run(go())

    def test_leaving_removes_the_registration(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            store = await setup(fake_client, ["x"])
            await store.release("b", "run-b", [], leaving=True)
            assert ["a"] == [m.member for m in (await store.survey()).members]

        run(go())
