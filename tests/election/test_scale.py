"""Scale: what a join, a leave and an election cost a big pool (issue 13).

Every member of a pool hears every join, leave and election. With the default ranking kept in
Redis (the ranking zset), only the members a change can concern look again, each with a glance
of O(log N) work; nobody lists the whole pool. The old behaviour (every member re-reads every
record on every join: O(N^2) per join) fails these tests, as do custom rankers deliberately: they
need the whole listing and pay for it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis.exceptions

from leaderpool import AsyncElection
from leaderpool.backend.pool_store import PoolStore
from leaderpool.util.timeouts import within
from tests.support.helpers import Recorder, eventually, leaders, start_all, stop_all

N = 40
SLOW: dict[str, Any] = {"ttl_s": 6.0}  # few beats in the window: the count is the changes' own cost


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts full listings (``observe``, and the members they returned) and glances."""
    seen: Counter[str] = Counter()
    observe, glance = PoolStore.observe, PoolStore.glance

    async def counted_observe(self: PoolStore, **kw: Any) -> Any:
        obs = await observe(self, **kw)
        seen["observe"] += 1
        seen["records"] += len(obs.members)
        return obs

    async def counted_glance(self: PoolStore, member: str, incarnation: str = "") -> Any:
        seen["glance"] += 1
        return await glance(self, member, incarnation)

    monkeypatch.setattr(PoolStore, "observe", counted_observe)
    monkeypatch.setattr(PoolStore, "glance", counted_glance)
    yield seen


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 60))


async def _pool(server: fakeredis.FakeServer, rec: Recorder, n: int, **config: Any) -> list[AsyncElection]:
    client = fakeredis.FakeAsyncRedis(server=server)  # one connection for the whole process
    members = [rec.election("big", f"m{i:03d}", client, **{**SLOW, **config}) for i in range(n)]
    await start_all(members, gap=0.002)
    await eventually(lambda: len(leaders(members)) == 1 and all(m.leader for m in members))
    await asyncio.sleep(0.3)  # the last joins' looks settle
    return members


async def _quiet(seen: Counter[str]) -> None:
    """Wait until the looks a change made due have happened (they run 20 ms after it)."""
    last = -1
    for _ in range(50):
        await asyncio.sleep(0.1)
        if seen.total() == last:
            return
        last = seen.total()


class TestLinearCost:
    def test_a_join_is_looked_at_by_the_few_it_concerns(
        self, fake_server: fakeredis.FakeServer, reads: Counter[str]
    ) -> None:
        """A newcomer to a pool of N: no member lists the pool; the newcomer, the leader and the
        next in line glance (O(log N) each), the other N - 2 do nothing."""

        async def main() -> None:
            rec = Recorder()
            members = await _pool(fake_server, rec, N)
            reads.clear()
            late = rec.election("big", "z-late", fakeredis.FakeAsyncRedis(server=fake_server), **SLOW)
            await late.start()
            await eventually(lambda: late.leader is not None and late.leader.member == "m000")
            await _quiet(reads)
            assert 0 == reads["records"], reads
            assert reads["glance"] <= 4, reads
            await stop_all([late, *members])

        run(main())

    def test_the_next_in_line_leaving_costs_one_glance_each(
        self, fake_server: fakeredis.FakeServer, reads: Counter[str]
    ) -> None:
        """When the next in line leaves, the new one must learn it is: each member glances once
        (O(N log N) in all), none lists the pool; and the new next in line is the right one."""

        async def main() -> None:
            rec = Recorder()
            members = await _pool(fake_server, rec, N)
            assert "m001" == members[5].core.view.successor_id
            reads.clear()
            await members[1].stop()
            await _quiet(reads)
            assert 0 == reads["records"], reads
            assert reads["glance"] <= N + 2, reads
            assert {"m002"} == {m.core.view.successor_id for m in members if m is not members[1]}
            assert members[2].core.view.successor
            await stop_all([m for m in members if m is not members[1]])

        run(main())

    def test_a_hand_over_costs_one_glance_each_and_no_listing(
        self, fake_server: fakeredis.FakeServer, reads: Counter[str]
    ) -> None:
        """The leader stops: it hands to the next in line (who Redis's ranking named at its last
        beat), everyone confirms with a glance, nobody lists the pool."""

        async def main() -> None:
            rec = Recorder()
            members = await _pool(fake_server, rec, N)
            reads.clear()
            await members[0].stop()
            await members[1].wait_until_leader(5)
            # each member's confirming glance is due 20 ms after it heard the hand-over, but on a
            # loaded machine 40 members' looks may run later than a quiet 100 ms: wait for what
            # they learn (every one names the new next in line), then count what it cost
            await eventually(lambda: {"m002"} == {m.core.view.successor_id for m in members[1:]})
            await _quiet(reads)
            assert 0 == reads["records"], reads
            assert reads["glance"] <= 2 * N, reads
            await stop_all(members[1:])

        run(main())

    def test_a_custom_ranker_pays_for_the_listing(self, fake_server: fakeredis.FakeServer, reads: Counter[str]) -> None:
        """A custom ranker needs every record: a join makes every member list the pool (so the
        counts above are what the ranking in Redis saves)."""

        async def main() -> None:
            rec = Recorder()
            members = await _pool(fake_server, rec, 10, ranker=lambda ms: sorted(ms, key=lambda m: m.member))
            reads.clear()
            late = rec.election("big", "z-late", fakeredis.FakeAsyncRedis(server=fake_server), **SLOW)
            await late.start()
            await _quiet(reads)
            assert reads["observe"] >= 10, reads
            await stop_all([late, *members])

        run(main())


def test_the_ranking_follows_priority_then_age(fake_server: fakeredis.FakeServer) -> None:
    """Redis's ranking agrees with the default ranker: a higher priority is next in line even
    though it joined last, and a resigned member ranks last."""

    async def main() -> None:
        rec = Recorder()
        members = await _pool(fake_server, rec, 4)
        high = rec.election("big", "z-high", fakeredis.FakeAsyncRedis(server=fake_server), priority=5, **SLOW)
        await high.start()
        await eventually(lambda: high.core.view.successor)
        await eventually(lambda: members[1].core.view.successor_id == "z-high")  # it was next: it looked
        assert not any(m.core.view.successor for m in members[1:])
        await members[0].resign()
        await high.wait_until_leader(5)
        await eventually(lambda: members[1].core.view.successor, timeout=15)
        await stop_all([high, *members])

    run(main())


def test_a_beat_costs_the_same_in_a_pool_of_3_and_of_40(redis_one: Any) -> None:
    """Steady state on a real Redis: one EVALSHA per member per beat, and the commands it runs
    inside (commandstats counts them) do not grow with the pool: no listing on a beat.

    About one beat in eight (by Redis's millisecond clock) also reads the ranking's head (and the
    member's own record), so the average per beat is a sample: 13 pools of 3 beside one pool of 40
    give both sides about 200 beats in the window. The 13 leaders' renewals make the small side's
    average slightly higher, never lower."""
    import redis.asyncio

    async def per_beat(pools: int, size: int) -> float:
        rec = Recorder()
        members = [
            rec.election(f"size{size}-{p}", f"m{i:03d}", redis_one.url, ttl_s=0.9)
            for p in range(pools)
            for i in range(size)
        ]
        await start_all(members, gap=0.002)
        await eventually(lambda: all(m.leader is not None for m in members), timeout=20)
        await asyncio.sleep(0.6)
        client = redis.asyncio.Redis.from_url(redis_one.url)
        await client.config_resetstat()
        await asyncio.sleep(1.5)
        stats = await client.info("commandstats")
        sent = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        await client.aclose()
        await stop_all(members)
        assert sent.get("hget", 0) <= sent["evalsha"] / 2, sent  # a beat reads its own record at most, rarely
        assert sent["evalsha"] >= 100, sent  # a sample, not a handful of beats
        inner = sum(v for k, v in sent.items() if k not in ("evalsha", "config|resetstat", "info"))
        return inner / sent["evalsha"]

    async def main() -> None:
        small, big = await per_beat(13, 3), await per_beat(1, 40)
        assert big <= small + 2, (small, big)

    asyncio.run(within(main(), 90))


class TestBatchedBeats:
    def test_followers_beats_in_one_turn_go_as_one_pipeline(self, fake_server: fakeredis.FakeServer) -> None:
        """Beats queued in one turn of the loop share one write; each caller gets its own reply,
        and a caller that gave up does not spoil the others' (nor is its call sent)."""
        from leaderpool.backend.batching import batcher_for
        from leaderpool.backend.keys import Keyspace
        from leaderpool.members import MemberInfo

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            stores = [PoolStore(client, Keyspace(f"b{i}")) for i in range(5)]
            for i, store in enumerate(stores):
                await store.register(MemberInfo(f"m{i}", "n", "h", 1, 0, 1), 5000)
            batcher = batcher_for(client)
            assert batcher is not None
            sent: list[int] = []  # the size of each batch written
            real = batcher._send

            async def counted(batch: list[Any]) -> None:
                sent.append(len(batch))
                await real(batch)

            batcher._send = counted  # type: ignore[method-assign]
            calls = [
                asyncio.ensure_future(s.heartbeat(f"m{i}", 5000, None, False, batched=True))
                for i, s in enumerate(stores)
            ]
            gone = asyncio.ensure_future(stores[0].heartbeat("nobody", 5000, None, False, batched=True))
            await asyncio.sleep(0)
            gone.cancel()
            beats = await asyncio.gather(*calls)
            assert [5] == sent
            assert all(b.status.name == "OK" for b in beats)
            assert gone.cancelled()
            await client.aclose()

        run(main())

    def test_a_batch_written_again_leaves_out_the_calls_given_up_on(self, fake_server: fakeredis.FakeServer) -> None:
        """The connection fails as a batch is written; the caller of one call gives up meanwhile
        (a leader past its renew deadline): the batch goes again, without that call."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from leaderpool.backend.batching import batcher_for
        from leaderpool.backend.keys import Keyspace
        from leaderpool.members import MemberInfo

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            stores = [PoolStore(client, Keyspace(f"r{i}")) for i in range(3)]
            for i, store in enumerate(stores):
                await store.register(MemberInfo(f"m{i}", "n", "h", 1, 0, 1), 5000)
            assert batcher_for(client) is not None
            conn = await client.connection_pool.get_connection()
            conn.retry = Retry(NoBackoff(), 2)  # as a real client's (fakeredis gives none)
            await client.connection_pool.release(conn)  # the one the batch will take
            written: list[Any] = []
            real_send = conn.send_packed_command

            async def failing_once(packed: Any, check_health: bool = True) -> None:
                written.append(packed)
                if len(written) == 1:
                    giving_up.cancel()
                    await asyncio.sleep(0)  # the cancel reaches its call's future
                    raise redis.exceptions.ConnectionError("dropped")
                await real_send(packed, check_health=check_health)

            conn.send_packed_command = failing_once
            calls = [
                asyncio.ensure_future(s.heartbeat(f"m{i}", 5000, None, False, batched=True))
                for i, s in enumerate(stores[:2])
            ]
            giving_up = asyncio.ensure_future(stores[2].heartbeat("m2", 5000, None, False, batched=True))
            beats = await asyncio.gather(*calls)
            assert all(b.status.name == "OK" for b in beats) and giving_up.cancelled()
            batches = [w for w in written if isinstance(w, bytes) and b"EVALSHA" in w]  # not the reconnection's
            assert 2 == len(batches) and b"m2" in batches[0] and b"m2" not in batches[1]
            await client.aclose()

        run(main())

    def test_a_batch_survives_redis_forgetting_the_script(self, fake_server: fakeredis.FakeServer) -> None:
        """After SCRIPT FLUSH (a Redis restart) a batched beat loads the script and succeeds."""
        from leaderpool.backend.keys import Keyspace
        from leaderpool.members import MemberInfo

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            store = PoolStore(client, Keyspace("flushed"))
            await store.register(MemberInfo("m", "n", "h", 1, 0, 1), 5000)
            await client.script_flush()
            beat = await store.heartbeat("m", 5000, None, False, batched=True)
            assert "OK" == beat.status.name
            await client.aclose()

        run(main())


class TestOverload:
    def test_a_burst_of_one_warning_is_throttled_and_counted(self) -> None:
        """Ten lines pass at once, then two a second; the next line that passes says how many
        were held back."""
        from leaderpool.util.throttle import Throttle

        now = [0.0]
        t = Throttle(burst=10, per_s=2.0, clock=lambda: now[0])
        passed = [t.allow() for _ in range(1000)]
        assert 10 == sum(p is not None for p in passed)
        now[0] += 0.5
        assert 990 == t.allow()
        assert t.allow() is None

    def test_a_followers_timeout_backs_off_a_heartbeat_a_leaders_does_not(self) -> None:
        """A timed-out call means overload: a follower waits about a heartbeat (jittered), a
        leader retries within its renew deadline."""
        from leaderpool.election.retry import Retries
        from leaderpool.util.log import get_logger

        log = get_logger("leaderpool", pool="p", member="m", term=None)
        follower = [Retries(1.0).failed(TimeoutError(), log, renew_left_s=None) for _ in range(20)]
        assert all(0.5 <= d <= 1.0 for d in follower) and len(set(follower)) > 1
        leader = Retries(1.0).failed(TimeoutError(), log, renew_left_s=0.4)
        assert leader <= 0.1


def test_a_vacancy_nobody_was_next_for_costs_glances_not_listings(
    fake_server: fakeredis.FakeServer, reads: Counter[str]
) -> None:
    """The leader crashes while no member knows it is next in line (say the next one just
    changed): at the lease's end every member looks, with a glance; the one Redis ranks first
    claims, nobody lists the pool."""

    async def main() -> None:
        rec = Recorder()
        members = await _pool(fake_server, rec, 20, ttl_s=1.0)
        reads.clear()
        members[0].core.abandon()
        for m in members[1:]:
            m.core.view.successor_id = "someone-gone"
        await members[1].wait_until_leader(10)
        await _quiet(reads)
        assert 0 == reads["records"], reads
        assert ["m001"] == leaders(members[1:])
        await stop_all(members[1:])

    run(main())


def test_quiet_gc_freezes_what_is_alive_and_collects_young_objects_less_often() -> None:
    """``leaderpool.quiet_gc()``: every object alive is out of the collector's reach, and young
    collections wait for 10,000 allocations; the process's settings are put back after."""
    import gc

    from leaderpool import quiet_gc
    from leaderpool.util.gc_tuning import YOUNG_THRESHOLD

    before = gc.get_threshold()
    alive = [[i] for i in range(1000)]  # containers the collector would walk
    try:
        frozen = quiet_gc()
        assert frozen >= len(alive) and frozen == gc.get_freeze_count()
        assert (YOUNG_THRESHOLD, *before[1:]) == gc.get_threshold()
        assert not any(x is alive for x in gc.get_objects())  # no collection walks it any more
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_only_the_leader_and_the_next_in_line_hear_the_lease_renewals(redis_one: Any) -> None:
    """A renewal's keyspace event ("expire") goes to the leader and the next in line, not to
    every member: the others hear of a new lead on the pool's channel. Three worker processes:
    two connections on the leader key's channel; after the leader is killed, the new leader
    and its next in line again (the third, restarted, is not)."""
    import redis as sync_redis

    from leaderpool.backend.keys import Keyspace
    from tests.support.worker_procs import eventually as eventually_sync
    from tests.support.worker_procs import workers_for

    channel = f"__keyspace@0__:{Keyspace('p').leader}"
    admin = sync_redis.Redis.from_url(redis_one.url)

    def hearing() -> int:
        return int(admin.pubsub_numsub(channel)[0][1])

    try:
        with workers_for(redis_one.url) as ws:
            a = ws.start("a", ttl="2")
            a.elected()
            b = ws.start("b", ttl="2")
            b.sees("a")
            c = ws.start("c", ttl="2")
            c.sees("a")
            eventually_sync(lambda: hearing() == 2)
            a.kill()
            b.elected()
            d = ws.start("d", ttl="2")
            d.sees("b")
            eventually_sync(lambda: hearing() == 2)  # b leads, c is next; d does not hear them
    finally:
        admin.close()
