"""The kit's clock and history: fakeredis's time follows it, a run repeats exactly, and the
single-leader check catches two leaders."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

import leaderpool.election
from leaderpool.testkit.fake_time import fakeredis_on
from leaderpool.testkit.kit_clock import KitClock
from leaderpool.testkit.kit_pool import KitPool
from leaderpool.testkit.kit_redis import KitRedis
from leaderpool.testkit.lead_history import LeadEvent, LeadHistory

PoolFactory = Callable[..., KitPool]


class TestVirtualTime:
    def test_fakeredis_expiry_and_time_follow_the_clock(
        self, leaderpool_redis: KitRedis, leaderpool_pool: PoolFactory
    ) -> None:
        """advance() moves Redis's TIME (in Lua too) and expires keys, without sleeping."""
        client = leaderpool_redis.client()
        pool = leaderpool_pool("p")
        before, _ = client.time()
        client.set("k", "v", px=5000)
        pool.advance(4.9)
        assert b"v" == client.get("k")
        pool.advance(0.2)
        assert client.get("k") is None
        after, _ = client.time()
        assert 5 <= after - before <= 6
        lua_seconds = client.eval("return redis.call('TIME')[1]", 0)
        assert int(lua_seconds) >= after

    def test_a_run_repeats_exactly(self) -> None:
        """The same faults give the same history: the same events in the same order, at the same
        instants to within Redis's unit, a millisecond (nothing waits on the wall clock)."""

        def run() -> list[LeadEvent]:
            redis, clock = KitRedis("fake"), KitClock(wall_start=1_800_000_000.0)
            with fakeredis_on(clock.wall):
                pool = KitPool("p", redis, clock)
                for _ in range(3):
                    pool.join()
                first = pool.wait_for_leader()
                pool.kill(first)
                second = pool.wait_for_leader()
                pool.freeze(second)
                pool.advance(3.0)
                pool.thaw(second)
                pool.close()
            redis.close()
            return pool.history()

        first, second = run(), run()
        assert 6 == len(first)  # the last: m2 stopped by close()
        assert [e[1:] for e in first] == [e[1:] for e in second]
        assert all(abs(a.t - b.t) <= 0.002 for a, b in zip(first, second, strict=True)), (first, second)

    def test_advance_refuses_going_back(self) -> None:
        clock = KitClock()
        with pytest.raises(ValueError, match="seconds >= 0"):
            import asyncio

            asyncio.run(clock.advance(-1))


class TestSingleLeaderCheck:
    def test_overlapping_leads_are_reported(self) -> None:
        """A lead elected while another may still act (before its renew deadline) is two leaders."""
        history = LeadHistory()
        history.elected(0.0, "a", 1)
        history.saw_deadline("a", 1, 0.67)
        history.elected(0.5, "b", 2)
        [problem] = history.violations()
        assert "two leaders: a (term 1) led until t=0.670 while b (term 2) was elected at t=0.500" == problem

    def test_a_lead_past_its_deadline_is_not_a_second_leader(self) -> None:
        """A frozen leader told late (revoked after the next election) acted only until its deadline."""
        history = LeadHistory()
        history.elected(0.0, "a", 1)
        history.saw_deadline("a", 1, 0.67)
        history.elected(1.0, "b", 2)
        history.revoked(3.0, "a", 1, "lease_lost")
        assert [] == history.violations()

    def test_terms_going_backwards_are_reported(self) -> None:
        history = LeadHistory()
        history.elected(0.0, "a", 5)
        history.revoked(0.1, "a", 5, "resigned")
        history.elected(0.2, "b", 3)
        assert ["term went backwards"] == [re.sub(r":.*", "", p) for p in history.violations()]


def test_the_election_reads_time_only_through_its_clock() -> None:
    """One clock seam: no module of the state machine reads the system clock itself."""
    package = Path(leaderpool.election.__file__).parent
    readers = [
        f"{path.name}:{n}"
        for path in sorted(package.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\btime\.(monotonic|time|perf_counter)\(|^import time|loop\.time\(", line)
    ]
    assert [] == readers
