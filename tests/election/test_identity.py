"""Member identity on fakeredis: one member id, one live run. The scripts act for a member only
when the record under its id is its own incarnation's, a register is refused while another
live incarnation (or a lead under the id) holds it, and a second election under a held id ends
with MemberIdInUse while the first goes on leading."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import structlog

from leaderpool import ConfigError, Election, MemberConfig, MemberIdInUse
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import LeaderValue, PoolStore
from leaderpool.backend.protocol import BeatStatus, ClaimStatus, Joined
from leaderpool.election.identity import IdHolder, new_incarnation
from leaderpool.members import MemberInfo
from leaderpool.names.registry import NameStore, RegisterStatus
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import within
from tests.support.helpers import Recorder, leaders

KEYS = Keyspace("p")
X, Y = "aaaa000000000001", "bbbb000000000002"


@pytest.fixture(autouse=True)
def _structlog_left_unconfigured() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


def record(incarnation: str, pid: int = 1) -> MemberInfo:
    return MemberInfo("m", "n", "h", pid, 0, 1000, {}, incarnation=incarnation, since_ms=1000)


def store(server: fakeredis.FakeServer) -> tuple[PoolStore, fakeredis.FakeAsyncRedis]:
    """A pool's store, and its client for the test's own reads and writes."""
    client = fakeredis.FakeAsyncRedis(server=server)
    return PoolStore(client, KEYS), client


class TestRegister:
    def test_a_live_record_of_another_run_refuses_the_id_and_names_its_holder(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """X registered: Y is refused, told X's record and lease; X's record is untouched."""

        async def main() -> None:
            s, _raw = store(fake_server)
            assert (await s.register(record(X, pid=11), 5000)).joined
            refused = await s.register(record(Y, pid=22), 5000)
            assert not refused.joined
            assert refused.holder is not None and (X, 11) == (refused.holder.incarnation, refused.holder.pid)
            assert 4000 < refused.holder.lease_ms <= 5000 and -2 == refused.lead_pttl_ms
            obs = await s.observe()
            assert [X] == [m.incarnation for m in obs.members]

        run(main())

    def test_the_same_run_registers_again_and_a_lapsed_record_frees_the_id(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """X may rejoin under its own record; once X's lease lapsed, Y joins in its place."""

        async def main() -> None:
            s, _raw = store(fake_server)
            assert (await s.register(record(X), 5000)).joined
            assert (await s.register(record(X), 50)).joined  # X again (a rejoin)
            await asyncio.sleep(0.1)  # X's lease (50 ms) lapses
            assert (await s.register(record(Y), 5000)).joined
            assert [Y] == [m.incarnation for m in (await s.observe()).members]

        run(main())

    def test_a_holder_proved_dead_is_replaced_though_its_lease_runs(self, fake_server: fakeredis.FakeServer) -> None:
        """``replace`` names X (proved dead): Y takes the id at once; naming another run does not."""

        async def main() -> None:
            s, _raw = store(fake_server)
            assert (await s.register(record(X), 5000)).joined
            assert not (await s.register(record(Y), 5000, replace="cccc000000000003")).joined
            assert (await s.register(record(Y), 5000, replace=X)).joined

        run(main())

    def test_a_lead_under_the_id_is_never_inherited(self, fake_server: fakeredis.FakeServer) -> None:
        """X leads term 1; even with X proved dead (or its record gone), Y is refused while the lead runs."""

        async def main() -> None:
            s, raw = store(fake_server)
            assert (await s.register(record(X), 5000)).joined
            assert ClaimStatus.ELECTED == (await s.claim("m", 5000, 0, incarnation=X)).status
            refused = await s.register(record(Y), 5000, replace=X)
            assert not refused.joined and 4000 < refused.lead_pttl_ms <= 5000
            await raw.hdel(KEYS.members, "m")
            assert not (await s.register(record(Y), 5000)).joined
            await raw.delete(KEYS.leader)
            assert (await s.register(record(Y), 5000)).joined

        run(main())

    def test_without_an_incarnation_nothing_is_checked(self, fake_server: fakeredis.FakeServer) -> None:
        """Tools (and records of earlier versions) register as before."""

        async def main() -> None:
            s, _raw = store(fake_server)
            assert (await s.register(record(X), 5000)).joined
            assert (await s.register(record(""), 5000)).joined

        run(main())


class TestActingForAnotherRun:
    async def _x_leads(self, s: PoolStore) -> LeaderValue:
        assert (await s.register(record(X), 5000)).joined
        claimed = await s.claim("m", 5000, 0, incarnation=X)
        assert ClaimStatus.ELECTED == claimed.status
        return LeaderValue(claimed.term, "m")

    def test_another_runs_beat_neither_refreshes_the_lease_nor_renews_the_lead(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """Y beats holding X's lead value: UNKNOWN_MEMBER, and the lease and lead keep their deadlines."""

        async def main() -> None:
            s, raw = store(fake_server)
            held = await self._x_leads(s)
            await raw.pexpire(KEYS.leader, 3000)
            lease = await raw.zscore(KEYS.leases, "m")
            beat = await s.heartbeat("m", 5000, held, False, incarnation=Y)
            assert BeatStatus.UNKNOWN_MEMBER == beat.status
            assert lease == await raw.zscore(KEYS.leases, "m")
            assert await raw.pttl(KEYS.leader) <= 3000
            assert BeatStatus.OK == (await s.heartbeat("m", 5000, held, False, incarnation=X)).status

        run(main())

    def test_another_run_can_neither_claim_nor_leave_for_the_record(self, fake_server: fakeredis.FakeServer) -> None:
        """Y's claim is NOT_MEMBER; Y's leave removes nothing and ends no lead."""

        async def main() -> None:
            s, raw = store(fake_server)
            held = await self._x_leads(s)
            await raw.delete(KEYS.leader)
            assert ClaimStatus.NOT_MEMBER == (await s.claim("m", 5000, 0, incarnation=Y)).status
            again = await s.claim("m", 5000, 0, incarnation=X)
            assert ClaimStatus.ELECTED == again.status and again.term > held.term
            left = await s.leave("m", "shutdown", incarnation=Y)
            assert (False, 0) == (left.was_member, left.released_term)
            assert (await s.leader_record()) is not None
            assert [X] == [m.incarnation for m in (await s.observe()).members]

        run(main())

    def test_a_glance_at_another_runs_record_says_no_lease(self, fake_server: fakeredis.FakeServer) -> None:
        """For Y, the record under its id is not its own: no lease (it rejoins, and is refused)."""

        async def main() -> None:
            s, _raw = store(fake_server)
            await self._x_leads(s)
            assert (await s.glance("m", X)).lease_ms is not None
            assert (await s.glance("m", Y)).lease_ms is None

        run(main())


class TestNames:
    def test_a_name_held_by_one_run_is_neither_kept_nor_freed_by_another(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """X holds "svc"; Y can neither register it, unregister it, nor drop it from its beat."""

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            s, names = PoolStore(client, KEYS), NameStore(client, "leaderpool")
            assert (await s.register(record(X), 5000)).joined
            reg = await names.register(KEYS, "m", "n", "svc", None, incarnation=X)
            assert RegisterStatus.REGISTERED == reg.status
            refused = await names.register(KEYS, "m", "n", "svc", None, incarnation=Y)
            assert RegisterStatus.NOT_MEMBER == refused.status
            assert await names.unregister("svc", ("p", "m"), incarnation=Y) is None
            beat, lost = await names.heartbeat(KEYS, "m", 5000, None, False, 0, ["svc"], incarnation=Y)
            assert BeatStatus.UNKNOWN_MEMBER == beat.status and ["svc"] == lost
            assert ["svc"] == [o.name for o in await names.read()]  # still X's
            assert await names.unregister("svc", ("p", "m"), incarnation=X) is not None

        run(main())


class TestIdHolder:
    """What a refused member makes of the holder (no liveness endpoint here: it watches the lease)."""

    @staticmethod
    def refusal(now_ms: int, lease_ms: int, incarnation: str = X, lead_pttl_ms: int = -2) -> Joined:
        holder = MemberInfo("m", "n", "h", 7, 0, 1000, {}, lease_ms, "", incarnation, 1000)
        return Joined(False, now_ms, holder, lead_pttl_ms)

    def test_a_holder_whose_lease_moves_on_is_live(self) -> None:
        """The deadline moved between two reads: it beats, so the id is in use (a ConfigError)."""

        async def main() -> None:
            holder = IdHolder(MemberConfig(pool="p", member_id="m", ttl_s=3), time.monotonic, get_logger("t"))
            wait = await holder.refused(self.refusal(10_000, 2000))
            assert 0 < wait <= 0.6
            assert 0 < await holder.refused(self.refusal(10_500, 1500))  # the same deadline: waiting
            with pytest.raises(MemberIdInUse) as caught:
                await holder.refused(self.refusal(11_000, 2900))
            assert isinstance(caught.value, ConfigError)
            assert (7, "h", X) == (caught.value.holder_pid, caught.value.holder_host, caught.value.holder_incarnation)
            assert "member id 'm' is in use in pool 'p'" in str(caught.value) and "pid 7 on host h" in str(caught.value)

        run(main())

    def test_waits_are_bounded_by_the_lease_and_the_lead_left(self) -> None:
        """A frozen holder's lease, then a lead under the id: each wait ends a little past it."""

        async def main() -> None:
            holder = IdHolder(MemberConfig(pool="p", member_id="m", ttl_s=3), time.monotonic, get_logger("t"))
            assert 0.05 < await holder.refused(self.refusal(10_000, 50)) < 0.1
            gone = Joined(False, 10_100, None, 30)
            assert 0.03 < await holder.refused(gone) < 0.05

        run(main())


class TestTwoElectionsOneId:
    def test_the_second_ends_with_member_id_in_use_and_the_first_leads_on(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """Same id twice: the second's wait raises MemberIdInUse naming the first; one member, one leader."""

        async def main() -> None:
            rec = Recorder()
            first = rec.election("p", "same", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=0.6)
            await first.start()
            await first.wait_until_leader(10)
            second = rec.election("p", "same", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=0.6)
            await second.start()
            with pytest.raises(MemberIdInUse) as caught:
                await second.wait_for_leader(10)
            assert caught.value.holder_incarnation == first.core.membership.incarnation
            with pytest.raises(MemberIdInUse):
                await second.stop()
            await asyncio.sleep(1.0)  # beyond a lease: the first still leads, in its first term
            assert ["same"] == leaders([first]) and 1 == first.term
            obs = await first.core.store.observe()
            assert [first.core.membership.incarnation] == [m.incarnation for m in obs.members]
            assert [1] == rec.of("same", "elected")
            await first.stop()

        run(main())

    def test_each_election_is_a_new_incarnation(self) -> None:
        """Two elections (two runs) never share an incarnation; tokens are hex."""
        tokens = {new_incarnation() for _ in range(100)}
        assert 100 == len(tokens) and all(int(t, 16) >= 0 for t in tokens)


class TestHandOverToALapsedRun:
    def test_a_grant_heard_past_our_own_lease_is_confirmed_before_acting(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """A hand-over announced to our id while our lease has run out by our own clock (we were
        frozen: another run may hold the id now) is not acted on at once; within it, it is."""

        async def main() -> None:
            rec = Recorder()
            a = rec.election("p", "a", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=3)
            await a.start()
            term = await a.wait_until_leader(10)
            b = rec.election("p", "b", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=3)
            await b.start()
            await b.wait_for_leader(10)
            core = b.core
            sample = core.view.redis_clock
            assert sample is not None
            granted_ms = sample[1] + round((time.monotonic() - sample[0]) * 1000)  # now, on Redis's clock
            lease_until = core.membership.lease_until
            core.membership.lease_until = time.monotonic() - 0.001  # as if frozen past our lease
            core.contest.accept_handoff(term + 1, granted_ms, core.membership.incarnation)
            assert not b.is_leader and core.wakeups.pending.dirty
            core.membership.lease_until = lease_until  # our lease runs: the same grant is acted on
            core.contest.accept_handoff(term + 1, granted_ms, core.membership.incarnation)
            assert b.is_leader
            await b.stop()
            await a.stop()

        run(main())


class TestBlockingFace:
    def test_the_blocking_election_raises_the_same_error(self, redis_one: RedisServer) -> None:
        """The blocking face drives the same core: its wait and its stop raise MemberIdInUse."""
        config = MemberConfig(pool="p", member_id="same", ttl_s=1)
        first, second = Election(config, redis_one.url), Election(config, redis_one.url)
        first.start()
        try:
            assert 1 == first.wait_until_leader(20)
            second.start()
            with pytest.raises(MemberIdInUse) as caught:
                second.wait_for_leader(20)
            assert os.getpid() == caught.value.holder_pid
            with pytest.raises(MemberIdInUse):
                second.stop()
            assert first.is_leader and 1 == first.term
        finally:
            first.stop()
