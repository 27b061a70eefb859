"""One member's side on fakeredis with a fake clock: it claims what is assigned, hands over
kindly with the state, and stops everything when its ownership may have lapsed: its deadline
passed, a confirmation came only after its lease ended (a thaw), or its registered connection
dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from leaderpool.backend.protocol import LeaderValue
from leaderpool.config import MemberConfig
from leaderpool.singletons.owner import LOST, MOVED, Owner
from leaderpool.singletons.placement import Balanced
from leaderpool.singletons.placer import plan
from leaderpool.singletons.singleton_store import SingletonStore
from leaderpool.util.log import get_logger
from tests.singletons.test_singleton_scripts import POOL, live, run

TTL_S = 3.0


class FakeMember:
    def __init__(self, run_id: str, clock: list[float]) -> None:
        self.joined = True
        self.incarnation = run_id
        self._clock = clock
        self.lease_until = clock[0] + TTL_S

    @property
    def lease_until(self) -> float:
        return self._lease_until

    @lease_until.setter
    def lease_until(self, value: float) -> None:
        """A heartbeat's reply: it comes in now."""
        self._lease_until, self.lease_seen = value, self._clock[0]
        self.cid: int | None = None  # no fast failover unless a test subscribes a connection channel
        self.reg = ""

    def registration(self) -> str:
        return self.reg

    def client_id(self) -> int | None:
        return self.cid


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, Any]] = []

    async def started(self, name: str, term: int, state: Any) -> None:
        self.events.append(("start", name, term, state))

    async def stopped(self, name: str, term: int, reason: str) -> Any:
        self.events.append(("stop", name, term, reason))
        return {"by": "me", "term": term}


def owner_of(client: fakeredis.FakeAsyncRedis, member: str, clock: list[float]) -> tuple[Owner, FakeMember, Recorder]:
    view, rec = FakeMember(f"run-{member}", clock), Recorder()
    config = MemberConfig(pool=POOL, member_id=member, ttl_s=TTL_S)
    owner = Owner(config, SingletonStore(client, POOL), view, rec, lambda: clock[0], get_logger("test"))
    return owner, view, rec


async def placed(client: fakeredis.FakeAsyncRedis, assignment: dict[str, str]) -> None:
    store = SingletonStore(client, POOL)
    await store.add(sorted(assignment))
    await client.set(store.keys.leader, LeaderValue(1, "a").encode())
    await store.assign(LeaderValue(1, "a"), assignment)


class TestOwner:
    def test_claims_what_is_assigned_and_starts_it(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a", "y": "a"})
            owner, _, rec = owner_of(fake_client, "a", clock)
            await owner.turn()
            assert {"x": 1, "y": 1} == owner.held
            assert [("start", "x", 1, None), ("start", "y", 1, None)] == rec.events

        run(go())

    def test_a_move_is_a_kind_hand_off_with_the_state(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """Reassigned: the old owner stops and saves, then the new one starts from that state, term+1."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await live(fake_client, "b", "run-b")
            await placed(fake_client, {"x": "a"})
            a, _, rec_a = owner_of(fake_client, "a", clock)
            b, _, rec_b = owner_of(fake_client, "b", clock)
            await a.turn()
            await SingletonStore(fake_client, POOL).assign(LeaderValue(1, "a"), {"x": "b"})
            await b.turn()
            assert {} == b.held  # refused: a still owns it
            await a.turn()
            await b.turn()
            assert ("stop", "x", 1, MOVED) == rec_a.events[-1]
            assert [("start", "x", 2, {"by": "me", "term": 1})] == rec_b.events

        run(go())

    def test_stops_everything_once_its_deadline_passes(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """No confirmation until the deadline (Redis away, a long pause): all stop, reason lost."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, _, rec = owner_of(fake_client, "a", clock)
            await owner.turn()
            clock[0] = owner.deadline + 0.001
            await owner.turn()
            assert ("stop", "x", 1, LOST) == rec.events[1]
            assert [("start", "x", 2, None)] == rec.events[2:]  # still assigned here: again, with a term of its own

        run(go())

    def test_a_heartbeat_seen_before_the_deadline_keeps_everything(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """The election's heartbeat renewed the lease between two turns, in time: the owner, waking
        at its old deadline, takes the renewal in before judging (a 1 s lease's survivors used to stop
        all they ran here, their turn out of step with the heartbeat)."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, view, rec = owner_of(fake_client, "a", clock)
            await owner.turn()
            old = owner.deadline
            clock[0] = old - 0.05
            view.lease_until = clock[0] + TTL_S  # the heartbeat's reply came in now, before the deadline
            clock[0] = old + 0.001
            await owner.turn()
            assert [("start", "x", 1, None)] == rec.events
            assert owner.deadline > clock[0]

        run(go())

    def test_a_heartbeat_seen_after_the_deadline_does_not_save_it(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """The renewal came in after the deadline (the lease may have lapsed meanwhile): all stop."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, view, rec = owner_of(fake_client, "a", clock)
            await owner.turn()
            clock[0] = owner.deadline + 0.001
            view.lease_until = clock[0] + TTL_S
            await owner.turn()
            assert ("stop", "x", 1, LOST) == rec.events[1]

        run(go())

    def test_work_that_ended_on_its_own_is_given_up_and_claimed_again(
        self, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        """The work saw the deadline pass, then a confirmation sent in time extended it: the owner
        still holds the singleton with nothing running. give_up stops it (lost), releases it, and
        the next turn claims it again with a new term (seen in a chaos run: 30 s held, idle)."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, _, rec = owner_of(fake_client, "a", clock)
            await owner.turn()
            assert not await owner.give_up("x", 7, "wrong term")  # not held with that term: nothing
            assert await owner.give_up("x", 1, "its work ended")
            assert {} == owner.held and ("stop", "x", 1, LOST) == rec.events[1]
            assert (await SingletonStore(fake_client, POOL).list())[0].member is None  # released
            await owner.turn()
            assert {"x": 2} == owner.held and ("start", "x", 2, None) == rec.events[2]

        run(go())

    def test_a_thawed_member_is_not_saved_by_its_next_beat(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """Frozen past its lease, its heartbeat may refresh the lapsed lease: that beat was sent after
        the lease it knew had ended, so it does not extend the ownership: all stop."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, view, rec = owner_of(fake_client, "a", clock)
            await owner.turn()
            clock[0] += 60.0
            view.lease_until = clock[0] + TTL_S - 0.01
            await owner.turn()
            assert ("stop", "x", 1, LOST) == rec.events[1]

        run(go())

    def test_what_stopped_at_its_deadline_is_released_for_the_next_owner(
        self, fake_client: fakeredis.FakeAsyncRedis
    ) -> None:
        """Stopped as lost while Redis still says it is ours (a slow loop): the next turn releases
        it, so the member it went to is not refused forever."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await live(fake_client, "b", "run-b")
            await placed(fake_client, {"x": "a"})
            a, _, _ = owner_of(fake_client, "a", clock)
            b, _, rec_b = owner_of(fake_client, "b", clock)
            await a.turn()
            await SingletonStore(fake_client, POOL).assign(LeaderValue(1, "a"), {"x": "b"})
            clock[0] = a.deadline + 0.001
            await a.turn()
            await b.turn()
            assert [("start", "x", 2, None)] == rec_b.events

        run(go())

    def test_a_claim_whose_reply_was_lost_is_released_if_no_longer_ours(
        self, fake_client: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The claim ran in Redis but its reply never came (a timeout): Redis names us owner of a
        name we do not run. Reassigned elsewhere meanwhile, our next turn frees it (any term of
        ours), so its new owner is not refused forever while we live."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await live(fake_client, "b", "run-b")
            await placed(fake_client, {"x": "a"})
            a, _, rec_a = owner_of(fake_client, "a", clock)
            b, _, rec_b = owner_of(fake_client, "b", clock)
            real_claim = a.store.claim

            async def lost_reply(*args: Any, **kwargs: Any) -> Any:
                await real_claim(*args, **kwargs)
                raise TimeoutError

            monkeypatch.setattr(a.store, "claim", lost_reply)
            with pytest.raises(TimeoutError):
                await a.turn()
            monkeypatch.undo()
            assert {} == a.held and [] == rec_a.events
            await SingletonStore(fake_client, POOL).assign(LeaderValue(1, "a"), {"x": "b"})
            await b.turn()
            assert [] == rec_b.events  # held by a, live
            await a.turn()
            await b.turn()
            assert [("start", "x", 2, None)] == rec_b.events

        run(go())

    def test_a_release_that_failed_is_retried(
        self, fake_client: fakeredis.FakeAsyncRedis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Redis did not answer the release: it is owed, and the next turn sends it with the state."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await live(fake_client, "b", "run-b")
            await placed(fake_client, {"x": "a"})
            a, _, _ = owner_of(fake_client, "a", clock)
            b, _, rec_b = owner_of(fake_client, "b", clock)
            await a.turn()
            await SingletonStore(fake_client, POOL).assign(LeaderValue(1, "a"), {"x": "b"})

            async def refused(*args: Any, **kwargs: Any) -> list[str]:
                raise ConnectionError("redis away")

            monkeypatch.setattr(a.store, "release", refused)
            with pytest.raises(ConnectionError):
                await a.turn()
            monkeypatch.undo()
            await b.turn()
            assert [] == rec_b.events  # still owed: b waits
            await a.turn()
            await b.turn()
            assert [("start", "x", 2, {"by": "me", "term": 1})] == rec_b.events

        run(go())

    def test_a_state_that_is_not_json_keeps_the_last_saved(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """on_stop returned something JSON cannot hold: logged, the release goes on without it."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, _, _ = owner_of(fake_client, "a", clock)
            await owner.turn()

            class NotJson(Recorder):
                async def stopped(self, name: str, term: int, reason: str) -> Any:
                    return {1, 2}

            owner.callbacks = NotJson()
            await owner.leave(1.0)
            store = SingletonStore(fake_client, POOL)
            assert {} == (await store.survey()).owners
            assert await fake_client.hget(store.keys.singleton_state, "x") is None

        run(go())

    def test_a_dropped_connection_stops_everything(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """The registered connection is gone (a claimer may prove it dead): stop at once."""

        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            pubsub = fake_client.pubsub()
            await pubsub.subscribe("leaderpool:conn:7")
            owner, view, rec = owner_of(fake_client, "a", clock)
            view.cid, view.reg = 7, "7|s"
            await owner.turn()
            assert {"x": 1} == owner.held
            view.cid, view.reg = 8, "8|s"
            await owner.turn()
            assert ("stop", "x", 1, LOST) == rec.events[1]
            await pubsub.aclose()

        run(go())

    def test_leave_hands_everything_over(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        async def go() -> None:
            clock = [1000.0]
            await live(fake_client, "a", "run-a")
            await placed(fake_client, {"x": "a"})
            owner, _, _ = owner_of(fake_client, "a", clock)
            await owner.turn()
            await owner.leave(1.0)
            store = SingletonStore(fake_client, POOL)
            assert ([], {}) == ((await store.survey()).members, (await store.survey()).owners)
            assert b'{"term":1,"member":"a","data":{"by":"me","term":1}}' == await fake_client.hget(
                store.keys.singleton_state, "x"
            )

        run(go())


class TestPlan:
    def test_moves_are_bounded_and_dead_owners_replaced_at_once(self, fake_client: fakeredis.FakeAsyncRedis) -> None:
        """With max_moves 1, one running singleton moves per round; names with no live owner are placed at once."""

        async def go() -> None:
            clock = [1000.0]
            for m in ("a", "b"):
                await live(fake_client, m, f"run-{m}")
            names = {f"s{i}": "a" for i in range(4)}
            await placed(fake_client, names)
            a, _, _ = owner_of(fake_client, "a", clock)
            await a.turn()
            b, _, _ = owner_of(fake_client, "b", clock)
            await b.turn()  # registers b
            store = SingletonStore(fake_client, POOL)
            await store.add(["new"])
            changes = plan(await store.survey(), Balanced(), (), 1)
            assert "b" == changes.pop("new")
            assert 1 == len(changes) and {"b"} == set(changes.values())

        run(go())


def test_a_plain_loop_runs_and_stops(fake_client: fakeredis.FakeAsyncRedis) -> None:
    """The owner's loop turns until its stop event, then the leave hands over."""

    async def go() -> None:
        clock = [1000.0]
        await live(fake_client, "a", "run-a")
        await placed(fake_client, {"x": "a"})
        owner, _, rec = owner_of(fake_client, "a", clock)
        stop = asyncio.Event()
        task = asyncio.create_task(owner.run(stop))
        while not owner.held:
            await asyncio.sleep(0.01)
        stop.set()
        owner.alarm.ring()
        await task
        await owner.leave(1.0)
        assert ["start", "stop"] == [e[0] for e in rec.events]

    run(go())
